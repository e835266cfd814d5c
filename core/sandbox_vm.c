/*
 * sandbox_vm.c - the QEMU microvm driver of the "vm" isolation tier.
 *
 * A vm pod is one qemu-system-x86_64 -M microvm process (no PCI, virtio
 * devices on virtio-mmio, qboot firmware) booting the image of
 * nucleus vm image build.  The host talks to the guest agent with the
 * frame protocol of proto.h over a virtio serial port.  QEMU's chardev
 * for the port is one end of a socketpair passed as fd 3 ("socket,fd=3").
 * No socket file exists, so no other process can connect.  QMP, QEMU's
 * control protocol, uses a second socketpair on fd 4.
 *
 * Devices: virtio-serial carries the pod stream.  virtio-rng is fed from
 * the host's /dev/urandom, and the agent credits 64 bytes of it to its
 * pool before it reports ready.  virtio-9p shares the host workspace
 * directory read-write.  The isa-serial console is written to
 * console.log in the pod's run directory.  There is no network device.
 *
 * Why 9p and not a virtio-blk image: the workspace is a host directory
 * that the pipeline, audit and other pods see.  A 9p share keeps it live
 * in both directions with cache=none, as the namespace tier's bind mount
 * does, while a block image would need copying in and out and could not
 * be shared.  The price is 9p's per-operation round trips.
 *
 * Start (nu__vm_create):
 *   1. pick the accelerator (nu__vm_accel): KVM when /dev/kvm opens and a
 *      probe boot reaches agent-ready within NU__VM_PROBE_MS, TCG
 *      otherwise; the choice and the reason are logged once per process;
 *   2. fork QEMU with PR_SET_PDEATHSIG(SIGKILL) (so no QEMU outlives the
 *      thread that created the pod), in new network, IPC and UTS
 *      namespaces, with -sandbox on (QEMU's own seccomp filter);
 *   3. finish the QMP handshake (qmp_capabilities);
 *   4. wait for the agent's ready line on the console, then hand the
 *      stream to nu__sandbox_adopt, which exchanges hello frames.
 * nu_sandbox_close then works as for any pod: closing the stream makes
 * the agent power off, and the reap kills QEMU.  The release hook closes
 * QMP and removes the run directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "nucleus/log.h"
#include "nucleus/vm.h"
#include "sandbox_internal.h"
#include "sandbox_vm_internal.h"

#define NU__VM_SERIAL_FD 3
#define NU__VM_QMP_FD 4
#define NU__VM_READY_LINE "nucleus-agent: ready"

/* Time limits for boot to agent-ready.  Under TCG the Debian 6.1 kernel
 * took about 10 s on a 2-core host (docs/benchmarks.md). */
#define NU__VM_BOOT_TCG_MS 120000
#define NU__VM_BOOT_KVM_MS 10000
#define NU__VM_PROBE_MS 8000
#define NU__VM_QMP_MS 5000

#define NU__VM_MAX_ARGS 64

/* A file at the root of a pooled VM's share.  The agent then mounts the
 * share's "ws" directory, where the host binds the workspace on
 * acquisition, at /workspace before it replies to the hello. */
#define NU__VM_POOL_MARKER ".nucleus-pool"
#define NU__VM_POOL_MAX 8

typedef struct nu__vm {
    bool pooled;        /* booted by the warm pool, 9p root is share */
    bool attached;      /* the workspace is bind-mounted on share/ws */
    char share[96];     /* RUN_DIR/share, the 9p root of a pooled VM */
    char run_dir[64];
    char console[128];
    char image_dir[4096];
    char workspace[PATH_MAX];
    int qmp_fd;
    int serial_fd;
    pid_t pid;
    int pidfd;
    const void *seccomp_code;   /* sandbox_vm_seccomp.c's filter */
    size_t seccomp_count;
    /* QEMU's argv, and the buffers of its formatted arguments */
    char *argv[NU__VM_MAX_ARGS];
    char args[12][4400];
} nu__vm_t;

static int64_t nu__vm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- run directory and cleanup ---------------------------------------- */

