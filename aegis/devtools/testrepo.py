"""Real signed apt repositories and throwaway apt roots for tests, the demo and benches.

Recipes follow docs/testing.md: tiny packages built with
``dpkg-deb --root-owner-group -Zgzip``, indexed with ``apt-ftparchive``, signed with
a throwaway ed25519 key (``InRelease`` and ``Release.gpg``), and consumed by apt
through a PRIVATE ``APT_CONFIG`` that never reads the host's configuration and
makes dpkg act on the throwaway root (``DPkg::Options { "--root=R"; ... }``).

This module is the one import point (``from aegis.devtools import testrepo``) and
the ``scripts/make-test-repo`` CLI; the parts live beside it, by concern:

- :mod:`~aegis.devtools.testrepo_keys`: throwaway keys, the per-process cache, the
  tool runner.
- :mod:`~aegis.devtools.testrepo_packages`: fixture package specs and their .debs.
- :mod:`~aegis.devtools.testrepo_repos`: building, signing and breaking repositories.
- :mod:`~aegis.devtools.testrepo_roots`: throwaway roots and running apt in them.

Public API:

- :func:`build_repo` -> :class:`Repo` (signed repository; keys and .debs are cached
  for the process, so a second repository costs ~0.1 s).
- :func:`negative_repo` builds the repositories apt must reject
  (``wrong-key``, ``unsigned``, ``badsig``, ``hash-mismatch``, ``expired``,
  ``no-signed-by``) and :func:`debian_lookalike_repo` the ``Origin: Debian`` one.
- :func:`make_root` -> :class:`AptRoot`; :func:`apt_update`, :func:`run_apt`,
  :func:`apt_env`.

Example::

    repo = build_repo(tmp / "repo")
    root = make_root(tmp / "root", [repo])
    apt_update(root)
    run_apt(root, "install", "-y", "aegis-tool")

Hostile fixtures contain the dangerous text a scanner must find, but their
network and payload execution is gated behind ``AEGIS_FIXTURE_ARMED=yes`` and
all writes go under ``${DPKG_ROOT:-}``, so installing them into a throwaway root
is harmless.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

from aegis.devtools.testrepo_keys import Key, get_key
from aegis.devtools.testrepo_packages import (
    DEBIAN_LOOKALIKE_PACKAGES,
    DEFAULT_PACKAGES,
    FileSpec,
    PackageSpec,
)
from aegis.devtools.testrepo_repos import (
    NEGATIVE_KINDS,
    Repo,
    build_repo,
    debian_lookalike_repo,
    negative_repo,
)
from aegis.devtools.testrepo_roots import (
    SIGNED_BY_FORMS,
    AptRoot,
    apt_env,
    apt_update,
    make_root,
    run_apt,
)

__all__ = [
    "DEBIAN_LOOKALIKE_PACKAGES",
    "DEFAULT_PACKAGES",
    "NEGATIVE_KINDS",
    "SIGNED_BY_FORMS",
    "AptRoot",
    "FileSpec",
    "Key",
    "PackageSpec",
    "Repo",
    "apt_env",
    "apt_update",
    "build_repo",
    "debian_lookalike_repo",
    "get_key",
    "make_root",
    "negative_repo",
    "run_apt",
]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI for ``scripts/make-test-repo``: build a repo and optionally a root using it.

    Example: ``scripts/make-test-repo /tmp/repo --root /tmp/root`` prints the repo
    path, its fingerprint and, with ``--root``, the ``APT_CONFIG`` to export.
    Keys live in a per-process temp dir, so the script keeps a copy beside the repo.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--negative", choices=NEGATIVE_KINDS, default=None)
    parser.add_argument(
        "--lookalike", action="store_true", help="build the 'Origin: Debian' repository instead"
    )
    parser.add_argument("--signed-by", choices=SIGNED_BY_FORMS, default="keyring-path")
    args = parser.parse_args(argv)
    if args.negative:
        repo = negative_repo(args.dest, args.negative)
    elif args.lookalike:
        repo = debian_lookalike_repo(args.dest)
    else:
        repo = build_repo(args.dest)
    keep = repo.path / "keys"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(repo.key_path, keep / "repo.gpg")
    shutil.copyfile(repo.armored_key_path, keep / "repo.asc")
    print(f"repo: {repo.path}\nsuite: {repo.suite}\nfingerprint: {repo.fingerprint}")
    print(f"keyring: {keep / 'repo.gpg'}")
    if args.root is not None:
        kept = dataclasses.replace(
            repo, key_path=keep / "repo.gpg", armored_key_path=keep / "repo.asc"
        )
        root = make_root(args.root, [kept], signed_by_form=args.signed_by)
        print(f"root: {root.root}\nAPT_CONFIG={root.apt_config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
