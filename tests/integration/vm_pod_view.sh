#!/bin/sh
# The view of a command in a vm pod, checked in one boot: blocked workspace files
# read empty and reject writes, a blocked directory is empty,
# write-blocked paths reject writes, the root file system is read-only
# while /tmp is writable, lo is up, commands have no capabilities to undo
# any of it, and --file-size and --pids hold.
# The host's files keep their contents. Output is TAP.
set -u

if [ -z "${NU_BIN:-}" ] || [ ! -x "$NU_BIN" ]; then
    echo "skip: NU_BIN is not set to the nucleus binary"
    exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "skip: qemu-system-x86_64 not installed (qemu-system-x86)"
    exit 77
fi

work=$(mktemp -d /tmp/nu-vmview-XXXXXX)
trap 'rm -rf "$work"' EXIT
export NUCLEUS_HOME="$work/home"
export NUCLEUS_VM_ACCEL="${NUCLEUS_VM_ACCEL:-tcg}"

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

if ! "$NU_BIN" vm image build >/dev/null 2>"$work/build.err"; then
    echo "skip: cannot build the guest image: $(tail -n 1 "$work/build.err")"
    exit 77
fi

ws="$work/ws"
mkdir -p "$ws/.ssh" "$ws/sub" "$ws/.git/hooks"
echo 'API_KEY=topsecret-env' >"$ws/.env"
echo 'KEYDATA' >"$ws/server.key"
echo 'sshkey' >"$ws/.ssh/id_rsa"
echo 'deep' >"$ws/sub/.env.local"
echo '# rc' >"$ws/.bashrc"

# The ns tier's masks for the same profile: SENSITIVE blocked, AUTORUN
# write-blocked.
cat >"$work/profile.lua" <<'EOF'
return nucleus.profile {
  name = "vm_pod_view",
  capabilities = { read_files = "always", write_files = "always",
                   edit_files = "always", glob_search = "always",
                   grep_search = "always", run_bash = "always" },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE,
            write_block = nucleus.AUTORUN },
  commands = { allow = nucleus.ALL },
}
EOF

# Command analysis rejects a plain redirection onto a blocked path, so the
# writes go through sh -c inside a script.
cat >"$ws/probe.sh" <<'EOF'
for f in .env server.key .ssh/id_rsa sub/.env.local; do
    printf 'read %s=[%s]\n' "$f" "$(cat "$f" 2>/dev/null)"
done
sh -c 'echo overwritten > .env' 2>/dev/null; echo "write .env=$?"
sh -c 'echo planted >> .bashrc' 2>/dev/null; echo "write .bashrc=$?"
sh -c 'echo x > .git/hooks/pre-commit' 2>/dev/null; echo "write hook=$?"
touch /rootfile 2>/dev/null; echo "write /rootfile=$?"
touch /tmp/scratch; echo "write /tmp=$?"
echo "lo flags=$(cat /sys/class/net/lo/flags)"
echo "cgroup=$(cat /proc/self/cgroup)"
echo "pids.max=$(cat /sys/fs/cgroup/pod/pids.max)"
echo "capeff=$(grep CapEff /proc/self/status | cut -f 2)"
(ulimit -f unlimited) 2>/dev/null; echo "raise fsize=$?"
sh -c 'echo max > /sys/fs/cgroup/pod/pids.max' 2>/dev/null; echo "write pids.max=$?"
sh -c 'echo $$ > /sys/fs/cgroup/cgroup.procs' 2>/dev/null; echo "leave cgroup=$?"
mount -o remount,rw / 2>/dev/null; echo "remount=$?"
umount -l /workspace 2>/dev/null; echo "umount=$?"
chown 1234 probe.sh 2>/dev/null; echo "chown=$?"
n=0
for d in /dev/console /dev/kmsg /dev/ttyS0 /dev/tty0 /dev/hvc0; do
    [ -c "$d" ] && n=$((n + 1))
done
echo "console nodes=$n"
ls -l /proc/sysrq-trigger | grep -q ' 1, *3 ' && echo "sysrq covered"
dd if=/dev/zero of=big.bin bs=1M count=5 2>/dev/null; echo "dd=$?"
i=0
while [ $i -lt 100 ]; do sleep 2 & i=$((i + 1)); done 2>/dev/null
echo "started $i"
EOF

"$NU_BIN" exec --profile "$work/profile.lua" --workspace "$ws" \
    --isolation vm --file-size 1M --pids 64 -- sh probe.sh \
    >"$work/out" 2>"$work/err"
status=$?
out=$(cat "$work/out")
has() { grep -qxF -- "$1" "$work/out"; }

for f in .env server.key sub/.env.local .ssh/id_rsa; do
    has "read $f=[]"
    check $? "blocked $f reads empty" "$out"
done
grep -q 'topsecret\|KEYDATA\|sshkey\|deep' "$work/out"
check $(( $? == 1 ? 0 : 1 )) "no secret in the output" "$out"
has "write .env=1"
check $? "writing a blocked file fails" "$out"
has "write .bashrc=1"
check $? "appending to write-blocked .bashrc fails" "$out"
has "write hook=1"
check $? "planting a write-blocked git hook fails" "$out"
has "write /rootfile=1"
check $? "guest root file system is read-only" "$out"
has "write /tmp=0"
check $? "guest /tmp is writable" "$out"
has "lo flags=0x9"
check $? "lo is up" "$out"
has "cgroup=0::/pod"
check $? "commands run in the pod cgroup" "$out"
has "pids.max=64"
check $? "--pids sets pids.max" "$out"
has "capeff=0000000000000000"
check $? "commands have no capabilities" "$out"
for what in "raise fsize" "write pids.max" "leave cgroup" "remount" \
    "umount" "chown"; do
    grep -q "^$what=[1-9]" "$work/out"
    check $? "$what fails" "$out"
done
has "console nodes=0"
check $? "no console device for commands" "$out"
has "sysrq covered"
check $? "/proc/sysrq-trigger is covered" "$out"
has "dd=153"
check $? "--file-size stops dd with SIGXFSZ" "$out"
size=$(stat -c %s "$ws/big.bin" 2>/dev/null)
[ "$size" = 1048576 ]
check $? "host file stops at 1 MiB" "size $size"
has "started 100"
check $(( $? == 1 ? 0 : 1 )) "--pids stops 100 background processes" "$out"
[ "$status" != 0 ]
check $? "the command fails when it cannot fork" "status $status"

[ "$(cat "$ws/.env")" = "API_KEY=topsecret-env" ]
check $? "host .env unchanged" "$(cat "$ws/.env")"
[ "$(cat "$ws/.bashrc")" = "# rc" ]
check $? "host .bashrc unchanged" "$(cat "$ws/.bashrc")"
[ ! -e "$ws/.git/hooks/pre-commit" ]
check $? "no git hook planted on the host"

if [ "$failed" != 0 ]; then
    echo "# status $status, stderr:"
    sed 's/^/# /' "$work/err"
fi
echo "1..$n"
[ "$failed" = 0 ]
