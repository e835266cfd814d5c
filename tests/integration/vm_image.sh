#!/bin/sh
# nucleus vm image build: two builds from the same inputs give the same
# bytes. The archive contains the agent as /init, BusyBox and the module
# load order. --vmlinux extracts the host kernel's ELF vmlinux, which
# matches an extraction with the xz tool when installed. Bad input fails
# with a clear message. Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! ls /boot/vmlinuz-* >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
    echo "skip: needs a kernel in /boot and /bin/busybox (install" \
         "linux-image-amd64 and busybox-static)"
    exit 77
fi
if ! command -v cpio >/dev/null 2>&1; then
    echo "skip: cpio not installed (needed to list the archive)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-vmimage-XXXXXX)
trap 'rm -rf "$work"' EXIT

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

"$NU_BIN" vm image build --vmlinux --out "$work/a" >"$work/a.out" \
    2>"$work/a.err"
check $? "first build succeeds" "$(cat "$work/a.err")"
grep -q 'vm image: writing initramfs.cpio' "$work/a.err"
check $? "build prints progress"
sleep 1  # a later clock must not change the bytes
"$NU_BIN" vm image build --vmlinux --out "$work/b" >/dev/null 2>&1
check $? "second build succeeds"

cmp -s "$work/a/initramfs.cpio" "$work/b/initramfs.cpio"
check $? "initramfs is reproducible"
cmp -s "$work/a/image.json" "$work/b/image.json"
check $? "manifest is reproducible"
cmp -s "$work/a/vmlinux" "$work/b/vmlinux"
check $? "vmlinux is reproducible"

# ELF magic, ELFCLASS64, little-endian, then e_machine 0x3e (x86-64).
[ "$(od -An -tx1 -N6 "$work/a/vmlinux" | tr -d ' ')" = 7f454c460201 ] &&
    [ "$(od -An -tx1 -j18 -N2 "$work/a/vmlinux" | tr -d ' ')" = 3e00 ]
check $? "vmlinux is ELF64 x86-64"
want=$(sed -n 's/.*"vmlinux_sha256": "\([0-9a-f]*\)".*/\1/p' \
    "$work/a/image.json")
have=$(sha256sum "$work/a/vmlinux" | cut -d' ' -f1)
[ -n "$want" ] && [ "$want" = "$have" ]
check $? "image.json records the vmlinux SHA-256" "'$want' vs '$have'"

# The same payload through the xz tool, located by the boot protocol
# header: setup_sects at 0x1f1, payload_offset at 0x248 and
# payload_length at 0x24c.
kernel=$(grep -o '/boot/vmlinuz-[^ ]*' "$work/a.err" | head -n 1)
if command -v xz >/dev/null 2>&1 && [ -n "$kernel" ]; then
    sects=$(od -An -tu1 -j497 -N1 "$kernel" | tr -d ' ')
    [ "$sects" = 0 ] && sects=4
    off=$(od -An -tu4 -j584 -N4 "$kernel" | tr -d ' ')
    len=$(od -An -tu4 -j588 -N4 "$kernel" | tr -d ' ')
    tail -c +$(( (sects + 1) * 512 + off + 1 )) "$kernel" | head -c "$len" |
        xz -dc --single-stream >"$work/xz-vmlinux" 2>/dev/null
    cmp -s "$work/xz-vmlinux" "$work/a/vmlinux"
    check $? "vmlinux matches the xz tool's output"
    rm -f "$work/xz-vmlinux"
else
    echo "# skip xz comparison: xz not installed or kernel path not shown"
fi

# doctor hashes vmlinux when image.json lists it.
mkdir -p "$work/home/vm"
cp -r "$work/a" "$work/home/vm/image"
NUCLEUS_HOME="$work/home" "$NU_BIN" doctor 2>&1 | grep 'vm image' | \
    grep -q ' ok '
check $? "doctor accepts the image with vmlinux"
printf X | dd of="$work/home/vm/image/vmlinux" bs=1 seek=4096 \
    conv=notrunc 2>/dev/null
NUCLEUS_HOME="$work/home" "$NU_BIN" doctor 2>&1 | grep 'vm image' | \
    grep -q 'damaged.*vmlinux does not match'
check $? "doctor rejects a modified vmlinux"
rm -rf "$work/home"

"$NU_BIN" vm image build --out "$work/b" >/dev/null 2>&1 &&
    [ ! -e "$work/b/vmlinux" ] &&
    ! grep -q vmlinux_sha256 "$work/b/image.json"
check $? "build without --vmlinux removes an old vmlinux"

cpio -it <"$work/a/initramfs.cpio" >"$work/list" 2>/dev/null
check $? "archive lists with cpio"
for entry in init bin/busybox bin/sh dev/console \
             lib/modules/nucleus/order lib/modules/nucleus/9p.ko \
             lib/modules/nucleus/virtio_console.ko workspace; do
    grep -qx "$entry" "$work/list"
    check $? "archive has $entry"
done
sort -c "$work/list" 2>/dev/null
check $? "entries are sorted"
cpio -itv <"$work/a/initramfs.cpio" 2>/dev/null | grep -v ' 1970 ' | \
    grep -q .
check $((1 - $?)) "every mtime is the epoch"

(cd "$work" && cpio -id --quiet lib/modules/nucleus/order \
    <"$work/a/initramfs.cpio")
tail -n 1 "$work/lib/modules/nucleus/order" | grep -qx \
    '/lib/modules/nucleus/9p.ko'
check $? "9p loads after its dependencies"

"$NU_BIN" vm image build --kernel /nonexistent/vmlinuz-1 \
    --out "$work/c" >/dev/null 2>"$work/c.err"
status=$?
[ "$status" = 1 ] && grep -q '/nonexistent/vmlinuz-1' "$work/c.err"
check $? "missing kernel is named" "status $status: $(cat "$work/c.err")"

release=$(basename "$kernel" | sed 's/^vmlinuz-//')
mkdir -p "$work/bad"
cp /bin/busybox "$work/bad/vmlinuz-$release"
"$NU_BIN" vm image build --vmlinux --kernel "$work/bad/vmlinuz-$release" \
    --out "$work/d" >/dev/null 2>"$work/d.err"
status=$?
[ "$status" = 1 ] && grep -q 'not an x86 bzImage' "$work/d.err"
check $? "a kernel that is no bzImage is rejected" \
    "status $status: $(cat "$work/d.err")"

"$NU_BIN" vm image frobnicate >/dev/null 2>&1
check $((2 - $?)) "unknown action is a usage error"

echo "1..$n"
[ "$failed" = 0 ]
