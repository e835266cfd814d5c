#!/bin/sh
# Drive the REPL through a pseudo-terminal (tmux): tab completion of pod
# methods, history across sessions, the approval prompt, and escaping of
# credential values and control characters in what it prints.
set -eu

: "${NU_BIN:?NU_BIN is not set}"
if ! command -v tmux >/dev/null 2>&1; then
    echo "skip: tmux is not installed"
    exit 77
fi

tmp=$(mktemp -d /tmp/nu-repl-test.XXXXXX)
sock="$tmp/tmux.sock"
export NUCLEUS_HOME="$tmp/home"
mkdir -p "$tmp/ws" "$NUCLEUS_HOME"
echo "hello from the workspace" > "$tmp/ws/hello.txt"
bin=$(cd "$(dirname "$NU_BIN")" && pwd)/$(basename "$NU_BIN")

cleanup() {
    tmux -S "$sock" kill-server 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

failures=0 passed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failures=$((failures + 1)); }

start() {
    tmux -S "$sock" new-session -d -x 200 -y 60 "NUCLEUS_HOME=$NUCLEUS_HOME $bin repl; sleep 60"
    wait_for 'nucleus>'
}
type_line() {
    tmux -S "$sock" send-keys -l "$1"
    tmux -S "$sock" send-keys Enter
}
screen() { tmux -S "$sock" capture-pane -p -S -200; }
# Wait up to 10 s for a pattern on the screen.
wait_for() {
    i=0
    while [ $i -lt 100 ]; do
        if screen | grep -qF -- "$1"; then return 0; fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

start
type_line "pod = nucleus.pod{profile='codegen', workspace='$tmp/ws', credentials={env={SECRET_TOKEN='tok-5ecr3t-v4lue'}}}"
type_line "print(pod.id ~= nil)"
if wait_for "true"; then ok "pod created in the REPL"; else not_ok "pod created in the REPL"; fi

# Completion: "pod:rea<TAB>" becomes "pod:read".
tmux -S "$sock" send-keys -l "pod:rea"
tmux -S "$sock" send-keys Tab
tmux -S "$sock" send-keys -l "('hello.txt').content"
tmux -S "$sock" send-keys Enter
if wait_for "hello from the workspace"; then ok "tab completes pod methods"; else not_ok "tab completes pod methods"; fi

# Credential values are redacted in printed results.
type_line "pod:run('echo \$SECRET_TOKEN').stdout"
if wait_for "[REDACTED:SECRET_TOKEN]" && ! screen | grep -q "tok-5ecr3t-v4lue.*\\\\n"; then
    ok "credential value redacted"
else
    not_ok "credential value redacted"
fi

# Control characters are escaped, not sent to the terminal.
type_line "pod:run([[printf '\\033[7mINVERSE']]).stdout"
if wait_for '\e[7mINVERSE'; then ok "escape sequences shown escaped"; else not_ok "escape sequences shown escaped"; fi

# The approval prompt: deny, then approve.
type_line "pod:run('python3 -c \"print(6*7)\"')"
if wait_for "approve? [y/N]"; then ok "approval prompt shown"; else not_ok "approval prompt shown"; fi
type_line "n"
if wait_for "approval_denied"; then ok "answer n denies"; else not_ok "answer n denies"; fi
type_line "pod:run('python3 -c \"print(6*7)\"')"
sleep 0.5
type_line "y"
if wait_for "approved_by"; then ok "answer y runs the call"; else not_ok "answer y runs the call"; fi

type_line ":explain"
if wait_for "decision:"; then ok ":explain prints the last decision"; else not_ok ":explain prints the last decision"; fi
# Ctrl-C used to end the REPL.  Now it discards the line being typed,
# continuation lines included, and stops a running evaluation.
# The pauses let the REPL read each part before the next arrives: the
# terminal flushes unread input on Ctrl-C.
tmux -S "$sock" send-keys -l "pod:read("
sleep 0.3
tmux -S "$sock" send-keys C-c
sleep 0.3
type_line "print('after' .. '-ctrl-c')"
if wait_for "after-ctrl-c"; then ok "ctrl-c discards the typed line"; else not_ok "ctrl-c discards the typed line"; fi
type_line "for i = 1, 2 do"
sleep 0.3
tmux -S "$sock" send-keys C-c
sleep 0.3
type_line "print('fresh' .. '-statement')"
if wait_for "fresh-statement"; then ok "ctrl-c discards continuation lines"; else not_ok "ctrl-c discards continuation lines"; fi
type_line "while true do end"
sleep 0.3
tmux -S "$sock" send-keys C-c
sleep 0.3
type_line "print('loop' .. '-stopped')"
if wait_for "interrupted (Ctrl-C)" && wait_for "loop-stopped"; then
    ok "ctrl-c stops a running evaluation"
else
    not_ok "ctrl-c stops a running evaluation"
fi
type_line "pod:run('sleep 1')"
sleep 0.3
tmux -S "$sock" send-keys C-c
sleep 0.3
type_line "print(pod:read('hello.txt').content)"
if wait_for "in method 'run'" && [ "$(screen | grep -c 'hello from the workspace')" -ge 2 ]; then
    ok "ctrl-c during a pod call keeps the pod"
else
    not_ok "ctrl-c during a pod call keeps the pod"
fi

type_line ":quit"
sleep 0.5
tmux -S "$sock" kill-server 2>/dev/null || true

# Ctrl-D on an empty line leaves the REPL.  A second tmux server: the
# first may still be exiting.
sock="$tmp/tmux-eof.sock"
tmux -S "$sock" new-session -d -x 200 -y 60 "NUCLEUS_HOME=$NUCLEUS_HOME $bin repl; echo repl-exited-\$?; sleep 60"
wait_for 'nucleus>'
tmux -S "$sock" send-keys C-d
if wait_for "repl-exited-0"; then ok "ctrl-d leaves the REPL"; else not_ok "ctrl-d leaves the REPL"; fi
tmux -S "$sock" kill-server 2>/dev/null || true

# History survives the session.
if [ -f "$NUCLEUS_HOME/repl_history" ] && grep -q "pod:run" "$NUCLEUS_HOME/repl_history"; then
    ok "history written to the state directory"
else
    not_ok "history written to the state directory"
fi
if grep -q "tok-5ecr3t-v4lue" "$NUCLEUS_HOME/repl_history"; then
    not_ok "credential values kept out of the history"
else
    ok "credential values kept out of the history"
fi

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
