/*
 * sandbox.c - host side of the namespace sandbox: create, call, close.
 *
 * Creation, in order (the child's half is in sandbox_ns.c):
 *   1. validate the options and copy them into the sandbox (the plan the
 *      child reads points into this copy);
 *   2. sweep cgroups of dead owners, create this pod's cgroups;
 *   3. get the sealed memfd holding the init program (once per process);
 *   4. clone() with the new namespaces and CLONE_PIDFD; the child waits;
 *   5. move the child into the cgroups, release it with one byte;
 *   6. send the hello frame with the init's configuration and wait for the
 *      init's hello (or the error frame of a failed step) with a deadline.
 *
 * Why a memfd: the pod init must not be a fork of the host that shares its
 * memory and descriptors, and libnucleus is also loaded by hosts that are
 * not the nucleus binary (lua5.4 with the Lua module).  The init program
 * is copied once into a memfd sealed against writing, shrinking and
 * growing, and the child executes that with execveat(AT_EMPTY_PATH).  An
 * agent cannot write the running program through /proc/<pid>/exe, and no
 * install path is needed.  docs/sandbox.md has the details.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <mbedtls/base64.h>

#include "nucleus/log.h"
#include "nucleus/proto.h"
#include "nucleus/sandbox.h"
#include "sandbox_internal.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define NU__READY_TIMEOUT_MS 10000
#define NU__CALL_GRACE_MS 7000

const char *const nu_sandbox_default_binds[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
    "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
    "/etc/hosts", "/etc/host.conf", "/etc/localtime", "/etc/ssl",
    "/etc/ca-certificates", "/etc/mime.types", "/etc/bash.bashrc",
    "/etc/profile", "/etc/inputrc", "/etc/gitconfig", "/etc/timezone",
    NULL
};

static char *const nu__default_env[] = {
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME=/workspace", "LANG=C.UTF-8", "TERM=dumb", NULL
};

struct nu_sandbox {
    pthread_mutex_t lock;
    nu_sandbox_state_t state;
    char id[96];
    pid_t pid;
    pid_t netns_pid;         /* 0: pid */
    int pidfd;
    int sock;
    int version;
    int landlock_abi;
    uint32_t timeout_ms;
    uint64_t next_id;
    uint64_t ahead_id;       /* nu__sandbox_send_ahead's request, or 0 */
    nu__cgroup_t cgroup;
    nu__plan_t plan;
    /* Owned copies of the option strings the plan points to. */
    char **strings;
    size_t nstrings;
    char **envp;
    /* Set by nu__sandbox_adopt: tier-specific cleanup after the reap. */
    void (*release)(void *data);
    void *release_data;
};

/* --- the init program ---------------------------------------------- */

static pthread_mutex_t nu__init_lock = PTHREAD_MUTEX_INITIALIZER;
static int nu__init_memfd = -1;

/* dl_iterate_phdr visits the main program first: does it contain the pod
 * init (then /proc/self/exe can run it)? */
static int nu__phdr_main(struct dl_phdr_info *info, size_t size, void *data)
{
    uintptr_t addr = (uintptr_t)&nu__podinit_linked;
    bool *found = data;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;

        if (ph->p_type == PT_LOAD && addr >= start &&
            addr < start + ph->p_memsz)
            *found = true;
    }
    return 1;  /* only the first object */
}

/* Find "nucleus" on PATH into out. */
static int nu__find_on_path(char *out, size_t size)
{
    const char *path = getenv("PATH");
    const char *p = path;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > 0 && snprintf(out, size, "%.*s/nucleus", (int)len, p) <
            (int)size && access(out, X_OK) == 0)
            return 0;
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

/* When libnucleus is a shared module (the Lua module in a build tree,
 * build/<dir>/lua/nucleus/core.so), look for the nucleus binary in the
 * module's ancestor directories, up to three levels. */
