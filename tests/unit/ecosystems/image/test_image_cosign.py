"""cosign payload binding and the policy keys that configure it (pure parts; the real
verification against a registry is tests/integration/ecosystems/image/test_image_plan.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aegis.devtools.image_registry import simple_signing
from aegis.ecosystems.image.cosign import check_payload, signature_layers
from aegis.ecosystems.image.names import parse_reference
from aegis.policy.config import PolicyConfigError, parse_policy_config

DIGEST = "sha256:" + "a" * 64
REF = parse_reference(f"docker.io/library/nginx@{DIGEST}")
DEFAULT = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (simple_signing(DIGEST, "docker.io/library/nginx"), ""),
        # cosign writes Docker Hub as index.docker.io: the same repository.
        (simple_signing(DIGEST, "index.docker.io/library/nginx"), ""),
        (simple_signing("sha256:" + "b" * 64, "docker.io/library/nginx"), "signs"),
        (simple_signing(DIGEST, "docker.io/library/nginx-evil"), "names"),
        (simple_signing(DIGEST, "docker.io.evil.example/library/nginx"), "names"),
        (simple_signing(DIGEST, "-rm"), "names"),
        (simple_signing(DIGEST, "docker.io/library/nginx").replace(b"cosign container",
                                                                    b"other"), "type"),
        (b"[]", "not a simple-signing"),
        (b"\xff", "not a simple-signing"),
    ],
)  # fmt: skip
def test_a_payload_must_bind_the_digest_and_the_repository(payload: bytes, why: str) -> None:
    got = check_payload(payload, REF, DIGEST)
    assert (why in got) if why else got == ""


def _manifest(*layers: dict[str, object]) -> bytes:
    return json.dumps({"schemaVersion": 2, "layers": list(layers)}).encode()


SIG = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": DIGEST,
       "size": 10, "annotations": {"dev.cosignproject.cosign/signature": "AAAA"}}  # fmt: skip


@pytest.mark.parametrize(
    "manifest",
    [b"{}", b"[]", _manifest(), _manifest({**SIG, "size": 10**9}), _manifest({**SIG, "size": 0}),
     _manifest({**SIG, "annotations": {}}), _manifest(*[SIG] * 33), _manifest("x")],  # type: ignore[arg-type]
)  # fmt: skip
def test_a_signature_manifest_not_of_cosign_s_shape_is_refused(manifest: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by shape
        signature_layers(manifest)


def test_signature_layers_reads_cosign_s_layers() -> None:
    assert signature_layers(_manifest(SIG)) == [(DIGEST, 10, "AAAA")]


def _entry(extra: str) -> str:
    return (f'{DEFAULT}\n[[registries]]\nname = "r"\necosystem = "image"\n'
            f'url = "https://ghcr.io/org/"\n{extra}')  # fmt: skip


def test_policy_reads_trusted_keys_and_require_signature() -> None:
    cfg = parse_policy_config(_entry('trusted_keys = ["/etc/aegis/keys/images/a.pub"]\n'
                                     "require_signature = true\n"))  # fmt: skip
    (entry,) = cfg.registries
    assert entry.trusted_keys == ("/etc/aegis/keys/images/a.pub",)
    assert entry.require_signature is True
    plain = parse_policy_config(_entry(""))
    assert plain.registries[0].trusted_keys == ()
    assert plain.registries[0].require_signature is False


@pytest.mark.parametrize(
    "extra",
    ['require_signature = "yes"\n', 'trusted_keys = "/k.pub"\n', 'trusted_keys = ["k.pub"]\n',
     'trusted_keys = ["/etc/aegis/../tmp/k.pub"]\n', "trusted_keys = [1]\n",
     'trusted_keys = ["/etc/aegis/keys/\u00e4.pub"]\n'],
)  # fmt: skip
def test_bad_signing_settings_are_refused_at_policy_load(extra: str) -> None:
    with pytest.raises(PolicyConfigError):
        parse_policy_config(_entry(extra))


def test_signing_settings_are_for_image_registries_only() -> None:
    with pytest.raises(PolicyConfigError):
        parse_policy_config(
            f'{DEFAULT}\n[[registries]]\nname = "p"\necosystem = "pip"\n'
            'url = "https://pypi.org/simple/"\nrequire_signature = true\n'
        )
