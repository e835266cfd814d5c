/*
 * sandbox_fc.c - the Firecracker driver of the "vm" isolation tier.
 *
 * Selected with isolation "firecracker" (or "firecracker:IMAGE_DIR").  A
 * pod is one Firecracker process booting the image of nucleus vm image
 * build (kernel and initramfs) with the guest agent as PID 1, the same
 * guest as the QEMU driver's (sandbox_vm.c).  Only the devices and the
 * transport differ:
 *
 *   - Configuration goes through Firecracker's REST API on a unix socket
 *     (sandbox_fc_api.c lists the calls and their bodies).
 *   - The host <-> agent stream is a vsock connection.  Firecracker
 *     exposes the guest's vsock on the host as a unix socket (uds_path):
 *     the host connects, sends "CONNECT 1024\n", reads "OK <port>\n" and
 *     then speaks the frame protocol of proto.h.  The kernel command line
 *     carries nucleus.transport=vsock, so the agent listens on AF_VSOCK
 *     port 1024 instead of opening a virtio serial port.  No ready line
 *     is needed: the handshake succeeds once the agent listens.
 *   - Entropy comes from Firecracker's virtio-rng device (PUT /entropy).
 *     The agent credits 64 bytes from it to the guest's pool before it
 *     listens, so the guest is seeded before the host's hello.
 *   - Workspace: Firecracker has no 9p or virtiofs device, so the host
 *     directory cannot be shared live.  The driver copies the workspace
 *     into an ext4 image (mke2fs -d) in the run directory and attaches
 *     it read-only as the drive "workspace".  The agent mounts it
 *     read-only at /workspace.  Reads, glob and grep see the workspace
 *     as it was at pod creation, and every write fails with EROFS.
 *     TODO: a read-write image copied back to the host on close.
 *   - Limits: memory from limits.memory_bytes (default 512 MiB, at least
 *     128 MiB), vCPUs from limits.cpu_millis rounded up (default 1, at
 *     most 32, Firecracker's maximum).  No network interface unless
 *     NUCLEUS_FIRECRACKER_TAP names an existing tap device; otherwise the
 *     process runs in a new, empty network namespace.
 *
 * With a jailer ($NUCLEUS_JAILER or "jailer" in $PATH) and root, the
 * driver starts Firecracker through it: jailer --id --exec-file --uid
 * --gid --chroot-base-dir, with the kernel, initramfs and workspace image
 * copied into the chroot, and the API and vsock sockets inside it.
 *
 * NOTE: Firecracker cannot be installed on the development host, so this
 * driver has run only against the recorded API fixtures of
 * tests/unit/test_sandbox_fc.c, never against a real Firecracker.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/log.h"
#include "nucleus/vm.h"
#include "sandbox_fc_internal.h"
#include "sandbox_vm_internal.h"
#include "sandbox_internal.h"

extern char **environ;

/* Time limits.  Firecracker needs KVM, so a boot takes seconds at most;
 * the boot limit leaves room for a loaded host. */
#define NU__FC_API_MS 5000
#define NU__FC_BOOT_MS 30000

/* File names inside the run directory or the jailer's chroot. */
#define NU__FC_API_FILE "api.socket"
#define NU__FC_VSOCK_FILE "vsock.socket"
#define NU__FC_IMAGE_FILE "workspace.ext4"

/* The user the jailer switches to when NUCLEUS_JAILER_UID and _GID are
 * not set: nobody / nogroup. */
#define NU__FC_JAIL_ID_DEFAULT 65534

typedef struct nu__fc {
    char run_dir[64];
    char root[PATH_MAX];        /* where Firecracker's files are */
    char api_socket[NU__FC_SOCKET_MAX];
    char vsock_socket[NU__FC_SOCKET_MAX];
    char log_path[PATH_MAX];
    char binary[PATH_MAX];
    char jailer[PATH_MAX];      /* "" = no jailer */
    char chroot_base[80];       /* RUN_DIR/jail, for the jailer's argv */
    char id[65];
    uid_t jail_uid;
    gid_t jail_gid;
    bool new_netns;
    pid_t pid;
    int pidfd;
    int stream_fd;
    char *argv[NU__FC_JAILER_ARGS];
    char numbers[2][16];
} nu__fc_t;

static int64_t nu__fc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- finding the binaries --------------------------------------------- */

