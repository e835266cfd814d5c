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
 * console.log in the pod's run directory.  Only a pod with egress gets a
 * network device.
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
 *   2. clone QEMU with PR_SET_PDEATHSIG(SIGKILL) (so no QEMU outlives the
 *      thread that created the pod), in new mount, PID, network, IPC and
 *      UTS namespaces, with a root that shows only what QEMU needs (see
 *      "QEMU's root" below) and -sandbox on (QEMU's own seccomp filter);
 *   3. finish the QMP handshake (qmp_capabilities);
 *   4. wait for the agent's ready line on the console, then hand the
 *      stream to nu__sandbox_adopt, which exchanges hello frames;
 *   5. queue the pod's environment and a host entropy seed without
 *      waiting for the reply (nu__vm_queue_env).
 * nu_sandbox_close then works as for any pod: closing the stream makes
 * the agent power off, and the reap kills QEMU.  The release hook closes
 * QMP and removes the run directory.  The warm pool (sandbox_vm_pool.c)
 * runs steps 2 to 4 ahead of time, so acquiring a pooled guest leaves
 * only step 5 and host-side work.
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
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

#define NU__VM_PROBE_MS 8000

/* Maximum environment entries of a pod (the agent's _set_env limit). */
#define NU__VM_MAX_ENV 256

/* Bytes of host entropy sent with the environment. */
#define NU__VM_SEED_BYTES 64

/* Paths of each part inside QEMU's root (see "QEMU's root" below). */
#define NU__VM_ROOT_IMAGE "/image"
#define NU__VM_ROOT_RUN "/run"
#define NU__VM_ROOT_WORKSPACE "/workspace"
#define NU__VM_QMP_MS 5000

static int64_t nu__vm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- run directory and cleanup ----------------------------------------
 *
 * Run directories are RUN_BASE/PID.XXXXXX, where RUN_BASE is
 * NU__VM_RUN_BASE_ROOT (for root) or /tmp/nucleus-vm-UID, a directory of
 * mode 0700 owned by the caller.  No other user can plant entries there,
 * and the sweep still checks each entry's owner and mode and unmounts
 * with UMOUNT_NOFOLLOW.
 */

#define NU__VM_RUN_BASE_ROOT "/run/nucleus/vm"

/* Create dir (mode 0700, or 0755 when shared) unless it exists, then
 * check that it is a real directory owned by the caller that no other
 * user can write to. */
int nu__vm_private_dir(const char *dir, bool shared, nu_err_t *err)
{
    struct stat st;
    int fd;
    int rc = NU_OK;

    if (mkdir(dir, shared ? 0755 : 0700) != 0 && errno != EEXIST)
        return nu_err_errno(err, errno, "vm: cannot create %s", dir);
    fd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
        rc = nu_err_errno(err, errno, "vm: cannot open %s", dir);
    else if (st.st_uid != geteuid() ||
             (st.st_mode & (shared ? 022 : 077)) != 0)
        rc = nu_err_set(err, NU_EPERM, "vm: cannot use %s: it must be "
                        "owned by uid %ld with mode %s (remove it)", dir,
                        (long)geteuid(), shared ? "0755" : "0700");
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Create the run directories' base (see above) and write it into out. */
static int nu__vm_run_base(char *out, size_t size, nu_err_t *err)
{
    int rc;

    if (geteuid() == 0) {
        rc = nu__vm_private_dir("/run/nucleus", true, err);
        snprintf(out, size, NU__VM_RUN_BASE_ROOT);
    } else {
        rc = NU_OK;
        snprintf(out, size, "/tmp/nucleus-vm-%ld", (long)geteuid());
    }
    return rc == NU_OK ? nu__vm_private_dir(out, false, err) : rc;
}

/* Remove what a run directory may contain.  Every path is below the
 * caller's private run base, and the unmounts do not follow a symbolic
 * link that a guest could have left in its share. */
static void nu__vm_remove_run_dir(nu__vm_t *vm)
{
    static const char *const files[] = { "console.log", "qemu.log", "empty",
                                         NULL };
    char path[160];

    if (vm->run_dir[0] == '\0')
        return;
    snprintf(path, sizeof path, "%s/share/ws", vm->run_dir);
    /* a pooled VM's workspace and its masks, if attached */
    umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
    rmdir(path);
    snprintf(path, sizeof path, "%s/share/" NU__VM_POOL_MARKER, vm->run_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/share", vm->run_dir);
    /* the shared bind mount of a pooled VM */
    umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
    rmdir(path);
    snprintf(path, sizeof path, "%s/root", vm->run_dir);
    rmdir(path);
    for (size_t i = 0; files[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s/%s", vm->run_dir, files[i]);
        unlink(path);
    }
    rmdir(vm->run_dir);
    vm->run_dir[0] = '\0';
}

/* Remove the run directories of owners that died without
 * nu_sandbox_close (their QEMU died with them): entries "PID.XXXXXX" of
 * the run base that are directories of mode 0700 owned by the caller and
 * whose PID no longer runs. */
static void nu__vm_sweep(void)
{
    char base[64];
    nu_err_t err;
    DIR *dir;
    struct dirent *e;
    int fd;

    /* The base is at most 32 bytes long, which run_dir's size assumes. */
    if (nu__vm_run_base(base, sizeof base, &err) < 0)
        return;  /* nu__vm_new reports it */
    fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(dir)) != NULL) {
        nu__vm_t stale;
        struct stat st;
        char *end;
        long owner = strtol(e->d_name, &end, 10);

        if (owner <= 0 || *end != '.' || strlen(e->d_name) > 24 ||
            owner == (long)getpid() || kill((pid_t)owner, 0) == 0 ||
            errno != ESRCH)
            continue;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 07777) != 0700)
            continue;
        snprintf(stale.run_dir, sizeof stale.run_dir, "%.32s/%.24s", base,
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

void nu__vm_free(nu__vm_t *vm)
{
    if (vm == NULL)
        return;
    nu__vm_stop(vm);
    if (vm->alive_fd >= 0)
        close(vm->alive_fd);
    if (vm->qmp_fd >= 0)
        close(vm->qmp_fd);
    if (vm->serial_fd >= 0)
        close(vm->serial_fd);
    nu__vm_remove_run_dir(vm);
    free(vm);
}

void nu__vm_release(void *data)
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
 * MiB, at least 128 MiB), vCPUs from its CPU bandwidth (default 1).  The
 * file-size and process limits go on the kernel command line
 * (nucleus.fsize, nucleus.pids), where the agent reads them. */
static void nu__vm_build_argv(nu__vm_t *vm, const nu_sandbox_opts_t *opts,
                              bool kvm)
{
    uint64_t mib = opts->limits.memory_bytes != 0
                 ? opts->limits.memory_bytes >> 20 : 512;
    unsigned cpus = opts->limits.cpu_millis != 0
                  ? (opts->limits.cpu_millis + 999) / 1000 : 1;
    /* The guest agent applies these to every command; 0 selects the
     * defaults that nu_sandbox_limits_t documents. */
    uint64_t fsize = opts->limits.file_size_bytes != 0
                   ? opts->limits.file_size_bytes : 4ULL << 30;
    unsigned pids = opts->limits.pids != 0 ? opts->limits.pids : 1024;
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
    NU__ADD(NU__VM_ROOT_IMAGE "/" NU_VM_KERNEL_FILE);
    NU__ADD("-initrd");
    NU__ADD(NU__VM_ROOT_IMAGE "/" NU_VM_INITRAMFS_FILE);
    /* Without a calibrated TSC the TCG guest waits forever for a timer;
     * tsc_early_khz gives it one.  Nothing secret goes on this line. */
    NU__ADD("-append");
    NU__ADD(nu__vm_arg(vm, 6, "console=ttyS0 quiet panic=-1 reboot=t "
                       "tsc_early_khz=2000000 no_timer_check "
                       "nucleus.fsize=%llu nucleus.pids=%u%s",
                       (unsigned long long)fsize, pids,
                       opts->network ? NU__VM_NET_CMDLINE : ""));
    NU__ADD("-serial");
    NU__ADD("file:" NU__VM_ROOT_RUN "/console.log");
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
    /* QEMU's root binds the workspace (or a pooled VM's share) at a fixed
     * path, so a ',' in the host path cannot reach QEMU's option parser.
     * security_model=none keeps host symlinks and modes as they are
     * (mapped-xattr would turn symlinks into files);
     * sandbox_vm_seccomp.c stops set-user-ID files and device nodes. */
    NU__ADD("local,id=workspace,path=" NU__VM_ROOT_WORKSPACE
            ",security_model=none");
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

/* --- QEMU's root -------------------------------------------------------
 *
 * QEMU runs in new mount and PID namespaces.  Its root is a read-only
 * tmpfs that contains only:
 *   /usr          read-only: QEMU's binary, libraries and firmware, with
 *                 /bin, /sbin, /lib and /lib64 copied as the host has them
 *                 (symbolic links into /usr on a merged-/usr system);
 *   /image        read-only: the kernel and initramfs;
 *   /run          the pod's run directory (console.log is written there);
 *   /workspace    the 9p share: the pod's workspace, or a pooled VM's
 *                 share directory;
 *   /dev/null, /dev/urandom, and /dev/kvm when KVM is used;
 *   /proc         read-only, of QEMU's own PID namespace, and with
 *                 subset=pid, so without /proc/sys and the other global
 *                 files.  The 9p server changes modes through
 *                 /proc/self/fd/N.
 * A NUCLEUS_QEMU binary outside /usr is bound at /qemu.  The old root is
 * detached after pivot_root, so no other host path can be reached by a
 * name.  Every mount is a slave of the host's mounts, so a workspace that
 * the pool binds onto a pooled VM's share later propagates into QEMU's
 * view (nu__vm_pool_acquire).
 */

static int nu__vm_root_add(nu__vm_t *vm, nu__vm_root_kind_t kind,
                           const char *source, const char *target,
                           bool read_only, nu_err_t *err)
{
    nu__vm_root_entry_t *e;

    if (vm->nentries == NU__VM_ROOT_MAX)
        return nu_err_set(err, NU_ELIMIT, "vm: cannot start QEMU: more "
                          "than %d entries in its root", NU__VM_ROOT_MAX);
    e = &vm->entries[vm->nentries++];
    e->kind = kind;
    e->read_only = read_only;
    e->recursive = false;
    snprintf(e->source, sizeof e->source, "%s", source);
    snprintf(e->target, sizeof e->target, "%s", target);
    return NU_OK;
}

/* Find the QEMU binary (an absolute path, or a name on PATH) and choose
 * how QEMU's root shows it. */
static int nu__vm_root_qemu(nu__vm_t *vm, nu_err_t *err)
{
    const char *name = nu__vm_qemu_binary();
    const char *path = getenv("PATH");
    char found[PATH_MAX] = "";
    char real[PATH_MAX];

    if (strchr(name, '/') != NULL)
        snprintf(found, sizeof found, "%s", name);
    while (found[0] == '\0' && path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        int len = end != NULL ? (int)(end - path) : (int)strlen(path);

        snprintf(found, sizeof found, "%.*s/%s", len, path, name);
        if (len == 0 || access(found, X_OK) != 0)
            found[0] = '\0';
        path = end != NULL ? end + 1 : NULL;
    }
    if (found[0] == '\0')
        return nu_err_set(err, NU_ENOENT, "vm: cannot find the QEMU binary "
                          "'%s' on PATH (install qemu-system-x86 or set "
                          "NUCLEUS_QEMU)", name);
    if (realpath(found, real) == NULL || access(real, X_OK) != 0)
        return nu_err_errno(err, errno, "vm: cannot execute the QEMU binary "
                            "'%s' (install qemu-system-x86 or set "
                            "NUCLEUS_QEMU)", found);

    if (strncmp(real, "/usr/", 5) == 0) {
        snprintf(vm->qemu_path, sizeof vm->qemu_path, "%s", real);
        return NU_OK;
    }
    /* NOTE: such a binary still finds its libraries only in /usr. */
    snprintf(vm->qemu_path, sizeof vm->qemu_path, "/qemu");
    return nu__vm_root_add(vm, NU__VM_ROOT_BIND_FILE, real, "qemu", true,
                           err);
}

/* Fill vm->entries and vm->qemu_path, before the clone. */
static int nu__vm_plan_root(nu__vm_t *vm, bool kvm, nu_err_t *err)
{
    static const char *const top[] = { "bin", "sbin", "lib", "lib64", NULL };
    int rc;

    vm->nentries = 0;
    rc = nu__vm_root_add(vm, NU__VM_ROOT_MKDIR, "", "dev", false, err);
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_PROC, "", "proc", true, err);
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_DIR, "/usr", "usr", true,
                             err);
    for (size_t i = 0; rc == NU_OK && top[i] != NULL; i++) {
        char host[16], link[PATH_MAX];
        struct stat st;
        ssize_t n;

        snprintf(host, sizeof host, "/%s", top[i]);
        if (lstat(host, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_DIR, host, top[i], true,
                                 err);
            continue;
        }
        n = readlink(host, link, sizeof link - 1);
        if (!S_ISLNK(st.st_mode) || n <= 0)
            continue;
        link[n] = '\0';
        rc = nu__vm_root_add(vm, NU__VM_ROOT_SYMLINK, link, top[i], false,
                             err);
    }
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_DIR, vm->image_dir,
                             NU__VM_ROOT_IMAGE + 1, true, err);
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_DIR, vm->run_dir,
                             NU__VM_ROOT_RUN + 1, false, err);
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_DIR, vm->pooled ? vm->share
                             : vm->workspace, NU__VM_ROOT_WORKSPACE + 1,
                             false, err);
    if (rc == NU_OK)  /* the workspace's own submounts come along */
        vm->entries[vm->nentries - 1].recursive = true;
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_FILE, "/dev/null",
                             "dev/null", false, err);
    if (rc == NU_OK)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_FILE, "/dev/urandom",
                             "dev/urandom", false, err);
    if (rc == NU_OK && kvm)
        rc = nu__vm_root_add(vm, NU__VM_ROOT_BIND_FILE, "/dev/kvm",
                             "dev/kvm", false, err);
    if (rc == NU_OK)
        rc = nu__vm_root_qemu(vm, err);
    return rc;
}

