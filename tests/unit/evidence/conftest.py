"""The .deb builders of apt's tests (``tests/unit/ecosystems/apt/conftest.py``), for the
script tests that check a finding survives packaging by ``dpkg-deb``."""

from tests.unit.ecosystems.apt.conftest import dpkg_deb, make_deb  # noqa: F401 (fixtures)