/* Find name in $PATH (or use it as is when it has a '/'). */
static bool nu__fc_which(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    const char *p;

    if (strchr(name, '/') != NULL) {
        snprintf(out, size, "%s", name);
        return access(out, X_OK) == 0;
    }
    for (p = path != NULL ? path : "/usr/bin:/bin"; *p != '\0';) {
        size_t len = strcspn(p, ":");

        if (len > 0 && (size_t)snprintf(out, size, "%.*s/%s", (int)len, p,
                                        name) < size &&
            access(out, X_OK) == 0)
            return true;
        p += len;
        if (*p == ':')
            p++;
    }
    return false;
}

int nu__fc_find_binary(char *out, size_t size, nu_err_t *err)
{
    const char *env = getenv("NUCLEUS_FIRECRACKER");

    if (env != NULL && env[0] != '\0') {
        if (!nu__fc_which(env, out, size))
            return nu_err_set(err, NU_ENOENT, "sandbox: cannot start "
                              "firecracker: NUCLEUS_FIRECRACKER=%s is not an "
                              "executable file", env);
        return NU_OK;
    }
    if (!nu__fc_which("firecracker", out, size))
        return nu_err_set(err, NU_ENOENT, "sandbox: cannot start "
                          "firecracker: not found in PATH (install "
                          "Firecracker or set NUCLEUS_FIRECRACKER)");
    return NU_OK;
}

bool nu__fc_find_jailer(char *out, size_t size)
{
    const char *env = getenv("NUCLEUS_JAILER");

    return nu__fc_which(env != NULL && env[0] != '\0' ? env : "jailer", out,
                        size);
}

/* --- jailer ----------------------------------------------------------- */

static bool nu__fc_id_valid(const char *id)
{
    size_t len = strlen(id);

    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' &&
              id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
              id[i] == '-'))
            return false;
    return true;
}

int nu__fc_jailer_argv(const nu__fc_jail_t *jail, char **argv,
                       char buf[2][16], nu_err_t *err)
{
    size_t n = 0;

    if (!nu__fc_id_valid(jail->id))
        return nu_err_set(err, NU_EINVAL, "firecracker: invalid jailer id "
                          "'%s' (use 1 to 64 letters, digits and '-')",
                          jail->id);
    snprintf(buf[0], 16, "%u", (unsigned)jail->uid);
    snprintf(buf[1], 16, "%u", (unsigned)jail->gid);

#define NU__ADD(s) (argv[n++] = (char *)(s))
    NU__ADD(jail->jailer);
    NU__ADD("--id");
    NU__ADD(jail->id);
    NU__ADD("--exec-file");
    NU__ADD(jail->firecracker);
    NU__ADD("--uid");
    NU__ADD(buf[0]);
    NU__ADD("--gid");
    NU__ADD(buf[1]);
    NU__ADD("--chroot-base-dir");
    NU__ADD(jail->chroot_base);
    /* Arguments after "--" go to Firecracker, with paths in the chroot. */
    NU__ADD("--");
    NU__ADD("--api-sock");
    NU__ADD(jail->api_socket);
    NU__ADD(NULL);
#undef NU__ADD
    return NU_OK;
}

int nu__fc_jail_root(const nu__fc_jail_t *jail, char *out, size_t size,
                     nu_err_t *err)
{
    const char *base = strrchr(jail->firecracker, '/');

    base = base != NULL ? base + 1 : jail->firecracker;
    if ((size_t)snprintf(out, size, "%s/%s/%s/root", jail->chroot_base, base,
                         jail->id) >= size)
        return nu_err_set(err, NU_ERANGE, "firecracker: the jailer's chroot "
                          "path under %s is too long", jail->chroot_base);
    return NU_OK;
}

/* --- vsock handshake -------------------------------------------------- */

/* Read one line (up to '\n', which is dropped) byte by byte, so nothing
 * after it is consumed.  Returns its length, 0 at end of file, -1 on
 * error or timeout. */
static ssize_t nu__fc_read_line(int fd, char *line, size_t size,
                                int64_t deadline)
{
    size_t len = 0;

    while (len + 1 < size) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int64_t left = deadline - nu__fc_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        n = read(fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 && len == 0 ? 0 : -1;
        if (line[len] == '\n') {
            line[len] = '\0';
            return (ssize_t)len;
        }
        len++;
    }
    return -1;
}