static void nu__vm_remove_run_dir(nu__vm_t *vm)
{
    static const char *const files[] = { "console.log", "qemu.log", NULL };
    char path[160];

    if (vm->run_dir[0] == '\0')
        return;
    snprintf(path, sizeof path, "%s/share/ws", vm->run_dir);
    umount2(path, MNT_DETACH);  /* a pooled VM's workspace, if attached */
    rmdir(path);
    snprintf(path, sizeof path, "%s/share/" NU__VM_POOL_MARKER, vm->run_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/share", vm->run_dir);
    rmdir(path);
    for (size_t i = 0; files[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s/%s", vm->run_dir, files[i]);
        unlink(path);
    }
    rmdir(vm->run_dir);
    vm->run_dir[0] = '\0';
}

/* Remove the run directories (/tmp/nucleus-vm.PID.XXXXXX) of owners that
 * died without nu_sandbox_close; their QEMU died with them. */
static void nu__vm_sweep(void)
{
    DIR *dir = opendir("/tmp");
    struct dirent *e;

    if (dir == NULL)
        return;
    while ((e = readdir(dir)) != NULL) {
        nu__vm_t stale;
        char *end;
        long owner;

        if (strncmp(e->d_name, "nucleus-vm.", 11) != 0)
            continue;
        owner = strtol(e->d_name + 11, &end, 10);
        if (owner <= 0 || *end != '.' || owner == (long)getpid() ||
            kill((pid_t)owner, 0) == 0 || errno != ESRCH)
            continue;
        if (strlen(e->d_name) > 40)
            continue;
        snprintf(stale.run_dir, sizeof stale.run_dir, "/tmp/%.40s",
                 e->d_name);
        nu__vm_remove_run_dir(&stale);
    }
    closedir(dir);
}

/* Ask QEMU to quit over QMP, wait up to a second, then SIGKILL; reap. */
static void nu__vm_stop(nu__vm_t *vm)
{
    static const char quit[] = "{\"execute\":\"quit\"}\n";
    struct pollfd p;
    siginfo_t info;

    if (vm->pidfd < 0)
        return;
    if (vm->qmp_fd >= 0 &&
        send(vm->qmp_fd, quit, sizeof quit - 1, MSG_NOSIGNAL) > 0) {
        p.fd = vm->pidfd;
        p.events = POLLIN;
        poll(&p, 1, 1000);
    }
    syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL, NULL, 0);
    while (waitid((idtype_t)P_PIDFD, (id_t)vm->pidfd, &info, WEXITED) != 0 &&
           errno == EINTR)
        ;
    close(vm->pidfd);
    vm->pidfd = -1;
}

static void nu__vm_free(nu__vm_t *vm)
{
    if (vm == NULL)
        return;
    nu__vm_stop(vm);
    if (vm->qmp_fd >= 0)
        close(vm->qmp_fd);
    if (vm->serial_fd >= 0)
        close(vm->serial_fd);
    nu__vm_remove_run_dir(vm);
    free(vm);
}

/* The release hook of nu__sandbox_adopt: QEMU is reaped already. */
static void nu__vm_release(void *data)
{
    nu__vm_t *vm = data;

    vm->pidfd = -1;      /* owned and closed by the sandbox */
    vm->serial_fd = -1;  /* likewise */
    nu__vm_free(vm);
}

/* --- QEMU command line ------------------------------------------------ */

static char *nu__vm_arg(nu__vm_t *vm, size_t slot, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *nu__vm_arg(nu__vm_t *vm, size_t slot, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(vm->args[slot], sizeof vm->args[slot], fmt, ap);
    va_end(ap);
    return vm->args[slot];
}

static const char *nu__vm_qemu_binary(void)
{
    const char *env = getenv("NUCLEUS_QEMU");

    return env != NULL && env[0] != '\0' ? env : "qemu-system-x86_64";
}

/* A pod with egress: one virtio-net device on QEMU's user-mode network
 * (libslirp), whose sockets live in QEMU's network namespace, where
 * nu_net_attach puts the veth and the pod's filter (docs/vm.md, "Guest
 * network").  The guest subnet is link-local because every pod drops
 * 169.254.0.0/16, so it never hides an allowed destination.  No hostfwd,
 * guestfwd, tftp or smb is configured. */
#define NU__VM_NETDEV "user,id=net0,ipv6=off,net=169.254.2.0/24," \
                      "host=169.254.2.2,dns=169.254.2.3"
#define NU__VM_NET_CMDLINE " nucleus.net=169.254.2.15/24,169.254.2.2"

/* Fill vm->argv.  Memory comes from the pod's memory limit (default 512
 * MiB, at least 128 MiB), vCPUs from its CPU bandwidth (default 1). */
static void nu__vm_build_argv(nu__vm_t *vm, const nu_sandbox_opts_t *opts,
                              bool kvm)
{
    uint64_t mib = opts->limits.memory_bytes != 0
                 ? opts->limits.memory_bytes >> 20 : 512;
    unsigned cpus = opts->limits.cpu_millis != 0
                  ? (opts->limits.cpu_millis + 999) / 1000 : 1;
    size_t n = 0;

    if (mib < 128)
        mib = 128;
    if (cpus > 8)
        cpus = 8;

#define NU__ADD(s) (vm->argv[n++] = (char *)(s))
    NU__ADD(nu__vm_qemu_binary());
    NU__ADD("-M");
    NU__ADD("microvm,x-option-roms=off,pit=on,pic=on,rtc=on");
    NU__ADD("-accel");
    NU__ADD(kvm ? "kvm" : "tcg");
    NU__ADD("-cpu");
    NU__ADD(kvm ? "host" : "max");
    NU__ADD("-m");
    NU__ADD(nu__vm_arg(vm, 0, "%llu", (unsigned long long)mib));
    NU__ADD("-smp");
    NU__ADD(nu__vm_arg(vm, 1, "%u", cpus));
    NU__ADD("-nodefaults");
    NU__ADD("-no-user-config");
    NU__ADD("-display");
    NU__ADD("none");
    NU__ADD("-no-reboot");
    NU__ADD("-nic");
    NU__ADD("none");
    NU__ADD("-kernel");
    NU__ADD(nu__vm_arg(vm, 2, "%s/" NU_VM_KERNEL_FILE, vm->image_dir));
    NU__ADD("-initrd");
    NU__ADD(nu__vm_arg(vm, 3, "%s/" NU_VM_INITRAMFS_FILE, vm->image_dir));
    /* Without a calibrated TSC the TCG guest waits forever for a timer;
     * tsc_early_khz gives it one.  Nothing secret goes on this line. */
    NU__ADD("-append");
    NU__ADD(nu__vm_arg(vm, 6, "console=ttyS0 quiet panic=-1 reboot=t "
                       "tsc_early_khz=2000000 no_timer_check%s",
                       opts->network ? NU__VM_NET_CMDLINE : ""));
    NU__ADD("-serial");
    NU__ADD(nu__vm_arg(vm, 4, "file:%s", vm->console));
    NU__ADD("-chardev");
    NU__ADD("socket,id=nucleus,fd=3");
    NU__ADD("-device");
    NU__ADD("virtio-serial-device");
    NU__ADD("-device");
    NU__ADD("virtserialport,chardev=nucleus,name=nucleus");
    NU__ADD("-object");
    NU__ADD("rng-random,id=rng,filename=/dev/urandom");
    NU__ADD("-device");
    NU__ADD("virtio-rng-device,rng=rng");
    NU__ADD("-fsdev");
    /* QEMU's option parser splits on ',', so nu__vm_create rejects
     * workspace paths that contain one.  security_model=none keeps host
     * symlinks and modes as they are (mapped-xattr would turn symlinks
     * into files); sandbox_vm_seccomp.c stops set-user-ID files and
     * device nodes. */
    NU__ADD(nu__vm_arg(vm, 5, "local,id=workspace,path=%s,"
                       "security_model=none",
                       vm->pooled ? vm->share : vm->workspace));
    NU__ADD("-device");
    NU__ADD("virtio-9p-device,fsdev=workspace,mount_tag=workspace");
    if (opts->network) {
        NU__ADD("-netdev");
        NU__ADD(NU__VM_NETDEV);
        NU__ADD("-device");
        NU__ADD("virtio-net-device,netdev=net0");
    }
    NU__ADD("-chardev");
    NU__ADD("socket,id=qmp,fd=4");
    NU__ADD("-mon");
    NU__ADD("chardev=qmp,mode=control");
    NU__ADD("-sandbox");
    NU__ADD("on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
            "resourcecontrol=deny");
    NU__ADD(NULL);
#undef NU__ADD
}

/* --- starting QEMU ---------------------------------------------------- */

/* The child of fork: only async-signal-safe calls. */
static void __attribute__((noreturn))
nu__vm_child(nu__vm_t *vm, pid_t parent, int serial, int qmp, int log_fd)
{
    int flags = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    struct sock_fprog prog = {
        .len = (unsigned short)vm->seccomp_count,
        .filter = (struct sock_filter *)vm->seccomp_code,
    };
    int null_fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(125);
    if (geteuid() != 0)
        flags |= CLONE_NEWUSER;
    if (unshare(flags) != 0) {
        static const char msg[] = "vm: cannot create QEMU's namespaces\n";
        if (write(log_fd, msg, sizeof msg - 1) < 0)
            _exit(126);
        _exit(126);
    }

    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0)
        _exit(126);
    /* Move the two sockets to 3 and 4 without clobbering each other. */
    serial = fcntl(serial, F_DUPFD_CLOEXEC, 10);
    qmp = fcntl(qmp, F_DUPFD_CLOEXEC, 10);
    if (serial < 0 || qmp < 0 || dup2(serial, NU__VM_SERIAL_FD) < 0 ||
        dup2(qmp, NU__VM_QMP_FD) < 0)
        _exit(126);
    syscall(SYS_close_range, NU__VM_QMP_FD + 1, ~0U, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        _exit(126);

    execvp(vm->argv[0], vm->argv);
    _exit(127);
}

static int nu__vm_spawn(nu__vm_t *vm, nu_err_t *err)
{
    char log_path[160];
    int serial[2] = { -1, -1 };
    int qmp[2] = { -1, -1 };
    int log_fd;
    int pidfd = -1;
    pid_t parent = getpid();
    long pid;
    int rc = NU_OK;

    rc = nu__vm_seccomp_program(&vm->seccomp_code, &vm->seccomp_count, err);
    if (rc < 0)
        return rc;
    snprintf(log_path, sizeof log_path, "%s/qemu.log", vm->run_dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return nu_err_errno(err, errno, "vm: cannot create %s", log_path);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, serial) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) != 0) {
        rc = nu_err_errno(err, errno, "vm: cannot create the pod's stream");
        goto out;
    }

    pid = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, NULL, &pidfd, NULL, 0);
    if (pid == 0)
        nu__vm_child(vm, parent, serial[1], qmp[1], log_fd);
    if (pid < 0) {
        rc = nu_err_errno(err, errno, "vm: cannot start %s", vm->argv[0]);
        goto out;
    }
    vm->pid = (pid_t)pid;
    vm->pidfd = pidfd;
    vm->serial_fd = serial[0];
    vm->qmp_fd = qmp[0];
    serial[0] = qmp[0] = -1;