static int nu__find_near_module(char *out, size_t size)
{
    Dl_info info;
    char dir[PATH_MAX];
    struct stat st;

    if (dladdr(&nu__podinit_linked, &info) == 0 || info.dli_fname == NULL ||
        snprintf(dir, sizeof dir, "%s", info.dli_fname) >= (int)sizeof dir)
        return -1;

    for (int level = 0; level < 3; level++) {
        char *slash = strrchr(dir, '/');

        if (slash == NULL || slash == dir)
            return -1;
        *slash = '\0';
        if (snprintf(out, size, "%s/nucleus", dir) < (int)size &&
            stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

int nu__sandbox_init_path(const char *init_path, char *out, size_t size,
                          nu_err_t *err)
{
    const char *env = getenv("NUCLEUS_INIT");
    bool in_main = false;

    if (init_path == NULL && env != NULL && env[0] != '\0')
        init_path = env;
    if (init_path != NULL) {
        snprintf(out, size, "%s", init_path);
        return NU_OK;
    }

    dl_iterate_phdr(nu__phdr_main, &in_main);
    if (in_main) {
        snprintf(out, size, "/proc/self/exe");
        return NU_OK;
    }
    if (nu__find_near_module(out, size) == 0 ||
        nu__find_on_path(out, size) == 0)
        return NU_OK;
    return nu_err_set(err, NU_ENOTSUP, "sandbox: cannot find the pod init: "
                      "this program does not contain it and 'nucleus' is "
                      "not on PATH (set NUCLEUS_INIT to the nucleus "
                      "binary)");
}

int nu__sandbox_init_fd(const char *init_path, nu_err_t *err)
{
    char path[PATH_MAX];
    struct stat st;
    int src = -1;
    int fd = -1;
    int rc;

    pthread_mutex_lock(&nu__init_lock);
    /* The cached descriptor may have been closed since (a daemon that
     * closed every fd after fork); it must still carry our seals. */
    if (nu__init_memfd >= 0 &&
        fcntl(nu__init_memfd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW |
                                                F_SEAL_WRITE | F_SEAL_SEAL)) {
        fd = nu__init_memfd;
        goto out;
    }
    nu__init_memfd = -1;

    rc = nu__sandbox_init_path(init_path, path, sizeof path, err);
    if (rc < 0)
        goto out;

    src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0 || fstat(src, &st) != 0) {
        nu_err_errno(err, errno, "sandbox: cannot open pod init '%s'", path);
        goto out;
    }

    fd = memfd_create("nucleus-podinit", MFD_CLOEXEC | MFD_ALLOW_SEALING |
                      MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("nucleus-podinit", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        nu_err_errno(err, errno, "sandbox: cannot create memfd for the pod "
                     "init");
        goto out;
    }

    for (off_t done = 0; done < st.st_size;) {
        ssize_t n = sendfile(fd, src, NULL, (size_t)(st.st_size - done));
        if (n <= 0) {
            nu_err_errno(err, n < 0 ? errno : EIO, "sandbox: cannot copy "
                         "pod init '%s'", path);
            close(fd);
            fd = -1;
            goto out;
        }
        done += n;
    }

    if (fchmod(fd, 0555) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
              F_SEAL_SEAL) != 0) {
        nu_err_errno(err, errno, "sandbox: cannot seal the pod init memfd");
        close(fd);
        fd = -1;
        goto out;
    }
    nu__init_memfd = fd;

out:
    if (src >= 0)
        close(src);
    pthread_mutex_unlock(&nu__init_lock);
    if (fd >= 0)
        return fd;
    if (err == NULL)
        return NU_ESANDBOX;
    if (err->code == 0)
        nu_err_set(err, NU_ESANDBOX, "sandbox: cannot load the pod init");
    return err->code;
}

/* --- options ------------------------------------------------------- */

void nu_sandbox_opts_init(nu_sandbox_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
}

static void nu__limits_defaults(nu_sandbox_limits_t *l)
{
    if (l->memory_bytes == 0)
        l->memory_bytes = 2ULL << 30;
    if (l->pids == 0)
        l->pids = 1024;
    if (l->file_size_bytes == 0)
        l->file_size_bytes = 4ULL << 30;
    if (l->open_files == 0)
        l->open_files = 4096;
    if (l->tmp_bytes == 0)
        l->tmp_bytes = 256ULL << 20;
    if (l->run_bytes == 0)
        l->run_bytes = 16ULL << 20;
}

/* Copy s into sb's string pool; returns the copy or NULL. */
static const char *nu__keep(nu_sandbox_t *sb, const char *s)
{
    char **grown;
    char *copy;

    grown = realloc(sb->strings, (sb->nstrings + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    sb->strings = grown;
    copy = strdup(s);
    if (copy == NULL)
        return NULL;
    sb->strings[sb->nstrings++] = copy;
    return copy;
}

static int nu__check_dir(const char *what, const char *path, nu_err_t *err)
{
    struct stat st;

    if (path == NULL || path[0] != '/')
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot use %s '%s': "
                          "give an absolute directory path", what,
                          path != NULL ? path : "");
    if (stat(path, &st) != 0)
        return nu_err_errno(err, errno, "sandbox: cannot use %s '%s'", what,
                            path);
    if (!S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot use %s '%s': not "
                          "a directory", what, path);
    return NU_OK;
}

/* Workspace-relative mask paths: no absolute paths, no ".." segments. */
static int nu__check_relative(const char *path, nu_err_t *err)
{
    const char *p = path;

    if (path[0] == '\0' || path[0] == '/')
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot mask '%s': give "
                          "a workspace-relative path", path);
    while (p != NULL) {
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return nu_err_set(err, NU_EINVAL, "sandbox: cannot mask '%s': "
                              "'..' is not allowed", path);
        p = strchr(p, '/');
        if (p != NULL)
            p++;
    }
    return NU_OK;
}

static int nu__copy_list(nu_sandbox_t *sb, const char *const *src,
                         const char **dst, size_t max, size_t *count,
                         bool relative, const char *what, nu_err_t *err)
{
    *count = 0;
    for (size_t i = 0; src != NULL && src[i] != NULL; i++) {
        int rc;

        if (*count == max)
            return nu_err_set(err, NU_ELIMIT, "sandbox: cannot use more than "
                              "%zu %s", max, what);
        rc = relative ? nu__check_relative(src[i], err) : NU_OK;
        if (rc == NU_OK && !relative && src[i][0] != '/')
            rc = nu_err_set(err, NU_EINVAL, "sandbox: cannot bind '%s': give "
                            "an absolute path", src[i]);
        if (rc < 0)
            return rc;
        dst[*count] = nu__keep(sb, src[i]);
        if (dst[*count] == NULL)
            return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
        (*count)++;
    }
    return NU_OK;
}

static int nu__copy_env(nu_sandbox_t *sb, const char *const *env,
                        nu_err_t *err)
{
    size_t n = 0;

    if (env == NULL) {
        sb->plan.envp = nu__default_env;
        return NU_OK;
    }
    while (env[n] != NULL)
        n++;
    if (n >= NU__PLAN_MAX_ENV)
        return nu_err_set(err, NU_ELIMIT, "sandbox: cannot pass %zu "
                          "environment variables (at most %d)", n,
                          NU__PLAN_MAX_ENV - 1);
    sb->envp = calloc(n + 1, sizeof *sb->envp);
    if (sb->envp == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (strchr(env[i], '=') == NULL)
            return nu_err_set(err, NU_EINVAL, "sandbox: cannot pass "
                              "environment entry '%s': expected NAME=value",
                              env[i]);
        sb->envp[i] = (char *)nu__keep(sb, env[i]);
        if (sb->envp[i] == NULL)
            return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
    }
    sb->plan.envp = sb->envp;
    return NU_OK;
}

uint64_t nu__count_own_processes(void)
{
    DIR *dir = opendir("/proc");
    struct dirent *entry;
    uint64_t count = 0;
    uid_t uid = getuid();
    struct stat st;

    if (dir == NULL)
        return 0;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] >= '1' && entry->d_name[0] <= '9' &&
            fstatat(dirfd(dir), entry->d_name, &st, 0) == 0 &&
            st.st_uid == uid)
            count++;
    closedir(dir);
    return count;
}