/* One attempt: a connected socket, -1 to retry, or NU_EPROTO in *rc. */
static int nu__fc_vsock_try(const char *uds_path, unsigned port,
                            int64_t deadline, int *rc, nu_err_t *err)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char request[32];
    char line[64];
    ssize_t n;
    int fd;

    memcpy(addr.sun_path, uds_path, strlen(uds_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        goto retry;
    n = snprintf(request, sizeof request, "CONNECT %u\n", port);
    if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n)
        goto retry;
    /* Firecracker closes the connection while no guest process listens
     * on the port, which means "not yet". */
    n = nu__fc_read_line(fd, line, sizeof line, deadline);
    if (n <= 0)
        goto retry;
    if (strncmp(line, "OK ", 3) != 0) {
        *rc = nu_err_set(err, NU_EPROTO, "firecracker: cannot connect to "
                         "guest port %u through %s: expected \"OK <port>\", "
                         "got \"%s\"", port, uds_path, line);
        close(fd);
        return -1;
    }
    return fd;

retry:
    close(fd);
    return -1;
}

int nu__fc_vsock_connect(const char *uds_path, unsigned port, int pidfd,
                         int timeout_ms, nu_err_t *err)
{
    int64_t deadline = nu__fc_now_ms() + timeout_ms;

    if (strlen(uds_path) >= NU__FC_SOCKET_MAX)
        return nu_err_set(err, NU_EINVAL, "firecracker: cannot use vsock "
                          "socket %s: the path is longer than %d bytes",
                          uds_path, NU__FC_SOCKET_MAX - 1);
    for (;;) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int rc = NU_OK;
        int fd = nu__fc_vsock_try(uds_path, port, deadline, &rc, err);

        if (fd >= 0 || rc < 0)
            return fd >= 0 ? fd : rc;
        if (nu__fc_now_ms() >= deadline)
            return nu_err_set(err, NU_ETIMEDOUT, "firecracker: the guest "
                              "agent did not accept a connection on vsock "
                              "port %u within %d ms", port, timeout_ms);
        if (pidfd >= 0 && poll(&p, 1, 10) > 0)
            return nu_err_set(err, NU_ESANDBOX, "firecracker: the process "
                              "exited before the guest agent was ready");
        if (pidfd < 0)
            nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
    }
}

/* --- run directory ---------------------------------------------------- */

static int nu__fc_remove_entry(const char *path, const struct stat *st,
                               int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Remove the run directory and everything below it (the jailer's chroot
 * included); FTW_PHYS never follows a symbolic link out of it. */
static void nu__fc_remove_run_dir(nu__fc_t *fc)
{
    if (fc->run_dir[0] == '\0')
        return;
    nftw(fc->run_dir, nu__fc_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fc->run_dir[0] = '\0';
}

/* Run directories are BASE/PID.XXXXXX, where BASE is /run/nucleus/fc for
 * root and /tmp/nucleus-fc-UID otherwise: a directory of mode 0700 owned
 * by the caller, so no other user can plant entries for the sweep. */
static int nu__fc_run_base(char *out, size_t size, nu_err_t *err)
{
    int rc = NU_OK;

    if (geteuid() == 0) {
        rc = nu__vm_private_dir("/run/nucleus", true, err);
        snprintf(out, size, "/run/nucleus/fc");
    } else {
        snprintf(out, size, "/tmp/nucleus-fc-%ld", (long)geteuid());
    }
    return rc == NU_OK ? nu__vm_private_dir(out, false, err) : rc;
}

/* Remove the run directories of owners that died without
 * nu_sandbox_close; their Firecracker died with them
 * (PR_SET_PDEATHSIG).  Only directories of mode 0700 owned by the caller
 * are touched. */
static void nu__fc_sweep(void)
{
    char base[40];
    nu_err_t err;
    struct dirent *e;
    struct stat st;
    DIR *dir;
    int fd;

    if (nu__fc_run_base(base, sizeof base, &err) != NU_OK)
        return;  /* nu__fc_new reports it */
    fd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(dir)) != NULL) {
        nu__fc_t stale;
        char *end;
        long owner = strtol(e->d_name, &end, 10);

        if (owner <= 0 || *end != '.' || strlen(e->d_name) > 20 ||
            owner == (long)getpid() ||
            kill((pid_t)owner, 0) == 0 || errno != ESRCH)
            continue;
        if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 07777) != 0700)
            continue;
        snprintf(stale.run_dir, sizeof stale.run_dir, "%.39s/%.20s", base,
                 e->d_name);
        nu__fc_remove_run_dir(&stale);
    }
    closedir(dir);
}

