#!/bin/bash
# Read-only readiness check of a native Aegis install (operator contract, "Service
# Readiness Checks"). Changes nothing; exits 1 when anything is wrong, 7 when nothing is
# wrong but some checks could not be made as this user (not root, not in group aegis).
#
#   packaging/verify-native.sh [--root DIR]
#
# Checks: units installed and pointing at the wrappers in /opt/aegis/bin (units whose
# ExecStart points at /usr/bin/aegis or /usr/libexec/aegis are stale), wrappers and the
# venv, socket owners and modes, tmpfiles.d/sysusers.d, groups and users, directories and
# their modes, `systemd-analyze verify`, and, when systemd is PID 1 (without --root),
# the expected production service state.
set -uo pipefail
export LC_ALL=C  # stat's "Permission denied" is matched below

ROOT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "verify-native.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
ROOT="${ROOT%/}"
PREFIX=/opt/aegis
FAILS=0
ok()   { echo "ok    $*"; }
fail() { echo "FAIL  $*"; FAILS=$((FAILS + 1)); }
warn() { echo "warn  $*"; }
CANNOT=0
WHO="uid $(id -u)"
cannot() { echo "skip  cannot inspect $* as $WHO: run as root or as a member of group aegis"; CANNOT=$((CANNOT + 1)); }
STALE_MSG="The human operator must run packaging/install-native.sh from a root shell where id -u prints 0; PolicyKit prompts for systemctl are not enough to replace unit files."

UNIT_DIRS=(/etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system
           /usr/lib/systemd/system /lib/systemd/system)
UNITS=(aegisd.socket aegisd.service aegis-reviewd.socket aegis-reviewd.service
       aegis-monitor.service aegis-monitor.timer
       aegis-unattended.service aegis-unattended.timer)
declare -A EXPECT_EXEC=(
    [aegisd.service]="$PREFIX/bin/aegisd"
    [aegis-reviewd.service]="$PREFIX/bin/aegis-reviewd"
    [aegis-monitor.service]="$PREFIX/bin/aegis"
    [aegis-unattended.service]="$PREFIX/bin/aegis"
)

