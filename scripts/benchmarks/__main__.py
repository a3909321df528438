"""Run every benchmark module in this folder and print one JSON object.

Each module ``scripts/benchmarks/<name>.py`` exposes ``run() -> dict`` of figures
measured as ratios or rates in this one run. ``--only NAME`` runs one module (and those
named ``NAME_*``).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the selected benchmarks; exit 1 if any raised (its traceback goes to stderr)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent.parent))
    # An installed Aegis has its bytecode compiled (pip and dh_python3 do it at install);
    # with PYTHONDONTWRITEBYTECODE set, every timed CLI run would compile its modules again.
    compileall.compile_dir(HERE.parent.parent / "aegis", quiet=1)
    figures: dict[str, object] = {}
    failed = False
    for path in sorted(HERE.glob("*.py")):
        name = path.stem
        # "--only mcp" also runs mcp_tools.py (a module named mcp.py would hide the SDK).
        selected = name in args.only or name.split("_", 1)[0] in args.only
        if name.startswith("_") or (args.only and not selected):
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            for key, value in module.run().items():
                figures[f"{name}.{key}"] = value
        except Exception:  # report and continue with the others
            traceback.print_exc()
            figures[f"{name}.error"] = "failed; see stderr"
            failed = True
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