/* The child's steps below make system calls only: the owner may be
 * multi-threaded, so nothing between clone and exec may allocate. */
static int nu__vm_child_write(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t len = (ssize_t)strlen(text);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, (size_t)len);
    close(fd);
    return n == len ? 0 : -1;
}

static int nu__vm_child_entry(const nu__vm_root_entry_t *e)
{
    unsigned long flags = MS_BIND | (e->recursive ? MS_REC : 0);
    int fd;

    switch (e->kind) {
    case NU__VM_ROOT_MKDIR:
        return mkdir(e->target, 0755);
    case NU__VM_ROOT_PROC:
        if (mkdir(e->target, 0555) != 0)
            return -1;
        return mount("proc", e->target, "proc", MS_NOSUID | MS_NODEV |
                     MS_NOEXEC | MS_RDONLY, "subset=pid");
    case NU__VM_ROOT_SYMLINK:
        return symlink(e->source, e->target);
    case NU__VM_ROOT_BIND_FILE:
        fd = open(e->target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        close(fd);
        break;
    case NU__VM_ROOT_BIND_DIR:
        if (mkdir(e->target, 0755) != 0)
            return -1;
        break;
    }
    if (mount(e->source, e->target, NULL, flags, NULL) != 0)
        return -1;
    if (e->read_only &&
        mount(NULL, e->target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
              MS_NOSUID | MS_NODEV, NULL) != 0)
        return -1;
    return 0;
}

/* Build QEMU's root (see above) and pivot into it.  *step (OUT) names
 * the step that failed. */
static int nu__vm_child_root(const nu__vm_t *vm, const char **step)
{
    *step = "cannot make the mounts slaves of the host's";
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0)
        return -1;
    *step = "cannot mount the root tmpfs";
    if (mount("tmpfs", vm->root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=64k") != 0 || chdir(vm->root) != 0)
        return -1;
    *step = "cannot bind a path into the root";
    for (size_t i = 0; i < vm->nentries; i++)
        if (nu__vm_child_entry(&vm->entries[i]) != 0)
            return -1;
    *step = "cannot pivot into the root";
    if (syscall(SYS_pivot_root, ".", ".") != 0 ||
        umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        return -1;
    *step = "cannot make the root read-only";
    return mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
                 MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* --- starting QEMU ---------------------------------------------------- */

static void __attribute__((noreturn))
nu__vm_child_fail(int log_fd, const char *step)
{
    static const char prefix[] = "vm: cannot start QEMU: ";
    /* The errno value is left out: strerror is not async-signal-safe. */
    if (write(log_fd, prefix, sizeof prefix - 1) > 0 &&
        write(log_fd, step, strlen(step)) > 0)
        (void)!write(log_fd, "\n", 1);
    _exit(126);
}

/* Lay a cold boot's masks on /workspace of QEMU's root, so that the 9p
 * server never reads a blocked path (sandbox_vm_masks.c).  A pooled VM
 * gets them at acquisition instead. */
static void nu__vm_child_masks(const nu__vm_t *vm, int log_fd)
{
    static const char prefix[] = "vm: cannot start QEMU: cannot cover the "
                                 "blocked or write-blocked path ";
    const char *failed = NULL;
    int ws_fd = open(NU__VM_ROOT_WORKSPACE, O_PATH | O_DIRECTORY |
                     O_NOFOLLOW | O_CLOEXEC);
    int empty_fd = open(NU__VM_ROOT_RUN "/empty", O_PATH | O_NOFOLLOW |
                        O_CLOEXEC);

    if (ws_fd < 0 || empty_fd < 0)
        nu__vm_child_fail(log_fd, "cannot open /workspace or /run/empty "
                          "for the masks");
    if (nu__vm_lay_masks(ws_fd, empty_fd, vm->block_paths,
                         vm->write_block_paths, &failed) != 0) {
        if (write(log_fd, prefix, sizeof prefix - 1) > 0 && failed != NULL)
            (void)!write(log_fd, failed, strlen(failed));
        (void)!write(log_fd, "\n", 1);
        _exit(126);
    }
    close(ws_fd);
    close(empty_fd);
}

/* The child of clone, PID 1 of QEMU's PID namespace.  alive is the read
 * end of a pipe whose write end only the owner holds: end of file there
 * means the owner died before PR_SET_PDEATHSIG took effect. */
static void __attribute__((noreturn))
nu__vm_child(nu__vm_t *vm, int alive, int serial, int qmp, int log_fd)
{
    static char *const envp[] = { "PATH=/usr/bin:/bin", NULL };
    struct sock_fprog prog = {
        .len = (unsigned short)vm->seccomp_count,
        .filter = (struct sock_filter *)vm->seccomp_code,
    };
    struct pollfd p = { .fd = alive, .events = POLLIN };
    const char *step = "";
    int null_fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(vm->alive_fd);
    if (poll(&p, 1, 0) != 0)
        _exit(125);

    if (vm->uid_map[0] != '\0' &&
        (nu__vm_child_write("/proc/self/setgroups", "deny") != 0 ||
         nu__vm_child_write("/proc/self/uid_map", vm->uid_map) != 0 ||
         nu__vm_child_write("/proc/self/gid_map", vm->gid_map) != 0))
        nu__vm_child_fail(log_fd, "cannot map the owner's user and group "
                          "IDs");
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nu__vm_child_root(vm, &step) != 0)
        nu__vm_child_fail(log_fd, step);
    if (!vm->pooled)
        nu__vm_child_masks(vm, log_fd);
    /* The pool boots replacements at the lowest priority; acquisition
     * raises every QEMU thread back to 0 (sandbox_vm_pool.c). */
    if (vm->pooled && setpriority(PRIO_PROCESS, 0, NU__VM_POOL_NICE) != 0)
        nu__vm_child_fail(log_fd, "cannot lower its priority");

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

    execve(vm->qemu_path, vm->argv, envp);
    _exit(127);
}

static int nu__vm_spawn(nu__vm_t *vm, bool kvm, nu_err_t *err)
{
    unsigned long flags = CLONE_PIDFD | CLONE_NEWNS | CLONE_NEWPID |
                          CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
    char log_path[160];
    int serial[2] = { -1, -1 };
    int qmp[2] = { -1, -1 };
    int alive[2] = { -1, -1 };
    int log_fd;
    int pidfd = -1;
    long pid;
    int rc = NU_OK;

    rc = nu__vm_seccomp_program(&vm->seccomp_code, &vm->seccomp_count, err);
    if (rc == NU_OK)
        rc = nu__vm_plan_root(vm, kvm, err);
    if (rc < 0)
        return rc;
    if (geteuid() != 0) {
        flags |= CLONE_NEWUSER;
        snprintf(vm->uid_map, sizeof vm->uid_map, "%ld %ld 1",
                 (long)geteuid(), (long)geteuid());
        snprintf(vm->gid_map, sizeof vm->gid_map, "%ld %ld 1",
                 (long)getegid(), (long)getegid());
    }
    snprintf(log_path, sizeof log_path, "%s/qemu.log", vm->run_dir);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return nu_err_errno(err, errno, "vm: cannot create %s", log_path);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, serial) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) != 0 ||
        pipe2(alive, O_CLOEXEC) != 0) {
        rc = nu_err_errno(err, errno, "vm: cannot create the pod's stream");
        goto out;
    }
    vm->alive_fd = alive[1];
    alive[1] = -1;

    pid = syscall(SYS_clone, flags, NULL, &pidfd, NULL, 0);
    if (pid == 0)
        nu__vm_child(vm, alive[0], serial[1], qmp[1], log_fd);
    if (pid < 0) {
        rc = nu_err_errno(err, errno, "vm: cannot start %s in new mount, "
                          "PID, network, IPC and UTS namespaces",
                          vm->qemu_path);
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
        if (alive[i] >= 0)
            close(alive[i]);
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

/* Write why the guest stopped into out, from the console log at path:
 * the kernel's panic line, because the last lines of a panic show only a
 * stack and an offset.  Else the agent's last "cannot" line, else the
 * last line. */
static void nu__vm_console_reason(const char *path, char *out, size_t size)
{
    static const char *const marks[] = { "Kernel panic - not syncing: ",
                                         "nucleus-agent: cannot ", NULL };
    char buf[16384];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    nu__vm_last_line(path, out, size);
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
    for (size_t i = 0; marks[i] != NULL; i++) {
        char *found = NULL;
        char *at = buf;

        while ((at = strstr(at, marks[i])) != NULL)
            found = at++;
        if (found == NULL)
            continue;
        found[strcspn(found, "\r\n")] = '\0';
        /* A longer line is cut to size: it only decorates an error. */
        if (snprintf(out, size, "%s", found) < 0)
            out[0] = '\0';
        return;
    }
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
        if (rc == NU_OK && strstr(line, "\"return\"") != NULL) {
            /* QEMU runs, so its child passed the owner check. */
            close(vm->alive_fd);
            vm->alive_fd = -1;
            return NU_OK;
        }
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
            nu__vm_console_reason(vm->console, last, sizeof last);
            return nu_err_set(err, NU_ESANDBOX, "vm: QEMU exited before the "
                              "guest agent was ready (console: %s)", last);
        }
    }
    if (fd >= 0)
        close(fd);
    return nu_err_set(err, NU_ETIMEDOUT, "vm: the guest agent was not ready "
                      "within %d ms", timeout_ms);
}

