#!/bin/sh
# QEMU of a vm pod runs in its own mount and PID namespaces: from the host,
# /proc/PID/root shows only the allowed tree (usr, the image, the run
# directory, the workspace, three device nodes and a pid-only /proc), the
# root is read-only, QEMU is PID 1 of its namespace, and SIGKILL of the
# owner still takes QEMU down. Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "skip: qemu-system-x86_64 not installed (qemu-system-x86)"
    exit 77
fi

if ! command -v pgrep >/dev/null 2>&1; then
    echo "skip: pgrep not installed (procps)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-vmroot-XXXXXX)
owner=
trap '[ -n "$owner" ] && kill -9 "$owner" 2>/dev/null; rm -rf "$work"' EXIT
export NUCLEUS_HOME="$work/home"
# Without a setting, the first pod makes a short-lived KVM probe boot,
# which find_qemu could pick up instead of the pod's QEMU.
export NUCLEUS_VM_ACCEL="${NUCLEUS_VM_ACCEL:-tcg}"
mkdir -p "$work/ws"
echo 'workspace marker' >"$work/ws/marker.txt"
echo 'host secret' >"$work/secret.txt"

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

if ! "$NU_BIN" vm image build >/dev/null 2>"$work/build.err"; then
    echo "skip: cannot build the guest image: $(tail -n 1 "$work/build.err")"
    exit 77
fi

# Print the pid of the QEMU child of process $1 once it exists.
find_qemu() {
    i=0
    while [ $i -lt 200 ]; do
        if pgrep -P "$1" qemu-system; then
            return 0
        fi
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

"$NU_BIN" exec --workspace "$work/ws" --isolation vm -- sleep 4 \
    >"$work/exec.out" 2>&1 &
owner=$!
qemu=$(find_qemu "$owner")
check $? "QEMU starts as a child of nucleus exec"
qemu=${qemu:-0}
root=/proc/$qemu/root

[ "$(readlink "/proc/$qemu/ns/pid")" != "$(readlink /proc/self/ns/pid)" ]
check $? "QEMU has its own PID namespace"
[ "$(readlink "/proc/$qemu/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]
check $? "QEMU has its own mount namespace"
nspid=$(awk '/^NSpid:/ { print $NF }' "/proc/$qemu/status")
[ "$nspid" = 1 ]
check $? "QEMU is PID 1 of its namespace" "NSpid ends in '$nspid'"

expected="dev image proc run usr workspace"
for top in bin sbin lib lib64; do
    if [ -e "/$top" ] || [ -L "/$top" ]; then
        expected="$expected $top"
    fi
done
expected=$(echo $expected | tr ' ' '\n' | sort | tr '\n' ' ')
actual=$(ls -A "$root" | sort | tr '\n' ' ')
[ "$actual" = "$expected" ]
check $? "the root holds only the allowed entries" \
    "got '$actual', expected '$expected'"

devices=$(ls -A "$root/dev" | tr '\n' ' ')
[ "$devices" = "null urandom " ] || [ "$devices" = "kvm null urandom " ]
check $? "/dev holds only null, urandom and kvm" "got '$devices'"

[ "$(cat "$root/workspace/marker.txt" 2>&1)" = 'workspace marker' ]
check $? "the workspace is at /workspace"
for path in /etc/passwd /tmp "$work/secret.txt" /home /root /proc/sys \
    /proc/kcore; do
    [ ! -e "$root$path" ]
    check $? "$path is not reachable from QEMU's root"
done
pids=$(ls "$root/proc" | grep -x '[0-9]*' | tr '\n' ' ')
[ "$pids" = "1 " ]
check $? "/proc shows only QEMU's own PID namespace" "pids '$pids'"

touch "$root/planted" 2>/dev/null
[ ! -e "$root/planted" ]
check $? "the root is read-only"

mounts=$(awk '{ print $5 }' "/proc/$qemu/mountinfo" | sort | tr '\n' ' ')
bad=
for mount in $mounts; do
    case $mount in
    / | /usr | /image | /run | /proc | /dev/null | /dev/urandom | \
    /dev/kvm | /workspace | /workspace/*) ;;
    *) bad="$bad $mount" ;;
    esac
done
[ -z "$bad" ] && case " $mounts" in *" /workspace "*) true ;; *) false ;; esac
check $? "QEMU's mount table holds only the allowed mounts" \
    "extra:$bad; all: $mounts"

wait "$owner"
status=$?
owner=
check $status "the pod's command exits 0" "$(tail -n 2 "$work/exec.out")"
[ ! -e "/proc/$qemu" ] || grep -q '^State:.*Z' "/proc/$qemu/status"
check $? "no QEMU is left after the pod ends"

# SIGKILL of the owner: PR_SET_PDEATHSIG kills QEMU, PID 1 of its
# namespace, from the parent namespace.
"$NU_BIN" exec --workspace "$work/ws" --isolation vm -- sleep 60 \
    >/dev/null 2>&1 &
owner=$!
qemu=$(find_qemu "$owner") || qemu=0
kill -9 "$owner"
wait "$owner" 2>/dev/null
owner=
i=0
while [ $i -lt 100 ] && [ -e "/proc/$qemu" ] &&
    ! grep -q '^State:.*Z' "/proc/$qemu/status" 2>/dev/null; do
    sleep 0.05
    i=$((i + 1))
done
[ "$qemu" != 0 ] &&
    { [ ! -e "/proc/$qemu" ] || grep -q '^State:.*Z' "/proc/$qemu/status"; }
check $? "QEMU dies when its owner is killed with SIGKILL" "pid $qemu"

echo "1..$n"
[ "$failed" = 0 ]
