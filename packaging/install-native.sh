#!/bin/bash
# Install Aegis natively: run from a root shell (id -u must print 0).
#
#   packaging/install-native.sh [--root DIR] [--skip-deps] [--wheelhouse DIR] [--skip-keys]
#
# One command, safe to run again. It installs the Debian packages Aegis needs (apt-get),
# sources in /opt/aegis/src, a venv over the system Python (/usr/bin/python3) in
# /opt/aegis/venv, wrappers in /opt/aegis/bin (never /usr/bin/aegis or /usr/libexec/aegis:
# units pointing there are stale), units in /etc/systemd/system, /etc/tmpfiles.d/aegis.conf
# (every directory), /etc/sysusers.d/aegis.conf, the /etc/aegis skeleton (packaging/README.md).
# With systemd as PID 1 (and no --root) it reloads systemd, enables the units and restarts
# running daemons; otherwise it prints what it would run. --root (or DESTDIR) stages.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${DESTDIR:-}"
SKIP_DEPS=0
SKIP_KEYS=0
WHEELHOUSE=""
PY=/usr/bin/python3
PREFIX=/opt/aegis
UNITS=(aegisd.socket aegisd.service aegis-reviewd.socket aegis-reviewd.service
       aegis-monitor.service aegis-monitor.timer
       aegis-unattended.service aegis-unattended.timer)

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        --skip-deps) SKIP_DEPS=1; shift ;;
        --skip-keys) SKIP_KEYS=1; shift ;;
        --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-native.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" != "0" ]; then
    echo "install-native.sh: must be run as root from a root shell (id -u prints $(id -u), not 0)." >&2
    echo "PolicyKit prompts for systemctl are not enough to replace unit files." >&2
    exit 1
fi
if [ ! -x "$PY" ]; then
    echo "install-native.sh: the system Python $PY is missing (apt-get install python3)" >&2
    exit 1
fi
ROOT="${ROOT%/}"
if [ -n "$ROOT" ]; then mkdir -p "$ROOT"; ROOT="$(cd "$ROOT" && pwd)"; fi
step() { echo "==> $*"; }

# 0. Debian packages Aegis needs at run time (only those missing; nothing when all are there):
#    python3-venv for the venv, dpkg-repack for snapshots, python3-nacl for the policy
#    helper on the system Python, and the signature verifier this release's apt depends on
#    (gpgv on Debian 12, sqv on Debian 13: Aegis verifies Release files as apt does).
apt_verifier() {
    local deps
    deps="$(dpkg-query -W -f='${Depends}' apt 2>/dev/null || true)"
    case "$deps" in *sqv*) echo sqv ;; *) echo gpgv ;; esac
}
DEBS=(python3 python3-venv dpkg-repack python3-nacl "$(apt_verifier)")
MISSING=()
for d in "${DEBS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed"; then
        MISSING+=("$d")
    fi
done
if [ "${#MISSING[@]}" -eq 0 ]; then
    step "Debian packages: ${DEBS[*]} (all installed)"
elif [ -n "$ROOT" ] || [ "$SKIP_DEPS" = 1 ]; then
    step "Debian packages missing here (not installed with --root/--skip-deps): ${MISSING[*]}"
else
    step "Debian packages: apt-get install ${MISSING[*]}"
    # Lists may be absent on a fresh host (mmdebstrap and cloud images remove them).
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}"
fi

# 1. Sources, venv over the system Python, dependencies.
step "sources -> $ROOT$PREFIX/src"
install -d -m 0755 "$ROOT$PREFIX" "$ROOT$PREFIX/src" "$ROOT$PREFIX/bin" "$ROOT$PREFIX/share/doc/aegis"
rm -rf "$ROOT$PREFIX/src/aegis.new"
cp -a "$SRC/aegis" "$ROOT$PREFIX/src/aegis.new"
find "$ROOT$PREFIX/src/aegis.new" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$ROOT$PREFIX/src/aegis"
mv "$ROOT$PREFIX/src/aegis.new" "$ROOT$PREFIX/src/aegis"
# Shipped data looked up beside the package (aegis/workflow/shipped.py): the lifecycle
# graph and the store's schema migrations; without state/ no command can open the store.
# docs/: aegis mcp serves docs/agents.md to agents as a resource.
for d in workflows state docs; do
    if [ -d "$SRC/$d" ]; then
        rm -rf "$ROOT$PREFIX/src/$d"; cp -a "$SRC/$d" "$ROOT$PREFIX/src/$d"
    fi