static int nu__build_plan(nu_sandbox_t *sb, const nu_sandbox_opts_t *opts,
                          nu_err_t *err)
{
    nu__plan_t *plan = &sb->plan;
    int rc;

    rc = nu__check_dir("workspace", opts->workspace, err);
    if (rc == NU_OK && opts->rootfs != NULL)
        rc = nu__check_dir("rootfs", opts->rootfs, err);
    if (rc < 0)
        return rc;

    plan->workspace = nu__keep(sb, opts->workspace);
    plan->rootfs = opts->rootfs != NULL ? nu__keep(sb, opts->rootfs) : NULL;
    plan->hostname = nu__keep(sb, opts->hostname != NULL ? opts->hostname :
                              "nucleus");
    if (plan->workspace == NULL || plan->hostname == NULL ||
        (opts->rootfs != NULL && plan->rootfs == NULL))
        return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");

    rc = nu__copy_list(sb, opts->ro_binds != NULL ? opts->ro_binds :
                       nu_sandbox_default_binds, plan->binds,
                       NU__PLAN_MAX_BINDS, &plan->nbinds, false,
                       "read-only binds", err);
    if (rc == NU_OK)
        rc = nu__copy_list(sb, opts->block_paths, plan->block,
                           NU__PLAN_MAX_MASKS, &plan->nblock, true,
                           "blocked paths", err);
    if (rc == NU_OK)
        rc = nu__copy_list(sb, opts->write_block_paths, plan->write_block,
                           NU__PLAN_MAX_MASKS, &plan->nwrite_block, true,
                           "write-blocked paths", err);
    if (rc == NU_OK)
        rc = nu__copy_env(sb, opts->env, err);
    if (rc < 0)
        return rc;

    plan->limits = opts->limits;
    nu__limits_defaults(&plan->limits);
    snprintf(plan->base, sizeof plan->base, "/tmp");
    plan->mount_sys = (opts->flags & NU_SANDBOX_MOUNT_SYS) != 0;
    plan->uid = getuid();
    plan->gid = getgid();
    plan->userns = !(geteuid() == 0 && (opts->flags & NU_SANDBOX_NO_USERNS));
    if (geteuid() != 0 && (opts->flags & NU_SANDBOX_NO_USERNS))
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot create a pod "
                          "without a user namespace as uid %u: only root "
                          "may (drop NU_SANDBOX_NO_USERNS)",
                          (unsigned)geteuid());
    plan->cgroupns = true;
    return NU_OK;
}