int nu__vm_boot(nu__vm_t *vm, const nu_sandbox_opts_t *opts, bool kvm,
                int timeout_ms, nu_err_t *err)
{
    int rc;

    nu__vm_build_argv(vm, opts, kvm);
    rc = nu__vm_spawn(vm, kvm, err);
    if (rc == NU_OK)
        rc = nu__vm_qmp_start(vm, err);
    if (rc == NU_OK)
        rc = nu__vm_wait_ready(vm, timeout_ms, err);
    return rc;
}

nu__vm_t *nu__vm_new(const char *image_dir, const char *workspace,
                     nu_err_t *err)
{
    nu__vm_t *vm = calloc(1, sizeof *vm);
    char base[64];
    int fd;

    if (vm == NULL) {
        nu_err_set(err, NU_ENOMEM, "vm: out of memory");
        return NULL;
    }
    vm->qmp_fd = vm->serial_fd = vm->pidfd = vm->alive_fd = -1;
    snprintf(vm->image_dir, sizeof vm->image_dir, "%s", image_dir);
    snprintf(vm->workspace, sizeof vm->workspace, "%s", workspace);
    if (nu__vm_run_base(base, sizeof base, err) < 0) {
        nu__vm_free(vm);
        return NULL;
    }
    snprintf(vm->run_dir, sizeof vm->run_dir, "%.32s/%ld.XXXXXX", base,
             (long)getpid());
    if (mkdtemp(vm->run_dir) == NULL) {
        nu_err_errno(err, errno, "vm: cannot create a run directory in %s",
                     base);
        vm->run_dir[0] = '\0';
        nu__vm_free(vm);
        return NULL;
    }
    snprintf(vm->empty, sizeof vm->empty, "%s/empty", vm->run_dir);
    fd = open(vm->empty, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) {
        nu_err_errno(err, errno, "vm: cannot create %s", vm->empty);
        nu__vm_free(vm);
        return NULL;
    }
    close(fd);
    snprintf(vm->console, sizeof vm->console, "%s/console.log", vm->run_dir);
    snprintf(vm->root, sizeof vm->root, "%s/root", vm->run_dir);
    if (mkdir(vm->root, 0700) != 0) {
        nu_err_errno(err, errno, "vm: cannot create %s", vm->root);
        nu__vm_free(vm);
        return NULL;
    }
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

/* --- creation --------------------------------------------------------- */

/* Check NUCLEUS_VM_ACCEL.  An unset or empty value probes for KVM, and
 * any other value must name the accelerator. */
static int nu__vm_check_accel(nu_err_t *err)
{
    const char *env = getenv("NUCLEUS_VM_ACCEL");

    if (env == NULL || env[0] == '\0' || strcmp(env, "kvm") == 0 ||
        strcmp(env, "tcg") == 0)
        return NU_OK;
    return nu_err_set(err, NU_EINVAL, "vm: invalid NUCLEUS_VM_ACCEL '%s': "
                      "it must be kvm or tcg (or unset to probe for KVM)",
                      env);
}

/* Write the image directory of "vm" (the default) or "vm:DIR" into out
 * and check that its files match the SHA-256 values of its image.json. */
static int nu__vm_image_dir(const char *isolation, char *out, size_t size,
                            nu_err_t *err)
{
    char path[4200];
    int rc;

    if (isolation[2] == ':' && isolation[3] == '\0')
        return nu_err_set(err, NU_EINVAL, "vm: invalid isolation 'vm:': "
                          "give an image directory after the colon, or use "
                          "'vm' for the default image");
    if (isolation[2] == ':')
        snprintf(out, size, "%s", isolation + 3);
    else if ((rc = nu_vm_image_default_dir(out, size, err)) < 0)
        return rc;

    snprintf(path, sizeof path, "%s/" NU_VM_INITRAMFS_FILE, out);
    if (access(path, R_OK) != 0)
        return nu_err_set(err, NU_ENOENT, "vm: cannot find the guest image "
                          "%s (run 'nucleus vm image build --out %s')", path,
                          out);
    return nu__vm_image_verify(out, err);
}

/* The environment a pod gets when nu_sandbox_opts_t.env is NULL, as
 * documented there (the same as sandbox.c's for namespace pods). */
static const char *const nu__vm_default_env[] = {
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME=/workspace", "LANG=C.UTF-8", "TERM=dumb", NULL
};

/* Check env against the agent's rules for _set_env, so that a bad entry
 * fails the creation here instead of the pod's first request.  The
 * message names the entry's index, never its value, which may be a
 * credential. */
static int nu__vm_check_env(const char *const *env, nu_err_t *err)
{
    size_t i;

    for (i = 0; env != NULL && env[i] != NULL; i++) {
        if (i == NU__VM_MAX_ENV)
            return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: more "
                              "than %d environment entries", NU__VM_MAX_ENV);
        if (env[i][0] == '=' || strchr(env[i], '=') == NULL)
            return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: "
                              "environment entry %zu is not NAME=value", i);
    }
    return NU_OK;
}

