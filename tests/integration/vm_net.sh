#!/bin/sh
# Guest networking of vm pods with egress.  A test "internet" namespace
# contains HTTP servers and a DNS listener.  One guest runs a probe script
# that must reach only the allowed destinations (directly through QEMU's
# user network and through the pod's proxy) and no resolver.  A second
# guest's owner is killed with SIGKILL.  No QEMU, veth or tagged rule may
# remain after either pod ends.  Two guest boots in all; output is TAP.
#
# The DNS listener also stands in for the host's resolver: the pod runs
# in a private mount namespace whose /etc/resolv.conf names it, so the
# DNS forwarder of QEMU's user network would send there, never to the
# real resolver, if the pod's filter let it.
set -u

if [ "$(id -u)" -ne 0 ]; then
    echo "skip: needs root (pod egress needs CAP_NET_ADMIN)"
    exit 77
fi
if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
for tool in qemu-system-x86_64 ip iptables-save unshare flock; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skip: $tool is not installed"
        exit 77
    fi
done
if [ ! -x /usr/bin/python3 ]; then
    echo "skip: /usr/bin/python3 is not installed"
    exit 77
fi

# The test network has fixed addresses.  The lock is the one the other
# network tests (test_net, pod_network) take, so their sweeps and drift
# injections never overlap this test's pods.
exec 9>/run/lock/nucleus-test-net.lock
flock 9

work=$(mktemp -d /tmp/nu-vmnet-XXXXXX)
ns="nuvinet$$"
veth="nuvI$$"
owner_killed=""
owner=""