# Effective unit file: the first in systemd's search order.
unit_path() {
    local d
    for d in "${UNIT_DIRS[@]}"; do
        if [ -f "$ROOT$d/$1" ]; then echo "$ROOT$d/$1"; return 0; fi
    done
    return 1
}
exec_paths() { # file -> the program of each ExecStart= (prefixes -@:+! stripped)
    sed -n 's/^[[:space:]]*ExecStart[[:space:]]*=[[:space:]]*//p' "$1" \
        | awk '{print $1}' | sed 's/^[-@:+!]*//' | grep -v '^$'
}
is_stale() { case "$1" in /usr/bin/aegis*|/usr/libexec/aegis*) return 0 ;; *) return 1 ;; esac; }
unit_key() { sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*//p" "$1" | tail -n 1; }

# 1. Units.
FOUND=()
for u in "${UNITS[@]}"; do
    if ! p="$(unit_path "$u")"; then fail "unit $u is not installed"; continue; fi
    FOUND+=("$p")
    ok "unit $u: $p"
    files=("$p")
    for dropin in "${UNIT_DIRS[@]}"; do
        for f in "$ROOT$dropin/$u.d"/*.conf; do [ -f "$f" ] && files+=("$f"); done
    done
    for d in "${UNIT_DIRS[@]}"; do  # shadowed copies lower in the search order
        f="$ROOT$d/$u"
        if [ -f "$f" ] && [ "$f" != "$p" ]; then
            while read -r prog; do
                if is_stale "$prog"; then warn "shadowed stale unit $f points at $prog"; fi
            done < <(exec_paths "$f")
        fi
    done
    for f in "${files[@]}"; do
        while read -r prog; do
            if is_stale "$prog"; then
                fail "stale unit: $f runs $prog. $STALE_MSG"
            elif [ -n "${EXPECT_EXEC[$u]:-}" ] && [ "$prog" != "${EXPECT_EXEC[$u]}" ]; then
                fail "$f runs $prog, expected ${EXPECT_EXEC[$u]}. $STALE_MSG"
            fi
        done < <(exec_paths "$f")
    done
done
for svc in aegisd.service aegis-reviewd.service; do
    if p="$(unit_path "$svc")"; then
        case "$svc" in
            aegisd.service)
                [ "$(unit_key "$p" KillMode)" = process ] && ok "aegisd.service KillMode=process" \
                    || fail "aegisd.service must set KillMode=process (a restart must not kill dpkg)"
                for bad in ProtectKernelModules ProtectSystem RestrictSUIDSGID NoNewPrivileges; do
                    if [ -n "$(unit_key "$p" "$bad")" ]; then
                        fail "aegisd.service sets $bad, which breaks apt/dpkg (docs/testing.md)"
                    fi
                done
                families="$(unit_key "$p" RestrictAddressFamilies)"
                if [ -n "$families" ] && ! { [[ " $families " == *" AF_INET "* ]] \
                        && [[ " $families " == *" AF_INET6 "* ]] && [[ " $families " == *" AF_UNIX "* ]]; }; then
                    fail "aegisd.service RestrictAddressFamilies=$families stops apt downloads or systemctl"
                fi ;;
            aegis-reviewd.service)
                [ "$(unit_key "$p" User)" = aegis-reviewd ] && ok "aegis-reviewd runs as aegis-reviewd" \
                    || fail "aegis-reviewd.service must run as User=aegis-reviewd" ;;
        esac
    fi
done
check_socket_unit() { # unit path user group mode
    local p
    p="$(unit_path "$1")" || return 0
    local got="$(unit_key "$p" ListenStream) $(unit_key "$p" SocketUser) $(unit_key "$p" SocketGroup) $(unit_key "$p" SocketMode)"
    if [ "$got" = "$2 $3 $4 $5" ]; then ok "$1 listens on $2 ($3:$4 $5)"
    else fail "$1: expected '$2 $3 $4 $5', found '$got'"; fi
}
check_socket_unit aegisd.socket /run/aegis/aegisd.sock root aegis-apply 0660
check_socket_unit aegis-reviewd.socket /run/aegis/aegis-reviewd.sock aegis-reviewd aegis 0660

# 2. Wrappers and the venv.
for w in aegis aegisctl aegisd aegis-reviewd; do
    if [ -x "$ROOT$PREFIX/bin/$w" ]; then ok "wrapper $PREFIX/bin/$w"
    else fail "wrapper $PREFIX/bin/$w is missing or not executable"; fi
done
if [ -x "$ROOT$PREFIX/venv/bin/python3" ] || [ -L "$ROOT$PREFIX/venv/bin/python3" ]; then
    ok "venv $PREFIX/venv"
else
    fail "venv $PREFIX/venv is missing"
fi
# Shipped data beside the sources: without the migrations no command opens the store.
for d in workflows/change-request.toml state/migrations/0001_initial.sql docs/agents.md; do
    if [ -f "$ROOT$PREFIX/src/$d" ]; then ok "shipped $PREFIX/src/$d"
    else fail "$PREFIX/src/$d is missing; re-run packaging/install-native.sh"; fi
done
if [ -z "$ROOT" ] && [ -x "$PREFIX/venv/bin/python3" ]; then
    if "$PREFIX/venv/bin/python3" -I -c 'import aegis.cli.aegis, nacl, click, aegis.mcp_server' 2>/dev/null; then
        ok "aegis imports with its dependencies in $PREFIX/venv"
    else
        fail "aegis or its dependencies do not import in $PREFIX/venv; re-run packaging/install-native.sh"
    fi
fi

# 3. tmpfiles.d, sysusers.d, groups and users.
for f in /etc/tmpfiles.d/aegis.conf /etc/sysusers.d/aegis.conf; do
    if [ -f "$ROOT$f" ]; then ok "$f"; else fail "$f is missing"; fi
done
has_entry() { [ -f "$ROOT/etc/$1" ] && grep -q "^$2:" "$ROOT/etc/$1"; }
for g in aegis aegis-apply; do
    if has_entry group "$g"; then ok "group $g"; else fail "group $g does not exist"; fi
done
for u in aegis-reviewd aegis-monitor; do
    if has_entry passwd "$u"; then ok "user $u"; else fail "user $u does not exist"; fi
done
if has_entry group aegis && ! grep -q '^aegis:.*[:,]aegis-monitor\(,\|$\)' "$ROOT/etc/group"; then
    fail "aegis-monitor is not a member of group aegis"
fi

# 4. Directories and modes (owner names resolved in the root's own passwd/group).
name_of() { # file id
    awk -F: -v id="$2" '$3 == id {print $1; exit}' "$ROOT/etc/$1" 2>/dev/null
}
check_dir() { # path mode user group [d|f]
    local p="$ROOT$1" out kind="${5:-d}" what=directory
    [ "$kind" = f ] && what=file
    # stat, not [ -d ]: a directory this user may not look into is not a missing one.
    if ! out="$(stat -c '%a %u %g' -- "$p" 2>&1)"; then
        case "$out" in
            *"Permission denied"*) cannot "$what $1 (its parent is not searchable by $WHO)" ;;
            *) fail "$what $1 is missing; re-run packaging/install-native.sh" ;;
        esac
        return
    fi
    if [ "$kind" = d ] && [ ! -d "$p" ]; then fail "$1 is not a directory"; return; fi
    if [ "$kind" = f ] && { [ -L "$p" ] || [ ! -f "$p" ]; }; then fail "$1 is not a regular file"; return; fi
    local mode uid gid user group
    read -r mode uid gid <<< "$out"
    user="$(name_of passwd "$uid")"; group="$(name_of group "$gid")"
    [ "$uid" = 0 ] && user=root
    [ "$gid" = 0 ] && group=root
    if [ "$(printf '%04o' "$(( 8#$mode ))")" = "$2" ] && [ "$user:$group" = "$3:$4" ]; then
        ok "$what $1 $2 $3:$4"
    else
        fail "$what $1 is $(printf '%04o' "$(( 8#$mode ))") $user:$group, expected $2 $3:$4"
    fi
}
# Every directory the shipped tmpfiles.d file declares (beside this script in a checkout,
# else the copy install-native.sh keeps in /opt/aegis/share/aegis); /etc's copy must match.
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
TMPFILES="$HERE/tmpfiles.d-aegis.conf"
[ -f "$TMPFILES" ] || TMPFILES="$ROOT$PREFIX/share/aegis/tmpfiles.d-aegis.conf"
[ -f "$TMPFILES" ] || TMPFILES="$ROOT/etc/tmpfiles.d/aegis.conf"
if [ -f "$TMPFILES" ] && [ -f "$ROOT/etc/tmpfiles.d/aegis.conf" ] \
        && ! cmp -s "$TMPFILES" "$ROOT/etc/tmpfiles.d/aegis.conf"; then
    fail "/etc/tmpfiles.d/aegis.conf differs from $TMPFILES; re-run packaging/install-native.sh"
fi
if [ -f "$TMPFILES" ]; then
    while read -r type path mode user group _; do
        case "$type" in d|f) check_dir "$path" "$mode" "$user" "$group" "$type" ;; esac
    done < <(grep -v '^[[:space:]]*\(#\|$\)' "$TMPFILES")
fi
if [ -f "$ROOT/etc/aegis/policy.toml" ]; then ok "/etc/aegis/policy.toml"
else fail "/etc/aegis/policy.toml is missing"; fi
AUDIT="$ROOT/var/log/aegis/audit.jsonl"
if out="$(stat -c '%a' -- "$AUDIT" 2>&1)"; then
    if [ "$out" = 640 ]; then ok "audit log mode 0640"
    else fail "/var/log/aegis/audit.jsonl has mode $out, expected 0640"; fi
elif [[ "$out" == *"Permission denied"* ]]; then
    cannot "the audit log /var/log/aegis/audit.jsonl"
fi

# 5. systemd-analyze verify (any output on stderr is a failure: it only warns).
if command -v systemd-analyze >/dev/null 2>&1 && [ "${#FOUND[@]}" -gt 0 ]; then
    ARGS=(--man=no)
    # A staged root has no systemd targets of its own: do not fail on their absence.
    if [ -n "$ROOT" ]; then ARGS+=(--root="$ROOT" --recursive-errors=no); fi
    rel=()
    for p in "${FOUND[@]}"; do rel+=("${p#"$ROOT"}"); done
    if [ -n "$ROOT" ]; then out="$(systemd-analyze verify "${ARGS[@]}" "${rel[@]}" 2>&1 >/dev/null)"
    else out="$(systemd-analyze verify "${ARGS[@]}" "${FOUND[@]}" 2>&1 >/dev/null)"; fi
    rc=$?
    if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify"
    else fail "systemd-analyze verify: ${out:-exit $rc}"; fi
elif [ "${#FOUND[@]}" -eq 0 ]; then
    warn "no Aegis units installed; unit syntax not checked"
else
    warn "systemd-analyze not available; unit syntax not checked"
fi

# 6. Live state, only when systemd runs this host.
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    state() { systemctl is-active "$1" 2>/dev/null; }
    for u in aegis-reviewd.service aegisd.service aegis-monitor.timer aegis-unattended.timer; do
        s="$(state "$u")"
        if [ "$s" = active ]; then ok "$u is active"; else fail "$u is $s, expected active"; fi
    done
    s="$(state aegis-monitor.service)"
    case "$s" in
        inactive|active|activating) ok "aegis-monitor.service is $s (not failed)" ;;
        *) fail "aegis-monitor.service is $s, expected inactive after a successful run" ;;
    esac
    for sock in /run/aegis/aegisd.sock /run/aegis/aegis-reviewd.sock; do
        if [ -S "$sock" ]; then ok "listening: $sock"; else fail "$sock is not a socket"; fi
    done
else
    warn "systemd is not PID 1 here (or --root given): service states not checked"
fi

if [ "$FAILS" -gt 0 ]; then
    if [ "${#FOUND[@]}" -eq 0 ]; then
        echo "verify-native: the Aegis services are not installed here; the human operator runs packaging/install-native.sh from a root shell"
    fi
    echo "verify-native: $FAILS problem(s)"
    exit 1
fi
if [ "$CANNOT" -gt 0 ]; then
    echo "verify-native: $CANNOT check(s) could not be made as $WHO; join group aegis (sudo adduser $(id -un) aegis, then log in again) or run as root"
    exit 7
fi
echo "verify-native: ready"
