#!/bin/sh
# The namespace sandbox for a caller without root: a user the test creates
# (useradd) runs nucleus exec through setpriv.  Pods then rely on an
# unprivileged user namespace and on rlimits instead of cgroups.  Output
# is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: creating the unprivileged test user needs root"
    exit 77
fi
for tool in useradd setpriv gcc; do
    if ! command -v "$tool" >/dev/null; then
        echo "skip: $tool is needed"
        exit 77
    fi
done

user=nucleus-sbtest
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user" ||
        { echo "Bail out! cannot create user $user"; exit 1; }
fi
uid=$(id -u "$user")
gid=$(id -g "$user")

# The binary must be reachable by the user.
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups test -x "$NU_BIN"; then
    echo "skip: $NU_BIN is not executable by $user"
    exit 77
fi
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups \
        unshare --user true 2>/dev/null; then
    echo "skip: unprivileged user namespaces are disabled on this host"
    exit 77
fi

work=$(mktemp -d /tmp/nu-unpriv-XXXXXX)
trap 'rm -rf "$work"' EXIT
ws=$work/ws
mkdir -p "$ws"
echo "API_KEY=hunter2" > "$ws/.env"
gcc -O1 -o "$ws/probe" "${NU_SOURCE_DIR:-.}/tests/integration/sandbox_probe.c" ||
    { echo "Bail out! cannot build the probe"; exit 1; }
chown -R "$uid:$gid" "$ws"
# The user's own state directory: nucleus exec records its calls there.
mkdir -p "$work/state"
chown "$uid:$gid" "$work/state"
chmod 711 "$work"

n=0
failed=0

as_user() {
    setpriv --reuid="$uid" --regid="$gid" --clear-groups \
        env -i PATH=/usr/bin:/bin HOME=/nonexistent NUCLEUS_HOME="$work/state" "$@"
}

run_case() {
    name=$1
    expected=$2
    shift 2
    opts=
    while [ "$1" != "--" ]; do
        opts="$opts $1"
        shift
    done
    shift
    n=$((n + 1))
    # shellcheck disable=SC2086
    out=$(as_user "$NU_BIN" exec --profile local_dev --workspace "$ws" \
          $opts -- /workspace/probe "$@" 2>"$work/stderr")
    status=$?
    got=$(printf '%s\n' "$out" | sed -n 's/^RESULT //p' | tail -n 1)
    case "$got" in
    $expected)
        echo "ok $n - $name ($got)" ;;
    *)
        echo "not ok $n - $name: expected '$expected', got '$got' (exit $status)"
        sed 's/^/# /' "$work/stderr"
        failed=$((failed + 1)) ;;
    esac
}

n=$((n + 1))
out=$(as_user "$NU_BIN" exec --profile local_dev --workspace "$ws" -- \
      /usr/bin/id -u 2>"$work/stderr")
if [ "$out" = "$uid" ]; then
    echo "ok $n - runs_as_caller_uid"
else
    echo "not ok $n - runs_as_caller_uid: got '$out'"
    sed 's/^/# /' "$work/stderr"
    failed=$((failed + 1))
fi

run_case workspace_writable ok -- create /workspace/made
n=$((n + 1))
if [ "$(stat -c %u "$ws/made" 2>/dev/null)" = "$uid" ]; then
    echo "ok $n - workspace_file_owned_by_caller"
else
    echo "not ok $n - workspace_file_owned_by_caller"
    failed=$((failed + 1))
fi

run_case read_etc_shadow ENOENT -- open /etc/shadow
run_case write_usr_bin EROFS -- create /usr/bin/evil
run_case blocked_env_file_empty empty -- cat /workspace/.env
run_case unshare_user EPERM -- unshare_user
run_case mount_tmpfs EPERM -- mount_tmpfs
run_case ptrace_init EPERM -- ptrace_init
# The init is not dumpable, so hidepid=invisible hides it entirely.
run_case proc_1_hidden ENOENT -- open /proc/1/root/etc/passwd
run_case capabilities_empty 0000000000000000 -- capeff
run_case int80_i386_syscall_killed SYS -- int80
run_case egress_unreachable ENETUNREACH -- egress
run_case no_host_fd_leak clean -- fds
run_case fork_bomb_bounded_by_nproc "EAGAIN [0-9]*" --pids 64 -- fork_bomb
# Sanitizer builds of the init skip RLIMIT_DATA, the only memory bound
# without cgroups.
if ldd "$NU_BIN" 2>/dev/null | grep -q libasan; then
    n=$((n + 1))
    echo "ok $n - memory_bomb_bounded_by_rlimit # SKIP sanitizer build has no RLIMIT_DATA"
else
    run_case memory_bomb_bounded_by_rlimit "bounded ENOMEM" --memory 256M -- memory_bomb
fi
run_case tmp_fill_bounded "ENOSPC 25[0-9]" -- fill /tmp/fill

n=$((n + 1))
as_user "$NU_BIN" exec --profile local_dev --workspace "$ws" --timeout 1 -- \
    /workspace/probe spin >/dev/null 2>&1
status=$?
if [ "$status" -eq 124 ]; then
    echo "ok $n - cpu_runaway_timeout"
else
    echo "not ok $n - cpu_runaway_timeout: exit $status"
    failed=$((failed + 1))
fi

n=$((n + 1))
if as_user "$NU_BIN" doctor >"$work/doctor" 2>&1 &&
   grep -q "ns pod  *ok" "$work/doctor"; then
    echo "ok $n - doctor_reports_pod_ok"
else
    echo "not ok $n - doctor_reports_pod_ok"
    sed 's/^/# /' "$work/doctor"
    failed=$((failed + 1))
fi

echo "1..$n"
[ "$failed" -eq 0 ]