static void nu__fc_stop(nu__fc_t *fc)
{
    siginfo_t info;

    if (fc->pidfd < 0)
        return;
    syscall(SYS_pidfd_send_signal, fc->pidfd, SIGKILL, NULL, 0);
    while (waitid((idtype_t)P_PIDFD, (id_t)fc->pidfd, &info, WEXITED) != 0 &&
           errno == EINTR)
        ;
    close(fc->pidfd);
    fc->pidfd = -1;
}

static void nu__fc_free(nu__fc_t *fc)
{
    if (fc == NULL)
        return;
    nu__fc_stop(fc);
    if (fc->stream_fd >= 0)
        close(fc->stream_fd);
    nu__fc_remove_run_dir(fc);
    free(fc);
}

/* The release hook of nu__sandbox_adopt: Firecracker is reaped already,
 * and the sandbox owns and closes the pidfd and the stream. */
static void nu__fc_release(void *data)
{
    nu__fc_t *fc = data;

    fc->pidfd = -1;
    fc->stream_fd = -1;
    nu__fc_free(fc);
}

static nu__fc_t *nu__fc_new(nu_err_t *err)
{
    nu__fc_t *fc = calloc(1, sizeof *fc);
    char base[40];

    if (fc == NULL) {
        nu_err_set(err, NU_ENOMEM, "firecracker: out of memory");
        return NULL;
    }
    fc->pidfd = fc->stream_fd = -1;
    if (nu__fc_run_base(base, sizeof base, err) != NU_OK) {
        nu__fc_free(fc);
        return NULL;
    }
    snprintf(fc->run_dir, sizeof fc->run_dir, "%s/%ld.XXXXXX", base,
             (long)getpid());
    if (mkdtemp(fc->run_dir) == NULL) {
        nu_err_errno(err, errno, "firecracker: cannot create a run "
                     "directory in %s", base);
        fc->run_dir[0] = '\0';
        nu__fc_free(fc);
        return NULL;
    }
    snprintf(fc->root, sizeof fc->root, "%s", fc->run_dir);
    snprintf(fc->log_path, sizeof fc->log_path, "%s/firecracker.log",
             fc->run_dir);
    return fc;
}

/* --- the workspace image ---------------------------------------------- */

static _Thread_local uint64_t nu__fc_tree_bytes;

static int nu__fc_count_entry(const char *path, const struct stat *st,
                              int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    /* Every file costs at least one 4 KiB block and an inode. */
    nu__fc_tree_bytes += ((uint64_t)st->st_size + 4095) / 4096 * 4096 + 256;
    return 0;
}

/* Run argv[0] (an absolute path) with stdout and stderr appended to
 * log_path and wait for it.  Returns its exit status, or -1. */
