"""The .deb builders (``tests/unit/evidence/conftest.py``, shared with the script tests)."""

from tests.unit.evidence.conftest import dpkg_deb, make_deb  # noqa: F401 (fixtures)
