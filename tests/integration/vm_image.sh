#!/bin/sh
# nucleus vm image build: two builds from the same inputs give the same
# bytes. The archive contains the agent as /init, BusyBox and the module
# load order, and bad input fails with a clear message. Output is TAP.
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

"$NU_BIN" vm image build --out "$work/a" >"$work/a.out" 2>"$work/a.err"
check $? "first build succeeds" "$(cat "$work/a.err")"
grep -q 'vm image: writing initramfs.cpio' "$work/a.err"
check $? "build prints progress"
sleep 1  # a later clock must not change the bytes
"$NU_BIN" vm image build --out "$work/b" >/dev/null 2>&1
check $? "second build succeeds"

cmp -s "$work/a/initramfs.cpio" "$work/b/initramfs.cpio"
check $? "initramfs is reproducible"
cmp -s "$work/a/image.json" "$work/b/image.json"
check $? "manifest is reproducible"

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

"$NU_BIN" vm image frobnicate >/dev/null 2>&1
check $((2 - $?)) "unknown action is a usage error"

echo "1..$n"
[ "$failed" = 0 ]