static int nu__fc_run(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int status = -1;
    int rc;

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path,
                                     O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Copy the workspace into a new ext4 image at path with mke2fs -d
 * (e2fsprogs 1.43 or later).  The image has room for twice the
 * workspace's size plus 64 MiB, because the guest may need to read
 * files the host adds no more. */
static int nu__fc_build_image(const char *workspace, const char *path,
                              const char *log_path, nu_err_t *err)
{
    char mke2fs[PATH_MAX], size[32];
    char *argv[16];
    size_t n = 0;
    int status;

    if (!nu__fc_which("/usr/sbin/mke2fs", mke2fs, sizeof mke2fs) &&
        !nu__fc_which("/sbin/mke2fs", mke2fs, sizeof mke2fs) &&
        !nu__fc_which("mke2fs", mke2fs, sizeof mke2fs))
        return nu_err_set(err, NU_ENOENT, "firecracker: cannot build the "
                          "workspace image: mke2fs not found (install "
                          "e2fsprogs)");
    nu__fc_tree_bytes = 0;
    if (nftw(workspace, nu__fc_count_entry, 16, FTW_PHYS) != 0)
        return nu_err_errno(err, errno, "firecracker: cannot read the "
                            "workspace %s", workspace);
    snprintf(size, sizeof size, "%lluM", (unsigned long long)
             (nu__fc_tree_bytes * 2 / (1024 * 1024) + 64));

    argv[n++] = mke2fs;
    argv[n++] = "-q";
    argv[n++] = "-F";
    argv[n++] = "-t";
    argv[n++] = "ext4";
    argv[n++] = "-L";
    argv[n++] = "workspace";
    argv[n++] = "-d";
    argv[n++] = (char *)workspace;
    argv[n++] = (char *)path;
    argv[n++] = size;
    argv[n++] = NULL;
    status = nu__fc_run(argv, log_path);
    if (status != 0)
        return nu_err_set(err, NU_EIO, "firecracker: cannot build the "
                          "workspace image %s: mke2fs exited with status %d "
                          "(see %s)", path, status, log_path);
    return NU_OK;
}

/* --- jailer chroot ---------------------------------------------------- */

static int nu__fc_copy_file(const char *src, const char *dst, uid_t uid,
                            gid_t gid, nu_err_t *err)
{
    char buf[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    ssize_t n;
    int rc = NU_OK;

    if (in < 0)
        return nu_err_errno(err, errno, "firecracker: cannot open %s", src);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (out < 0) {
        rc = nu_err_errno(err, errno, "firecracker: cannot create %s", dst);
        goto out;
    }
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || write(out, buf, (size_t)n) != n) {
            rc = nu_err_errno(err, errno, "firecracker: cannot copy %s to "
                              "%s", src, dst);
            goto out;
        }
    }
    if (fchown(out, uid, gid) != 0)
        rc = nu_err_errno(err, errno, "firecracker: cannot give %s to the "
                          "jailer's user %u", dst, (unsigned)uid);

out:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

static uid_t nu__fc_env_id(const char *name)
{
    const char *env = getenv(name);
    char *end;
    unsigned long value;

    if (env == NULL || env[0] == '\0')
        return NU__FC_JAIL_ID_DEFAULT;
    value = strtoul(env, &end, 10);
    return *end == '\0' && value > 0 && value < 0x7fffffff
         ? (uid_t)value : NU__FC_JAIL_ID_DEFAULT;
}

/* mkdir -p for the chroot path below the run directory. */
static int nu__fc_mkdirs(char *path, nu_err_t *err)
{
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            int rc = nu_err_errno(err, errno, "firecracker: cannot create "
                                  "%s", path);
            *p = '/';
            return rc;
        }
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return nu_err_errno(err, errno, "firecracker: cannot create %s",
                            path);
    return NU_OK;
}

/* Build the jailer's chroot before starting it (the jailer leaves an
 * existing directory as it is) and point cfg at the files inside. */
static int nu__fc_prepare_jail(nu__fc_t *fc, nu__fc_config_t *cfg,
                               const char *image_dir, nu_err_t *err)
{
    char src[PATH_MAX + 32], dst[PATH_MAX + 32];
    /* argv points into jail's strings, so they all live in fc. */
    nu__fc_jail_t jail = {
        .jailer = fc->jailer, .firecracker = fc->binary, .id = fc->id,
        .uid = fc->jail_uid, .gid = fc->jail_gid,
        .chroot_base = fc->chroot_base, .api_socket = "/" NU__FC_API_FILE,
    };
    int rc;

    snprintf(fc->chroot_base, sizeof fc->chroot_base, "%s/jail",
             fc->run_dir);
    rc = nu__fc_jail_root(&jail, fc->root, sizeof fc->root, err);
    if (rc == NU_OK)
        rc = nu__fc_mkdirs(fc->root, err);
    if (rc == NU_OK && chown(fc->root, fc->jail_uid, fc->jail_gid) != 0)
        rc = nu_err_errno(err, errno, "firecracker: cannot give %s to the "
                          "jailer's user", fc->root);
    if (rc < 0)
        return rc;

    snprintf(dst, sizeof dst, "%s/vmlinux", fc->root);
    rc = nu__fc_copy_file(cfg->kernel, dst, fc->jail_uid, fc->jail_gid, err);
    snprintf(src, sizeof src, "%s/" NU_VM_INITRAMFS_FILE, image_dir);
    snprintf(dst, sizeof dst, "%s/" NU_VM_INITRAMFS_FILE, fc->root);
    if (rc == NU_OK)
        rc = nu__fc_copy_file(src, dst, fc->jail_uid, fc->jail_gid, err);
    snprintf(src, sizeof src, "%s/" NU__FC_IMAGE_FILE, fc->run_dir);
    snprintf(dst, sizeof dst, "%s/" NU__FC_IMAGE_FILE, fc->root);
    if (rc == NU_OK && rename(src, dst) != 0)
        rc = nu_err_errno(err, errno, "firecracker: cannot move the "
                          "workspace image into %s", fc->root);
    if (rc == NU_OK && chown(dst, fc->jail_uid, fc->jail_gid) != 0)
        rc = nu_err_errno(err, errno, "firecracker: cannot give %s to the "
                          "jailer's user", dst);
    if (rc < 0)
        return rc;

    /* Firecracker resolves these paths inside the chroot. */
    snprintf(cfg->kernel, sizeof cfg->kernel, "/vmlinux");
    snprintf(cfg->initrd, sizeof cfg->initrd, "/" NU_VM_INITRAMFS_FILE);
    snprintf(cfg->workspace_image, sizeof cfg->workspace_image,
             "/" NU__FC_IMAGE_FILE);
    snprintf(cfg->vsock_uds, sizeof cfg->vsock_uds, "/" NU__FC_VSOCK_FILE);
    return nu__fc_jailer_argv(&jail, fc->argv, fc->numbers, err);
}