/* --- creation ------------------------------------------------------ */

static int64_t nu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nu__reap(nu_sandbox_t *sb)
{
    siginfo_t info;

    if (sb->pidfd < 0)
        return;
    syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
    while (waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &info, WEXITED) != 0 &&
           errno == EINTR)
        ;
    close(sb->pidfd);
    sb->pidfd = -1;
}

static int nu__clone_child(nu_sandbox_t *sb, int child_sock, int sync_rd,
                           nu_err_t *err)
{
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                          CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
    int pidfd = -1;
    long pid;

    if (sb->plan.userns)
        flags |= CLONE_NEWUSER;
    sb->plan.sock_fd = child_sock;
    sb->plan.sync_fd = sync_rd;

    pid = syscall(SYS_clone, flags | SIGCHLD, NULL, &pidfd, NULL, 0);
    if (pid == 0)
        nu__sandbox_child(&sb->plan);
    if (pid < 0) {
        int saved = errno;
        if (saved == EPERM || saved == ENOSPC || saved == EINVAL)
            return nu_err_errno(err, saved, "sandbox: cannot create the "
                                "pod's namespaces (user namespaces may be "
                                "disabled: check user.max_user_namespaces "
                                "and kernel.unprivileged_userns_clone)");
        return nu_err_errno(err, saved, "sandbox: cannot clone the pod "
                            "init");
    }
    sb->pid = (pid_t)pid;
    sb->pidfd = pidfd;
    return NU_OK;
}

static json_t *nu__hello_request(const nu_sandbox_t *sb,
                                 const nu_sandbox_opts_t *opts)
{
    return json_pack("{s:i,s:i,s:{s:I,s:I,s:b,s:s}}",
                     "min_version", NU_PROTO_VERSION_MIN,
                     "max_version", NU_PROTO_VERSION_MAX,
                     "config",
                     "timeout_ms", (json_int_t)sb->timeout_ms,
                     "output_max", (json_int_t)(opts->output_max != 0 ?
                                                opts->output_max :
                                                1u << 20),
                     "require_landlock",
                     (opts->flags & NU_SANDBOX_REQUIRE_LANDLOCK) != 0,
                     "id", sb->id);
}

