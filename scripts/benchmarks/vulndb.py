"""Vulnerability import and matching figures (issue 3 "Figures").

Generates a Debian-security-tracker-shaped file of 50,000 CVE entries (skewed over
8,000 source packages, two releases each, seeded so every run is identical), imports
it through ``aegis.analyze.evidence.vulndb.import_file`` into a temporary AEGIS_HOME,
loads the stored index, and matches 3,000 installed packages (post-change versions,
a third of them binaries whose source differs) against it.

Figures: ``match_s`` (goal <= 0.5 s), ``matches_per_s`` (package lookups per second),
``import_s``, ``load_s`` and the counts.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CVES = 50_000
SOURCES = 8_000
PACKAGES = 3_000


def _version(rng: random.Random) -> str:
    epoch, major, minor = rng.randint(0, 2), rng.randint(1, 9), rng.randint(0, 30)
    patch, rev, update = rng.randint(0, 9), rng.randint(1, 5), rng.randint(1, 4)
    return f"{epoch}:{major}.{minor}.{patch}-{rev}+deb12u{update}"


def _tracker(rng: random.Random) -> dict[str, Any]:
    sources = [f"src{i}" for i in range(SOURCES)]
    # Skewed like the real tracker (a few sources such as the kernel carry thousands
    # of entries, most carry a handful), but not so much that one source dominates.
    weights = [1.0 / (i + 1) ** 0.6 for i in range(SOURCES)]
    doc: dict[str, dict[str, Any]] = {}
    for n, src in enumerate(rng.choices(sources, weights, k=CVES)):
        status = rng.choice(("resolved", "resolved", "resolved", "open", "undetermined"))
        urgency = rng.choice(("low", "medium", "high", "unimportant", "not yet assigned"))
        rel: dict[str, Any] = {
            "status": status,
            "urgency": urgency,
            "repositories": {"bookworm": _version(rng)},
        }
        if status == "resolved":
            rel["fixed_version"] = _version(rng)
        doc.setdefault(src, {})[f"CVE-{2000 + n % 26}-{10000 + n}"] = {
            "description": f"generated issue {n} in {src}",
            "releases": {"bookworm": rel, "bullseye": dict(rel)},
        }
    return doc


def run() -> dict[str, object]:
    """Measure import, load and matching in one run."""
    from aegis.analyze import debversion
    from aegis.analyze.evidence import vulndb, vulnerabilities
    from aegis.config import load_config
    from aegis.model import Action, PackageChange

    rng = random.Random(20261126)  # noqa: S311 - reproducible data, not secrets
    with tempfile.TemporaryDirectory(prefix="aegis-bench-vulndb-") as tmp:
        home = Path(tmp)
        tracker = home / "tracker.json"
        tracker.write_text(json.dumps(_tracker(rng)))
        cfg = load_config({"AEGIS_HOME": str(home)})

        t0 = time.perf_counter()
        index, _ = vulndb.import_file(cfg, tracker, datetime.now(UTC))
        import_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        loaded = vulndb.load_index(cfg)
        load_s = time.perf_counter() - t0
        assert loaded is not None

        changes = []
        for i in range(PACKAGES):
            # A server's 3,000 binaries come from ~2,000 sources spread over the tracker.
            src = f"src{rng.randrange(SOURCES) if i % 3 else rng.randrange(SOURCES // 4)}"
            name = src if i % 3 else f"lib{src}-{i}"
            current = _version(rng)
            changes.append(
                PackageChange(
                    name=name,
                    arch="amd64",
                    action=Action.UPGRADE,
                    current_version=current,
                    candidate_version=_version(rng),
                    source_package=src,
                    source_version=None,
                    repository=None,
                )
            )
        debversion.version_key.cache_clear()  # measure cold version parsing
        t0 = time.perf_counter()
        found = vulnerabilities.match(changes, loaded)
        match_s = time.perf_counter() - t0
        compared = sum(len(loaded.entries.get(c.source_package, ())) for c in changes)
    return {
        "tracker_cves": CVES,
        "index_entries": index.entry_count,
        "packages": PACKAGES,
        "entries_compared": compared,
        "vulnerabilities_found": len(found),
        "import_s": round(import_s, 3),
        "load_s": round(load_s, 3),
        "match_s": round(match_s, 4),
        "match_goal_s": 0.5,
        "matches_per_s": round(PACKAGES / match_s) if match_s else None,
        "load_and_match_s": round(load_s + match_s, 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