/* --- starting Firecracker --------------------------------------------- */

/* The child of clone: only async-signal-safe calls. */
static void __attribute__((noreturn))
nu__fc_child(nu__fc_t *fc, pid_t parent, int log_fd)
{
    int null_fd;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(125);
    /* An empty network namespace when the pod has no tap device; vsock
     * and the API use unix sockets, which need no network. */
    if (fc->new_netns && unshare(CLONE_NEWNET | CLONE_NEWIPC |
                                 CLONE_NEWUTS | (geteuid() != 0 ?
                                 CLONE_NEWUSER : 0)) != 0) {
        static const char msg[] = "firecracker: cannot create namespaces\n";
        if (write(log_fd, msg, sizeof msg - 1) < 0)
            _exit(126);
        _exit(126);
    }
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0)
        _exit(126);
    syscall(SYS_close_range, 3, ~0U, 0);
    execv(fc->argv[0], fc->argv);
    _exit(127);
}

static int nu__fc_spawn(nu__fc_t *fc, nu_err_t *err)
{
    pid_t parent = getpid();
    int pidfd = -1;
    int log_fd;
    long pid;

    log_fd = open(fc->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                  0600);
    if (log_fd < 0)
        return nu_err_errno(err, errno, "firecracker: cannot create %s",
                            fc->log_path);
    pid = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, NULL, &pidfd, NULL, 0);
    if (pid == 0)
        nu__fc_child(fc, parent, log_fd);
    close(log_fd);
    if (pid < 0)
        return nu_err_errno(err, errno, "firecracker: cannot start %s",
                            fc->argv[0]);
    fc->pid = (pid_t)pid;
    fc->pidfd = pidfd;
    return NU_OK;
}

/* --- creation --------------------------------------------------------- */

static int nu__fc_image_dir(const char *isolation, char *out, size_t size,
                            nu_err_t *err)
{
    char path[4200];
    int rc;

    if (isolation[11] == ':' && isolation[12] != '\0')
        snprintf(out, size, "%s", isolation + 12);
    else if ((rc = nu_vm_image_default_dir(out, size, err)) < 0)
        return rc;

    snprintf(path, sizeof path, "%s/" NU_VM_INITRAMFS_FILE, out);
    if (access(path, R_OK) != 0)
        return nu_err_set(err, NU_ENOENT, "firecracker: cannot find the "
                          "guest image %s (run 'nucleus vm image build "
                          "--out %s')", path, out);
    return NU_OK;
}

/* The kernel: IMAGE_DIR/vmlinux when present, else IMAGE_DIR/vmlinuz.
 * Firecracker releases up to at least 1.14 load only an uncompressed
 * ELF vmlinux on x86_64.  A bzImage is logged as a warning, and such a
 * Firecracker then rejects InstanceStart with a fault message. */
