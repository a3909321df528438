"""``python3 -m aegis_policy_helper``."""

from aegis_policy_helper.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
