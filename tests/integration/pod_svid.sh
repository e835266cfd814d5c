#!/bin/sh
# A pod's X.509-SVID inside the pod: issued from the state directory's CA,
# valid for the pod's SPIFFE ID, and rotated before expiry (4-second TTL)
# while a workload in the pod keeps checking that key and certificate match.
set -eu

: "${NU_BIN:?NU_BIN is not set}"
tmp=$(mktemp -d /tmp/nu-pod-svid.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export NUCLEUS_HOME="$tmp/home"
mkdir -p "$tmp/ws"

"$NU_BIN" ca init --trust-domain example.test >/dev/null
"$NU_BIN" ca bundle > "$tmp/bundle.pem"

cat > "$tmp/check.lua" <<'LUA'
local nucleus = require "nucleus"
local pod = assert(nucleus.pod { profile = "codegen", workspace = arg[1], svid_ttl = 4 })
print("id " .. pod.spiffe_id)

local r = assert(pod:run("stat -c %a /run/nucleus/svid/svid.key"))
print("keymode " .. r.stdout:gsub("%s+$", ""))

-- About 7 s of reads across at least one rotation.  Each read is its own
-- command, so rotations (which go between calls) can happen meanwhile.
local check = [[
cd /run/nucleus/svid || exit 3
k1=$(openssl x509 -noout -pubkey -in svid.pem 2>/dev/null | tr -d '\n')
k2=$(openssl pkey -pubout -in svid.key 2>/dev/null | tr -d '\n')
[ -n "$k1" ] && [ "$k1" = "$k2" ] && echo match || echo mismatch
]]
local first = assert(pod:run("readlink /run/nucleus/svid")).stdout:gsub("%s+$", "")
local n, bad, deadline = 0, 0, os.time() + 7
while os.time() < deadline do
  local c = assert(pod:run(check))
  if c.stdout ~= "match\n" then bad = bad + 1 end
  n = n + 1
end
local last = assert(pod:run("readlink /run/nucleus/svid")).stdout:gsub("%s+$", "")
r = { stdout = string.format("reads %d mismatches %d first %s last %s", n, bad, first, last) }

-- Copy the current SVID out (it lives 4 s) for verification on the host.
local c = assert(pod:run("cat /run/nucleus/svid/svid.pem"))
local f = assert(io.open(arg[1] .. "/../current.pem", "w")); f:write(c.stdout); f:close()
print(r.stdout)
pod:close()
LUA

out=$("$NU_BIN" run "$tmp/check.lua" "$tmp/ws")
echo "$out"

failures=0
check() {
    if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; failures=$((failures + 1)); fi
}
id=$(echo "$out" | sed -n 's/^id //p')
check "pod SPIFFE ID is in the CA's trust domain" 'case "$id" in spiffe://example.test/ns/default/pod/*) true;; *) false;; esac'
check "the SVID verifies against the bundle as the pod's ID" \
    '[ "$("$NU_BIN" svid verify "$tmp/current.pem" --bundle "$tmp/bundle.pem" --id "$id")" = "ok: $id" ]'
check "the key file is mode 600" 'echo "$out" | grep -q "^keymode 600$"'
reads=$(echo "$out" | sed -n 's/^reads \([0-9]*\) .*/\1/p')
bad=$(echo "$out" | sed -n 's/.* mismatches \([0-9]*\) .*/\1/p')
first=$(echo "$out" | sed -n 's/.* first \([^ ]*\) .*/\1/p')
last=$(echo "$out" | sed -n 's/.* last \([^ ]*\)$/\1/p')
check "the workload read key and certificate many times ($reads)" '[ "${reads:-0}" -ge 10 ]'
check "key and certificate always matched ($bad mismatches)" '[ "${bad:-1}" -eq 0 ]'
check "the SVID rotated inside the pod ($first -> $last)" '[ -n "$first" ] && [ "$first" != "$last" ]'

# The node's own SVID signs the audit checkpoints: a verifier holding only
# the trust bundle accepts them, and another CA's bundle does not.
check "audit checkpoints verify against the CA bundle alone" \
    '"$NU_BIN" audit verify --bundle "$tmp/bundle.pem" >/dev/null'
check "the node SVID exists in the state directory" '[ -f "$NUCLEUS_HOME/node/svid/svid.pem" ]'
NUCLEUS_HOME="$tmp/other" "$NU_BIN" ca init --trust-domain other.test >/dev/null
NUCLEUS_HOME="$tmp/other" "$NU_BIN" ca bundle > "$tmp/other.pem"
check "another CA's bundle is refused" '! "$NU_BIN" audit verify --bundle "$tmp/other.pem" >/dev/null 2>&1'

echo "$((9 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
