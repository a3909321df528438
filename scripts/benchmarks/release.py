"""Release verification per repository over the bare verifier on the same bytes (issue 18).

Goal: <= 1.2x. Aegis's :func:`~aegis.ecosystems.apt.evidence.signature.verify_release` (the
verifier apt uses here, chosen as apt chooses it; InRelease split as apt splits it;
gpgv's status judged whole or sqv's verdict read) against one bare run of that same
verifier on the same InRelease and keyring. Uses this host's real Debian lists when
apt has fetched them (several signatures, the real keyring), else the test repository.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROUNDS = 20
GOAL = 1.2


def _best(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def _host_case() -> tuple[object, object, object] | None:
    """(files, entry, paths) of the first host source apt holds a signed InRelease for."""
    from aegis.ecosystems.apt.evidence.repositories import find_release_files
    from aegis.ecosystems.apt.evidence.sources import parse_sources, resolve_apt_paths
    from aegis.ecosystems.apt.parse import parse_apt_config_dump
    from aegis.ecosystems.apt.run import run_tool

    dump = run_tool(["/usr/bin/apt-config", "dump"], apt_config=None, timeout_s=30.0)
    if not dump.ok:
        return None
    paths = resolve_apt_paths(parse_apt_config_dump(dump.stdout))
    parts = Path(paths.sourceparts)
    texts = (
        [(str(p), p.read_text()) for p in sorted(parts.glob("*.sources"))] if parts.is_dir() else []
    )
    for entry in parse_sources(texts):
        files = find_release_files(entry, paths, prefer_repository=False)
        if files.inrelease is not None and entry.signed_by_form == "keyring-path":
            return files, entry, paths
    return None


def _test_case(tmp: Path) -> tuple[object, object, object]:
    from aegis.devtools import testrepo
    from aegis.ecosystems.apt.evidence.repositories import find_release_files
    from aegis.ecosystems.apt.evidence.sources import parse_sources, resolve_apt_paths
    from aegis.ecosystems.apt.parse import parse_apt_config_dump
    from aegis.ecosystems.apt.run import run_tool

    repo = testrepo.build_repo(tmp / "repo")
    root = testrepo.make_root(tmp / "root", [repo])
    dump = run_tool(["/usr/bin/apt-config", "dump"], apt_config=root.apt_config, timeout_s=30.0)
    paths = resolve_apt_paths(parse_apt_config_dump(dump.stdout))
    texts = [(str(p), p.read_text()) for p in sorted(Path(paths.sourceparts).iterdir())]
    (entry,) = parse_sources(texts)
    return find_release_files(entry, paths, prefer_repository=True), entry, paths


def run() -> dict[str, object]:
    """Measure and return the figures."""
    from aegis.ecosystems.apt.evidence.signature import keyring_files, verify_release
    from aegis.ecosystems.apt.evidence.verifier import choose_verifier, split_clearsigned
    from aegis.ecosystems.apt.run import run_tool

    with tempfile.TemporaryDirectory(prefix="aegis-bench-release-") as t:
        tmp = Path(t)
        case = _host_case()
        source = "host lists"
        if case is None:
            case, source = _test_case(tmp), "test repository"
        files, entry, paths = case
        verifier = choose_verifier(paths)  # type: ignore[arg-type]
        check = verify_release(files, entry, paths, timeout_s=30.0, verifier=verifier)  # type: ignore[arg-type]
        assert check.status == "good", check
        (keyring,) = keyring_files(entry, paths)[:1]  # type: ignore[arg-type]
        inrelease = files.inrelease  # type: ignore[attr-defined]
        home = tmp / "home"
        home.mkdir(mode=0o700)
        if verifier.tool == "sqv":
            message, sig = split_clearsigned(inrelease.read_bytes())
            (tmp / "m").write_bytes(message)
            (tmp / "s").write_bytes(sig)
            env = {"SEQUOIA_CRYPTO_POLICY": verifier.policy} if verifier.policy else None
            argv = [verifier.path, "--keyring", str(keyring), str(tmp / "s"), str(tmp / "m")]
        else:
            env = None
            out = str(tmp / "out")
            argv = [verifier.path, "--homedir", str(home), "--status-fd", "1",
                    "--keyring", str(keyring), "--output", out, str(inrelease)]  # fmt: skip

        def bare() -> None:
            assert run_tool(argv, apt_config=None, timeout_s=30.0, extra_env=env).ok

        def aegis() -> None:
            verify_release(
                files,  # type: ignore[arg-type]
                entry,  # type: ignore[arg-type]
                paths,  # type: ignore[arg-type]
                timeout_s=30.0,
                verifier=verifier,
            )

        t_bare, t_aegis = _best(bare), _best(aegis)
    ratio = t_aegis / t_bare
    return {
        "source": source,
        "verifier": verifier.describe(),
        "ms_bare_verifier": round(t_bare * 1000, 2),
        "ms_aegis_verify_release": round(t_aegis * 1000, 2),
        "ratio_over_bare_verifier": round(ratio, 3),
        "goal_ratio": GOAL,
        "meets_goal": ratio <= GOAL,
    }
