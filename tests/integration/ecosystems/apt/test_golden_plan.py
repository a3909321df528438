"""Golden file of a full plan (ids, times, temp paths, keys, hashes and sizes normalised).

Regenerate after an intended change with ``AEGIS_UPDATE_GOLDEN=1 pytest this_file``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from aegis.devtools import testrepo
from aegis.model import plan_to_dict

from .conftest import Analyze

GOLDEN = Path(__file__).resolve().parents[3] / "assets" / "analyze" / "golden-plan.json"
# Read at import: the aegis_home fixture clears every AEGIS_* variable before the test runs.
UPDATE = os.environ.get("AEGIS_UPDATE_GOLDEN") == "1"


def normalise(plan: dict[str, Any], repo: testrepo.Repo, root: testrepo.AptRoot) -> dict[str, Any]:
    plan = dict(plan, plan_id="<plan-id>", created_at="<time>")
    # Findings belong to the content rules (their own tests); keep only what fired,
    # so wording or line changes there do not break this file.
    plan["findings"] = sorted({(f["package"], f["rule"], f["severity"]) for f in plan["findings"]})
    plan["host"] = {"machine_id": plan["host"]["machine_id"], "hostname": "<hostname>"}
    text = json.dumps(plan, sort_keys=True, indent=2)
    for repo_entry in plan["repositories"]:
        text = text.replace(repo_entry["id"], "<repo-id>")
        # The verifier is the host apt's (gpgv on bookworm, sqv and its policy on trixie).
        for key in ("verifier", "verifier_policy"):
            text = text.replace(f'"{key}": {json.dumps(repo_entry[key])}', f'"{key}": "<{key}>"')
    text = text.replace(plan["deb_dir"], "<DEB_DIR>")  # aegisd's, under the test's AEGIS_HOME
    text = text.replace(str(repo.path), "<REPO>").replace(str(root.root), "<ROOT>")
    text = text.replace(repo.fingerprint, "<FPR>")
    text = re.sub(r"[0-9a-f]{64}", "<sha256>", text)
    text = re.sub(r'"size": \d+', '"size": "<size>"', text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
    out: dict[str, Any] = json.loads(text)
    return out


def test_golden_plan(
    analyze: Analyze, apt_root: testrepo.AptRoot, test_repo: testrepo.Repo
) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-benign=1.0", "aegis-held=1.0")
    plan = analyze(
        "install", "aegis-tool", "aegis-hostile", "aegis-benign", "libssl3", contents=True
    )
    got = normalise(plan_to_dict(plan), test_repo, apt_root)
    if UPDATE:
        GOLDEN.write_text(json.dumps(got, sort_keys=True, indent=2) + "\n")
    # A missing golden file is a failure, never a silent regeneration.
    assert GOLDEN.is_file(), f"{GOLDEN} is missing: regenerate with AEGIS_UPDATE_GOLDEN=1"
    assert got == json.loads(GOLDEN.read_text())
