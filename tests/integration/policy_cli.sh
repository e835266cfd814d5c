#!/bin/sh
# nucleus policy: the output formats and exit codes other tools rely on.
# TAP output; exit 1 when any check fails.
set -u

: "${NU_BIN:?NU_BIN must name the nucleus binary}"
: "${NU_SOURCE_DIR:?NU_SOURCE_DIR must name the source tree}"
case $NU_BIN in
/*) ;;
*) NU_BIN=$(pwd)/$NU_BIN ;;    # one check runs from another directory
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}

not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    [ $# -gt 1 ] && echo "# $2"
}

# expect NAME WANTED_STATUS COMMAND...: run, keep stdout/stderr, check status
expect() {
    name=$1
    want=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" -eq "$want" ]; then
        ok "$name"
    else
        not_ok "$name" "exit $got, wanted $want; stderr: $(cat "$tmp/err")"
    fi
}

# match NAME FILE PATTERN: grep -E must find PATTERN in FILE
match() {
    if grep -Eq -- "$3" "$2"; then
        ok "$1"
    else
        not_ok "$1" "'$3' not in: $(cat "$2")"
    fi
}

# check
expect "check accepts a built-in profile file" 0 \
    "$NU_BIN" policy check "$NU_SOURCE_DIR/policies/codegen.lua"
[ -s "$tmp/out" ] && not_ok "check prints nothing on success" || ok "check prints nothing on success"

printf -- '-- bad\nlocal x = 1\nreturn nucleus.profile {\n  wings = 2,\n}\n' >"$tmp/bad.lua"
expect "check rejects an unknown key" 1 "$NU_BIN" policy check "$tmp/bad.lua"
match "check names file and line" "$tmp/err" "^$tmp/bad.lua:3: unknown key 'wings'"

printf 'return nucleus.profile {\n' >"$tmp/syntax.lua"
expect "check rejects a syntax error" 1 "$NU_BIN" policy check "$tmp/syntax.lua"
match "syntax error names file and line" "$tmp/err" "^$tmp/syntax.lua:[0-9]+: "

expect "check rejects a missing file" 1 "$NU_BIN" policy check "$tmp/none.lua"
match "missing file is named" "$tmp/err" "$tmp/none.lua"

# show, from any directory
(cd / && "$NU_BIN" policy show codegen) >"$tmp/codegen.json" 2>"$tmp/err"
match "show prints canonical JSON" "$tmp/codegen.json" '^\{"budget":\{'
expect "show accepts its own output" 0 "$NU_BIN" policy show "$tmp/codegen.json"
if cmp -s "$tmp/out" "$tmp/codegen.json"; then
    ok "show of the JSON is identical"
else
    not_ok "show of the JSON is identical"
fi

# meet, join, leq
expect "meet" 0 "$NU_BIN" policy meet codegen read_only
cp "$tmp/out" "$tmp/meet.json"
match "meet prints JSON" "$tmp/meet.json" '^\{"budget":'
expect "leq of the meet" 0 "$NU_BIN" policy leq "$tmp/meet.json" codegen
match "meet is below its operand" "$tmp/out" '^true$'
expect "join" 0 "$NU_BIN" policy join codegen read_only
cp "$tmp/out" "$tmp/join.json"
expect "leq of the join" 0 "$NU_BIN" policy leq "$tmp/join.json" codegen
match "join is not below a smaller operand" "$tmp/out" '^(true|false)$'
expect "leq of codegen and the join" 0 "$NU_BIN" policy leq codegen "$tmp/join.json"
match "operand is below the join" "$tmp/out" '^true$'

# eval
expect "eval allow" 0 "$NU_BIN" policy eval codegen --call '{"tool":"read","path":"src/a.c"}'
match "eval allow is exact" "$tmp/out" '^\{"decision":"allow","operation":"read_files"\}$'
expect "eval deny" 0 "$NU_BIN" policy eval codegen --call '{"tool":"read","path":".ssh/id_rsa"}'
match "eval deny has kind and reason" "$tmp/out" '"decision":"deny","kind":"path_denied","operation":"read_files","reason":'
expect "eval approval" 0 "$NU_BIN" policy eval codegen \
    --call '{"tool":"run","argv":["git","commit","-m","x"]}'
match "eval approval has a key" "$tmp/out" '"approval_key":"git_commit:[0-9a-f]{64}"'
expect "eval with exposure and egress" 0 "$NU_BIN" policy eval codegen \
    --call '{"tool":"read","path":"a"}' --exposure private,untrusted,exfil --egress
expect "eval rejects a bad exposure" 2 "$NU_BIN" policy eval codegen \
    --call '{"tool":"read","path":"a"}' --exposure secret
expect "eval needs --call" 2 "$NU_BIN" policy eval codegen
expect "eval rejects bad JSON" 2 "$NU_BIN" policy eval codegen --call '{'

cat >"$tmp/hook.lua" <<'EOF'
return nucleus.profile {
  capabilities = { read_files = "always" },
  paths = { allow = nucleus.ALL },
  check = function(call)
    if call.path == "loop" then while true do end end
    if call.path == "io" then io.open("/etc/passwd") end
  end,
}
EOF
for path in loop io; do
    expect "eval of a hook attack ($path) exits 0" 0 "$NU_BIN" policy eval \
        "$tmp/hook.lua" --call "{\"tool\":\"read\",\"path\":\"$path\"}"
    match "hook attack ($path) fails closed" "$tmp/out" \
        "\"decision\":\"deny\",\"kind\":\"policy_error\".*hook.lua:[0-9]+"
done

# test
mkdir "$tmp/suite"
cat >"$tmp/suite/pass_test.lua" <<'EOF'
local t = nucleus.test
return {
  test_read = function()
    t.expect_eq(t.eval("codegen", { tool = "read", path = "a.c" }).decision, "allow")
  end,
  test_block = function()
    t.expect_eq(t.eval("codegen", { tool = "read", path = ".env" }).kind, "path_denied")
  end,
}
EOF
expect "test passes a passing suite" 0 "$NU_BIN" policy test "$tmp/suite"
match "test counts" "$tmp/out" '^2 passed, 0 failed$'
cat >"$tmp/suite/fail_test.lua" <<'EOF'
return {
  test_wrong = function()
    nucleus.test.expect_eq(nucleus.test.eval("codegen", { tool = "read", path = ".env" }).decision, "allow")
  end,
}
EOF
expect "test fails a failing suite" 1 "$NU_BIN" policy test "$tmp/suite"
match "test counts failures" "$tmp/out" '^2 passed, 1 failed$'
match "test names the failure" "$tmp/out" 'test_wrong.*expected "allow", got "deny"'

# usage
expect "no subcommand is a usage error" 2 "$NU_BIN" policy
expect "unknown subcommand is a usage error" 2 "$NU_BIN" policy frobnicate
expect "meet needs two profiles" 2 "$NU_BIN" policy meet codegen
expect "help exits 0" 0 "$NU_BIN" policy --help

echo "1..$n"
[ "$failed" -eq 0 ]
