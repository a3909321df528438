"""The HTTP opener planners use to read a source policy approved (Go proxy, Cargo index).

Redirects are followed to http(s) only (urllib's default would follow one to ftp://),
and no proxy is taken from the environment: the plan's source is the URL policy approved,
and the planning tool runs without one too.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


class _HttpOnly(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if not newurl.startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, "redirect off http(s)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _HttpOnly())
