#!/bin/sh
# nucleus doctor reports every isolation mechanism, one line each, and
# exits 0 on a host where the ns tier starts a pod.  Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi

out=$(mktemp /tmp/nu-doctor-XXXXXX)
trap 'rm -f "$out"' EXIT
"$NU_BIN" doctor >"$out" 2>&1
status=$?

n=0
failed=0
check_line() {
    n=$((n + 1))
    if grep -Eq "$1" "$out"; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2: no line matching '$1'"
        failed=$((failed + 1))
    fi
}

for ns in user mount pid net ipc uts cgroup; do
    check_line "^  $ns namespace +(ok|missing) " "reports_${ns}_namespace"
done
check_line "^  seccomp +(ok|missing) " reports_seccomp
check_line "^  landlock +(ok|limited|missing) " reports_landlock
check_line "^  cgroup v2 +(ok|limited|missing) " reports_cgroup_v2
check_line "^  cgroup v1 +(ok|limited|missing) " reports_cgroup_v1
check_line "^  rlimits +ok " reports_rlimits
check_line "^  memfd exec +(ok|missing) " reports_memfd_exec
check_line "^  vm +missing +not built yet" reports_vm_not_built
check_line "^  oci +missing +not built yet" reports_oci_not_built

n=$((n + 1))
if grep -Eq "^  ns pod +ok " "$out"; then
    if [ "$status" -eq 0 ] && grep -Eq "^  pivot_root +ok " "$out"; then
        echo "ok $n - pod_started_exit_0"
    else
        echo "not ok $n - pod_started_exit_0: exit $status"
        failed=$((failed + 1))
    fi
elif [ "$status" -eq 1 ]; then
    echo "ok $n - no_pod_exit_1"
else
    echo "not ok $n - no_pod_exit_1: exit $status"
    failed=$((failed + 1))
fi

n=$((n + 1))
"$NU_BIN" doctor --bogus >/dev/null 2>&1
if [ $? -eq 2 ]; then
    echo "ok $n - unknown_argument_exit_2"
else
    echo "not ok $n - unknown_argument_exit_2"
    failed=$((failed + 1))
fi

[ "$failed" -eq 0 ] || sed 's/^/# /' "$out"
echo "1..$n"
[ "$failed" -eq 0 ]