/* The environment (credentials included) travels over the serial port,
 * never on the kernel command line.  The seed is the only entropy a
 * pooled guest gets after its boot. */
int nu__vm_queue_env(nu_sandbox_t *sb, const char *const *env,
                     nu_err_t *err)
{
    json_t *request = json_pack("{s:s,s:[]}", "tool", "_set_env", "env");
    json_t *list = json_object_get(request, "env");
    unsigned char seed[NU__VM_SEED_BYTES];
    size_t got = 0;
    int rc;

    if (env == NULL)
        env = nu__vm_default_env;
    for (size_t i = 0; list != NULL && env[i] != NULL; i++)
        if (json_array_append_new(list, json_string(env[i])) != 0)
            list = NULL;
    if (list == NULL) {
        json_decref(request);
        return nu_err_set(err, NU_ENOMEM, "vm: out of memory");
    }
    while (got < sizeof seed) {
        ssize_t n = getrandom(seed + got, sizeof seed - got, 0);

        if (n < 0 && errno != EINTR) {
            json_decref(request);
            return nu_err_errno(err, errno, "vm: cannot read host entropy "
                                "for the guest");
        }
        if (n > 0)
            got += (size_t)n;
    }
    rc = nu__sandbox_send_ahead(sb, request, seed, sizeof seed, err);
    explicit_bzero(seed, sizeof seed);
    json_decref(request);
    return rc;
}