static int nu__fc_kernel(const char *image_dir, char *out, size_t size,
                         nu_err_t *err)
{
    unsigned char magic[4] = { 0 };
    int fd;

    if ((size_t)snprintf(out, size, "%s/vmlinux", image_dir) >= size ||
        (access(out, R_OK) != 0 &&
         (size_t)snprintf(out, size, "%s/" NU_VM_KERNEL_FILE, image_dir) >=
         size))
        return nu_err_set(err, NU_EINVAL, "firecracker: image directory "
                          "'%s' is too long", image_dir);
    fd = open(out, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nu_err_errno(err, errno, "firecracker: cannot open the guest "
                            "kernel %s", out);
    if (read(fd, magic, sizeof magic) != (ssize_t)sizeof magic ||
        memcmp(magic, "\177ELF", 4) != 0)
        nu_log(NU_LOG_WARN, "firecracker", "%s is not an ELF vmlinux; "
               "Firecracker before bzImage support rejects it (rebuild the "
               "image with nucleus vm image build --vmlinux --out %s)",
               out, image_dir);
    close(fd);
    return NU_OK;
}

static void nu__fc_limits(const nu_sandbox_opts_t *opts,
                          nu__fc_config_t *cfg)
{
    uint64_t mib = opts->limits.memory_bytes != 0
                 ? opts->limits.memory_bytes >> 20 : 512;
    unsigned cpus = opts->limits.cpu_millis != 0
                  ? (opts->limits.cpu_millis + 999) / 1000 : 1;

    cfg->mem_mib = mib < 128 ? 128 : mib;
    cfg->vcpus = cpus > 32 ? 32 : cpus;
}

/* Send opts->env (credentials included) to the agent as the commands'
 * base environment, over the vsock stream, never on the command line. */
static int nu__fc_send_env(nu_sandbox_t *sb, const char *const *env,
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
        return nu_err_set(err, NU_ENOMEM, "firecracker: out of memory");
    }
    rc = nu_sandbox_call(sb, request, NULL, 0, NULL, NULL, &response, err);
    json_decref(request);
    if (rc == NU_OK && !json_is_true(json_object_get(response.json, "ok"))) {
        const char *detail = json_string_value(json_object_get(response.json,
                                                               "error"));
        rc = nu_err_set(err, NU_ESANDBOX, "firecracker: cannot set the pod's "
                        "environment: %s", detail != NULL ? detail :
                        "no detail from the agent");
    }
    nu_frame_free(&response);
    return rc;
}

/* Fill fc's binaries, sockets and argv, and cfg's paths. */
static int nu__fc_plan(nu__fc_t *fc, nu__fc_config_t *cfg,
                       const char *workspace, const char *image_dir,
                       nu_err_t *err)
{
    const char *tap = getenv("NUCLEUS_FIRECRACKER_TAP");
    char image[PATH_MAX];
    int rc;

    snprintf(image, sizeof image, "%s/" NU__FC_IMAGE_FILE, fc->run_dir);
    rc = nu__fc_build_image(workspace, image, fc->log_path, err);
    if (rc < 0)
        return rc;
    if ((size_t)snprintf(cfg->initrd, sizeof cfg->initrd,
                         "%s/" NU_VM_INITRAMFS_FILE, image_dir) >=
        sizeof cfg->initrd)
        return nu_err_set(err, NU_EINVAL, "firecracker: image directory "
                          "'%s' is too long", image_dir);
    snprintf(cfg->boot_args, sizeof cfg->boot_args, "%s", NU__FC_BOOT_ARGS);
    snprintf(cfg->workspace_image, sizeof cfg->workspace_image, "%s", image);
    cfg->workspace_read_only = true;
    cfg->guest_cid = NU__FC_GUEST_CID;
    snprintf(cfg->tap, sizeof cfg->tap, "%s", tap != NULL ? tap : "");
    fc->new_netns = cfg->tap[0] == '\0';

    if (fc->jailer[0] != '\0') {
        rc = nu__fc_prepare_jail(fc, cfg, image_dir, err);
        if (rc < 0)
            return rc;
    } else {
        snprintf(cfg->vsock_uds, sizeof cfg->vsock_uds, "%s/"
                 NU__FC_VSOCK_FILE, fc->run_dir);
        fc->argv[0] = fc->binary;
        fc->argv[1] = "--api-sock";
        fc->argv[2] = fc->api_socket;
        fc->argv[3] = "--id";
        fc->argv[4] = fc->id;
        fc->argv[5] = NULL;
    }
    if ((size_t)snprintf(fc->api_socket, sizeof fc->api_socket, "%s/"
                         NU__FC_API_FILE, fc->root) >= sizeof fc->api_socket ||
        (size_t)snprintf(fc->vsock_socket, sizeof fc->vsock_socket, "%s/"
                         NU__FC_VSOCK_FILE, fc->root) >=
        sizeof fc->vsock_socket)
        return nu_err_set(err, NU_ERANGE, "firecracker: socket paths under "
                          "%s are longer than %d bytes", fc->root,
                          NU__FC_SOCKET_MAX - 1);
    return NU_OK;
}

