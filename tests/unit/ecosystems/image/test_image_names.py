"""Image references: the OCI grammar, Docker Hub made explicit, hostile inputs refused."""

from __future__ import annotations

import pytest

from aegis.ecosystems.image.names import parse_reference, store_location
from aegis.ecosystems.image.resolve import host_signals
from aegis.errors import InputError

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("user/app", "docker.io/user/app:latest"),
        (f"nginx@{D}", f"docker.io/library/nginx@{D}"),
        (f"ghcr.io/org/app:v1@{D}", f"ghcr.io/org/app:v1@{D}"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("127.0.0.1:5000/a/b/c:t-1.2_x", "127.0.0.1:5000/a/b/c:t-1.2_x"),
        ("index.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
    ],
)
def test_references_are_made_explicit(text: str, canonical: str) -> None:
    assert parse_reference(text).canonical == canonical


@pytest.mark.parametrize(
    "text",
    [
        "--registry=evil.example",  # option injection
        "-q",
        "docker://nginx",  # transports and URLs
        "oci:/tmp/layout",
        "containers-storage:nginx",
        "https://registry.example/app",
        "ngіnx",  # Cyrillic i: a Unicode lookalike
        "dоcker.io/library/nginx",  # Cyrillic o in the host
        "nginx:1.27 --pull",
        "nginx\n",
        "Nginx",  # upper-case paths are not OCI
        "nginx@sha256:abc",  # short digest
        "nginx@md5:" + "a" * 32,
        f"nginx@{D.upper()}",
        "[::1]:5000/app",
        "reg.example:99999/app",
        "a" * 600,
        "",
        "nginx:" + "t" * 200,
        "../app",
    ],
)
def test_hostile_references_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "lookalike"),
    [
        ("docker.io.example.com/library/nginx", True),
        ("docker-io.example/x", True),
        ("ghcr.io.evil.net/org/app", True),
        ("xn--dckr-0qa.io/app", True),
        ("dockerr.io/app", True),
        ("quay.io/org/app", False),
        ("registry.example.org/app", False),
    ],
)
def test_lookalike_registry_hosts_are_signals(text: str, lookalike: bool) -> None:
    got = [s.name for s in host_signals(parse_reference(text))]
    assert (got == ["image.registry-lookalike"]) == lookalike, got


@pytest.mark.parametrize(
    ("runtime", "store"), [("lxc", None), ("podman", "relative"), ("podman", "/a/../b"),
                           ("docker", "/srv/x")],
)  # fmt: skip
def test_bad_stores_are_refused(runtime: str, store: str | None) -> None:
    with pytest.raises(InputError):
        store_location(runtime, store)


def test_store_listings_are_read_with_the_plans_normalisation() -> None:
    from aegis.ecosystems.image import _images

    podman = (b'[{"Id": "abc", "RepoDigests": ["docker.io/library/nginx@' + D.encode()
              + b'", "docker.io/library/other@' + D.encode() + b'"]}]')  # fmt: skip
    docker = b'{"ID": "sha256:abc", "Repository": "nginx", "Digest": "' + D.encode() + b'"}\n'
    for raw in (podman, docker):
        assert _images(raw, "docker.io/library/nginx") == {
            f"docker.io/library/nginx@{D}": "sha256:abc"
        }


def test_plain_http_to_a_remote_registry_is_refused_before_anything_runs() -> None:
    from datetime import UTC, datetime

    from aegis.config import load_config
    from aegis.ecosystems.image.resolve import plan_image
    from aegis.model import Intent, Operation, Tool

    intent = Intent(Tool.IMAGE, Operation.INSTALL, (f"registry.example/app@{D}",), "t",
                    "2026-01-01T00:00:00Z", location="podman:/srv/s",
                    registry="http://registry.example/")  # fmt: skip
    with pytest.raises(InputError):
        plan_image(load_config({"AEGIS_HOME": "/nonexistent"}), intent, datetime.now(UTC))
