#!/bin/sh
# nucleus exec --isolation vm rejects bad settings before booting, each
# with a message naming the value and the fix. The cases are "vm:"
# without a directory, an invalid NUCLEUS_VM_ACCEL, a missing QEMU
# binary, and an image whose files do not match its image.json or that
# has none. A guest kernel that panics is reported with the panic line
# (one short boot). Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "skip: qemu-system-x86_64 not installed (qemu-system-x86)"
    exit 77
fi
if ! command -v sha256sum >/dev/null 2>&1; then
    echo "skip: sha256sum not installed (coreutils)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-vmcheck-XXXXXX)
trap 'rm -rf "$work"' EXIT
export NUCLEUS_HOME="$work/home"
export NUCLEUS_VM_ACCEL="${NUCLEUS_VM_ACCEL:-tcg}"
mkdir -p "$work/ws"

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
image="$NUCLEUS_HOME/vm/image"

# expect_error NAME TEXT ISOLATION [ENV=VALUE...]: exec exits 125 and its
# stderr contains TEXT.
expect_error() {
    name=$1 text=$2 isolation=$3
    shift 3
    env "$@" "$NU_BIN" exec --workspace "$work/ws" --isolation "$isolation" \
        -- true >/dev/null 2>"$work/err"
    status=$?
    [ "$status" = 125 ] && grep -qF -- "$text" "$work/err"
    check $? "$name" "status $status: $(cat "$work/err")"
}

expect_error "vm: without a directory is rejected" \
    "invalid isolation 'vm:'" "vm:"
expect_error "invalid NUCLEUS_VM_ACCEL is rejected" \
    "invalid NUCLEUS_VM_ACCEL 'foo': it must be kvm or tcg" vm \
    NUCLEUS_VM_ACCEL=foo
expect_error "missing QEMU binary is named" \
    "cannot execute the QEMU binary '$work/no-qemu'" vm \
    NUCLEUS_QEMU="$work/no-qemu"

cp -r "$image" "$work/truncated"
truncate -s 4096 "$work/truncated/initramfs.cpio"
expect_error "truncated initramfs does not match image.json" \
    "image $work/truncated/initramfs.cpio does not match" \
    "vm:$work/truncated"

cp -r "$image" "$work/kernel"
printf 'X' | dd of="$work/kernel/vmlinuz" bs=1 seek=4096 conv=notrunc \
    2>/dev/null
expect_error "changed kernel does not match image.json" \
    "image $work/kernel/vmlinuz does not match" "vm:$work/kernel"

cp -r "$image" "$work/nomanifest"
rm "$work/nomanifest/image.json"
expect_error "image without image.json is rejected" \
    "nomanifest/image.json" "vm:$work/nomanifest"

# An empty initramfs with a matching image.json: the kernel panics because
# it has no root file system.
mkdir "$work/panic"
cp "$image/vmlinuz" "$work/panic/vmlinuz"
: >"$work/panic/initramfs.cpio"
printf '{"format":1,"kernel_release":"test","kernel_sha256":"%s",' \
    "$(sha256sum "$work/panic/vmlinuz" | cut -c1-64)" >"$work/panic/image.json"
printf '"initramfs_sha256":"%s"}\n' \
    "$(sha256sum "$work/panic/initramfs.cpio" | cut -c1-64)" \
    >>"$work/panic/image.json"
expect_error "a kernel panic is reported with its reason" \
    "console: Kernel panic - not syncing: " "vm:$work/panic"

echo "1..$n"
[ "$failed" = 0 ]