/* Choose the binaries and whether the jailer runs. */
static int nu__fc_binaries(nu__fc_t *fc, nu_err_t *err)
{
    int rc = nu__fc_find_binary(fc->binary, sizeof fc->binary, err);

    if (rc < 0)
        return rc;
    if (!nu__fc_find_jailer(fc->jailer, sizeof fc->jailer)) {
        fc->jailer[0] = '\0';
    } else if (geteuid() != 0) {
        nu_log(NU_LOG_WARN, "firecracker", "not using the jailer %s: it "
               "needs root; Firecracker runs without its chroot",
               fc->jailer);
        fc->jailer[0] = '\0';
    }
    fc->jail_uid = nu__fc_env_id("NUCLEUS_JAILER_UID");
    fc->jail_gid = (gid_t)nu__fc_env_id("NUCLEUS_JAILER_GID");
    return NU_OK;
}

static atomic_uint nu__fc_seq;

int nu__fc_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                  nu_err_t *err)
{
    char image_dir[4096], workspace[PATH_MAX], binary[PATH_MAX];
    nu__fc_config_t *cfg = NULL;
    nu__fc_t *fc = NULL;
    struct stat st;
    int rc;

    *out = NULL;
    if (opts->workspace == NULL || realpath(opts->workspace, workspace) ==
        NULL || stat(workspace, &st) != 0 || !S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "firecracker: cannot create pod: "
                          "workspace '%s' is not a directory",
                          opts->workspace != NULL ? opts->workspace :
                          "(missing)");
    nu__fc_sweep();
    /* A missing Firecracker is the likelier mistake, so it is reported
     * before a missing image. */
    rc = nu__fc_find_binary(binary, sizeof binary, err);
    if (rc == NU_OK)
        rc = nu__fc_image_dir(opts->isolation, image_dir, sizeof image_dir,
                              err);
    if (rc < 0)
        return rc;
    cfg = calloc(1, sizeof *cfg);
    fc = nu__fc_new(err);
    if (cfg == NULL || fc == NULL) {
        rc = cfg == NULL ? nu_err_set(err, NU_ENOMEM, "firecracker: out of "
                                      "memory") : NU_ENOMEM;
        goto fail;
    }
    snprintf(fc->id, sizeof fc->id, "nucleus-%ld-%u", (long)getpid(),
             atomic_fetch_add(&nu__fc_seq, 1));

    rc = nu__fc_binaries(fc, err);
    if (rc == NU_OK)
        rc = nu__fc_kernel(image_dir, cfg->kernel, sizeof cfg->kernel, err);
    if (rc == NU_OK) {
        nu__fc_limits(opts, cfg);
        rc = nu__fc_plan(fc, cfg, workspace, image_dir, err);
    }
    if (rc == NU_OK)
        rc = nu__fc_spawn(fc, err);
    if (rc == NU_OK)
        rc = nu__fc_api_wait(fc->api_socket, fc->pidfd, NU__FC_API_MS, err);
    if (rc == NU_OK)
        rc = nu__fc_configure(fc->api_socket, cfg, NU__FC_API_MS, err);
    if (rc == NU_OK) {
        rc = nu__fc_vsock_connect(fc->vsock_socket, NU__FC_VSOCK_PORT,
                                  fc->pidfd, NU__FC_BOOT_MS, err);
        fc->stream_fd = rc >= 0 ? rc : -1;
        rc = rc >= 0 ? NU_OK : rc;
    }
    if (rc == NU_OK)
        rc = nu__sandbox_adopt(opts, fc->id, fc->stream_fd, fc->pid,
                               fc->pidfd, nu__fc_release, fc, out, err);
    if (rc < 0)
        goto fail;
    free(cfg);

    if (opts->env != NULL) {
        rc = nu__fc_send_env(*out, opts->env, err);
        if (rc < 0) {
            nu_sandbox_close(*out);
            *out = NULL;
            return rc;
        }
    }
    nu_log(NU_LOG_DEBUG, "firecracker", "pod %s started, pid %ld%s",
           fc->id, (long)fc->pid, fc->jailer[0] != '\0' ? ", jailed" : "");
    return NU_OK;

fail:
    free(cfg);
    nu__fc_free(fc);
    return rc;
}
