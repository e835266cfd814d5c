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
check_line "^  egress uplink +(ok|limited) " reports_egress_uplink
for rt in crun runc runsc kata-runtime; do
    check_line "^  oci:$rt +(ok|missing) " "reports_oci_$rt"
done
check_line "^  vm QEMU +(ok|missing) " reports_vm_qemu
check_line "^  vm image +(ok|missing|damaged) " reports_vm_image
check_line "^  vm KVM +(ok|limited) " reports_vm_kvm
check_line "^  firecracker +(ok|missing) " reports_firecracker

# The tiers are probed, not described as unbuilt.
n=$((n + 1))
if grep -q "not built yet" "$out"; then
    echo "not ok $n - no_tier_reported_unbuilt"
    failed=$((failed + 1))
else
    echo "ok $n - no_tier_reported_unbuilt"
fi

# An OCI runtime installed on this host starts a pod (as root, where the
# oci tier runs), and a missing one names every directory searched.
for rt in crun runc; do
    n=$((n + 1))
    if ! command -v "$rt" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$rt" ] &&
       [ ! -x "/sbin/$rt" ] && [ ! -x "/usr/local/sbin/$rt" ]; then
        if grep -Eq "^  oci:$rt +missing +not on PATH or in /usr/sbin, /sbin or /usr/local/sbin" "$out"; then
            echo "ok $n - oci_${rt}_missing_named"
        else
            echo "not ok $n - oci_${rt}_missing_named"
            failed=$((failed + 1))
        fi
    elif [ "$(id -u)" -ne 0 ]; then
        echo "ok $n - oci_${rt}_starts_pod # SKIP not root"
    elif grep -Eq "^  oci:$rt +ok +.*pod started in" "$out"; then
        echo "ok $n - oci_${rt}_starts_pod"
    else
        echo "not ok $n - oci_${rt}_starts_pod"
        failed=$((failed + 1))
    fi
done

# The default image is checked against its image.json, and doctor does
# not create a missing state directory.
home=$(mktemp -d /tmp/nu-doctor-home-XXXXXX)
trap 'rm -f "$out"; rm -rf "$home"' EXIT
img="$home/vm/image"
mkdir -p "$img"
printf 'kernel' >"$img/vmlinuz"
printf 'initramfs' >"$img/initramfs.cpio"
printf '{"kernel_sha256":"%s","initramfs_sha256":"%s"}\n' \
    "$(sha256sum <"$img/vmlinuz" | cut -d' ' -f1)" \
    "$(sha256sum <"$img/initramfs.cpio" | cut -d' ' -f1)" >"$img/image.json"
n=$((n + 1))
if NUCLEUS_HOME="$home" "$NU_BIN" doctor 2>&1 |
   grep -Eq "^  vm image +ok +$img "; then
    echo "ok $n - vm_image_matching_ok"
else
    echo "not ok $n - vm_image_matching_ok"
    failed=$((failed + 1))
fi
printf 'changed' >"$img/initramfs.cpio"
n=$((n + 1))
if NUCLEUS_HOME="$home" "$NU_BIN" doctor 2>&1 |
   grep -Eq "^  vm image +damaged +.*initramfs.cpio does not match"; then
    echo "ok $n - vm_image_changed_reported"
else
    echo "not ok $n - vm_image_changed_reported"
    failed=$((failed + 1))
fi
n=$((n + 1))
NUCLEUS_HOME="$home/absent" "$NU_BIN" doctor >/dev/null 2>&1
if [ ! -e "$home/absent" ]; then
    echo "ok $n - state_dir_not_created"
else
    echo "not ok $n - state_dir_not_created"
    failed=$((failed + 1))
fi

# NUCLEUS_QEMU names the QEMU binary the vm tier uses.
n=$((n + 1))
if NUCLEUS_QEMU=/nonexistent/qemu "$NU_BIN" doctor 2>&1 |
   grep -Eq "^  vm QEMU +missing +cannot find '/nonexistent/qemu'"; then
    echo "ok $n - vm_qemu_follows_env"
else
    echo "not ok $n - vm_qemu_follows_env"
    failed=$((failed + 1))
fi

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