cleanup() {
    for pid in $owner_killed $owner; do
        kill -9 "$pid" 2>/dev/null
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null
    done
    ip link del "$veth" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export NUCLEUS_HOME="$work/home"
mkdir -p "$work/ws" "$work/www"

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

# Print the pids of QEMU processes below process $1.
qemu_below() {
    ps -e -o pid=,ppid=,comm= | awk -v root="$1" '
        { parent[$1] = $2; name[$1] = $3 }
        END {
            for (p in parent) {
                q = p
                while (q in parent && q != root && q > 1)
                    q = parent[q]
                if (q == root && name[p] ~ /^qemu-system/)
                    print p
            }
        }'
}

# Print what pod networking of owner $1 left behind: its host rules,
# its veth and its QEMU processes.
leftovers() {
    iptables-save 2>/dev/null | grep -- "--comment nucleus-$1-"
    ip -o link show 2>/dev/null | grep -- "alias nucleus-$1-"
    qemu_below "$1"
}

if ! "$NU_BIN" vm image build >/dev/null 2>"$work/build.err"; then
    echo "skip: cannot build the guest image: $(tail -n 1 "$work/build.err")"
    exit 77
fi

# --- the test internet -------------------------------------------------
echo hello-vmnet >"$work/www/hello.txt"
cat >"$work/dns.py" <<'EOF'
# Log every UDP datagram and TCP connection that reaches port 53.
import socket, sys, threading
addr, log = sys.argv[1], sys.argv[2]
def note(what):
    with open(log, "a") as f:
        f.write(what + "\n")
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((addr, 53))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((addr, 53))
tcp.listen(8)
def serve_tcp():
    while True:
        conn, peer = tcp.accept()
        note("tcp %s" % (peer,))
        conn.close()
threading.Thread(target=serve_tcp, daemon=True).start()
open(log, "a").close()
while True:
    data, peer = udp.recvfrom(4096)
    note("udp %s %d bytes" % (peer, len(data)))
EOF

if ! { ip netns add "$ns" &&
       ip link add "$veth" type veth peer name eth0 netns "$ns" &&
       ip addr add 10.247.9.1/24 dev "$veth" && ip link set "$veth" up &&
       echo 1 >"/proc/sys/net/ipv4/conf/$veth/forwarding" &&
       ip -n "$ns" addr add 10.247.9.2/24 dev eth0 &&
       ip -n "$ns" addr add 10.247.9.3/24 dev eth0 &&
       ip -n "$ns" addr add 10.247.9.4/24 dev eth0 &&
       ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up; }; then
    echo "Bail out! cannot create the test network namespace $ns"
    exit 1
fi
for server in 10.247.9.2:8080 10.247.9.2:9090 10.247.9.3:8080 \
              10.247.9.4:8080; do
    ip netns exec "$ns" /usr/bin/python3 -m http.server \
        --bind "${server%:*}" --directory "$work/www" "${server#*:}" \
        >/dev/null 2>&1 &
done
ip netns exec "$ns" /usr/bin/python3 "$work/dns.py" 10.247.9.4 \
    "$work/dns.log" >/dev/null 2>&1 &
i=0
until [ -f "$work/dns.log" ] &&
      ip netns exec "$ns" /usr/bin/python3 -c '
import sys, urllib.request
for url in sys.argv[1:]:
    urllib.request.urlopen(url, timeout=1).read()' \
          http://10.247.9.2:8080/hello.txt http://10.247.9.2:9090/hello.txt \
          http://10.247.9.3:8080/hello.txt http://10.247.9.4:8080/hello.txt \
          2>/dev/null; do
    i=$((i + 1))
    if [ $i -ge 100 ]; then
        echo "Bail out! the test servers in $ns did not start"
        exit 1
    fi
    sleep 0.1
done
echo "nameserver 10.247.9.4" >"$work/resolv.conf"

# The profile allows one address:port and one whole address (every port
# but 53).  A command with egress completes the trifecta, so the approve
# hook grants run_bash.
cat >"$work/profile.lua" <<'EOF'
return nucleus.profile {
  name = "vm_net_test",
  description = "run commands; egress to two test addresses only",
  capabilities = { run_bash = "always", web_fetch = "always" },
  paths = { allow = nucleus.ALL, block = {}, write_block = {} },
  commands = { allow = nucleus.ALL, block = {} },
  network = { allow = { "10.247.9.2:8080", "10.247.9.4" }, domains = {},
              trusted = {} },
  budget = { usd = 1, input_tokens = 1000, output_tokens = 1000,
             tool_calls = 100 },
  time = { ttl = 3600 },
  approvals = {},
  approve = function(request)
    if request.operation == "run_bash" then return "approve" end
    return "deny"
  end,
}
EOF

# Run nucleus exec in a private mount namespace with the test resolv.conf.
# Call it in the background only: exec keeps $! the pid of nucleus.
pod_exec() {
    exec unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift &&
                      exec "$@"' sh "$work/resolv.conf" \
        "$NU_BIN" exec --profile "$work/profile.lua" \
        --workspace "$work/ws" --isolation vm "$@"
}

# --- pod 1: SIGKILL of the owner -----------------------------------------
pod_exec -- sleep 300 >"$work/killed.out" 2>&1 &
owner_killed=$!
i=0
qemu=""
# nu_net_attach may tag the veth and install the rules in either order,
# so wait for both.
while [ $i -lt 1200 ]; do
    if iptables-save 2>/dev/null | grep -q -- "--comment nucleus-$owner_killed-" &&
       ip -o link show | grep -q -- "alias nucleus-$owner_killed-"; then
        qemu=$(qemu_below "$owner_killed")
        [ -n "$qemu" ] && break
    fi
    kill -0 "$owner_killed" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
iptables-save 2>/dev/null | grep -q -- "--comment nucleus-$owner_killed-"
check $? "egress pod has host rules" "$(tail -n 3 "$work/killed.out")"
ip -o link show | grep -q -- "alias nucleus-$owner_killed-"
check $? "egress pod has a host veth"
[ -n "$qemu" ]
check $? "egress pod has a QEMU process"
if [ -z "$qemu" ]; then
    echo "Bail out! the egress pod did not start"
    exit 1
fi
kill -9 "$owner_killed"
wait "$owner_killed" 2>/dev/null
i=0
while [ $i -lt 100 ]; do
    left=""
    for pid in $qemu; do
        kill -0 "$pid" 2>/dev/null && left="$left $pid"
    done
    [ -z "$left" ] && break
    sleep 0.1
    i=$((i + 1))
done
[ -z "$left" ]
check $? "QEMU dies with its SIGKILLed owner" "still running:$left"
i=0
while [ $i -lt 50 ] &&
      ip -o link show | grep -q -- "alias nucleus-$owner_killed-"; do
    sleep 0.1
    i=$((i + 1))
done
out=$(ip -o link show | grep -- "alias nucleus-$owner_killed-")
[ -z "$out" ]
check $? "veth is gone with QEMU's network namespace" "$out"

# --- pod 2: the probe --------------------------------------------------
cat >"$work/ws/probe.sh" <<'EOF'
# Runs in the guest.  Prints "result NAME STATUS" per case.  Requests are
# written with nc because BusyBox 1.35's wget (Debian 12 busybox-static)
# dies with SIGSEGV before it connects.
t() {
    name=$1
    shift
    "$@" >/tmp/probe.out 2>&1
    echo "result $name $?"
    head -c 300 /tmp/probe.out | sed "s/^/  $name: /"
}
# get ADDRESS PORT TARGET HOST: one HTTP/1.0 GET that must return the
# test file.
get() {
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$4" |
        nc -w 8 "$1" "$2" >/tmp/get.out
    cat /tmp/get.out
    grep -q hello-vmnet /tmp/get.out
}
proxy=${http_proxy#http://}
proxy=${proxy%/}
proxy_host=${proxy%:*}
proxy_port=${proxy#*:}
echo "interfaces $(ls /sys/class/net | tr '\n' ' ')"
echo "proxy $http_proxy"
t has_eth0 test -e /sys/class/net/eth0
t has_proxy test -n "$proxy_host"
t direct_allowed get 10.247.9.2 8080 /hello.txt 10.247.9.2:8080
t proxy_allowed get "$proxy_host" "$proxy_port" \
    http://10.247.9.2:8080/hello.txt 10.247.9.2:8080
t direct_allowed_any_port get 10.247.9.4 8080 /hello.txt 10.247.9.4:8080
t direct_other_port get 10.247.9.2 9090 /hello.txt 10.247.9.2:9090
t direct_other_address get 10.247.9.3 8080 /hello.txt 10.247.9.3:8080
t proxy_other_address get "$proxy_host" "$proxy_port" \
    http://10.247.9.3:8080/hello.txt 10.247.9.3:8080
t dns_user_network timeout 12 nslookup probe.test 169.254.2.3
t dns_allowed_address timeout 12 nslookup probe.test 10.247.9.4
t dns_tcp_allowed_address nc -w 5 10.247.9.4 53
t dns_proxy_address timeout 12 nslookup probe.test "$proxy_host"
t user_network_host nc -w 5 169.254.2.2 3128
EOF
pod_exec -- sh /workspace/probe.sh >"$work/probe.out" 2>&1 &
owner=$!
wait "$owner"
status=$?
check "$status" "probe pod runs" "status $status: $(tail -n 3 "$work/probe.out")"

result() {
    awk -v name="$1" '$1 == "result" && $2 == name { print $3 }' \
        "$work/probe.out"
}
expect_ok() {
    r=$(result "$1")
    [ "$r" = 0 ]
    check $? "$2" "status ${r:-missing}"
}
expect_blocked() {
    r=$(result "$1")
    [ -n "$r" ] && [ "$r" != 0 ]
    check $? "$2" "status ${r:-missing}"
}
expect_ok has_eth0 "guest has eth0"
expect_ok has_proxy "guest has the proxy in its environment"
expect_ok direct_allowed "allowed address:port works directly"
expect_ok proxy_allowed "allowed address:port works through the proxy"
expect_ok direct_allowed_any_port "address allowed without a port works"
expect_blocked direct_other_port "other port of an allowed address is blocked"
expect_blocked direct_other_address "other address is blocked"
expect_blocked proxy_other_address "proxy rejects another address"
expect_blocked dns_user_network "DNS through QEMU's forwarder is blocked"
expect_blocked dns_allowed_address "UDP DNS to an allowed address is blocked"
expect_blocked dns_tcp_allowed_address \
    "TCP DNS to an allowed address is blocked"
expect_blocked dns_proxy_address "DNS to the proxy address is blocked"
expect_blocked user_network_host "user network's host address has no service"
[ ! -s "$work/dns.log" ]
check $? "no DNS packet reached the resolver" "$(head -n 3 "$work/dns.log")"

# --- cleanup -------------------------------------------------------------
out=$(leftovers "$owner")
[ -z "$out" ]
check $? "nothing left after the pod closed" "$out"
out=$(leftovers "$owner_killed")
[ -z "$out" ]
check $? "the next pod swept the SIGKILLed owner's rules" "$out"
out=$(ls -d /run/nucleus/vm/"$owner".* /run/nucleus/vm/"$owner_killed".* \
      2>/dev/null)
[ -z "$out" ]
check $? "no vm run directory left" "$out"

if [ "$failed" != 0 ]; then
    echo "# the probe's output:"
    sed 's/^/# /' "$work/probe.out"
fi
echo "1..$n"
[ "$failed" = 0 ]
