"""Who is on the other end of aegisd's socket, and may they submit.

``SO_PEERCRED`` gives the peer's pid, uid and *primary* gid only; a user whose
membership of ``aegis-apply`` is supplementary would be missed (docs/design.md
"Who may do what"). So the uid's supplementary groups are looked up too
(``os.getgrouplist`` over the passwd entry), and the primary gid from the socket
is added. Only root and members of the apply group may submit or revoke.

Example:
    >>> creds = peer_credentials(conn)
    >>> may_submit(creds, apply_gid=group_gid("aegis-apply"))
    False
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

APPLY_GROUP = "aegis-apply"
_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class PeerCredentials:
    """The kernel's view of a connected peer, plus its uid's groups."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]
    """Primary gid and every supplementary gid of the uid's passwd entry."""
    user: str | None
    """Login name of the uid, when it has a passwd entry."""


def peer_credentials(conn: socket.socket) -> PeerCredentials:
    """Read SO_PEERCRED from a connected Unix socket and resolve the uid's groups."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid=pid, uid=uid, gid=gid, groups=uid_groups(uid, gid), user=_name(uid))


def _name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def uid_groups(uid: int, gid: int) -> tuple[int, ...]:
    """Return ``gid`` plus every group the uid's passwd entry belongs to."""
    groups = {gid}
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return (gid,)
    groups.add(entry.pw_gid)
    groups.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return tuple(sorted(groups))


def group_gid(name: str) -> int | None:
    """Return the gid of group ``name``, or None when the group does not exist."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def may_submit(creds: PeerCredentials, *, apply_gid: int | None) -> bool:
    """Return True for root and for members of the apply group (primary or supplementary)."""
    if creds.uid == 0:
        return True
    return apply_gid is not None and apply_gid in creds.groups
