#!/bin/sh
# Replay every recorded agent transcript with the codegen, read_only and
# default profiles (dry run): the counts must match the recorded ones, and
# every denied or gated step must carry a kind and a reason.
set -eu

: "${NU_BIN:?NU_BIN is not set}"
cases="${NU_SHARED_DIR:-../shared}/cases/trajectories"

failures=0
passed=0
check() {
    profile=$1 name=$2 expected=$3
    out=$("$NU_BIN" replay "$cases/$name.jsonl" --profile "$profile")

    got=$(printf '%s\n' "$out" | tail -n 1 |
          python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print("%d/%d/%d/%d" % (s["steps"], s["allow"], s["approval_required"], s["deny"]))')
    if [ "$got" != "$expected" ]; then
        echo "not ok - $profile $name: steps/allow/gated/deny $got, expected $expected"
        failures=$((failures + 1))
        return
    fi

    # Every deny or approval_required step names its kind and reason.
    bad=$(printf '%s\n' "$out" | python3 -c '
import json, sys
bad = 0
for line in sys.stdin:
    o = json.loads(line)
    if o.get("decision") in ("deny", "approval_required"):
        if not o.get("kind") or not o.get("reason"):
            bad += 1
print(bad)')
    if [ "$bad" != 0 ]; then
        echo "not ok - $profile $name: $bad decisions without kind or reason"
        failures=$((failures + 1))
        return
    fi
    echo "ok - $profile $name $got"
    passed=$((passed + 1))
}

# steps/allow/approval_required/deny, recorded with the built-in profiles.
recorded() {
check codegen mini-swe-agent__gemini-3-pro__pallets__flask-5014 20/20/0/0
check codegen mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5631 29/28/1/0
check codegen mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5809 23/22/0/1
check codegen openhands__claude-3-5-sonnet__vue-todo-app 4/4/0/0
check codegen swe-agent__gpt-4o__test-repo-missing-colon 5/5/0/0
check codegen swe-agent__gpt4__pydicom__pydicom-1458 12/12/0/0
check read_only mini-swe-agent__gemini-3-pro__pallets__flask-5014 20/0/0/20
check read_only mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5631 29/0/0/29
check read_only mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5809 23/0/0/23
check read_only openhands__claude-3-5-sonnet__vue-todo-app 4/0/0/4
check read_only swe-agent__gpt-4o__test-repo-missing-colon 5/1/0/4
check read_only swe-agent__gpt4__pydicom__pydicom-1458 12/1/0/11
check default mini-swe-agent__gemini-3-pro__pallets__flask-5014 20/20/0/0
check default mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5631 29/28/1/0
check default mini-swe-agent__gemini-3-pro__pytest-dev__pytest-5809 23/22/0/1
check default openhands__claude-3-5-sonnet__vue-todo-app 4/4/0/0
check default swe-agent__gpt-4o__test-repo-missing-colon 5/5/0/0
check default swe-agent__gpt4__pydicom__pydicom-1458 12/12/0/0
}
if [ -d "$cases" ]; then
    recorded
else
    echo "# skip the recorded transcripts: $cases is absent (the shared test data is not checked out)"
fi

# A transcript that prints a credential-looking value is echoed escaped:
# control and bidirectional characters never reach the terminal raw.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '{"tool":"run","command":"echo \u001b[2J\u202eevil"}' > "$tmp/t.jsonl"
if "$NU_BIN" replay "$tmp/t.jsonl" --profile codegen | grep -q "$(printf '\033')"; then
    echo "not ok - replay output contains a raw escape character"
    failures=$((failures + 1))
else
    echo "ok - replay output escapes control characters"
    passed=$((passed + 1))
fi

# Redirection targets under the transcript's cwd land in the workspace.
# They used to be judged as recorded, so "> /testbed/out.txt" was denied
# as outside the workspace.
mkdir -p "$tmp/ws/sub"
cat > "$tmp/redirects.jsonl" <<'EOF'
{"cwd": "/testbed"}
{"step": 1, "tool": "run", "command": "echo one > /testbed/out.txt"}
{"step": 2, "tool": "run", "command": "ls /nonexistent 2> /testbed/err.txt"}
{"step": 3, "tool": "run", "command": "echo three >>\"/testbed/sub/q.txt\""}
{"step": 4, "tool": "run", "command": "echo four > relative.txt", "cwd": "/testbed/sub"}
{"step": 5, "tool": "run", "command": "echo '> /testbed/x' > /testbed/y.txt"}
{"step": 6, "tool": "run", "command": "echo six > /testbed/$NAME"}
{"step": 7, "tool": "run", "command": "echo seven > /testbed/../etc/evil"}
EOF
out=$("$NU_BIN" replay "$tmp/redirects.jsonl" --profile codegen --workspace "$tmp/ws" --execute)
# expect_step N DECISION [KIND [REASON_PART]]
expect_step() {
    line=$(printf '%s\n' "$out" | grep "\"step\":$1,")
    if printf '%s' "$line" | grep -q "\"decision\":\"$2\"" &&
       { [ -z "${3:-}" ] || printf '%s' "$line" | grep -q "\"kind\":\"$3\""; } &&
       { [ -z "${4:-}" ] || printf '%s' "$line" | grep -qF -- "$4"; }; then
        echo "ok - redirect step $1 $2 ${3:-}"
        passed=$((passed + 1))
    else
        echo "not ok - redirect step $1: $line"
        failures=$((failures + 1))
    fi
}
expect_step 1 allow
expect_step 2 allow
expect_step 3 allow
expect_step 4 allow
expect_step 5 deny invalid_request "in a quoted string or heredoc"
expect_step 6 deny invalid_request "cannot rebase redirect target '/testbed/\$NAME'"
expect_step 7 deny path_denied "/workspace/../etc/evil"
for f in out.txt err.txt sub/q.txt sub/relative.txt; do
    if [ -f "$tmp/ws/$f" ]; then
        echo "ok - redirect wrote $f in the workspace"
        passed=$((passed + 1))
    else
        echo "not ok - redirect did not write $f in the workspace"
        failures=$((failures + 1))
    fi
done

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
