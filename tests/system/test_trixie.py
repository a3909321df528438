"""The booted-host checks on Debian 13 (trixie): one boot for every check in this module.

One module per release so that ``--dist loadfile`` (scripts/test) boots the two hosts on
two workers at once; the checks themselves live in :mod:`tests.system.checks`.
"""

import pytest

from tests.system.checks import *  # noqa: F403 - the shared checks, collected here

RELEASE = "trixie"
pytestmark = [pytest.mark.system, pytest.mark.slow]
