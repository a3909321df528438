"""dpkg left half done: apply refused pointing to recover; a signed recover request fixes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.model import Operation

from .chain_helpers import make_chain

pytestmark = pytest.mark.root


def _audit_clean(root: Path) -> bool:
    proc = subprocess.run(
        ["dpkg", f"--root={root}", "--audit"], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0 and not proc.stdout.strip()


def test_dirty_dpkg_refused_then_recover_runs_configure_a(
    make_daemon, tmp_path: Path, key_set
) -> None:  # type: ignore[no-untyped-def]
    chain = make_chain(tmp_path, key_set)
    testrepo.run_apt(chain.root, "install", "-y", "aegis-benign=1.0")
    status = chain.root.status
    status.write_text(
        status.read_text().replace(
            "Package: aegis-benign\nStatus: install ok installed",
            "Package: aegis-benign\nStatus: install ok half-configured",
        )
    )
    assert not _audit_clean(chain.root.root)
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d = make_daemon(env_extra=extra, home=chain.home)
    refused = d.submit(chain.sign(chain.plan("aegis-tool")))
    assert refused.refusal == "refused:dpkg-audit", refused
    assert "aegisctl recover --plan" in refused.message
    recover = chain.plan(op=Operation.RECOVER)
    assert recover.command_preview[-2:] == ("--configure", "-a")
    answer = d.submit(chain.sign(recover))
    assert answer.ok, answer
    assert _audit_clean(chain.root.root)
    after = d.submit(chain.sign(chain.plan("aegis-tool")))
    assert after.ok, after
