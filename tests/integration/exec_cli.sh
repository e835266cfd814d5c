#!/bin/sh
# nucleus exec: option ranges, the output cap note and --approve.  TAP output; exit 1
# when any check fails, 77 when this host cannot start a pod.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi

tmp=$(mktemp -d /tmp/nu-exec-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/ws"
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

nu_exec() {
    "$NU_BIN" exec --no-audit --workspace "$tmp/ws" "$@" >"$tmp/out" \
        2>"$tmp/err"
}

if ! nu_exec -- true; then
    echo "skip: this host cannot start an ns pod: $(cat "$tmp/err")"
    exit 77
fi

# reject NAME OPTION VALUE RANGE: the option must fail with status 125 and
# a message naming the value and the range.
reject() {
    nu_exec "$2" "$3" -- true
    got=$?
    if [ "$got" -ne 125 ]; then
        not_ok "$1" "exit $got, wanted 125"
    elif ! grep -qF "invalid $2 '$3'" "$tmp/err" ||
         ! grep -qF "$4" "$tmp/err"; then
        not_ok "$1" "stderr: $(cat "$tmp/err")"
    else
        ok "$1"
    fi
}

# Each of these once wrapped around to a small value and was accepted.
reject memory_overflow_rejected --memory 99999999999999999999G "16M to 16T"
reject memory_wraparound_rejected --memory 17179869185G "16M to 16T"
reject memory_above_range_rejected --memory 17T "16M to 16T"
reject memory_below_range_rejected --memory 1M "16M to 16T"
reject memory_double_suffix_rejected --memory 1GG "16M to 16T"
reject file_size_overflow_rejected --file-size 18446744073709551617 \
    "1 to 16T"
reject pids_overflow_rejected --pids 99999999999999999999 "1 to 1000000"
reject pids_zero_rejected --pids 0 "1 to 1000000"
reject timeout_suffix_rejected --timeout 1K "1 to 86400"
reject timeout_overflow_rejected --timeout 18446744073709551617 "1 to 86400"

if nu_exec --memory 64m --pids 64 --file-size 1G --timeout 30 -- true; then
    ok limits_in_range_accepted
else
    not_ok limits_in_range_accepted "stderr: $(cat "$tmp/err")"
fi

# Two MB on stdout: the first MiB arrives, and a note on stderr reports
# that the rest was dropped.
nu_exec -- head -c 2000000 /dev/zero
got=$?
bytes=$(wc -c <"$tmp/out")
if [ "$got" -eq 0 ] && [ "$bytes" -eq 1048576 ]; then
    ok output_capped_at_one_mib
else
    not_ok output_capped_at_one_mib "exit $got, $bytes bytes on stdout"
fi
if grep -q "stdout truncated" "$tmp/err"; then
    ok output_truncation_noted
else
    not_ok output_truncation_noted "stderr: $(cat "$tmp/err")"
fi

nu_exec -- head -c 1000 /dev/zero
if [ "$(wc -c <"$tmp/out")" -eq 1000 ] && ! grep -q truncated "$tmp/err"; then
    ok short_output_not_noted
else
    not_ok short_output_not_noted "stderr: $(cat "$tmp/err")"
fi

# Without --approve, a call that needs approval is denied with 126 and the
# message names the key and the option.  With it, the call runs, and a
# line on stderr names the approved operation.  run_bash is an obligation
# of the permissive profile.
nu_exec --profile permissive -- sh -c 'echo approved-run'
got=$?
if [ "$got" -eq 126 ] && grep -q "approval key run_bash:" "$tmp/err" &&
   grep -q "pass --approve" "$tmp/err" && ! grep -q approved-run "$tmp/out"
then
    ok approval_denied_without_approve
else
    not_ok approval_denied_without_approve "exit $got, stderr: $(cat "$tmp/err")"
fi
nu_exec --approve --profile permissive -- sh -c 'echo approved-run'
got=$?
if [ "$got" -eq 0 ] && grep -qx approved-run "$tmp/out" &&
   grep -q "approve GRANTED an approval for operation 'run_bash'" "$tmp/err"
then
    ok approve_grants_and_says_so
else
    not_ok approve_grants_and_says_so "exit $got, stderr: $(cat "$tmp/err")"
fi

# --approve grants approvals only: a denied command stays denied.
nu_exec --approve --profile codegen -- sudo true
got=$?
if [ "$got" -eq 126 ] && grep -q "denied (command_denied)" "$tmp/err"; then
    ok approve_keeps_denials
else
    not_ok approve_keeps_denials "exit $got, stderr: $(cat "$tmp/err")"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