out:
    for (int i = 0; i < 2; i++) {
        if (serial[i] >= 0)
            close(serial[i]);
        if (qmp[i] >= 0)
            close(qmp[i]);
    }
    close(log_fd);
    return rc;
}

/* The last non-empty line of path, for error messages. */
static void nu__vm_last_line(const char *path, char *out, size_t size)
{
    char buf[4096];
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *end;
    char *start;

    snprintf(out, size, "no output");
    if (fd < 0)
        return;
    if (lseek(fd, 0, SEEK_END) > (off_t)sizeof buf - 1)
        lseek(fd, -(off_t)(sizeof buf - 1), SEEK_END);
    else
        lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    end = buf + n;
    while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    start = strrchr(buf, '\n');
    /* A longer line is cut to size: it only decorates an error message. */
    if (snprintf(out, size, "%s", start != NULL ? start + 1 : buf) < 0)
        out[0] = '\0';
}

/* Read one QMP message (a line) into buf. */
static int nu__vm_qmp_line(nu__vm_t *vm, char *buf, size_t size,
                           int64_t deadline)
{
    size_t len = 0;

    while (len + 1 < size) {
        struct pollfd p = { .fd = vm->qmp_fd, .events = POLLIN };
        int64_t left = deadline - nu__vm_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return NU_ETIMEDOUT;
        n = recv(vm->qmp_fd, buf + len, 1, 0);
        if (n <= 0)
            return NU_EIO;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return NU_OK;
        }
        len++;
    }
    return NU_EPROTO;
}

