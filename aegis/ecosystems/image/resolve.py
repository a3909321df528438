"""Plan an image pull read-only: the manifest, the config, the signature, all checked.

``skopeo inspect --raw`` reads the manifest (or index) the reference names, from the one
registry the reference names (TLS verified; plain HTTP only for a loopback registry policy
marks ``http://``), with an empty ``registries.conf`` so no mirror or unqualified-search
registry takes part. The other reads are plain GETs of the same registry's HTTP API
(:mod:`aegis.ecosystems.image.registry`), run at once beside skopeo. Every byte is checked
here:

1. the manifest's digest is the SHA-256 of skopeo's bytes, compared with the reference's own
   digest when it has one (and the tag resolved beside it, so a moved tag shows);
2. for an index, the manifest of this host's platform, checked against the index's entry;
3. the config blob, checked against the manifest's config digest (``User``, ``Entrypoint``,
   ``Cmd``, labels, created); skopeo ``--config`` reads it when the HTTP read fails;
4. cosign's signature tag ``sha256-<hex>.sig``: absent, present without a trusted key, or
   verified/invalid against the keys the registry's policy entry trusts
   (:mod:`aegis.ecosystems.image.cosign`).

Nothing reads or writes the container store: aegisd reads it before and after the pull.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aegis.analyze.lookalike import lookalike_signals
from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.ecosystems.image import cosign
from aegis.ecosystems.image.cosign import TrustedKey, load_keys
from aegis.ecosystems.image.names import (
    KNOWN_REGISTRIES,
    ImageRef,
    check_targets,
    is_loopback,
    split_location,
)
from aegis.ecosystems.image.registry import Got, Registry
from aegis.ecosystems.image.rules import entry_for
from aegis.errors import InputError
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    Artifact,
    ConfigEvidence,
    EcosystemEvidence,
    ImageEvidence,
    ImageLayer,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Provenance,
    Signal,
)
from aegis.policy.config import PolicyConfig
from aegis.policy.run import load_policy

SKOPEO = "/usr/bin/skopeo"
SKOPEO_TIMEOUT_S = 120.0
MAX_MANIFEST = 4 * 1024 * 1024
_DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json",
     "application/vnd.docker.distribution.manifest.list.v2+json"}
)  # fmt: skip
MANIFEST_TYPES = frozenset(
    {"application/vnd.oci.image.manifest.v1+json",
     "application/vnd.docker.distribution.manifest.v2+json"}
)  # fmt: skip
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le":
         "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip


def host_platform() -> str:
    """``linux/<GOARCH>`` of this machine (the image an apply pulls from an index)."""
    machine = platform.machine()
    return f"linux/{_ARCH.get(machine, machine)}"


def skopeo_env() -> dict[str, str]:
    """No user configuration: an empty registries.conf (no mirrors, no search registries)."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent",
            "CONTAINERS_REGISTRIES_CONF": os.devnull}  # fmt: skip


def inspect_argv(ref: str, plain_http: bool, *, config: bool = False) -> tuple[str, ...]:
    """``skopeo inspect --raw`` of one reference (the bench's raw baseline drops ``--raw``)."""
    return (SKOPEO, "inspect", "--raw", *(("--config",) if config else ()),
            f"--tls-verify={'false' if plain_http else 'true'}", "--retry-times=0",
            "docker://" + ref)  # fmt: skip


@dataclass(frozen=True)
class _Got:
    ok: bool
    data: bytes
    error: str


