#!/bin/sh
# Pod networking leaves nothing behind: run the networking test program
# (which drives the net API against real namespaces), SIGKILL a second
# run in the middle, then check that no nucleus veth, host rule, test
# namespace or reservation lock is held once a new owner has swept.
set -u

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: needs root (CAP_NET_ADMIN)"
    exit 77
fi
test_net="${NU_BUILD_DIR:?NU_BUILD_DIR is not set}/tests/test_net"
if [ ! -x "$test_net" ]; then
    echo "net_cleanup: missing $test_net (build the tests first)" >&2
    exit 1
fi

fail=0
check() {
    # check NAME COMMAND...: the command must print nothing
    name=$1
    shift
    out=$("$@" 2>/dev/null)
    if [ -n "$out" ]; then
        echo "not ok - $name: $out"
        fail=1
    else
        echo "ok - $name"
    fi
}

leftovers() {
    check "no nuh veth" sh -c "ip -br link | grep '^nuh' | grep -i \"$1\""
    check "no tagged rule" sh -c "iptables-save | grep -- \"--comment nucleus-$1-\""
}

# 1. A full run cleans up after itself.
if "$test_net" >/tmp/nu-net-cleanup.$$ 2>&1; then
    echo "ok - test_net passed"
else
    echo "not ok - test_net failed:"
    tail -20 /tmp/nu-net-cleanup.$$
    fail=1
fi
rm -f /tmp/nu-net-cleanup.$$
check "no nucleus rule" sh -c "iptables-save | grep -E -- '--comment nucleus-|:NU[FI][0-9]'"
check "no test namespace" sh -c "ip netns list | grep '^nutinet'"

# 2. SIGKILL of an owner with live pods: wait until it has host rules, kill
#    it, and let the next run's sweep remove what it left.
"$test_net" >/dev/null 2>&1 &
owner=$!
i=0
while [ $i -lt 300 ]; do
    if iptables-save 2>/dev/null | grep -q -- "--comment nucleus-$owner-"; then
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
kill -9 $owner 2>/dev/null
wait $owner 2>/dev/null
# The test network of the killed run is its own; remove it by name.
for p in $(ip netns pids "nutinet$owner" 2>/dev/null); do kill -9 "$p"; done
ip link del "nutI$owner" 2>/dev/null
ip netns del "nutinet$owner" 2>/dev/null
if [ -f "/tmp/nu-nettest-$owner/host.pid" ]; then
    kill "$(cat "/tmp/nu-nettest-$owner/host.pid")" 2>/dev/null
fi
rm -rf "/tmp/nu-nettest-$owner"

"$test_net" >/dev/null 2>&1 || { echo "not ok - second run failed"; fail=1; }
leftovers "$owner"
check "no nucleus rule after the sweep" sh -c "iptables-save | grep -E -- '--comment nucleus-|:NU[FI][0-9]'"

exit $fail
