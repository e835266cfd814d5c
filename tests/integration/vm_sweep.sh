#!/bin/sh
# The vm tier's sweep of dead owners' run directories (in /run/nucleus/vm
# for root) removes only directories it could have created: owned by
# root with mode 0700. It never follows a symbolic link planted in one,
# so a mount that such a link points to stays mounted, and it ignores
# look-alike entries in /tmp. Runs in a private mount namespace. Output
# is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: needs root (run directories in /run/nucleus/vm, mounts)"
    exit 77
fi
for tool in unshare mountpoint; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skip: $tool not installed (util-linux)"
        exit 77
    fi
done

if [ "${NU_VM_SWEEP_INNER:-}" != 1 ]; then
    NU_VM_SWEEP_INNER=1 exec unshare -m --propagation private "$0" "$@"
fi

work=$(mktemp -d /tmp/nu-vmsweep-XXXXXX)
base=/run/nucleus/vm
cleanup() {
    umount "$work/victim" "$work/victim2" 2>/dev/null
    rm -rf "$work" "$base/$dead".sweep-* "/tmp/nucleus-vm.$dead".sweep-*
}
trap cleanup EXIT
export NUCLEUS_HOME="$work/home"
mkdir -p "$work/ws" "$work/victim" "$work/victim2" "$work/bound"

n=0
failed=0
check() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2${3:+: $3}"
        failed=$((failed + 1))
    fi
}

# create_pod: a vm pod creation that sweeps, then fails on the missing
# image without booting.
create_pod() {
    "$NU_BIN" exec --workspace "$work/ws" --isolation vm:/nonexistent \
        -- true >/dev/null 2>"$work/err"
}

create_pod
[ -d "$base" ] && [ "$(stat -c '%a %u' "$base")" = "700 0" ]
check $? "run base is a root-only directory" "$(stat -c '%a %u' "$base")"

# A PID that is not running, as a dead owner's.
dead=$(($(cat /proc/sys/kernel/pid_max) - 7))
if kill -0 "$dead" 2>/dev/null; then
    echo "skip: PID $dead is running"
    exit 77
fi

mount -t tmpfs victim "$work/victim"
mount -t tmpfs victim2 "$work/victim2"

# plant NAME OWNER MODE TARGET: a run directory whose share/ws is a
# symbolic link to TARGET.
plant() {
    mkdir -p "$1/share"
    ln -s "$4" "$1/share/ws"
    chown -R "$2" "$1"
    chown -h "$2" "$1/share/ws"
    chmod "$3" "$1"
}
plant "$base/$dead.sweep-nobody" nobody:nogroup 700 "$work/victim"
plant "$base/$dead.sweep-root" root:root 700 "$work/victim"
plant "$base/$dead.sweep-open" root:root 755 "$work/victim"
plant "/tmp/nucleus-vm.$dead.sweep-old" nobody:nogroup 700 "$work/victim2"

# A real leftover: the workspace bound on a pooled guest's share/ws.
stale="$base/$dead.sweep-stale"
mkdir -p -m 700 "$stale"
mkdir -p "$stale/share/ws" "$stale/root"
: >"$stale/console.log"
: >"$stale/empty"
mount --bind "$work/bound" "$stale/share/ws"

create_pod

mountpoint -q "$work/victim"
check $? "mount behind planted links stays mounted"
mountpoint -q "$work/victim2"
check $? "mount behind a /tmp look-alike stays mounted"
[ -L "$base/$dead.sweep-nobody/share/ws" ]
check $? "directory of another owner is left alone"
[ -L "$base/$dead.sweep-open/share/ws" ]
check $? "directory with mode 0755 is left alone"
[ -L "/tmp/nucleus-vm.$dead.sweep-old/share/ws" ]
check $? "/tmp look-alike is left alone"
[ ! -e "$stale" ]
check $? "dead owner's run directory is removed" "$(ls -R "$stale" 2>&1)"
mountpoint -q "$stale/share/ws" 2>/dev/null
check $(( $? == 0 ? 1 : 0 )) "its workspace bind is unmounted"

echo "1..$n"
[ "$failed" = 0 ]
