#!/bin/sh
# Pods leave nothing behind: after 200 pods created and closed, and 20
# whose owner was killed with SIGKILL while a command ran, no pod process,
# mount, cgroup or temporary directory remains.  Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: checking cgroup cleanup needs root (run as root)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-cleanup-XXXXXX)
trap 'rm -rf "$work"' EXIT
ws=$work/ws
mkdir -p "$ws"

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

# Other programs on the host may run pods of their own, so every check
# looks only at this test's pods: their init's environment carries a tag,
# and their cgroups are named after owner pids this test recorded.
tag=NU_CLEANUP_TAG=$$.$(date +%s%N)
owners=

# Directories "<owner pid>.<start>.<seq>" of the recorded owners left in
# "nucleus" below our own cgroup of each v1 hierarchy (and of the v2 tree
# when it is delegated).
cgroup_leftovers() {
    count=0
    while IFS=: read -r _ controllers path; do
        for c in memory pids cpu; do
            case ",$controllers," in *,"$c",*) ;; *) continue ;; esac
            dir=/sys/fs/cgroup/$c${path%/}/nucleus
            [ -d "$dir" ] || continue
            for owner in $owners; do
                count=$((count + $(find "$dir" -mindepth 1 -maxdepth 1 \
                    -type d -name "$owner.*" | wc -l)))
            done
        done
    done </proc/self/cgroup
    echo "$count"
}

pod_processes() {
    count=0
    # This test's pod inits have its workspace mounted at /workspace; the
    # commands they run carry its tag in their environment.
    for pid in $(pgrep -f '^nucleus-podinit'); do
        if grep -qF " $ws " "/proc/$pid/mountinfo" 2>/dev/null; then
            count=$((count + 1))
        fi
    done
    for pid in $(pgrep -x sleep); do
        if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "$tag"; then
            count=$((count + 1))
        fi
    done
    echo "$count"
}

# Start a pod in the background; "exec" makes $! the nucleus process
# itself, not a subshell.
# Mounts a leaking pod would leave in the host's namespace: its root
# tmpfs at /tmp or anything below this test's directory.  Other programs
# may mount elsewhere meanwhile, so only these are counted.
pod_mounts() {
    awk -v work="$work" '$5 == "/tmp" || index($5, work) == 1' \
        /proc/self/mountinfo | wc -l
}

exec_pod_bg() {
    exec "$NU_BIN" exec --profile local_dev --workspace "$ws" --env "$tag" "$@"
}

mounts_before=$(pod_mounts)
tmp_before=$(find /tmp -maxdepth 1 -name 'nucleus-*' | wc -l)

errors=0
i=0
while [ $i -lt 200 ]; do
    exec_pod_bg -- /bin/true 2>>"$work/errors" &
    owner=$!
    owners="$owners $owner"
    wait "$owner" || errors=$((errors + 1))
    i=$((i + 1))
done
check "$errors" "200_pods_created_and_closed" "$errors failed: $(head -c 300 "$work/errors")"
check "$(cgroup_leftovers)" "closed_pods_leave_no_cgroup"

# Kill 20 owners while their pods run a command.
killed=0
i=0
while [ $i -lt 20 ]; do
    exec_pod_bg -- /bin/sleep 313 &
    owner=$!
    owners="$owners $owner"
    # Wait until the command runs: owner -> pod init -> sleep.
    t=0
    while [ $t -lt 100 ]; do
        init=$(pgrep -P "$owner" | head -n 1)
        if [ -n "$init" ] && pgrep -P "$init" >/dev/null; then
            break
        fi
        sleep 0.02
        t=$((t + 1))
    done
    [ -n "$init" ] && killed=$((killed + 1))
    if [ $i -eq 0 ]; then
        # The tag finds a live pod, so the checks below are not vacuous.
        check "$(( $(pod_processes) == 0 ))" "live_pod_found_by_tag"
    fi
    kill -9 "$owner"
    wait "$owner" 2>/dev/null
    i=$((i + 1))
done
check "$((20 - killed))" "20_owners_killed_with_running_pods" "only $killed pods started"

# PR_SET_PDEATHSIG acts at once, but give the kernel a moment to reap.
t=0
while [ $t -lt 100 ] && { [ "$(pod_processes)" -gt 0 ] ||
                          pgrep -f '^/bin/sleep 313' >/dev/null; }; do
    sleep 0.05
    t=$((t + 1))
done
check "$(pod_processes)" "no_pod_init_left"
check "$(pgrep -f '^/bin/sleep 313' | wc -l)" "no_pod_command_left"
check "$(( $(pod_mounts) - mounts_before ))" "no_mount_left_on_host"

# Killed owners left their cgroups; the next pod creation removes them.
echo "# cgroups left by killed owners before the sweep: $(cgroup_leftovers)"
"$NU_BIN" exec --profile local_dev --workspace "$ws" -- /bin/true
check "$(cgroup_leftovers)" "stale_cgroups_swept"
check "$(( $(find /tmp -maxdepth 1 -name 'nucleus-*' | wc -l) - tmp_before ))" \
    "no_temporary_directory_left"

echo "1..$n"
[ "$failed" -eq 0 ]