done
chmod -R u=rwX,go=rX "$ROOT$PREFIX/src"

VENV="$ROOT$PREFIX/venv"
step "venv over $PY -> $VENV"
# A venv over the same Python is kept (a second run only checks the dependencies); a
# different Python (a release upgrade) gets a fresh one.
PYVER="$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
HAVE="$(sed -n 's/^version[[:space:]]*=[[:space:]]*//p' "$VENV/pyvenv.cfg" 2>/dev/null || true)"
if [ "$SKIP_DEPS" = 1 ]; then
    "$PY" -m venv --clear --without-pip "$VENV"
elif [ -x "$VENV/bin/python3" ] && [ -x "$VENV/bin/pip" ] && [ "$HAVE" = "$PYVER" ]; then
    step "venv kept (Python $PYVER)"
elif ! "$PY" -m venv --clear "$VENV"; then
    echo "install-native.sh: '$PY -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
fi
SITE="$("$VENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
case "$SITE" in "$ROOT"/*) ;; *) SITE="$ROOT$SITE" ;; esac
echo "$PREFIX/src" > "$SITE/aegis-src.pth"
if [ "$SKIP_DEPS" = 1 ]; then
    step "skipping Python dependencies (--skip-deps)"
else
    mapfile -t DEPS < <("$PY" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$SRC/pyproject.toml")
    PIP=("$VENV/bin/python3" -m pip install --disable-pip-version-check --no-input)
    if [ -n "$WHEELHOUSE" ]; then PIP+=(--no-index --find-links "$WHEELHOUSE"); fi
    step "dependencies: ${DEPS[*]}"
    "${PIP[@]}" "${DEPS[@]}"
fi

# 2. Wrappers, convenience links, documentation.
step "wrappers -> $ROOT$PREFIX/bin"
for w in aegis aegisctl aegisd aegis-reviewd; do
    install -m 0755 "$SRC/packaging/wrappers/$w" "$ROOT$PREFIX/bin/$w"
done
# The readiness check, for agents and operators who have no checkout (a clone under /root
# is not readable by them); it compares directories against the shipped tmpfiles.d file.
install -d -m 0755 "$ROOT$PREFIX/share/aegis"
install -m 0755 "$SRC/packaging/verify-native.sh" "$ROOT$PREFIX/bin/aegis-verify-native"
install -m 0644 "$SRC/packaging/tmpfiles.d-aegis.conf" "$ROOT$PREFIX/share/aegis/tmpfiles.d-aegis.conf"
install -d -m 0755 "$ROOT/usr/local/bin"
for w in aegis aegisctl aegis-verify-native; do ln -sfn "$PREFIX/bin/$w" "$ROOT/usr/local/bin/$w"; done
install -m 0644 "$SRC/packaging/README.md" "$ROOT$PREFIX/share/doc/aegis/packaging.md"
# The operator guide, the agents' instructions and the design, readable on the host itself.
install -m 0644 "$SRC"/docs/*.md "$ROOT$PREFIX/share/doc/aegis/"

# 3. Units, tmpfiles.d, sysusers.d.
step "units -> $ROOT/etc/systemd/system"
install -d -m 0755 "$ROOT/etc/systemd/system" "$ROOT/etc/tmpfiles.d" "$ROOT/etc/sysusers.d"
for u in "${UNITS[@]}"; do install -m 0644 "$SRC/packaging/systemd/$u" "$ROOT/etc/systemd/system/$u"; done
install -m 0644 "$SRC/packaging/tmpfiles.d-aegis.conf" "$ROOT/etc/tmpfiles.d/aegis.conf"
install -m 0644 "$SRC/packaging/sysusers.d-aegis.conf" "$ROOT/etc/sysusers.d/aegis.conf"
ROOTOPT=()
if [ -n "$ROOT" ]; then ROOTOPT=(--root="$ROOT"); fi
step "users and groups (systemd-sysusers)"
systemd-sysusers "${ROOTOPT[@]}" "$ROOT/etc/sysusers.d/aegis.conf"
step "directories (systemd-tmpfiles)"
systemd-tmpfiles "${ROOTOPT[@]}" --create "$ROOT/etc/tmpfiles.d/aegis.conf"

# 4. /etc/aegis skeleton; existing files are never overwritten.
step "/etc/aegis skeleton"
ETC="$ROOT/etc/aegis"
if [ ! -e "$ETC/aegis.toml" ]; then
    printf '%s\n' "# Aegis configuration; see packaging/README.md. Environment AEGIS_* overrides." \
        > "$ETC/aegis.toml"
    chmod 0644 "$ETC/aegis.toml"
fi
if [ ! -e "$ETC/policy.toml" ] && [ -f "$SRC/aegis/policy/default_policy.toml" ]; then
    install -m 0644 "$SRC/aegis/policy/default_policy.toml" "$ETC/policy.toml"
fi
KEYPY=("$VENV/bin/python3")
keygen() { # role out-dir owner
    if [ -e "$2/$1.key" ]; then return 0; fi
    PYTHONPATH="$ROOT$PREFIX/src" "${KEYPY[@]}" -c 'import sys
from pathlib import Path
from aegis.sign.keys import write_keypair
print(write_keypair(Path(sys.argv[2]), sys.argv[1])[1])' "$1" "$2" > /dev/null
    chmod 0600 "$2/$1.key"; chmod 0644 "$2/$1.pub"
    if [ "$3" != root ]; then
        uid="$(awk -F: -v u="$3" '$1 == u {print $3}' "$ROOT/etc/passwd")"
        if [ -n "$uid" ]; then chown "$uid" "$2/$1.key"; fi
    fi
    echo "key: $2/$1.key (public $2/$1.pub)"
}
if [ "$SKIP_KEYS" = 1 ] || [ "$SKIP_DEPS" = 1 ]; then
    step "skipping key generation (later: aegisctl keygen --role review --out /etc/aegis/keys)"
else
    # aegisd creates its own audit key in its root-only directory on first start and
    # publishes /etc/aegis/keys/audit.pub; aegis-reviewd cannot create its key itself.
    keygen review "$ETC/keys" aegis-reviewd
    # The host-local automation key of aegis unattended: root's alone (0700 directory,
    # 0600 key). It is not a signer key: aegisd accepts it only inside the automation scope.
    install -d -m 0700 -o root -g root "$ETC/keys/automation"
    if [ ! -e "$ETC/keys/automation/automation.key" ]; then
        PYTHONPATH="$ROOT$PREFIX/src" "${KEYPY[@]}" -c 'import sys
from pathlib import Path
from aegis.sign.keys import write_keypair
write_keypair(Path(sys.argv[1]), "signer", name="automation")' "$ETC/keys/automation"
        chmod 0600 "$ETC/keys/automation/automation.key"
        chmod 0644 "$ETC/keys/automation/automation.pub"
        echo "key: $ETC/keys/automation/automation.key (automation, root-only)"
    fi
fi
if [ ! -e "$ETC/aegisd.toml" ]; then
    {
        echo "# aegisd configuration (root-owned). Trusted keys come only from here, /etc/aegis/keys/{signers,approvers}/ or aegisd's options."
        echo "signer_public_keys = []"
        echo "approver_public_keys = []"
    } > "$ETC/aegisd.toml"
    chmod 0644 "$ETC/aegisd.toml"
fi

# 5. systemd.
ACTIONS=("systemctl daemon-reload"
         "systemctl try-restart aegisd.service aegis-reviewd.service"
         "systemctl enable --now aegisd.socket aegis-reviewd.socket aegis-monitor.timer"
         "systemctl enable --now aegis-unattended.timer"
         "systemctl enable --now aegisd.service aegis-reviewd.service"
         "systemctl start aegis-monitor.service")
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    for a in "${ACTIONS[@]}"; do step "$a"; $a; done
else
    step "systemd is not PID 1 here (or --root was given); would run:"
    for a in "${ACTIONS[@]}"; do echo "    $a"; done
fi
echo "installed: $ROOT$PREFIX (check with packaging/verify-native.sh${ROOT:+ --root $ROOT})"