/* Step 3: the greeting, then qmp_capabilities and its return. */
static int nu__vm_qmp_start(nu__vm_t *vm, nu_err_t *err)
{
    static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
    int64_t deadline = nu__vm_now_ms() + NU__VM_QMP_MS;
    char line[4096];
    char last[512];
    int rc;

    rc = nu__vm_qmp_line(vm, line, sizeof line, deadline);
    if (rc == NU_OK && strstr(line, "\"QMP\"") == NULL)
        rc = NU_EPROTO;
    if (rc == NU_OK &&
        send(vm->qmp_fd, caps, sizeof caps - 1, MSG_NOSIGNAL) < 0)
        rc = NU_EIO;
    while (rc == NU_OK) {
        rc = nu__vm_qmp_line(vm, line, sizeof line, deadline);
        if (rc == NU_OK && strstr(line, "\"return\"") != NULL)
            return NU_OK;
        if (rc == NU_OK && strstr(line, "\"error\"") != NULL)
            rc = NU_EPROTO;
    }
    snprintf(line, sizeof line, "%s/qemu.log", vm->run_dir);
    nu__vm_last_line(line, last, sizeof last);
    return nu_err_set(err, NU_ESANDBOX, "vm: cannot start QEMU: QMP "
                      "handshake failed (%s); QEMU's last message: %s",
                      nu_strerror(rc), last);
}

