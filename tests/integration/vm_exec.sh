#!/bin/sh
# nucleus exec --isolation vm: a command runs in a QEMU microvm guest
# (TCG when KVM is unusable), sees the workspace through the 9p share,
# and its exit status comes back. Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "skip: qemu-system-x86_64 not installed (qemu-system-x86)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-vmexec-XXXXXX)
trap 'rm -rf "$work"' EXIT
export NUCLEUS_HOME="$work/home"
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

"$NU_BIN" exec --workspace "$work/ws" --isolation vm -- true \
    >/dev/null 2>"$work/noimage.err"
status=$?
[ "$status" = 125 ] && grep -q 'nucleus vm image build' "$work/noimage.err"
check $? "missing image names the build command" \
    "status $status: $(cat "$work/noimage.err")"

if ! "$NU_BIN" vm image build >/dev/null 2>"$work/build.err"; then
    echo "skip: cannot build the guest image: $(tail -n 1 "$work/build.err")"
    exit 77
fi

echo 'host text' >"$work/ws/in.txt"
out=$("$NU_BIN" exec --workspace "$work/ws" --isolation vm -- cat in.txt 2>&1)
check $? "cat runs in the guest" "$out"
[ "$out" = "host text" ]
check $? "guest reads the host workspace" "$out"

out=$("$NU_BIN" exec --workspace "$work/ws" --isolation vm -- hostname 2>&1)
[ "$out" = "nucleus" ]
check $? "guest host name is nucleus" "$out"

"$NU_BIN" exec --workspace "$work/ws" --isolation vm -- false >/dev/null 2>&1
check $(( $? == 1 ? 0 : 1 )) "exit status comes back"

echo "1..$n"
[ "$failed" = 0 ]