/* Step 6: hello out, hello (or error) back. */
static int nu__handshake(nu_sandbox_t *sb, const nu_sandbox_opts_t *opts,
                         nu_err_t *err)
{
    json_t *hello = nu__hello_request(sb, opts);
    nu_frame_t frame = { 0 };
    nu_err_t detail = { 0 };
    const char *warning;
    int rc;

    if (hello == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
    rc = nu_proto_write(sb->sock, 1, NU_FRAME_HELLO, hello, NULL, 0, err);
    json_decref(hello);
    /* A failed write still lets us read the child's error frame. */

    rc = nu_proto_read(sb->sock, &frame, NU__READY_TIMEOUT_MS, &detail);
    if (rc < 0)
        return nu_err_set(err, rc == NU_ETIMEDOUT ? NU_ETIMEDOUT :
                          NU_ESANDBOX, "sandbox: cannot start pod %s: the "
                          "init exited or did not report ready (%s)", sb->id,
                          detail.msg);

    if (frame.type == NU_FRAME_ERROR) {
        const char *msg = json_string_value(json_object_get(frame.json,
                                                            "message"));
        rc = nu_err_set(err, NU_ESANDBOX, "%s", msg != NULL ? msg :
                        "sandbox: the pod init failed without a message");
    } else if (frame.type != NU_FRAME_HELLO) {
        rc = nu_err_set(err, NU_EPROTO, "sandbox: cannot start pod %s: "
                        "expected a hello frame, got %s", sb->id,
                        nu_frame_type_name(frame.type));
    } else {
        sb->version = (int)json_integer_value(json_object_get(frame.json,
                                                              "version"));
        sb->landlock_abi = (int)json_integer_value(
            json_object_get(frame.json, "landlock_abi"));
        warning = json_string_value(json_object_get(frame.json, "warning"));
        if (warning != NULL)
            nu_log(NU_LOG_WARN, "sandbox", "pod %s: %s", sb->id, warning);
        rc = sb->version >= NU_PROTO_VERSION_MIN &&
             sb->version <= NU_PROTO_VERSION_MAX ? NU_OK :
             nu_err_set(err, NU_EPROTO, "sandbox: cannot start pod %s: the "
                        "init chose unsupported version %d", sb->id,
                        sb->version);
    }
    nu_frame_free(&frame);
    return rc;
}

static atomic_uint nu__pod_seq;

int nu_sandbox_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                      nu_err_t *err)
{
    nu_sandbox_t *sb;
    char tag[64];
    int sv[2] = { -1, -1 };
    int sync[2] = { -1, -1 };
    int rc;

    *out = NULL;
    if (opts->isolation != NULL && strcmp(opts->isolation, "ns") != 0) {
        if (strncmp(opts->isolation, "oci:", 4) == 0)
            return nu__oci_create(opts, out, err);
        if (strcmp(opts->isolation, "vm") == 0 ||
            strncmp(opts->isolation, "vm:", 3) == 0)
            return nu__vm_create(opts, out, err);
        if (strcmp(opts->isolation, "firecracker") == 0 ||
            strncmp(opts->isolation, "firecracker:", 12) == 0)
            return nu__fc_create(opts, out, err);
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot create pod: "
                          "unknown isolation '%s' (use \"ns\", \"vm\", "
                          "\"firecracker\" or \"oci:RUNTIME\")",
                          opts->isolation);
    }
    sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
    pthread_mutex_init(&sb->lock, NULL);
    sb->pidfd = -1;
    sb->sock = -1;
    sb->state = NU_SANDBOX_DEAD;
    sb->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : 120000;

    nu__cgroup_owner_tag(tag, sizeof tag);
    snprintf(sb->id, sizeof sb->id, "%s.%u", tag,
             atomic_fetch_add(&nu__pod_seq, 1));

    rc = nu__build_plan(sb, opts, err);
    if (rc < 0)
        goto fail;

    rc = nu__sandbox_init_fd(opts->init_path, err);
    if (rc < 0)
        goto fail;
    sb->plan.exec_fd = rc;

    rc = nu__seccomp_program(&sb->plan.seccomp_code,
                             &sb->plan.seccomp_count, err);
    if (rc < 0)
        goto fail;

    nu_sandbox_sweep(NULL);
    if (!(opts->flags & NU_SANDBOX_NO_CGROUPS)) {
        rc = nu__cgroup_create(&sb->cgroup, sb->id, &sb->plan.limits, err);
        if (rc < 0)
            goto fail;
    }
    if (sb->cgroup.count == 0)
        sb->plan.nproc_limit = nu__count_own_processes() + sb->plan.limits.pids;

    /* The release byte also goes over a socketpair, so that a child that
     * died early costs an error return (MSG_NOSIGNAL), not SIGPIPE. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0) {
        rc = nu_err_errno(err, errno, "sandbox: cannot create the pod's "
                          "stream");
        goto fail;
    }

    rc = nu__clone_child(sb, sv[1], sync[0], err);
    close(sv[1]);
    close(sync[0]);
    sv[1] = sync[0] = -1;
    sb->sock = sv[0];
    if (rc < 0)
        goto fail;

    rc = nu__cgroup_attach(&sb->cgroup, sb->pid, err);
    if (rc < 0)
        goto fail;
    if (send(sync[1], "g", 1, MSG_NOSIGNAL) != 1) {
        /* The child already exited, and its error frame explains why. */
        rc = nu__handshake(sb, opts, err);
        if (rc == NU_OK)
            rc = nu_err_errno(err, errno, "sandbox: cannot release pod "
                              "init");
        goto fail;
    }
    close(sync[1]);
    sync[1] = -1;

    rc = nu__handshake(sb, opts, err);
    if (rc < 0)
        goto fail;

    sb->state = NU_SANDBOX_READY;
    nu_log(NU_LOG_DEBUG, "sandbox", "pod %s started, init pid %ld", sb->id,
           (long)sb->pid);
    *out = sb;
    return NU_OK;

fail:
    if (sync[1] >= 0)
        close(sync[1]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (sv[0] >= 0 && sb->sock != sv[0])
        close(sv[0]);
    sb->state = NU_SANDBOX_DEAD;
    nu_sandbox_close(sb);
    return rc;
}

int nu__sandbox_adopt(const nu_sandbox_opts_t *opts, const char *id,
                      int sock, pid_t pid, int pidfd,
                      void (*release)(void *), void *release_data,
                      nu_sandbox_t **out, nu_err_t *err)
{
    nu_sandbox_t *sb;
    int rc;

    *out = NULL;
    sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
    pthread_mutex_init(&sb->lock, NULL);
    sb->sock = sock;
    sb->pid = pid;
    sb->pidfd = pidfd;
    sb->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : 120000;
    snprintf(sb->id, sizeof sb->id, "%s", id);

    rc = nu__handshake(sb, opts, err);
    if (rc < 0) {
        pthread_mutex_destroy(&sb->lock);
        free(sb);
        return rc;
    }
    sb->release = release;
    sb->release_data = release_data;
    sb->state = NU_SANDBOX_READY;
    *out = sb;
    return NU_OK;
}