/* Step 4: poll the console log for the agent's ready line. */
static int nu__vm_wait_ready(nu__vm_t *vm, int timeout_ms, nu_err_t *err)
{
    int64_t deadline = nu__vm_now_ms() + timeout_ms;
    char tail[256] = "";
    char buf[4096];
    off_t offset = 0;
    int fd = -1;

    while (nu__vm_now_ms() < deadline) {
        struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
        ssize_t n;

        if (fd < 0)
            fd = open(vm->console, O_RDONLY | O_CLOEXEC);
        while (fd >= 0 && (n = pread(fd, buf, sizeof buf - 1, offset)) > 0) {
            char joined[sizeof tail + sizeof buf];

            buf[n] = '\0';
            offset += n;
            snprintf(joined, sizeof joined, "%s%s", tail, buf);
            if (strstr(joined, NU__VM_READY_LINE) != NULL) {
                close(fd);
                return NU_OK;
            }
            snprintf(tail, sizeof tail, "%s",
                     joined + (strlen(joined) > 64 ? strlen(joined) - 64 :
                               0));
        }
        if (poll(&p, 1, 5) > 0) {
            char last[256];
            if (fd >= 0)
                close(fd);
            nu__vm_last_line(vm->console, last, sizeof last);
            return nu_err_set(err, NU_ESANDBOX, "vm: QEMU exited before the "
                              "guest agent was ready (console: %s)", last);
        }
    }
    if (fd >= 0)
        close(fd);
    return nu_err_set(err, NU_ETIMEDOUT, "vm: the guest agent was not ready "
                      "within %d ms", timeout_ms);
}

/* Steps 2 to 4 with a given accelerator. */
static int nu__vm_boot(nu__vm_t *vm, const nu_sandbox_opts_t *opts,
                       bool kvm, int timeout_ms, nu_err_t *err)
{
    int rc;

    nu__vm_build_argv(vm, opts, kvm);
    rc = nu__vm_spawn(vm, err);
    if (rc == NU_OK)
        rc = nu__vm_qmp_start(vm, err);
    if (rc == NU_OK)
        rc = nu__vm_wait_ready(vm, timeout_ms, err);
    return rc;
}

static nu__vm_t *nu__vm_new(const char *image_dir, const char *workspace,
                            nu_err_t *err)
{
    nu__vm_t *vm = calloc(1, sizeof *vm);

    if (vm == NULL) {
        nu_err_set(err, NU_ENOMEM, "vm: out of memory");
        return NULL;
    }
    vm->qmp_fd = vm->serial_fd = vm->pidfd = -1;
    snprintf(vm->image_dir, sizeof vm->image_dir, "%s", image_dir);
    snprintf(vm->workspace, sizeof vm->workspace, "%s", workspace);
    snprintf(vm->run_dir, sizeof vm->run_dir, "/tmp/nucleus-vm.%ld.XXXXXX",
             (long)getpid());
    if (mkdtemp(vm->run_dir) == NULL) {
        nu_err_errno(err, errno, "vm: cannot create a run directory in "
                     "/tmp");
        vm->run_dir[0] = '\0';
        nu__vm_free(vm);
        return NULL;
    }
    snprintf(vm->console, sizeof vm->console, "%s/console.log", vm->run_dir);
    return vm;
}

/* --- accelerator choice ----------------------------------------------- */

static pthread_mutex_t nu__vm_accel_lock = PTHREAD_MUTEX_INITIALIZER;
static int nu__vm_accel_kvm = -1;  /* -1 unknown, 0 TCG, 1 KVM */

