#!/bin/sh
# Guest network throughput of a vm pod with egress: download a 16 MiB
# file from a test network namespace, directly (through QEMU's user-mode
# network) and through the pod's proxy.  The baselines, measured in the
# same run, are the same downloads from a namespace pod and from the
# host.  Every download is BusyBox nc piped into wc, timed with
# /proc/uptime (10 ms resolution), three times each; the median is
# printed.  Needs root, QEMU and a guest image (built into a temporary
# state directory).
set -u

if [ "$(id -u)" -ne 0 ]; then
    echo "skip: needs root (pod egress needs CAP_NET_ADMIN)"
    exit 77
fi
if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
for tool in qemu-system-x86_64 busybox ip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skip: $tool is not installed"
        exit 77
    fi
done

# The lock is the one the network tests take, so their sweeps and drift
# injections never overlap the measured pods.
exec 9>/run/lock/nucleus-test-net.lock
flock 9

work=$(mktemp -d /tmp/nu-vmnetbench-XXXXXX)
ns="nuvbnet$$"
veth="nuvB$$"
cleanup() {
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

if ! "$NU_BIN" vm image build >/dev/null 2>"$work/build.err"; then
    echo "skip: cannot build the guest image: $(tail -n 1 "$work/build.err")"
    exit 77
fi

head -c $((16 << 20)) /dev/urandom >"$work/www/blob"
ip netns add "$ns" &&
    ip link add "$veth" type veth peer name eth0 netns "$ns" &&
    ip addr add 10.247.10.1/24 dev "$veth" && ip link set "$veth" up &&
    echo 1 >"/proc/sys/net/ipv4/conf/$veth/forwarding" &&
    ip -n "$ns" addr add 10.247.10.2/24 dev eth0 &&
    ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up || {
    echo "bench_vm_net: cannot create the test network namespace $ns" >&2
    exit 1
}
ip netns exec "$ns" /usr/bin/python3 -m http.server --bind 10.247.10.2 \
    --directory "$work/www" 8080 >/dev/null 2>&1 &
i=0
until busybox nc -w 1 10.247.10.2 8080 </dev/null >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 100 ]; then
        echo "bench_vm_net: the test server did not start" >&2
        exit 1
    fi
    sleep 0.1
done

cat >"$work/profile.lua" <<'EOF'
return nucleus.profile {
  name = "vm_net_bench",
  description = "run commands; egress to one test address",
  capabilities = { run_bash = "always", web_fetch = "always" },
  paths = { allow = nucleus.ALL, block = {}, write_block = {} },
  commands = { allow = nucleus.ALL, block = {} },
  network = { allow = { "10.247.10.2:8080" }, domains = {}, trusted = {} },
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

# Prints "MODE BYTES SECONDS" per download; runs in the pods and on the
# host.  MODE proxy is skipped when http_proxy is unset.
cat >"$work/ws/download.sh" <<'EOF'
now() { cut -d ' ' -f 1 /proc/uptime; }
once() {
    mode=$1
    shift
    start=$(now)
    bytes=$(printf "$@" | busybox nc "$address" "$port" | busybox wc -c)
    echo "$mode $bytes $(echo "$(now) $start" | busybox awk '{ print $1 - $2 }')"
}
for i in 1 2 3; do
    address=10.247.10.2 port=8080
    once direct 'GET /blob HTTP/1.0\r\n\r\n'
    if [ -n "${http_proxy:-}" ]; then
        proxy=${http_proxy#http://}
        proxy=${proxy%/}
        address=${proxy%:*} port=${proxy#*:}
        once proxy 'GET http://10.247.10.2:8080/blob HTTP/1.0\r\nHost: 10.247.10.2:8080\r\n\r\n'
    fi
done
EOF

# Print the median MiB/s of each mode in output file $2, labelled $1.
report() {
    for mode in direct proxy; do
        awk -v mode="$mode" '$1 == mode && $3 > 0 { print $2 / $3 / 1048576 }' \
            "$2" | sort -n | awk -v label="$1 $mode" '
            { v[NR] = $1 }
            END {
                if (NR > 0)
                    printf "%-22s %8.1f MiB/s (median of %d)\n", label,
                           v[int((NR + 1) / 2)], NR
            }'
    done
}

sh "$work/ws/download.sh" >"$work/host.out" 2>&1
"$NU_BIN" exec --profile "$work/profile.lua" --workspace "$work/ws" \
    -- sh /workspace/download.sh >"$work/ns.out" 2>&1
"$NU_BIN" exec --profile "$work/profile.lua" --workspace "$work/ws" \
    --isolation vm -- sh /workspace/download.sh >"$work/vm.out" 2>&1

echo "16 MiB downloads from a test network namespace"
report "host" "$work/host.out"
report "ns pod" "$work/ns.out"
report "vm pod" "$work/vm.out"
# A short download is reported, not fatal: the figures use the bytes
# that arrived.  Only a pod that produced no figures fails the run.
# NOTE: in runs here, downloads through the proxy came up short only when
# the client half-closed its side first, as BusyBox nc does at the end
# of its input; with the client's side left open they were complete.
status=0
for f in host ns vm; do
    awk '$1 == "direct" || $1 == "proxy" { n++; if ($2 < 16777216) short++ }
         END { if (short > 0)
                   printf "note: %d of %d %s downloads were short\n", short, n,
                          FILENAME }' "$work/$f.out" |
        sed "s|$work/||"
    if ! grep -q '^direct ' "$work/$f.out"; then
        echo "bench_vm_net: no $f figures:" >&2
        cat "$work/$f.out" >&2
        status=1
    fi
done
exit $status
