#!/bin/bash
# identity_openssl.sh - X.509-SVIDs and mTLS against the openssl tools.
#
#   1. openssl verify -x509_strict accepts SVIDs from 'nucleus svid issue'.
#   2. A corpus of certificates made with openssl has one case per SPIFFE
#      rejection rule.  'nucleus svid verify' must reject each with the
#      expected reason and accept the valid controls.
#   3. mTLS: openssl s_client against our server and our client against
#      openssl s_server complete handshakes and see each other's SPIFFE
#      IDs; a wrong trust domain, a foreign CA or an expired certificate
#      fail the handshake with a clear reason.
# Everything listens on 127.0.0.1 only.  Needs NU_BIN and openssl.
set -u

NU=${NU_BIN:-}
if [ -z "$NU" ] || [ ! -x "$NU" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! command -v openssl >/dev/null; then
    echo "skip: openssl is not installed"
    exit 77
fi

work=$(mktemp -d /tmp/nu-identity-openssl.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; [ $# -gt 1 ] && echo "#   $2"; }

export NUCLEUS_HOME=$work/home
TD=nucleus.local
"$NU" ca init >/dev/null || { echo "cannot create the CA"; exit 1; }
CA_PEM=$NUCLEUS_HOME/ca/ca.pem
CA_KEY=$NUCLEUS_HOME/ca/ca.key

# ---- 0. the ca and svid commands ------------------------------------------

# expect_cmd NAME EXPECTED_EXIT "EXPECTED OUTPUT SUBSTRING" COMMAND...
expect_cmd() {
    local name=$1 want_rc=$2 want=$3 out rc
    shift 3
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" = "$want_rc" ] && [[ "$out" == *"$want"* ]]; then
        ok "$name"
    else
        not_ok "$name" "exit $rc, output: $out (expected exit $want_rc and '$want')"
    fi
}

expect_cmd "ca init refuses to overwrite" 1 "pass --force" "$NU" ca init
expect_cmd "ca init rejects an uppercase trust domain" 1 "uppercase" \
    "$NU" ca init --home "$work/other-home" --trust-domain Bad.Example
expect_cmd "ca init --force replaces the CA" 0 "trust domain 'nucleus.local'" \
    "$NU" ca init --force
expect_cmd "ca bundle prints the root" 0 "BEGIN CERTIFICATE" "$NU" ca bundle
expect_cmd "ca bundle rejects an unknown format" 2 "expected pem or spiffe" \
    "$NU" ca bundle --format der
expect_cmd "ca bundle needs a CA" 1 "nucleus ca init" \
    "$NU" ca bundle --home "$work/empty-home"
"$NU" ca bundle --format spiffe > "$work/bundle.json"
if python3 - "$work/bundle.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
uses = sorted(k["use"] for k in b["keys"])
x509 = [k for k in b["keys"] if k["use"] == "x509-svid"][0]
jwt = [k for k in b["keys"] if k["use"] == "jwt-svid"][0]
assert uses == ["jwt-svid", "x509-svid"], uses
assert len(x509["x5c"]) == 1, x509
assert x509["crv"] == "P-256", x509
assert jwt["kid"] and jwt["kty"] == "EC", jwt
assert b["spiffe_sequence"] == 2, b["spiffe_sequence"]
assert b["spiffe_refresh_hint"] > 0
PY
then
    ok "ca bundle --format spiffe has both keys and the sequence"
else
    not_ok "ca bundle --format spiffe has both keys and the sequence"
fi

expect_cmd "svid issue needs --out" 2 "--id and --out are required" \
    "$NU" svid issue --id spiffe://nucleus.local/x
expect_cmd "svid issue rejects a bad --ttl" 2 "invalid --ttl" \
    "$NU" svid issue --id spiffe://nucleus.local/x --out "$work/x" --ttl 1h
expect_cmd "svid issue rejects another trust domain" 1 "not in trust domain" \
    "$NU" svid issue --id spiffe://example.org/x --out "$work/x"
expect_cmd "svid issue rejects a bad ID" 1 "percent-encoding" \
    "$NU" svid issue --id spiffe://nucleus.local/a%20b --out "$work/x"
expect_cmd "svid rejects an unknown action" 2 "unknown action" "$NU" svid renew

token=$("$NU" svid jwt --id spiffe://nucleus.local/ns/default/pod/p1 --aud api --aud audit)
expect_cmd "jwt-verify accepts a fresh token" 0 "ok: spiffe://nucleus.local/ns/default/pod/p1" \
    "$NU" svid jwt-verify "$token" --aud audit
expect_cmd "jwt-verify with the bundle JSON" 0 "ok: spiffe://nucleus.local/ns/default/pod/p1" \
    "$NU" svid jwt-verify "$token" --aud api --bundle "$work/bundle.json"
expect_cmd "jwt-verify rejects another audience" 1 "invalid: jwt: wrong audience" \
    "$NU" svid jwt-verify "$token" --aud billing
expect_cmd "jwt-verify rejects a truncated token" 1 "invalid: jwt:" \
    "$NU" svid jwt-verify "${token%.*}" --aud api
expect_cmd "jwt-verify needs --aud" 2 "one --aud" "$NU" svid jwt-verify "$token"
expect_cmd "jwt needs an audience" 2 "--id and --aud are required" \
    "$NU" svid jwt --id spiffe://nucleus.local/x

# ---- 1. issuance accepted by openssl -------------------------------------

"$NU" svid issue --id spiffe://$TD/ns/default/pod/server --out "$work/server" >/dev/null
"$NU" svid issue --id spiffe://$TD/ns/default/pod/client --out "$work/client" >/dev/null

if out=$(openssl verify -x509_strict -purpose sslserver -CAfile "$work/server/bundle.pem" \
         "$work/server/svid.pem" 2>&1); then
    ok "openssl verify -x509_strict accepts an issued SVID"
else
    not_ok "openssl verify -x509_strict accepts an issued SVID" "$out"
fi
if openssl verify -x509_strict -purpose sslclient -CAfile "$work/client/bundle.pem" \
       "$work/client/svid.pem" >/dev/null 2>&1; then
    ok "openssl accepts the SVID for client authentication"
else
    not_ok "openssl accepts the SVID for client authentication"
fi
if [ "$(stat -c %a "$work/server/svid.key")" = 600 ]; then
    ok "svid.key has mode 0600"
else
    not_ok "svid.key has mode 0600"
fi
if openssl pkey -in "$work/server/svid.key" -noout 2>/dev/null &&
   head -1 "$work/server/svid.key" | grep -q "BEGIN PRIVATE KEY"; then
    ok "svid.key is PKCS#8 that openssl reads"
else
    not_ok "svid.key is PKCS#8 that openssl reads"
fi

# ---- 2. verification corpus ------------------------------------------------

# expect_verify NAME "EXPECTED OUTPUT SUBSTRING" EXPECTED_EXIT ARGS...
expect_verify() {
    local name=$1 want=$2 want_rc=$3 out rc
    shift 3
    out=$("$NU" svid verify "$@" 2>&1)
    rc=$?
    if [ "$rc" = "$want_rc" ] && [[ "$out" == *"$want"* ]]; then
        ok "$name"
    else
        not_ok "$name" "exit $rc, output: $out (expected exit $want_rc and '$want')"
    fi
}

# mkkey NAME: a P-256 key in PKCS#8.
mkkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$work/$1.key" 2>/dev/null
}

# mkcert NAME SIGNER EXTENSIONS...: a certificate for NAME.key signed by
# SIGNER (a NAME made before, or "self"), with one extension per argument.
mkcert() {
    local name=$1 signer=$2
    shift 2
    mkkey "$name"
    printf '%s\n' "[v3]" "$@" > "$work/$name.ext"
    openssl req -new -key "$work/$name.key" -subj "/O=Test/CN=$name" \
        -out "$work/$name.csr" 2>/dev/null
    if [ "$signer" = self ]; then
        openssl x509 -req -in "$work/$name.csr" -signkey "$work/$name.key" \
            -days 1 -extfile "$work/$name.ext" -extensions v3 \
            -out "$work/$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$work/$name.csr" -CA "$work/$signer.pem" \
            -CAkey "$work/$signer.key" -set_serial "0x$(openssl rand -hex 12)" \
            -days 1 -extfile "$work/$name.ext" -extensions v3 \
            -out "$work/$name.pem" 2>/dev/null
    fi
}

# mkdated NAME START END EXTENSIONS...: like mkcert signed by our CA, with
# explicit validity dates (YYYYMMDDHHMMSSZ), through 'openssl ca'.
mkdated() {
    local name=$1 start=$2 end=$3
    shift 3
    mkkey "$name"
    printf '%s\n' "[v3]" "$@" > "$work/$name.ext"
    openssl req -new -key "$work/$name.key" -subj "/O=Test/CN=$name" \
        -out "$work/$name.csr" 2>/dev/null
    mkdir -p "$work/ca-db/new"
    : > "$work/ca-db/index.txt"
    openssl rand -hex 12 > "$work/ca-db/serial"
    cat > "$work/ca-db/ca.cnf" <<CNF
[ca]
default_ca = local
[local]
database = $work/ca-db/index.txt
new_certs_dir = $work/ca-db/new
serial = $work/ca-db/serial
default_md = sha256
policy = any
unique_subject = no
[any]
organizationName = optional
commonName = optional
CNF
    openssl ca -batch -notext -config "$work/ca-db/ca.cnf" -cert "$CA_PEM" \
        -keyfile "$CA_KEY" -startdate "$start" -enddate "$end" \
        -in "$work/$name.csr" -extfile "$work/$name.ext" -extensions v3 \
        -out "$work/$name.pem" 2>/dev/null
}

# Our CA under the name "ca", so that mkcert can sign with it.
cp "$CA_PEM" "$work/ca.pem"
cp "$CA_KEY" "$work/ca.key"

LEAF_BC="basicConstraints=critical,CA:FALSE"
LEAF_KU="keyUsage=critical,digitalSignature"
LEAF_EKU="extendedKeyUsage=serverAuth,clientAuth"
uri() { echo "subjectAltName=URI:$1"; }

mkcert good ca "$(uri spiffe://$TD/ok)" "$LEAF_BC" "$LEAF_KU" "$LEAF_EKU"
expect_verify "openssl-made SVID is accepted" "ok: spiffe://$TD/ok" 0 \
    "$work/good.pem" --bundle "$CA_PEM"
expect_verify "accepted with --id" "ok: spiffe://$TD/ok" 0 \
    "$work/good.pem" --bundle "$CA_PEM" --id spiffe://$TD/ok --key "$work/good.key"
expect_verify "rejected when --id differs" "invalid: svid: SPIFFE ID 'spiffe://$TD/ok' is not the expected" 1 \
    "$work/good.pem" --bundle "$CA_PEM" --id spiffe://$TD/other
expect_verify "rejected when the key does not match" "does not match the private key" 1 \
    "$work/good.pem" --bundle "$CA_PEM" --key "$work/server/svid.key"

mkcert no_uri ca "subjectAltName=DNS:example.org" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a leaf without URI SAN" "no URI SAN" 1 "$work/no_uri.pem" --bundle "$CA_PEM"

mkcert no_san ca "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a leaf without subjectAltName" "no URI SAN" 1 "$work/no_san.pem" --bundle "$CA_PEM"

mkcert two_uris ca "subjectAltName=URI:spiffe://$TD/a,URI:spiffe://$TD/b" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects two URI SANs" "more than one URI SAN" 1 "$work/two_uris.pem" --bundle "$CA_PEM"

mkcert leaf_ca ca "$(uri spiffe://$TD/ca)" "basicConstraints=critical,CA:TRUE" "$LEAF_KU"
expect_verify "rejects a leaf that is a CA" "must not have the CA flag set" 1 "$work/leaf_ca.pem" --bundle "$CA_PEM"

mkcert leaf_kcs ca "$(uri spiffe://$TD/kcs)" "$LEAF_BC" "keyUsage=critical,digitalSignature,keyCertSign"
expect_verify "rejects leaf keyCertSign" "must not have 'keyCertSign'" 1 "$work/leaf_kcs.pem" --bundle "$CA_PEM"

mkcert leaf_crl ca "$(uri spiffe://$TD/crl)" "$LEAF_BC" "keyUsage=critical,digitalSignature,cRLSign"
expect_verify "rejects leaf cRLSign" "must not have 'cRLSign'" 1 "$work/leaf_crl.pem" --bundle "$CA_PEM"

mkcert no_ds ca "$(uri spiffe://$TD/nods)" "$LEAF_BC" "keyUsage=critical,keyEncipherment"
expect_verify "rejects missing digitalSignature" "must have 'digitalSignature'" 1 "$work/no_ds.pem" --bundle "$CA_PEM"

mkcert no_ku ca "$(uri spiffe://$TD/noku)" "$LEAF_BC"
expect_verify "rejects a leaf without keyUsage" "must have 'digitalSignature'" 1 "$work/no_ku.pem" --bundle "$CA_PEM"

mkcert https_uri ca "$(uri https://$TD/x)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a non-spiffe URI" "not a valid SPIFFE ID" 1 "$work/https_uri.pem" --bundle "$CA_PEM"

mkcert upper_td ca "$(uri spiffe://Nucleus.local/x)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects an uppercase trust domain" "uppercase" 1 "$work/upper_td.pem" --bundle "$CA_PEM"

mkcert pct_path ca "$(uri spiffe://$TD/a%2Fb)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a percent-encoded path" "percent-encoding" 1 "$work/pct_path.pem" --bundle "$CA_PEM"

mkcert port_td ca "$(uri spiffe://$TD:443/x)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a port in the trust domain" "ports are not allowed" 1 "$work/port_td.pem" --bundle "$CA_PEM"

mkcert root_id ca "$(uri spiffe://$TD)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a leaf with the trust domain's own ID" "non-root path" 1 "$work/root_id.pem" --bundle "$CA_PEM"

mkcert lookalike ca "$(uri spiffe://$TD.evil/x)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a suffix-extended trust domain" "not in the expected trust domain 'nucleus.local'" 1 \
    "$work/lookalike.pem" --bundle "$CA_PEM"
expect_verify "rejects it with --trust-domain too" "not in the expected trust domain" 1 \
    "$work/lookalike.pem" --bundle "$CA_PEM" --trust-domain $TD

mkcert selfsigned self "$(uri spiffe://$TD/self)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a chain that does not reach the bundle" "unknown authority" 1 \
    "$work/selfsigned.pem" --bundle "$CA_PEM"

mkdated expired 20200101000000Z 20200102000000Z "$(uri spiffe://$TD/old)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects an expired certificate" "expired" 1 "$work/expired.pem" --bundle "$CA_PEM"

mkdated future 20990101000000Z 20990102000000Z "$(uri spiffe://$TD/new)" "$LEAF_BC" "$LEAF_KU"
expect_verify "rejects a not-yet-valid certificate" "not yet valid" 1 "$work/future.pem" --bundle "$CA_PEM"

# Intermediates need a root that allows a path below it: an openssl root
# of trust domain other.test.
mkcert oroot self "$(uri spiffe://other.test)" "basicConstraints=critical,CA:TRUE,pathlen:1" \
    "keyUsage=critical,keyCertSign,cRLSign"
mkcert inter oroot "$(uri spiffe://other.test)" "basicConstraints=critical,CA:TRUE,pathlen:0" \
    "keyUsage=critical,keyCertSign,cRLSign"
mkcert via_inter inter "$(uri spiffe://other.test/w)" "$LEAF_BC" "$LEAF_KU"
cat "$work/via_inter.pem" "$work/inter.pem" > "$work/via_inter_chain.pem"
expect_verify "accepts a chain through a valid intermediate" "ok: spiffe://other.test/w" 0 \
    "$work/via_inter_chain.pem" --bundle "$work/oroot.pem"
expect_verify "rejects it when the intermediate is missing" "unknown authority" 1 \
    "$work/via_inter.pem" --bundle "$work/oroot.pem"

mkcert inter_noca oroot "$(uri spiffe://other.test)" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,keyCertSign,cRLSign"
mkcert via_noca inter_noca "$(uri spiffe://other.test/w)" "$LEAF_BC" "$LEAF_KU"
cat "$work/via_noca.pem" "$work/inter_noca.pem" > "$work/via_noca_chain.pem"
expect_verify "rejects an intermediate that is not a CA" "signing certificate 1 must have the CA flag set" 1 \
    "$work/via_noca_chain.pem" --bundle "$work/oroot.pem"

mkcert inter_nokcs oroot "$(uri spiffe://other.test)" "basicConstraints=critical,CA:TRUE" \
    "keyUsage=critical,cRLSign"
mkcert via_nokcs inter_nokcs "$(uri spiffe://other.test/w)" "$LEAF_BC" "$LEAF_KU"
cat "$work/via_nokcs.pem" "$work/inter_nokcs.pem" > "$work/via_nokcs_chain.pem"
expect_verify "rejects an intermediate without keyCertSign" "must have 'keyCertSign'" 1 \
    "$work/via_nokcs_chain.pem" --bundle "$work/oroot.pem"

# Our root has pathLen 0, so it must not accept an intermediate below it.
mkcert our_inter ca "$(uri spiffe://$TD)" "basicConstraints=critical,CA:TRUE" \
    "keyUsage=critical,keyCertSign"
mkcert via_our_inter our_inter "$(uri spiffe://$TD/w)" "$LEAF_BC" "$LEAF_KU"
cat "$work/via_our_inter.pem" "$work/our_inter.pem" > "$work/via_our_inter_chain.pem"
expect_verify "enforces the root's path length" "invalid:" 1 \
    "$work/via_our_inter_chain.pem" --bundle "$CA_PEM"

expect_verify "usage error without --bundle" "--bundle" 2 "$work/good.pem"

# ---- 3. mTLS interop -------------------------------------------------------

# start_ours ROLE-ARGS...: run our server in the background; sets our_port.
start_ours() {
    local log=$1
    shift
    "$NU" svid mtls-test server --port 0 "$@" > "$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        our_port=$(sed -n 's/^listening on //p' "$log")
        [ -n "$our_port" ] && return 0
        sleep 0.1
    done
    echo "our server did not start: $(cat "$log")"
    return 1
}

# start_openssl LOG ARGS...: run openssl s_server for one connection; sets
# ossl_port.  Its standard input is a FIFO that this script keeps open,
# because s_server shuts down at end of input.
mkfifo "$work/s_server.stdin"
exec 3<>"$work/s_server.stdin"
start_openssl() {
    local log=$1
    shift
    for _ in 1 2 3 4 5; do
        ossl_port=$((20000 + RANDOM % 30000))
        openssl s_server -accept 127.0.0.1:$ossl_port -naccept 1 -tls1_2 "$@" \
            > "$log" 2>&1 < "$work/s_server.stdin" &
        pids+=($!)
        for _ in $(seq 50); do
            grep -q ACCEPT "$log" && return 0
            sleep 0.1
        done
    done
    echo "openssl s_server did not start: $(cat "$log")"
    return 1
}

wait_for() {
    local log=$1 pattern=$2
    for _ in $(seq 50); do
        grep -q "$pattern" "$log" && return 0
        sleep 0.1
    done
    return 1
}

# openssl s_client -> our server
start_ours "$work/ours1.log" --svid "$work/server" --count 1
out=$(timeout 10 openssl s_client -connect 127.0.0.1:$our_port -tls1_2 -ign_eof \
      -cert "$work/client/svid.pem" -key "$work/client/svid.key" \
      -CAfile "$work/client/bundle.pem" -verify_return_error < /dev/null 2>&1)
if [[ "$out" == *"hello spiffe://$TD/ns/default/pod/client"* ]] &&
   wait_for "$work/ours1.log" "peer: spiffe://$TD/ns/default/pod/client"; then
    ok "openssl s_client completes mTLS with our server"
else
    not_ok "openssl s_client completes mTLS with our server" "$(tail -3 "$work/ours1.log") / $(echo "$out" | tail -3)"
fi

# our client -> openssl s_server
start_openssl "$work/ossl1.log" -cert "$work/server/svid.pem" -key "$work/server/svid.key" \
    -CAfile "$work/server/bundle.pem" -Verify 1 -verify_return_error
out=$(timeout 10 "$NU" svid mtls-test client --svid "$work/client" --port $ossl_port 2>&1)
if [[ "$out" == *"peer: spiffe://$TD/ns/default/pod/server"* ]]; then
    ok "our client completes mTLS with openssl s_server"
else
    not_ok "our client completes mTLS with openssl s_server" "$out / $(tail -3 "$work/ossl1.log")"
fi

# our client expecting another trust domain
start_openssl "$work/ossl2.log" -cert "$work/server/svid.pem" -key "$work/server/svid.key" \
    -CAfile "$work/server/bundle.pem" -Verify 1
out=$(timeout 10 "$NU" svid mtls-test client --svid "$work/client" --port $ossl_port \
      --trust-domain other.test 2>&1)
if [[ "$out" == *"rejected: mtls: peer certificate rejected: peer SPIFFE ID 'spiffe://$TD/ns/default/pod/server' is not in the expected trust domain 'other.test'"* ]]; then
    ok "our client rejects a server of the wrong trust domain"
else
    not_ok "our client rejects a server of the wrong trust domain" "$out"
fi

# openssl s_client with a certificate from a foreign CA -> our server
mkcert foreign oroot "$(uri spiffe://other.test/c)" "$LEAF_BC" "$LEAF_KU" "$LEAF_EKU"
start_ours "$work/ours2.log" --svid "$work/server" --count 1
timeout 10 openssl s_client -connect 127.0.0.1:$our_port -tls1_2 \
    -cert "$work/foreign.pem" -key "$work/foreign.key" \
    -CAfile "$work/client/bundle.pem" < /dev/null > "$work/sclient2.log" 2>&1
if wait_for "$work/ours2.log" "rejected: mtls: peer certificate rejected: certificate signed by unknown authority"; then
    ok "our server rejects a client from a foreign CA"
else
    not_ok "our server rejects a client from a foreign CA" "$(cat "$work/ours2.log")"
fi

# openssl s_client with an expired SVID -> our server
mkdated expired_client 20200101000000Z 20200102000000Z "$(uri spiffe://$TD/old)" \
    "$LEAF_BC" "$LEAF_KU" "$LEAF_EKU"
start_ours "$work/ours3.log" --svid "$work/server" --count 1
timeout 10 openssl s_client -connect 127.0.0.1:$our_port -tls1_2 \
    -cert "$work/expired_client.pem" -key "$work/expired_client.key" \
    -CAfile "$work/client/bundle.pem" < /dev/null > "$work/sclient3.log" 2>&1
if wait_for "$work/ours3.log" "rejected: mtls: peer certificate rejected: certificate has expired"; then
    ok "our server rejects an expired client SVID"
else
    not_ok "our server rejects an expired client SVID" "$(cat "$work/ours3.log")"
fi

# our client -> openssl s_server with an expired SVID
mkdated expired_server 20200101000000Z 20200102000000Z "$(uri spiffe://$TD/oldsrv)" \
    "$LEAF_BC" "$LEAF_KU" "$LEAF_EKU"
start_openssl "$work/ossl3.log" -cert "$work/expired_server.pem" -key "$work/expired_server.key" \
    -CAfile "$work/server/bundle.pem" -Verify 1
out=$(timeout 10 "$NU" svid mtls-test client --svid "$work/client" --port $ossl_port 2>&1)
if [[ "$out" == *"rejected: mtls: peer certificate rejected: certificate has expired"* ]]; then
    ok "our client rejects an expired server SVID"
else
    not_ok "our client rejects an expired server SVID" "$out"
fi

# openssl s_client without a client certificate -> our server
start_ours "$work/ours4.log" --svid "$work/server" --count 1
timeout 10 openssl s_client -connect 127.0.0.1:$our_port -tls1_2 \
    -CAfile "$work/client/bundle.pem" < /dev/null > "$work/sclient4.log" 2>&1
if wait_for "$work/ours4.log" "rejected: mtls:"; then
    ok "our server rejects a client without a certificate"
else
    not_ok "our server rejects a client without a certificate" "$(cat "$work/ours4.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