/* Step 1: a probe boot with KVM, because a /dev/kvm that opens may still
 * be unusable (nested paravirtual KVM on which the guest kernel hangs). */
static bool nu__vm_probe_kvm(const nu_sandbox_opts_t *opts,
                             const char *image_dir, char *why, size_t size)
{
    nu__vm_t *vm;
    nu_err_t err;
    int fd;
    int rc;

    const char *env = getenv("NUCLEUS_VM_ACCEL");
    if (env != NULL && (strcmp(env, "tcg") == 0 || strcmp(env, "kvm") == 0)) {
        snprintf(why, size, "NUCLEUS_VM_ACCEL=%s", env);
        return strcmp(env, "kvm") == 0;
    }

    fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, size, "/dev/kvm: %s", strerror(errno));
        return false;
    }
    close(fd);

    vm = nu__vm_new(image_dir, opts->workspace, &err);
    if (vm == NULL) {
        snprintf(why, size, "probe boot failed: %s", err.msg);
        return false;
    }
    rc = nu__vm_boot(vm, opts, true, NU__VM_PROBE_MS, &err);
    if (rc < 0)
        snprintf(why, size, "a probe boot with KVM failed: %s", err.msg);
    else
        snprintf(why, size, "a probe boot with KVM reached agent-ready");
    nu__vm_free(vm);
    return rc == NU_OK;
}

static bool nu__vm_accel(const nu_sandbox_opts_t *opts, const char *image_dir)
{
    char why[600];
    bool kvm;

    pthread_mutex_lock(&nu__vm_accel_lock);
    if (nu__vm_accel_kvm < 0) {
        kvm = nu__vm_probe_kvm(opts, image_dir, why, sizeof why);
        nu__vm_accel_kvm = kvm ? 1 : 0;
        nu_log(NU_LOG_INFO, "vm", "using %s: %s", kvm ? "KVM" :
               "TCG (emulation, slow)", why);
    }
    kvm = nu__vm_accel_kvm == 1;
    pthread_mutex_unlock(&nu__vm_accel_lock);
    return kvm;
}

/* --- warm pool ---------------------------------------------------------
 *
 * With NUCLEUS_VM_POOL=N (1 to 8) and root, the first vm pod creation
 * starts a pool thread that keeps N guests booted to agent-ready.  Their
 * 9p share is an empty RUN_DIR/share with a "ws" directory.  Acquiring
 * one binds the workspace onto share/ws and exchanges the hello, so the
 * pod does not pay the boot.  A pooled guest serves only pods with the
 * image, accelerator and memory and CPU limits it was booted with.  Its
 * QEMU has PR_SET_PDEATHSIG tied to the pool thread, which lives as long
 * as the process.
 * NOTE: guests still waiting at process exit die with it but leave their
 * run directory until the next vm pod creation sweeps it.
 */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool started;
    int want;
    int count;
    nu__vm_t *ready[NU__VM_POOL_MAX];
    nu_sandbox_opts_t opts;     /* limits of the pooled guests */
    char image_dir[4096];
    bool kvm;
} nu__vm_pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

static nu__vm_t *nu__vm_new(const char *image_dir, const char *workspace,
                            nu_err_t *err);
static int nu__vm_boot(nu__vm_t *vm, const nu_sandbox_opts_t *opts,
                       bool kvm, int timeout_ms, nu_err_t *err);

static nu__vm_t *nu__vm_pool_boot_one(nu_err_t *err)
{
    char path[160];
    nu__vm_t *vm = nu__vm_new(nu__vm_pool.image_dir, "", err);
    int fd;

    if (vm == NULL)
        return NULL;
    vm->pooled = true;
    snprintf(vm->share, sizeof vm->share, "%s/share", vm->run_dir);
    snprintf(path, sizeof path, "%s/ws", vm->share);
    if (mkdir(vm->share, 0755) != 0 || mkdir(path, 0755) != 0) {
        nu_err_errno(err, errno, "vm: cannot create %s", path);
        nu__vm_free(vm);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/" NU__VM_POOL_MARKER, vm->share);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        nu_err_errno(err, errno, "vm: cannot create %s", path);
        nu__vm_free(vm);
        return NULL;
    }
    close(fd);
    if (nu__vm_boot(vm, &nu__vm_pool.opts, nu__vm_pool.kvm,
                    nu__vm_pool.kvm ? NU__VM_BOOT_KVM_MS : NU__VM_BOOT_TCG_MS,
                    err) < 0) {
        nu__vm_free(vm);
        return NULL;
    }
    return vm;
}