/* --- calls --------------------------------------------------------- */

/* The request's own timeout in milliseconds: "timeout" is in seconds (a
 * number, fractions allowed), as in the tool-call API. */
static uint32_t nu__request_timeout(const nu_sandbox_t *sb,
                                    const json_t *request)
{
    json_t *t = json_object_get(request, "timeout");
    json_t *args = json_object_get(request, "args");
    double seconds;

    if (t == NULL && json_is_object(args))
        t = json_object_get(args, "timeout");
    seconds = json_number_value(t);
    if (json_is_number(t) && seconds > 0 && seconds <= 86400)
        return (uint32_t)(seconds * 1000.0 + 0.5);
    return sb->timeout_ms;
}

static void nu__mark_dead(nu_sandbox_t *sb)
{
    sb->state = NU_SANDBOX_DEAD;
    if (sb->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
}

/* Read frames until the response for id; output frames go to on_output. */
static int nu__await_response(nu_sandbox_t *sb, uint64_t id,
                              int64_t deadline,
                              nu_sandbox_output_fn on_output,
                              void *userdata, nu_frame_t *response,
                              nu_err_t *err)
{
    for (;;) {
        nu_frame_t frame = { 0 };
        int64_t left = deadline - nu__now_ms();
        json_t *fid;
        int rc;

        rc = nu_proto_read(sb->sock, &frame, left > 0 ? (int)left : 0, err);
        if (rc < 0)
            return rc;

        fid = json_object_get(frame.json, "id");
        if (frame.type == NU_FRAME_ERROR) {
            const char *msg = json_string_value(json_object_get(frame.json,
                                                                "message"));
            nu_frame_free(&frame);
            return nu_err_set(err, NU_EPROTO, "sandbox: pod %s failed: %s",
                              sb->id, msg != NULL ? msg : "no message");
        }
        if (!json_is_integer(fid) || (uint64_t)json_integer_value(fid) != id ||
            (frame.type != NU_FRAME_OUTPUT &&
             frame.type != NU_FRAME_RESPONSE)) {
            nu_frame_free(&frame);
            return nu_err_set(err, NU_EPROTO, "sandbox: pod %s sent an "
                              "unexpected %s frame", sb->id,
                              nu_frame_type_name(frame.type));
        }
        if (frame.type == NU_FRAME_RESPONSE) {
            *response = frame;
            return NU_OK;
        }
        if (on_output != NULL) {
            const char *stream = json_string_value(
                json_object_get(frame.json, "stream"));
            on_output(stream != NULL ? stream : "stdout", frame.blob,
                      frame.blob_len, userdata);
        }
        nu_frame_free(&frame);
    }
}

/* Read the response to nu__sandbox_send_ahead's request, which comes
 * before any later response.  Unless it has "ok": true the pod fails. */
static int nu__await_ahead(nu_sandbox_t *sb, int64_t deadline, nu_err_t *err)
{
    nu_frame_t response = { 0 };
    const char *detail;
    int rc;

    rc = nu__await_response(sb, sb->ahead_id, deadline, NULL, NULL, &response,
                            err);
    sb->ahead_id = 0;
    if (rc < 0)
        return rc;
    if (!json_is_true(json_object_get(response.json, "ok"))) {
        detail = json_string_value(json_object_get(response.json, "error"));
        rc = nu_err_set(err, NU_ESANDBOX, "sandbox: pod %s failed its setup "
                        "request: %s", sb->id, detail != NULL ? detail :
                        "no detail from the pod");
    }
    nu_frame_free(&response);
    return rc;
}

int nu__sandbox_send_ahead(nu_sandbox_t *sb, const json_t *request,
                           const void *blob, size_t blob_len, nu_err_t *err)
{
    json_t *copy = json_copy((json_t *)request);
    uint64_t id;
    int rc;

    pthread_mutex_lock(&sb->lock);
    if (sb->state != NU_SANDBOX_READY || sb->ahead_id != 0 || copy == NULL) {
        rc = nu_err_set(err, copy == NULL ? NU_ENOMEM : NU_EINVAL, "sandbox: "
                        "cannot queue a setup request for pod %s: it is %s",
                        sb->id, sb->ahead_id != 0 ? "waiting for another"
                        : nu_sandbox_state_name(sb->state));
        goto out;
    }
    id = ++sb->next_id;
    if (json_object_set_new(copy, "id", json_integer((json_int_t)id)) != 0) {
        rc = nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
        goto out;
    }
    rc = nu_proto_write(sb->sock, (uint8_t)sb->version, NU_FRAME_REQUEST,
                        copy, blob, blob_len, err);
    if (rc == NU_OK)
        sb->ahead_id = id;
    else
        nu__mark_dead(sb);

out:
    json_decref(copy);
    pthread_mutex_unlock(&sb->lock);
    return rc;
}

int nu_sandbox_call(nu_sandbox_t *sb, const json_t *request,
                    const void *blob, size_t blob_len,
                    nu_sandbox_output_fn on_output, void *userdata,
                    nu_frame_t *response, nu_err_t *err)
{
    json_t *copy;
    uint64_t id;
    int64_t deadline;
    int rc;

    if (!json_is_object(request))
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot send request: "
                          "expected a JSON object");

    pthread_mutex_lock(&sb->lock);
    if (sb->state != NU_SANDBOX_READY) {
        rc = nu_err_set(err, NU_EINVAL, "sandbox: cannot send request to pod "
                        "%s: it is %s", sb->id,
                        nu_sandbox_state_name(sb->state));
        goto out;
    }

    copy = json_copy((json_t *)request);
    id = ++sb->next_id;
    if (copy == NULL ||
        json_object_set_new(copy, "id", json_integer((json_int_t)id)) != 0) {
        json_decref(copy);
        rc = nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
        goto out;
    }

    sb->state = NU_SANDBOX_BUSY;
    deadline = nu__now_ms() + nu__request_timeout(sb, request) +
               NU__CALL_GRACE_MS;
    rc = nu_proto_write(sb->sock, (uint8_t)sb->version, NU_FRAME_REQUEST,
                        copy, blob, blob_len, err);
    json_decref(copy);
    if (rc == NU_OK && sb->ahead_id != 0)
        rc = nu__await_ahead(sb, deadline, err);
    if (rc == NU_OK)
        rc = nu__await_response(sb, id, deadline, on_output, userdata,
                                response, err);

    if (rc == NU_OK) {
        sb->state = NU_SANDBOX_READY;
    } else if (rc == NU_EINVAL || rc == NU_ELIMIT) {
        sb->state = NU_SANDBOX_READY;  /* nothing was sent */
    } else {
        if (rc == NU_ETIMEDOUT)
            nu_err_set(err, NU_ETIMEDOUT, "sandbox: pod %s did not answer "
                       "within the request's timeout; the pod was killed",
                       sb->id);
        nu__mark_dead(sb);
    }

out:
    pthread_mutex_unlock(&sb->lock);
    return rc;
}

