"""Id grammars and size caps that several stages check the same way.

Anchored at both ends of the string (no trailing newline slips through): a hash, key or
execution id read back from disk or a socket is untrusted until it matches.
"""

from __future__ import annotations

import re

HEX64_RE = re.compile(r"\A[0-9a-f]{64}\Z")
"""A SHA-256 digest or an Ed25519 public key: 64 lower-case hex characters."""
EXECUTION_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")
"""An execution id as ``aegisctl sign`` draws it: 32 lower-case hex characters."""

MAX_PLAN_BYTES = 64 * 1024 * 1024
"""A plan file of tens of thousands of packages fits; past that it is not read."""
MAX_DPKG_STATUS_BYTES = 256 * 1024 * 1024
"""dpkg's status file on a large host is a few MB; far past that is not a status file."""