static void *nu__vm_pool_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&nu__vm_pool.lock);
    for (;;) {
        nu__vm_t *vm;
        nu_err_t err;

        while (nu__vm_pool.count >= nu__vm_pool.want)
            pthread_cond_wait(&nu__vm_pool.wake, &nu__vm_pool.lock);
        pthread_mutex_unlock(&nu__vm_pool.lock);
        vm = nu__vm_pool_boot_one(&err);
        pthread_mutex_lock(&nu__vm_pool.lock);
        if (vm == NULL) {
            /* Stop rather than boot-loop: pods fall back to cold boots. */
            nu_log(NU_LOG_ERROR, "vm", "warm pool stopped: %s", err.msg);
            nu__vm_pool.want = 0;
            continue;
        }
        nu__vm_pool.ready[nu__vm_pool.count++] = vm;
    }
    return NULL;
}

/* Start the pool on first use when NUCLEUS_VM_POOL requests one. */
static void nu__vm_pool_start(const nu_sandbox_opts_t *opts,
                              const char *image_dir, bool kvm)
{
    const char *env = getenv("NUCLEUS_VM_POOL");
    long want = env != NULL ? strtol(env, NULL, 10) : 0;
    pthread_attr_t attr;
    pthread_t thread;

    if (nu__vm_pool.started || want <= 0)
        return;
    if (want > NU__VM_POOL_MAX || geteuid() != 0) {
        nu_log(NU_LOG_WARN, "vm", "warm pool not started: NUCLEUS_VM_POOL "
               "must be 1 to %d and the process must run as root",
               NU__VM_POOL_MAX);
        nu__vm_pool.started = true;
        return;
    }
    nu_sandbox_opts_init(&nu__vm_pool.opts);
    nu__vm_pool.opts.limits = opts->limits;
    snprintf(nu__vm_pool.image_dir, sizeof nu__vm_pool.image_dir, "%s",
             image_dir);
    nu__vm_pool.kvm = kvm;
    nu__vm_pool.want = (int)want;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, nu__vm_pool_main, NULL) != 0)
        nu__vm_pool.want = 0;
    pthread_attr_destroy(&attr);
    nu__vm_pool.started = true;
    nu_log(NU_LOG_INFO, "vm", "warm pool of %ld guests started", want);
}

/* Take a ready pooled guest that matches the pod, or NULL. */
static nu__vm_t *nu__vm_pool_take(const nu_sandbox_opts_t *opts,
                                  const char *image_dir, bool kvm)
{
    nu__vm_t *vm = NULL;

    pthread_mutex_lock(&nu__vm_pool.lock);
    nu__vm_pool_start(opts, image_dir, kvm);
    if (nu__vm_pool.count > 0 && nu__vm_pool.kvm == kvm &&
        strcmp(nu__vm_pool.image_dir, image_dir) == 0 &&
        nu__vm_pool.opts.limits.memory_bytes == opts->limits.memory_bytes &&
        nu__vm_pool.opts.limits.cpu_millis == opts->limits.cpu_millis) {
        vm = nu__vm_pool.ready[--nu__vm_pool.count];
        pthread_cond_signal(&nu__vm_pool.wake);
    }
    pthread_mutex_unlock(&nu__vm_pool.lock);
    return vm;
}

int nu_vm_pool_ready(void)
{
    int count;

    pthread_mutex_lock(&nu__vm_pool.lock);
    count = nu__vm_pool.count;
    pthread_mutex_unlock(&nu__vm_pool.lock);
    return count;
}

/* Bind the workspace onto the pooled guest's share/ws. */
static int nu__vm_attach(nu__vm_t *vm, const char *workspace, nu_err_t *err)
{
    char path[160];

    snprintf(path, sizeof path, "%s/ws", vm->share);
    if (mount(workspace, path, NULL, MS_BIND | MS_REC, NULL) != 0)
        return nu_err_errno(err, errno, "vm: cannot bind the workspace %s "
                            "into a pooled guest's share", workspace);
    vm->attached = true;
    snprintf(vm->workspace, sizeof vm->workspace, "%s", workspace);
    return NU_OK;
}

/* --- creation --------------------------------------------------------- */