static atomic_uint nu__vm_seq;

void nu__vm_pod_id(char *out, size_t size)
{
    snprintf(out, size, "vm.%ld.%u", (long)getpid(),
             atomic_fetch_add(&nu__vm_seq, 1));
}

/* A cold boot: steps 1 to 4 and the hello. */
static int nu__vm_create_cold(const nu_sandbox_opts_t *opts,
                              const char *image_dir, const char *workspace,
                              bool kvm, nu_sandbox_t **out, nu_err_t *err)
{
    char id[96];
    nu__vm_t *vm = nu__vm_new(image_dir, workspace, err);
    int rc;

    if (vm == NULL)
        return err->code;
    vm->block_paths = opts->block_paths;
    vm->write_block_paths = opts->write_block_paths;
    rc = nu__vm_boot(vm, opts, kvm, kvm ? NU__VM_BOOT_KVM_MS :
                     NU__VM_BOOT_TCG_MS, err);
    if (rc == NU_OK) {
        nu__vm_pod_id(id, sizeof id);
        rc = nu__sandbox_adopt(opts, id, vm->serial_fd, vm->pid, vm->pidfd,
                               nu__vm_release, vm, out, err);
    }
    if (rc < 0)
        nu__vm_free(vm);
    return rc;
}

int nu__vm_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                  nu_err_t *err)
{
    char image_dir[4096], workspace[PATH_MAX];
    struct stat st;
    bool warm = false;
    bool kvm;
    int rc;

    *out = NULL;
    nu__vm_sweep();
    if (opts->workspace == NULL || realpath(opts->workspace, workspace) ==
        NULL || stat(workspace, &st) != 0 || !S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: workspace "
                          "'%s' is not a directory", opts->workspace != NULL
                          ? opts->workspace : "(missing)");
    rc = nu__vm_check_env(opts->env, err);
    if (rc == NU_OK)
        rc = nu__vm_check_masks(opts, err);
    if (rc == NU_OK)
        rc = nu__vm_check_accel(err);
    if (rc == NU_OK)
        rc = nu__vm_image_dir(opts->isolation, image_dir, sizeof image_dir,
                              err);
    if (rc < 0)
        return rc;

    kvm = nu__vm_accel(opts, image_dir);
    /* Pooled guests have no network device, so pods with egress boot. */
    rc = opts->network ? NU_ENOENT
       : nu__vm_pool_acquire(opts, image_dir, workspace, kvm, out, err);
    if (rc == NU_OK)
        warm = true;
    else if (rc == NU_ENOENT)
        rc = nu__vm_create_cold(opts, image_dir, workspace, kvm, out, err);
    if (rc == NU_OK && !warm)
        rc = nu__vm_queue_env(*out, opts->env, err);
    if (rc < 0) {
        nu_sandbox_close(*out);
        *out = NULL;
        return rc;
    }
    nu_log(NU_LOG_DEBUG, "vm", "pod %s started, QEMU pid %ld, %s%s",
           nu_sandbox_id(*out), (long)nu_sandbox_pid(*out),
           kvm ? "KVM" : "TCG", warm ? ", warm" : "");
    return NU_OK;
}