/* A pod sends read content as a raw blob ("content_encoding": "blob")
 * when the request has "want_blob": true.  The pipeline's result carries
 * it in JSON instead, as text when it is UTF-8 without NUL and as base64
 * otherwise. */
static int nu__blob_into_json(json_t *result, const uint8_t *blob, size_t len)
{
    const char *enc = json_string_value(json_object_get(result,
                                                        "content_encoding"));
    json_t *text;

    if (enc == NULL || strcmp(enc, "blob") != 0)
        return NU_OK;

    text = memchr(blob, '\0', len) == NULL
         ? json_stringn((const char *)(len ? (const char *)blob : ""), len)
         : NULL;
    if (text != NULL) {
        json_object_set_new(result, "content", text);
        json_object_set_new(result, "content_encoding", json_string("utf-8"));
        return NU_OK;
    }

    size_t cap = 4 * ((len + 2) / 3) + 1, out_len = 0;
    unsigned char *b64 = malloc(cap);
    if (b64 == NULL || mbedtls_base64_encode(b64, cap, &out_len, blob, len) != 0) {
        free(b64);
        return NU_ENOMEM;
    }
    json_object_set_new(result, "content", json_stringn((char *)b64, out_len));
    json_object_set_new(result, "content_encoding", json_string("base64"));
    free(b64);
    return NU_OK;
}

/* Send a host-only run-file request and turn its response into a code. */
static int nu__put_request(nu_sandbox_t *sb, json_t *request, const void *data,
                           size_t len, nu_err_t *err)
{
    nu_frame_t response = { 0 };
    const char *detail;
    int rc;

    if (request == NULL)
        return nu_err_set(err, NU_EINVAL, "sandbox: cannot put file: "
                          "invalid path");
    rc = nu_sandbox_call(sb, request, data, len, NULL, NULL, &response, err);
    json_decref(request);
    if (rc < 0)
        return rc;

    if (!json_is_true(json_object_get(response.json, "ok"))) {
        detail = json_string_value(json_object_get(response.json, "error"));
        rc = nu_err_set(err, NU_EIO, "%s", detail != NULL ? detail :
                        "sandbox: cannot put file: no detail from the pod");
    }
    nu_frame_free(&response);
    return rc;
}