static int nu__vm_image_dir(const char *isolation, char *out, size_t size,
                            nu_err_t *err)
{
    char path[4200];
    int rc;

    if (isolation[2] == ':' && isolation[3] != '\0')
        snprintf(out, size, "%s", isolation + 3);
    else if ((rc = nu_vm_image_default_dir(out, size, err)) < 0)
        return rc;

    snprintf(path, sizeof path, "%s/" NU_VM_INITRAMFS_FILE, out);
    if (access(path, R_OK) != 0)
        return nu_err_set(err, NU_ENOENT, "vm: cannot find the guest image "
                          "%s (run 'nucleus vm image build --out %s')", path,
                          out);
    return NU_OK;
}

/* Send opts->env (credentials included) to the agent as the commands'
 * base environment.  It travels over the serial port, never on the
 * kernel command line. */
static int nu__vm_send_env(nu_sandbox_t *sb, const char *const *env,
                           nu_err_t *err)
{
    json_t *request = json_pack("{s:s,s:[]}", "tool", "_set_env", "env");
    json_t *list = json_object_get(request, "env");
    nu_frame_t response = { 0 };
    int rc;

    for (size_t i = 0; list != NULL && env[i] != NULL; i++)
        json_array_append_new(list, json_string(env[i]));
    if (list == NULL) {
        json_decref(request);
        return nu_err_set(err, NU_ENOMEM, "vm: out of memory");
    }
    rc = nu_sandbox_call(sb, request, NULL, 0, NULL, NULL, &response, err);
    json_decref(request);
    if (rc == NU_OK && !json_is_true(json_object_get(response.json, "ok"))) {
        const char *detail = json_string_value(json_object_get(response.json,
                                                               "error"));
        rc = nu_err_set(err, NU_ESANDBOX, "vm: cannot set the pod's "
                        "environment: %s", detail != NULL ? detail :
                        "no detail from the agent");
    }
    nu_frame_free(&response);
    return rc;
}

static atomic_uint nu__vm_seq;

int nu__vm_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                  nu_err_t *err)
{
    char image_dir[4096], workspace[PATH_MAX], id[96];
    struct stat st;
    nu__vm_t *vm;
    bool kvm;
    int rc;

    *out = NULL;
    nu__vm_sweep();
    if (opts->workspace == NULL || realpath(opts->workspace, workspace) ==
        NULL || stat(workspace, &st) != 0 || !S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: workspace "
                          "'%s' is not a directory", opts->workspace != NULL
                          ? opts->workspace : "(missing)");
    if (strchr(workspace, ',') != NULL)
        return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: workspace "
                          "'%s' contains ',', which QEMU's -fsdev option "
                          "cannot take; rename the directory", workspace);
    rc = nu__vm_image_dir(opts->isolation, image_dir, sizeof image_dir, err);
    if (rc < 0)
        return rc;

    kvm = nu__vm_accel(opts, image_dir);
    /* Pooled guests have no network device, so pods with egress boot. */
    vm = opts->network ? NULL : nu__vm_pool_take(opts, image_dir, kvm);
    if (vm != NULL) {
        rc = nu__vm_attach(vm, workspace, err);
    } else {
        vm = nu__vm_new(image_dir, workspace, err);
        if (vm == NULL)
            return NU_ENOMEM;
        rc = nu__vm_boot(vm, opts, kvm, kvm ? NU__VM_BOOT_KVM_MS :
                         NU__VM_BOOT_TCG_MS, err);
    }
    if (rc < 0)
        goto fail;

    snprintf(id, sizeof id, "vm.%ld.%u", (long)getpid(),
             atomic_fetch_add(&nu__vm_seq, 1));
    rc = nu__sandbox_adopt(opts, id, vm->serial_fd, vm->pid, vm->pidfd,
                           nu__vm_release, vm, out, err);
    if (rc < 0)
        goto fail;
    if (opts->env != NULL) {
        rc = nu__vm_send_env(*out, opts->env, err);
        if (rc < 0) {
            nu_sandbox_close(*out);
            *out = NULL;
            return rc;
        }
    }
    nu_log(NU_LOG_DEBUG, "vm", "pod %s started, QEMU pid %ld, %s%s", id,
           (long)vm->pid, kvm ? "KVM" : "TCG", vm->pooled ? ", warm" : "");
    return NU_OK;

fail:
    nu__vm_free(vm);
    return rc;
}
