"""Provenance of each package to install, from the signed index to the .deb.

SHA-256 and size come from the signed index (``apt-cache show`` of exactly
``pkg=ver``, cross-checked with ``apt-get download --print-uris``), with the chain
``InRelease -> Packages -> .deb``.

The chain records, as ``kind:sha256``, the InRelease (or Release) file apt verified,
the Packages index apt read (whose hash the signed Release lists), and the .deb
hash that index gives. ``verified`` stays False until the .deb itself was
downloaded and hashed (content inspection sets it).

Pure: :func:`build_provenance` over parsed tool output and file hashes.

Example:
    >>> rec = {"SHA256": "ab", "Size": "3", "Filename": "pool/a.deb"}
    >>> p = build_provenance("a", "1.0", "all", record=rec, download=None,
    ...                      repository="repo-1", base_uri="file:/r",
    ...                      index_chain=("InRelease:00", "Packages:11"))
    >>> (p.uri, p.chain[-1])
    ('file:/r/pool/a.deb', 'deb:ab')
"""

from __future__ import annotations

from collections.abc import Mapping

from aegis.ecosystems.apt.parse import DownloadUri
from aegis.model import Provenance


def build_provenance(
    package: str,
    version: str,
    arch: str,
    *,
    record: Mapping[str, str],
    download: DownloadUri | None,
    repository: str | None,
    base_uri: str | None,
    index_chain: tuple[str, ...],
) -> Provenance | None:
    """One :class:`Provenance`, or None when the index gives no SHA256/size/filename.

    Args:
        package: binary package name.
        version: the version to install.
        arch: its architecture.
        record: the package's ``apt-cache show`` fields from the signed index.
        download: the matching ``apt-get download --print-uris`` line, if any; its
            size and SHA-256 must agree with ``record``.
        repository: id of the repository the version comes from.
        base_uri: the repository's URI, used when ``download`` is None.
        index_chain: ``kind:sha256`` of the Release and Packages files read.
    """
    sha = record.get("SHA256", "").lower()
    size = record.get("Size", "")
    filename = record.get("Filename", "")
    if not sha or not size.isdigit() or not filename:
        return None
    if download is not None:
        uri = download.uri
        # Two readings of the same signed index must agree.
        if download.size != int(size) or (download.sha256 and download.sha256 != sha):
            return None
    elif base_uri:
        uri = f"{base_uri.rstrip('/')}/{filename}"
    else:
        return None
    return Provenance(
        package=package,
        version=version,
        arch=arch,
        uri=uri,
        filename=filename,
        size=int(size),
        sha256=sha,
        repository=repository,
        chain=(*index_chain, f"deb:{sha}"),
        verified=False,
    )