int nu_sandbox_put_file(nu_sandbox_t *sb, const char *path,
                        const void *data, size_t len, unsigned mode,
                        nu_err_t *err)
{
    return nu__put_request(sb, json_pack("{s:s,s:s,s:i}", "tool",
                                         NU__PUT_RUN_FILE, "path", path,
                                         "mode", (int)(mode & 0777)),
                           data, len, err);
}

int nu_sandbox_put_link(nu_sandbox_t *sb, const char *path,
                        const char *target, nu_err_t *err)
{
    return nu__put_request(sb, json_pack("{s:s,s:s,s:s}", "tool",
                                         NU__PUT_RUN_FILE, "path", path,
                                         "link", target),
                           NULL, 0, err);
}

int nu_sandbox_tool(nu_sandbox_t *sb, const json_t *call, json_t **result,
                    nu_err_t *err)
{
    nu_frame_t frame = { 0 };
    const char *tool;
    int rc;

    *result = NULL;
    tool = json_string_value(json_object_get(call, "tool"));
    if (tool != NULL && tool[0] == '_') {
        nu_err_set(err, NU_EINVAL, "sandbox: cannot run tool '%s': names "
                   "starting with '_' are reserved for the host", tool);
        *result = json_pack("{s:b,s:s,s:s}", "ok", 0, "kind",
                            "invalid_request", "error",
                            err != NULL ? err->msg : "reserved tool name");
        return NU_EINVAL;
    }
    rc = nu_sandbox_call(sb, call, NULL, 0, NULL, NULL, &frame, err);
    if (rc < 0) {
        *result = json_pack("{s:b,s:s,s:s}", "ok", 0, "kind",
                            "sandbox_error", "error",
                            err != NULL ? err->msg : nu_strerror(rc));
        return rc;
    }
    json_object_del(frame.json, "id");
    rc = nu__blob_into_json(frame.json, frame.blob, frame.blob_len);
    *result = json_incref(frame.json);
    nu_frame_free(&frame);
    if (rc != NU_OK)
        return nu_err_set(err, rc, "sandbox: out of memory");
    return NU_OK;
}

/* --- lifecycle ----------------------------------------------------- */

int nu_sandbox_kill(nu_sandbox_t *sb, int sig)
{
    if (sb->pidfd < 0 ||
        syscall(SYS_pidfd_send_signal, sb->pidfd, sig, NULL, 0) != 0)
        return NU_EIO;
    return NU_OK;
}

void nu_sandbox_close(nu_sandbox_t *sb)
{
    if (sb == NULL)
        return;

    pthread_mutex_lock(&sb->lock);
    if (sb->sock >= 0)
        close(sb->sock);
    sb->sock = -1;
    nu__reap(sb);
    nu__cgroup_destroy(&sb->cgroup);
    if (sb->release != NULL)
        sb->release(sb->release_data);
    sb->state = NU_SANDBOX_CLOSED;
    pthread_mutex_unlock(&sb->lock);

    for (size_t i = 0; i < sb->nstrings; i++)
        free(sb->strings[i]);
    free(sb->strings);
    free(sb->envp);
    pthread_mutex_destroy(&sb->lock);
    free(sb);
}

pid_t nu_sandbox_pid(const nu_sandbox_t *sb)
{
    return sb->pid;
}

pid_t nu_sandbox_netns_pid(const nu_sandbox_t *sb)
{
    return sb->netns_pid != 0 ? sb->netns_pid : sb->pid;
}

void nu__sandbox_set_netns_pid(nu_sandbox_t *sb, pid_t pid)
{
    sb->netns_pid = pid;
}

nu_sandbox_state_t nu_sandbox_state(nu_sandbox_t *sb)
{
    siginfo_t info = { 0 };
    nu_sandbox_state_t state;

    pthread_mutex_lock(&sb->lock);
    /* Notice an init that died while idle, without reaping it. */
    if (sb->state == NU_SANDBOX_READY && sb->pidfd >= 0 &&
        waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &info,
               WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0)
        sb->state = NU_SANDBOX_DEAD;
    state = sb->state;
    pthread_mutex_unlock(&sb->lock);
    return state;
}

const char *nu_sandbox_state_name(nu_sandbox_state_t state)
{
    switch (state) {
    case NU_SANDBOX_READY: return "ready";
    case NU_SANDBOX_BUSY: return "busy";
    case NU_SANDBOX_DEAD: return "dead";
    case NU_SANDBOX_CLOSED: return "closed";
    }
    return "unknown";
}

const char *nu_sandbox_id(const nu_sandbox_t *sb)
{
    return sb->id;
}

int nu_sandbox_landlock_abi(const nu_sandbox_t *sb)
{
    return sb->landlock_abi;
}