def _skopeo(ref: str, plain_http: bool, *, config: bool = False) -> _Got:
    try:
        proc = subprocess.run(
            inspect_argv(ref, plain_http, config=config), env=skopeo_env(),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=SKOPEO_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return _Got(False, b"", f"skopeo did not finish: {e}")
    if proc.returncode != 0:
        return _Got(False, b"", proc.stderr[-2000:].decode("utf-8", "replace").strip())
    if len(proc.stdout) > MAX_MANIFEST:
        return _Got(False, b"", "larger than the manifest cap")
    return _Got(True, proc.stdout, "")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _media_type(doc: dict[str, Any]) -> str:
    mt = str(doc.get("mediaType", ""))
    if not mt and doc.get("schemaVersion") == 2:  # noqa: PLR2004 - the OCI schema version
        mt = ("application/vnd.oci.image.index.v1+json" if "manifests" in doc
              else "application/vnd.oci.image.manifest.v1+json")  # fmt: skip
    return mt


def _pick_platform(index: dict[str, Any], want: str) -> dict[str, Any] | None:
    for entry in index.get("manifests") or []:
        p = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(p, dict):
            continue
        name = f"{p.get('os')}/{p.get('architecture')}"
        if name == want and str(entry.get("mediaType", "")) in MANIFEST_TYPES:
            return dict(entry)
    return None


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


class _Failed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _failure(got: _Got, what: str) -> _Failed:
    unknown = "manifest unknown" in got.error or "not found" in got.error.lower()
    return _Failed("unknown-package" if unknown else "tool-failed", f"{what}: {got.error}")


def _signature_tag(digest: str) -> str:
    return f"{digest.replace(':', '-')}.sig"


@dataclass(frozen=True)
class _Signature:
    status: str
    key_id: str = ""
    detail: str = ""


def _signature(
    reg: Registry, ref: ImageRef, digest: str, keys: tuple[TrustedKey, ...]
) -> _Signature:
    """The cosign signature of ``digest`` (:mod:`aegis.ecosystems.image.cosign`), read-only."""
    got = reg.manifest(ref.path, _signature_tag(digest), MAX_MANIFEST)
    if not got.ok:
        if got.missing:
            return _Signature("absent")
        return _Signature("unknown", detail=got.error[:300])
    if not keys:
        return _Signature("unverified-no-key")
    try:
        layers = cosign.signature_layers(got.data)
    except ValueError as e:
        return _Signature("invalid", detail=f"the signature manifest: {e}")
    reasons: list[str] = []
    for layer_digest, size, signature in layers:
        blob = reg.blob(ref.path, layer_digest, size)
        if not blob.ok or _digest(blob.data) != layer_digest:
            reasons.append(f"the payload {layer_digest[:80]} is not the bytes its manifest names")
            continue
        unbound = cosign.check_payload(blob.data, ref, digest)
        if unbound:
            reasons.append(unbound)
            continue
        key = cosign.verify(blob.data, signature, keys)
        if key is not None:
            return _Signature("verified", key.key_id)
        reasons.append("no trusted key verifies the signature")
    # Any one layer that binds and verifies is enough (cosign's rule); otherwise the first why.
    return _Signature("invalid", detail=reasons[0][:300])


def _read(got: Got, ref: str, plain_http: bool, *, config: bool = False) -> _Got:
    """The registry's HTTP answer; skopeo's when the HTTP read failed (both get checked)."""
    if got.ok:
        return _Got(True, got.data, "")
    return _skopeo(ref, plain_http, config=config)


def inspect_image(  # noqa: PLR0912, PLR0915 - one straight sequence of checked reads
    ref: ImageRef, plain_http: bool, want: str, keys: tuple[TrustedKey, ...] = ()
) -> ImageEvidence:
    """Everything :mod:`this module <aegis.ecosystems.image.resolve>` reads, checked.

    Raises:
        _Failed: the registry did not answer, or answered bytes that do not match.
    """
    reg = Registry(ref.host, plain_http)
    with ThreadPoolExecutor(max_workers=3) as pool:
        # skopeo reads the manifest the reference names; the other reads go straight to the
        # registry's HTTP API at once (:mod:`aegis.ecosystems.image.registry`), each one
        # checked against a digest held here.
        first = pool.submit(_skopeo, ref.by_digest(ref.digest) if ref.digest else
                            f"{ref.repository}:{ref.tag}", plain_http)  # fmt: skip
        tagged = pool.submit(reg.manifest, ref.path, ref.tag, MAX_MANIFEST) if (
            ref.digest and ref.tag) else None  # fmt: skip
        sig = pool.submit(_signature, reg, ref, ref.digest, keys) if ref.digest else None
        top = first.result()
        if not top.ok:
            raise _failure(top, f"cannot inspect {ref.canonical}")
        digest = _digest(top.data)
        if ref.digest and digest != ref.digest:
            raise _Failed("tool-failed", f"the registry served a manifest that is not {ref.digest}")
        try:
            doc = _json(top.data)
        except ValueError as e:
            raise _Failed("tool-failed", f"unreadable manifest: {e}") from e
        media_type = _media_type(doc)
        manifest, platform_digest = doc, digest
        if sig is None:
            sig = pool.submit(_signature, reg, ref, digest, keys)
        if media_type in INDEX_TYPES:
            entry = _pick_platform(doc, want)
            if entry is None:
                raise _Failed("unknown-package", f"{ref.canonical} has no image for {want}")
            platform_digest = str(entry.get("digest", ""))
            got = _read(
                reg.manifest(ref.path, platform_digest, MAX_MANIFEST),
                ref.by_digest(platform_digest),
                plain_http,
            )
            if not got.ok:
                raise _failure(got, f"cannot inspect {ref.by_digest(platform_digest)}")
            if _digest(got.data) != platform_digest:
                raise _Failed("tool-failed", "the platform manifest does not match its digest")
            try:
                manifest = _json(got.data)
            except ValueError as e:
                raise _Failed("tool-failed", f"unreadable manifest: {e}") from e
        elif media_type not in MANIFEST_TYPES:
            raise _Failed("tool-failed", f"unsupported manifest type {media_type[:80]!r} "
                          "(schema 1 and artifacts are never planned)")  # fmt: skip
        config_ref = manifest.get("config") or {}
        config_digest = str(config_ref.get("digest", ""))
        if not _DIGEST_RE.match(config_digest):
            raise _Failed("tool-failed", "the manifest names no sha256 config digest")
        cfg_got = _read(
            reg.blob(ref.path, config_digest, MAX_MANIFEST),
            ref.by_digest(platform_digest),
            plain_http,
            config=True,
        )
        if not cfg_got.ok:
            raise _failure(cfg_got, "cannot read the image config")
        if _digest(cfg_got.data) != config_digest:
            raise _Failed("tool-failed", "the image config does not match the manifest's digest")
        signature = sig.result()
        tag_digest = ""
        if tagged is not None:
            t = tagged.result()
            tag_digest = _digest(t.data) if t.ok else "unresolved"
    try:
        config = _json(cfg_got.data)
    except ValueError as e:
        raise _Failed("tool-failed", f"unreadable image config: {e}") from e
    raw_inner = config.get("config")
    inner: dict[str, Any] = raw_inner if isinstance(raw_inner, dict) else {}
    raw_labels = inner.get("Labels")
    labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
    layers = tuple(
        ImageLayer(str(x.get("digest", "")), int(x.get("size", 0) or 0),
                   str(x.get("mediaType", "")))
        for x in manifest.get("layers") or [] if isinstance(x, dict)
    )  # fmt: skip
    return ImageEvidence(
        reference=ref.canonical, repository=ref.repository, tag=ref.tag, digest=digest,
        media_type=media_type, platform=f"{config.get('os')}/{config.get('architecture')}",
        platform_digest=platform_digest, config_digest=config_digest, layers=layers,
        created=str(config.get("created", "")),
        labels={str(k)[:200]: str(v)[:500] for k, v in sorted(labels.items())[:100]},
        user=str(inner.get("User", "") or ""), entrypoint=_strs(inner.get("Entrypoint")),
        cmd=_strs(inner.get("Cmd")), signature=signature.status,
        signature_verified=signature.status == "verified", tag_digest=tag_digest,
        signature_key=signature.key_id, signature_detail=signature.detail,
    )  # fmt: skip


def _root_user(user: str) -> bool:
    name = user.split(":", 1)[0]
    return name in ("", "0", "root")


def host_signals(ref: ImageRef) -> list[Signal]:
    """A registry host that imitates a well-known one (``docker.io.example.com``, punycode)."""
    host = ref.hostname.lower()
    if host in KNOWN_REGISTRIES:
        return []
    out: list[Signal] = []
    for known in sorted(KNOWN_REGISTRIES):
        if host.startswith((known + ".", known + "-")) or known.replace(".", "-") in host:
            out.append(
                Signal("image.registry-lookalike", ref.repository, f"{host} imitates {known}")
            )
            break
    if any(label.startswith("xn--") for label in host.split(".")):
        out.append(Signal("image.registry-lookalike", ref.repository, f"{host} is punycode"))
    if not out:
        out.extend(Signal("image.registry-lookalike", ref.repository, s.detail)
                   for s in lookalike_signals([host], set(KNOWN_REGISTRIES)))  # fmt: skip
    return out


def image_signals(ref: ImageRef, ev: ImageEvidence | None) -> list[Signal]:
    """Signals of a plan (stable names, docs/ecosystems.md)."""
    out = host_signals(ref)
    if not ref.digest:
        out.append(Signal("image.tag-mutable", ref.repository, f"tag {ref.tag!r} without a digest"))
    if ev is None:
        return out
    if ev.tag_digest and ev.tag_digest != ev.digest:
        moved = f"tag {ref.tag!r} now names {ev.tag_digest}, not {ev.digest}"
        out.append(Signal("image.tag-moved", ref.repository, moved))
    if _root_user(ev.user):
        out.append(Signal("image.runs-as-root", ref.repository, f"User {ev.user or '(unset)'!r}"))
    if ev.signature in ("absent", "unknown"):
        out.append(Signal("image.unsigned", ref.repository, f"signature {ev.signature}"))
    if ev.signature == "invalid":
        why = ev.signature_detail or "no trusted key verifies it"
        out.append(Signal("image.signature-invalid", ref.repository, why))
    return out


def trusted_keys(cfg: Any, registry: str, ref: ImageRef) -> tuple[TrustedKey, ...]:
    """The keys the ``[[registries]]`` entry approving ``ref`` trusts (none without policy).

    Raises:
        InputError: a key file is unusable (:func:`aegis.ecosystems.image.cosign.load_key`).
    """
    policy = load_policy(cfg)
    if not isinstance(policy, PolicyConfig):
        return ()  # policy denies anyway; the status says no key was tried
    entry = entry_for(policy.registries, registry, ref)
    return load_keys(entry.trusted_keys) if entry is not None else ()


def plan_image(cfg: Any, intent: Intent, now: datetime) -> Plan:
    """Inspect ``intent``'s one reference for its store (read-only)."""
    if intent.operation is not Operation.INSTALL:
        raise InputError("an image plan is a pull (install); nothing else is planned")
    (ref,) = check_targets(intent.targets)
    runtime, _ = split_location(intent.location)
    registry = intent.registry or ""
    plain_http = registry == f"http://{ref.host}/" and is_loopback(ref.hostname)
    if registry not in (f"https://{ref.host}/", f"http://{ref.host}/"):
        raise InputError(f"the registry {registry[:80]!r} is not the reference's own")
    if registry.startswith("http://") and not plain_http:
        raise InputError("plain HTTP only for a loopback registry")
    want = host_platform()
    failure: AnalysisFailure | None = None
    ev: ImageEvidence | None = None
    try:
        ev = inspect_image(ref, plain_http, want, trusted_keys(cfg, registry, ref))
    except _Failed as e:
        failure = AnalysisFailure(e.kind, e.message[-2000:])
    except InputError as e:  # a trusted key policy names is unusable: nothing is verified
        failure = AnalysisFailure("tool-failed", e.message[-2000:])
    changes: tuple[PackageChange, ...] = ()
    prov: tuple[Provenance, ...] = ()
    arts: tuple[Artifact, ...] = ()
    if ev is not None:
        arch = ev.platform.split("/", 1)[-1]
        size = sum(layer.size for layer in ev.layers)
        url = f"docker://{ref.by_digest(ev.digest)}"
        changes = (PackageChange(ref.repository, arch, Action.INSTALL, None, ev.digest,
                                 ref.repository, ev.digest, registry,
                                 integrity=ev.digest),)  # fmt: skip
        # The provenance hash is the config digest: the image id the store must hold afterwards.
        prov = (Provenance(ref.repository, ev.digest, arch, url, ref.by_digest(ev.digest), size,
                           ev.config_digest.split(":", 1)[-1], registry,
                           (f"registry:{registry}", f"manifest:{ev.digest}"), True),)  # fmt: skip
        arts = (Artifact(name=ref.repository, version=ev.digest, kind="image", url=url,
                         sha256=ev.digest.split(":", 1)[1], size=size, requested=True,
                         commands=ev.entrypoint),)  # fmt: skip
    state_hash = canonical_hash({"ecosystem": "image", "location": intent.location,
                                 "reference": ref.canonical})  # fmt: skip
    plan = Plan(
        schema_version=PLAN_SCHEMA, plan_id=new_plan_id(), created_at=format_time(now),
        intent=intent, host=this_host(cfg), changes=changes, configure_order=(),
        command_preview=(), repositories=(), config=ConfigEvidence("", "", ()),
        provenance=prov, findings=(), vulnerabilities=(), vulndb_date=None, rollback=(),
        signals=tuple(image_signals(ref, ev)), package_state_hash=state_hash,
        content_inspected=True, failure=failure,
        ecosystem=EcosystemEvidence("image", intent.location or "", registry,
                                    f"skopeo ({runtime})", (), arts, image=ev),
    )  # fmt: skip
    return plan
