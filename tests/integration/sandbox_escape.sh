#!/bin/sh
# Escape corpus for the namespace sandbox: every case is one attempt made
# from inside a pod by a small C probe, with the exact failure it must
# meet (errno name, or the signal that killed the probe).  Runs as root
# (cgroup limits included); tests/integration/sandbox_unprivileged.sh
# covers the non-root path.  Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: the escape corpus needs root for cgroup limits (run as root)"
    exit 77
fi
if ! command -v gcc >/dev/null; then
    echo "skip: gcc is needed to build the probe"
    exit 77
fi

work=$(mktemp -d /tmp/nu-escape-XXXXXX)
host_sleeper=
cleanup() {
    [ -n "$host_sleeper" ] && kill "$host_sleeper" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ws=$work/ws
other=$work/other-pod
mkdir -p "$ws/.git/hooks" "$other"
echo "other pod's secret" > "$other/secret"
echo "API_KEY=hunter2" > "$ws/.env"
echo "#!/bin/sh" > "$ws/.git/hooks/pre-commit"
echo "alias ls=evil" > "$ws/.bashrc"
ln -s /etc/shadow "$ws/shadow-link"
ln -s ../../../../etc/shadow "$ws/dotdot-link"

src=${NU_SOURCE_DIR:-.}/tests/integration/sandbox_probe.c
gcc -O1 -o "$ws/probe" "$src" || { echo "Bail out! cannot build the probe"; exit 1; }
cp "$ws/probe" "$ws/probe-setuid"
chmod 4755 "$ws/probe-setuid"

shadow_sum=$(sha256sum /etc/shadow | cut -d' ' -f1)
sleep 300 &
host_sleeper=$!

n=0
failed=0

# run_case NAME EXPECTED [nucleus exec options] -- PROBE-ARGS
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
    out=$("$NU_BIN" exec --profile local_dev --workspace "$ws" $opts \
          -- /workspace/probe "$@" 2>"$work/stderr")
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

# run_status NAME EXPECTED-EXIT [options] -- PROBE-ARGS: only the exit status.
run_status() {
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
    "$NU_BIN" exec --profile local_dev --workspace "$ws" $opts \
        -- /workspace/probe "$@" >/dev/null 2>"$work/stderr"
    status=$?
    if [ "$status" -eq "$expected" ]; then
        echo "ok $n - $name (exit $status)"
    else
        echo "not ok $n - $name: expected exit $expected, got $status"
        sed 's/^/# /' "$work/stderr"
        failed=$((failed + 1))
    fi
}

# Host files outside the pod's view.
run_case read_etc_shadow ENOENT -- open /etc/shadow
run_case read_host_root_home ENOENT -- opendir /root
run_case read_other_pod_workspace ENOENT -- open "$other/secret"
run_case read_host_home ENOENT -- opendir /home
run_case read_host_var ENOENT -- opendir /var/lib
run_case sys_not_mounted ENOENT -- stat /sys/kernel
run_case dev_mem_absent ENOENT -- open /dev/mem
run_case dev_kmsg_absent ENOENT -- open /dev/kmsg

# Path tricks.
run_case dotdot_from_workspace ENOENT -- open /workspace/../../../../etc/shadow
run_case symlink_to_host_file ENOENT -- open /workspace/shadow-link
run_case relative_symlink_out ENOENT -- open /workspace/dotdot-link
run_case proc_self_root ENOENT -- open /proc/self/root/etc/shadow
run_case proc_1_root EACCES -- open /proc/1/root/etc/passwd
run_case symlink_via_proc_1_root EACCES -- symlink_proc_root
run_case proc_host_pid ENOENT -- stat "/proc/$host_sleeper/cmdline"
run_case hardlink_across_mounts EXDEV -- hardlink /etc/passwd
run_case init_exe_not_writable EACCES -- write /proc/1/exe

# Read-only views.
run_case write_usr_bin EROFS -- create /usr/bin/evil
run_case write_etc_passwd EROFS -- write /etc/passwd
run_case mkdir_in_root EROFS -- mkdir /evil
run_case write_dev_dir EROFS -- create /dev/evil
if [ -e /proc/sysrq-trigger ]; then
    run_case proc_sysrq_trigger EROFS -- write /proc/sysrq-trigger
else
    run_case proc_sysrq_trigger_absent ENOENT -- write /proc/sysrq-trigger
fi
run_case proc_sys_kernel EROFS -- write /proc/sys/kernel/hostname

# Masks from the profile: SENSITIVE is hidden, AUTORUN is read-only.
run_case blocked_env_file_empty empty -- cat /workspace/.env
run_case write_blocked_git_hook EROFS -- write /workspace/.git/hooks/pre-commit
run_case write_blocked_bashrc EROFS -- write /workspace/.bashrc

# Mounts and namespaces (seccomp).
run_case remount_usr_rw EPERM -- remount
run_case mount_tmpfs EPERM -- mount_tmpfs
run_case umount_workspace EPERM -- umount
run_case open_tree EPERM -- open_tree
run_case fsopen EPERM -- fsopen
run_case pivot_root EPERM -- pivot_root
run_case chroot EPERM -- chroot
run_case unshare_user EPERM -- unshare_user
run_case unshare_mount EPERM -- unshare_mount
run_case unshare_net EPERM -- unshare_net
run_case clone_newuser EPERM -- clone_newuser
run_case clone3_enosys ENOSYS -- clone3
run_case setns EPERM -- setns

# Other processes and the kernel.
run_case ptrace_init EPERM -- ptrace_init
run_case ptrace_traceme EPERM -- ptrace_traceme
run_case process_vm_readv EPERM -- process_vm_readv
run_case init_module EPERM -- init_module
run_case finit_module EPERM -- finit_module
run_case delete_module EPERM -- delete_module
run_case kexec_load EPERM -- kexec_load
run_case reboot EPERM -- reboot
run_case bpf EPERM -- bpf
run_case perf_event_open EPERM -- perf_event_open
run_case userfaultfd EPERM -- userfaultfd
run_case keyctl EPERM -- keyctl
run_case add_key EPERM -- add_key
run_case io_uring_setup EPERM -- io_uring_setup
run_case open_by_handle_at EPERM -- open_by_handle_at
run_case personality_read_implies_exec EPERM -- personality_exec
run_case personality_query_allowed ok -- personality_query
run_case iopl EPERM -- iopl
run_case swapon EPERM -- swapon
run_case acct EPERM -- acct
run_case tiocsti EPERM -- tiocsti
run_case tioclinux EPERM -- tioclinux
run_case int80_i386_syscall_killed SYS -- int80
run_case x32_syscall_killed SYS -- x32
run_case sethostname EPERM -- sethostname
run_case setuid_unmapped_user EINVAL -- setuid
run_case mknod_tmp EPERM -- mknod /tmp/null2
run_case mknod_workspace EPERM -- mknod /workspace/null2
run_case chmod_setuid_workspace EPERM -- chmod_suid /workspace/suid1
run_case fchmod_setgid_workspace EPERM -- fchmod_sgid /workspace/sgid1
run_case create_setuid_workspace EPERM -- creat_suid /workspace/suid2
run_case mknod_setuid_workspace EPERM -- mknod_suid /workspace/suid3
run_case setuid_binary_gains_nothing 0000000000000000 -- exec /workspace/probe-setuid capeff

# Network: loopback only.
run_case raw_socket EPERM -- raw_socket
run_case packet_socket EPERM -- packet_socket
run_case egress_unreachable ENETUNREACH -- egress
run_case loopback_works ok -- loopback

# Signals.
run_case signal_host_process ESRCH -- kill "$host_sleeper"
run_case kill_init_ignored ok -- kill_init

# Descriptors: open an extra one in the host; none may reach the pod.
exec 7>"$work/leak"
run_case no_host_fd_leak clean -- fds
exec 7>&-

# Resource limits, while another pod runs beside the bombs.
"$NU_BIN" exec --profile local_dev --workspace "$other" -- /bin/sleep 2 \
    >/dev/null 2>&1 &
neighbour=$!
run_case fork_bomb_bounded "EAGAIN [0-9]*" --pids 64 -- fork_bomb
run_case memory_bomb_bounded "bounded *" --memory 256M -- memory_bomb
n=$((n + 1))
if wait "$neighbour"; then
    echo "ok $n - neighbour_pod_unaffected_by_bombs"
else
    echo "not ok $n - neighbour_pod_unaffected_by_bombs: exit $?"
    failed=$((failed + 1))
fi
run_case tmp_fill_bounded "ENOSPC 25[0-9]" -- fill /tmp/fill
run_case workspace_fill_bounded "EFBIG 1" --file-size 1M -- fill /workspace/fill
start=$(date +%s)
run_status cpu_runaway_timeout 124 --timeout 1 -- spin
elapsed=$(( $(date +%s) - start ))
n=$((n + 1))
if [ "$elapsed" -le 6 ]; then
    echo "ok $n - cpu_runaway_killed_promptly (${elapsed}s)"
else
    echo "not ok $n - cpu_runaway_killed_promptly: took ${elapsed}s"
    failed=$((failed + 1))
fi

# Exit statuses of nucleus exec itself.
n=$((n + 1))
"$NU_BIN" exec --profile local_dev --workspace "$ws" -- /nonexistent/cmd \
    >/dev/null 2>&1
status=$?
if [ "$status" -eq 127 ]; then
    echo "ok $n - missing_command_exit_127"
else
    echo "not ok $n - missing_command_exit_127: got $status"
    failed=$((failed + 1))
fi
n=$((n + 1))
"$NU_BIN" exec --profile local_dev --workspace "$ws" -- sudo true \
    >/dev/null 2>&1
status=$?
if [ "$status" -eq 126 ]; then
    echo "ok $n - policy_denied_exit_126"
else
    echo "not ok $n - policy_denied_exit_126: got $status"
    failed=$((failed + 1))
fi

n=$((n + 1))
"$NU_BIN" exec --profile local_dev --workspace "$work/missing" -- /bin/true \
    >/dev/null 2>&1
status=$?
if [ "$status" -eq 125 ]; then
    echo "ok $n - nucleus_failure_exit_125"
else
    echo "not ok $n - nucleus_failure_exit_125: got $status"
    failed=$((failed + 1))
fi
n=$((n + 1))
"$NU_BIN" exec --memory lots -- /bin/true >/dev/null 2>&1
status=$?
if [ "$status" -eq 125 ]; then
    echo "ok $n - usage_error_exit_125"
else
    echo "not ok $n - usage_error_exit_125: got $status"
    failed=$((failed + 1))
fi

# The host is unaffected.
n=$((n + 1))
if kill -0 "$host_sleeper" 2>/dev/null &&
   [ "$(sha256sum /etc/shadow | cut -d' ' -f1)" = "$shadow_sum" ] &&
   [ "$(cat "$other/secret")" = "other pod's secret" ] &&
   [ "$(hostname)" != evil ]; then
    echo "ok $n - host_unaffected"
else
    echo "not ok $n - host_unaffected"
    failed=$((failed + 1))
fi

echo "1..$n"
[ "$failed" -eq 0 ]
