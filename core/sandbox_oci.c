/*
 * sandbox_oci.c - start and remove an oci pod (oci.h).
 *
 * Creation, in order:
 *   1. resolve the runtime binary and get the sealed memfd of the init
 *      program (shared with the ns tier);
 *   2. make the bundle directory "$TMPDIR/nucleus-oci.<pod id>.XXXXXX"
 *      (mode 0700) holding config.json, the empty root "rootfs" with the
 *      symbolic links of the binds that are links, "state" (the runtime's
 *      --root, so that every pod has its own runtime state) and
 *      "runtime.log" (the runtime's standard error);
 *   3. fork, arm PR_SET_PDEATHSIG and execute
 *      RUNTIME --root STATE run --bundle DIR --preserve-fds 1 ID
 *      with the pod's end of a socketpair as fd 3 and /dev/null as 0 and
 *      1.  The runtime stays the parent of the init, so its death (by the
 *      death signal when the host dies) kills the init, whose own death
 *      signal is re-armed in podinit.c;
 *   4. hand the host end of the socketpair to nu__sandbox_adopt, which
 *      performs the ns tier's handshake.
 * Removal (nu_sandbox_close): the host closes the stream and kills the
 * runtime process, then runs RUNTIME --root STATE delete -f ID, which
 * kills what is left in the container and removes its cgroups, and
 * removes the bundle.
 *
 * The init binary is bound from /proc/<host pid>/fd/<memfd>, so the pod
 * runs exactly the sealed copy the ns tier runs and never a file that
 * can change on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleus/log.h"
#include "nucleus/oci.h"
#include "sandbox_internal.h"

/* State kept for nu_sandbox_close (the release hook). */
typedef struct nu__oci_pod {
    char runtime[PATH_MAX];
    char bundle[PATH_MAX];
    char state[PATH_MAX + 8];
    char container[128];
    bool is_crun;            /* runs with --cgroup-manager=disabled */
    bool hide_cgroup2;       /* cover /sys/fs/cgroup/unified for crun */
    nu__cgroup_t cgroup;     /* the ns tier's cgroups around the runtime */
} nu__oci_pod_t;

static atomic_uint nu__oci_seq;

static void nu__oci_release(void *data);

/* The cgroup2 mount of a hybrid cgroup host. */
#define NU__OCI_CGROUP2 "/sys/fs/cgroup/unified"

/* crun 1.8 rejects every container on a hybrid cgroup host (v1
 * controllers plus a cgroup2 mount at NU__OCI_CGROUP2) whose cgroup2
 * hierarchy has a controller, even with --cgroup-manager=disabled.  As
 * root, crun then runs in a private mount namespace with that mount
 * covered by an empty tmpfs, so that it detects a cgroup v1 host.  The
 * pod's cgroups are nucleus's own (sandbox_limits.c) either way. */
static bool nu__oci_hybrid_cgroups(void)
{
    struct statfs fs;
    char controllers[64];
    ssize_t n;
    int fd;

    if (geteuid() != 0 || statfs(NU__OCI_CGROUP2, &fs) != 0 ||
        fs.f_type != CGROUP2_SUPER_MAGIC)
        return false;
    fd = open(NU__OCI_CGROUP2 "/cgroup.controllers", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, controllers, sizeof controllers);
    close(fd);
    return n > 1;
}

/* --- the runtime ------------------------------------------------------ */

static int nu__oci_search(const char *name, const char *dirs, char *out,
                          size_t size)
{
    const char *p = dirs;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > 0 && snprintf(out, size, "%.*s/%s", (int)len, p, name) <
            (int)size && access(out, X_OK) == 0)
            return 0;
        p = end != NULL ? end + 1 : NULL;
    }
    return -1;
}

/* The install advice for a runtime that is not found.  Only crun and runc
 * have Debian 12 packages of the same name. */
static const char *nu__oci_install_hint(const char *name)
{
    if (strcmp(name, "crun") == 0)
        return "install it with apt-get install crun, or give its path as "
               "oci:/path/to/crun";
    if (strcmp(name, "runc") == 0)
        return "install it with apt-get install runc, or give its path as "
               "oci:/path/to/runc";
    return "install that runtime, or give its absolute path as "
           "oci:/path/to/runtime";
}

int nu_oci_runtime_path(const char *isolation, char *out, size_t size,
                        nu_err_t *err)
{
    const char *name;

    if (isolation == NULL || strncmp(isolation, "oci:", 4) != 0 ||
        isolation[4] == '\0')
        return nu_err_set(err, NU_EINVAL, "oci: cannot use isolation '%s': "
                          "expected oci:RUNTIME (oci:crun, oci:runc, "
                          "oci:runsc or oci:/path/to/runtime)",
                          isolation != NULL ? isolation : "");
    name = isolation + 4;

    if (strchr(name, '/') != NULL) {
        if (name[0] != '/')
            return nu_err_set(err, NU_EINVAL, "oci: cannot use runtime "
                              "'%s': give an absolute path", name);
        if (access(name, X_OK) != 0)
            return nu_err_errno(err, errno, "oci: cannot use runtime '%s'",
                                name);
        snprintf(out, size, "%s", name);
        return NU_OK;
    }
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._-") != strlen(name) || name[0] == '.')
        return nu_err_set(err, NU_EINVAL, "oci: cannot use runtime '%s': "
                          "invalid name", name);
    if (nu__oci_search(name, getenv("PATH"), out, size) == 0 ||
        nu__oci_search(name, "/usr/sbin:/sbin:/usr/local/sbin", out,
                       size) == 0)
        return NU_OK;
    return nu_err_set(err, NU_ENOTSUP, "oci: cannot find runtime '%s' on "
                      "PATH or in /usr/sbin, /sbin or /usr/local/sbin (%s)",
                      name, nu__oci_install_hint(name));
}

/* Run RUNTIME --root STATE VERB FLAG CONTAINER and wait, with stdout and
 * stderr on /dev/null.  Returns the exit status, or -1 when it did not
 * run. */
static int nu__oci_run_tool(const nu__oci_pod_t *pod, const char *verb,
                            const char *flag)
{
    char *argv[] = { (char *)pod->runtime, "--root", (char *)pod->state,
                     (char *)verb, (char *)flag, (char *)pod->container,
                     NULL };
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int status;
    pid_t pid;

    if (null_fd < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(null_fd);
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- the bundle ------------------------------------------------------- */

static int nu__oci_rm_entry(const char *path, const struct stat *st,
                            int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void nu__oci_remove_tree(const char *path)
{
    nftw(path, nu__oci_rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Create rootfs/<bind> as a copy of each bind that is a symbolic link
 * (the runtime would otherwise follow it and mount the target). */
static int nu__oci_root_links(const char *root, const char *const *binds,
                              nu_err_t *err)
{
    char link[PATH_MAX];
    char target[PATH_MAX];
    struct stat st;

    for (size_t i = 0; binds[i] != NULL; i++) {
        ssize_t n;

        if (binds[i][0] != '/' || lstat(binds[i], &st) != 0 ||
            !S_ISLNK(st.st_mode))
            continue;
        n = readlink(binds[i], target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        if (snprintf(link, sizeof link, "%s%s", root, binds[i]) >=
            (int)sizeof link)
            return nu_err_set(err, NU_EINVAL, "oci: cannot link '%s': path "
                              "too long", binds[i]);

        /* Create the parent directories, such as rootfs/etc. */
        for (char *slash = strchr(link + strlen(root) + 1, '/');
             slash != NULL; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            if (mkdir(link, 0755) != 0 && errno != EEXIST) {
                int saved = errno;
                *slash = '/';
                return nu_err_errno(err, saved, "oci: cannot create "
                                    "directory for '%s'", link);
            }
            *slash = '/';
        }
        if (symlink(target, link) != 0 && errno != EEXIST)
            return nu_err_errno(err, errno, "oci: cannot create symbolic "
                                "link '%s'", link);
    }
    return NU_OK;
}

/* Resolve the init program into a host path the runtime can bind.  The
 * ns tier's sealed memfd lives on no mount of the runtime's namespace and
 * cannot be bound, so the file it was copied from is bound instead. */
static int nu__oci_init_source(const nu_sandbox_opts_t *opts, char *out,
                               size_t size, nu_err_t *err)
{
    char chosen[PATH_MAX];
    int rc;

    rc = nu__sandbox_init_path(opts->init_path, chosen, sizeof chosen, err);
    if (rc < 0)
        return rc;
    if (size < PATH_MAX || realpath(chosen, out) == NULL)
        return nu_err_errno(err, errno, "oci: cannot resolve the pod init "
                            "'%s'", chosen);
    if (access(out, X_OK) != 0)
        return nu_err_errno(err, errno, "oci: cannot execute the pod init "
                            "'%s'", out);
    return NU_OK;
}

static int nu__oci_write_bundle(const nu_sandbox_opts_t *opts,
                                nu__oci_pod_t *pod, nu_err_t *err)
{
    char init_source[PATH_MAX];
    char path[PATH_MAX + 16];
    nu_oci_bundle_t bundle = { 0 };
    json_t *config = NULL;
    int rc;

    rc = nu__oci_init_source(opts, init_source, sizeof init_source, err);
    if (rc < 0)
        return rc;
    /* crun keeps the container in the runtime's cgroups, which are ours.
     * Other runtimes create their own from cgroupsPath and resources. */
    snprintf(path, sizeof path, "/nucleus-oci/%s", pod->container);
    bundle.init_source = init_source;
    bundle.cgroups_path = geteuid() == 0 && !pod->is_crun ? path : NULL;
    rc = nu_oci_config(opts, &bundle, &config, err);
    if (rc < 0)
        return rc;

    snprintf(path, sizeof path, "%s/config.json", pod->bundle);
    if (json_dump_file(config, path, JSON_COMPACT) != 0) {
        json_decref(config);
        return nu_err_errno(err, errno, "oci: cannot write '%s'", path);
    }
    json_decref(config);

    snprintf(path, sizeof path, "%s/rootfs", pod->bundle);
    if (mkdir(path, 0755) != 0 || mkdir(pod->state, 0700) != 0)
        return nu_err_errno(err, errno, "oci: cannot create the bundle "
                            "in '%s'", pod->bundle);
    if (opts->rootfs != NULL)
        return NU_OK;
    return nu__oci_root_links(path, opts->ro_binds != NULL ? opts->ro_binds :
                              nu_sandbox_default_binds, err);
}

/* The "owner" file of a bundle: the runtime's path and the container id,
 * one a line, for the sweep of a dead owner's bundles. */
static int nu__oci_write_owner(const nu__oci_pod_t *pod, nu_err_t *err)
{
    char path[PATH_MAX + 16];
    FILE *fp;
    int ok;

    snprintf(path, sizeof path, "%s/owner", pod->bundle);
    fp = fopen(path, "wxe");
    if (fp == NULL)
        return nu_err_errno(err, errno, "oci: cannot write '%s'", path);
    ok = fprintf(fp, "%s\n%s\n", pod->runtime, pod->container) > 0;
    if (fclose(fp) != 0 || !ok)
        return nu_err_errno(err, errno, "oci: cannot write '%s'", path);
    return NU_OK;
}

/* Start time of pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 when pid does not exist. */
static unsigned long long nu__oci_start_time(long pid)
{
    char path[64];
    char buf[1024];
    unsigned long long start = 0;
    char *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
               "%*d %*d %*d %*d %*d %*d %llu", &start) != 1)
        return 0;
    return start;
}

/* Remove the bundle at path of a dead owner: delete its container (the
 * runtime process died with the owner, by its death signal) and the
 * directory.  Only directories of our uid with mode 0700 are trusted,
 * since the runtime path is read from inside. */
static void nu__oci_sweep_one(const char *path)
{
    nu__oci_pod_t *pod;
    char owner[PATH_MAX + 16];
    struct stat st;
    FILE *fp;

    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid() || (st.st_mode & 077) != 0)
        return;
    pod = calloc(1, sizeof *pod);
    if (pod == NULL)
        return;
    snprintf(owner, sizeof owner, "%s/owner", path);
    fp = fopen(owner, "re");
    if (fp != NULL &&
        fgets(pod->runtime, sizeof pod->runtime, fp) != NULL &&
        fgets(pod->container, sizeof pod->container, fp) != NULL) {
        pod->runtime[strcspn(pod->runtime, "\n")] = '\0';
        pod->container[strcspn(pod->container, "\n")] = '\0';
    } else {
        pod->runtime[0] = '\0';
    }
    if (fp != NULL)
        fclose(fp);

    snprintf(pod->bundle, sizeof pod->bundle, "%s", path);
    snprintf(pod->state, sizeof pod->state, "%s/state", path);
    if (pod->runtime[0] == '/') {
        nu_log(NU_LOG_INFO, "oci", "removing container %s of a dead owner",
               pod->container);
        nu__oci_release(pod);
    } else {
        nu__oci_remove_tree(path);
        free(pod);
    }
}

/* Remove the bundles in tmp whose owner process is gone.  Bundle names
 * start with the owner's "<pid>.<start time>" tag. */
static void nu__oci_sweep(const char *tmp)
{
    static const char prefix[] = "nucleus-oci.";
    struct dirent *entry;
    DIR *dir = opendir(tmp);
    char path[PATH_MAX];

    if (dir == NULL)
        return;
    while ((entry = readdir(dir)) != NULL) {
        unsigned long long start;
        long pid;

        if (strncmp(entry->d_name, prefix, sizeof prefix - 1) != 0 ||
            sscanf(entry->d_name + sizeof prefix - 1, "%ld.%llu.", &pid,
                   &start) != 2 ||
            nu__oci_start_time(pid) == start)
            continue;
        if (snprintf(path, sizeof path, "%s/%s", tmp, entry->d_name) <
            (int)sizeof path)
            nu__oci_sweep_one(path);
    }
    closedir(dir);
}

static int nu__oci_make_bundle(const nu_sandbox_opts_t *opts,
                               nu__oci_pod_t *pod, const char *id,
                               nu_err_t *err)
{
    const char *tmp = getenv("TMPDIR");
    int rc;

    if (tmp == NULL || tmp[0] != '/')
        tmp = "/tmp";
    nu__oci_sweep(tmp);
    if (snprintf(pod->bundle, sizeof pod->bundle, "%s/nucleus-oci.%s.XXXXXX",
                 tmp, id) >= (int)sizeof pod->bundle)
        return nu_err_set(err, NU_EINVAL, "oci: cannot create a bundle in "
                          "'%s': path too long", tmp);
    if (mkdtemp(pod->bundle) == NULL) {
        int saved = errno;
        pod->bundle[0] = '\0';
        return nu_err_errno(err, saved, "oci: cannot create a bundle "
                            "directory in '%s'", tmp);
    }
    snprintf(pod->state, sizeof pod->state, "%s/state", pod->bundle);
    rc = nu__oci_write_owner(pod, err);
    if (rc < 0)
        return rc;
    return nu__oci_write_bundle(opts, pod, err);
}

/* --- the runtime process ---------------------------------------------- */

/* Fork and execute the runtime with pod_sock as fd 3; *pid (OUT).  The
 * child waits for one byte on sync_rd, so that the host can move it into
 * the pod's cgroups first. */
static int nu__oci_spawn(const nu__oci_pod_t *pod, int pod_sock,
                         int sync_rd, pid_t *pid, nu_err_t *err)
{
    char *argv[] = { (char *)pod->runtime, "--root", (char *)pod->state,
                     "run", "--bundle", (char *)pod->bundle,
                     "--preserve-fds", "1", (char *)pod->container, NULL,
                     NULL };
    char log_path[PATH_MAX + 16];
    pid_t parent = getpid();
    int null_fd;
    int log_fd;
    char go;

    if (pod->is_crun) {
        memmove(&argv[2], &argv[1], 9 * sizeof argv[0]);
        argv[1] = "--cgroup-manager=disabled";
    }

    snprintf(log_path, sizeof log_path, "%s/runtime.log", pod->bundle);
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (null_fd < 0 || log_fd < 0) {
        int saved = errno;
        if (null_fd >= 0)
            close(null_fd);
        return nu_err_errno(err, saved, "oci: cannot create the runtime "
                            "log '%s'", log_path);
    }

    *pid = fork();
    if (*pid == 0) {
        /* Only async-signal-safe calls, because the host may be
         * multi-threaded. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent || read(sync_rd, &go, 1) != 1)
            _exit(1);
        if (pod->hide_cgroup2 &&
            (unshare(CLONE_NEWNS) != 0 ||
             mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
             mount("tmpfs", NU__OCI_CGROUP2, "tmpfs", MS_RDONLY | MS_NOSUID |
                   MS_NODEV | MS_NOEXEC, "size=4k") != 0))
            _exit(125);
        /* Move the three descriptors above 2 and 3 first, so that no
         * dup2 below overwrites one still to be copied. */
        pod_sock = fcntl(pod_sock, F_DUPFD_CLOEXEC, 10);
        null_fd = fcntl(null_fd, F_DUPFD_CLOEXEC, 10);
        log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 10);
        if (pod_sock < 0 || null_fd < 0 || log_fd < 0 ||
            dup2(pod_sock, 3) != 3 || dup2(null_fd, 0) != 0 ||
            dup2(null_fd, 1) != 1 || dup2(log_fd, 2) != 2)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(null_fd);
    close(log_fd);
    if (*pid < 0)
        return nu_err_errno(err, errno, "oci: cannot start runtime '%s'",
                            pod->runtime);
    return NU_OK;
}

/* Append the runtime's last error line to err's message. */
static void nu__oci_explain(const nu__oci_pod_t *pod, nu_err_t *err)
{
    char path[PATH_MAX + 16];
    char text[2048];
    char *line;
    ssize_t n;
    int fd;

    if (err == NULL)
        return;
    snprintf(path, sizeof path, "%s/runtime.log", pod->bundle);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return;
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    line = strrchr(text, '\n');
    line = line != NULL ? line + 1 : text;

    size_t used = strlen(err->msg);
    snprintf(err->msg + used, sizeof err->msg - used, " (runtime: %s)",
             line);
}

/* Replace err's message by the runtime's exit status when the pod's
 * stream closed without a hello or an error frame and the runtime process
 * has exited (a runtime that is not an OCI runtime at all, or one that
 * failed before starting the init).  An error frame from the init keeps
 * its own message.  The process is left unreaped for nu__oci_kill. */
static void nu__oci_explain_exit(const nu__oci_pod_t *pod, const char *id,
                                 int pidfd, nu_err_t *err)
{
    struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
    siginfo_t info;

    if (err == NULL || pidfd < 0 ||
        strstr(err->msg, "did not report ready") == NULL)
        return;
    /* The stream closes while the process exits, a moment before the
     * pidfd becomes readable. */
    if (poll(&pfd, 1, 200) != 1)
        return;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info,
               WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
        return;
    if (info.si_code == CLD_EXITED)
        nu_err_set(err, NU_ESANDBOX, "oci: cannot start pod %s: runtime "
                   "'%s' exited with status %d before the pod's init was "
                   "ready", id, pod->runtime, info.si_status);
    else
        nu_err_set(err, NU_ESANDBOX, "oci: cannot start pod %s: runtime "
                   "'%s' was killed by signal %d before the pod's init was "
                   "ready", id, pod->runtime, info.si_status);
}

/* The release hook: the runtime process is already reaped. */
static void nu__oci_release(void *data)
{
    nu__oci_pod_t *pod = data;

    if (pod == NULL)
        return;
    if (pod->bundle[0] != '\0') {
        char entry[PATH_MAX * 3];
        struct stat st;

        /* delete fails when the container was never created; the state
         * directory then has no entry for it. */
        nu__oci_run_tool(pod, "delete", "-f");
        snprintf(entry, sizeof entry, "%s/%s", pod->state, pod->container);
        if (lstat(entry, &st) == 0)
            nu_log(NU_LOG_WARN, "oci", "container %s: '%s delete -f' "
                   "failed; its state stays in %s", pod->container,
                   pod->runtime, pod->state);
        else
            nu__oci_remove_tree(pod->bundle);
    }
    nu__cgroup_destroy(&pod->cgroup);
    free(pod);
}

static void nu__oci_kill(pid_t pid, int pidfd)
{
    if (pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
    } else if (pid > 0) {
        kill(pid, SIGKILL);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Whether pid runs in another network namespace than this process. */
static bool nu__oci_own_netns(long pid)
{
    struct stat self, other;
    char path[64];

    snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
    return stat(path, &other) == 0 &&
           stat("/proc/self/ns/net", &self) == 0 &&
           (other.st_ino != self.st_ino || other.st_dev != self.st_dev);
}

/* The container's init: the child of the runtime (crun and runc run it
 * as their direct child) that lives in the pod's network namespace.
 * Returns 0 when none is found; nu_net_attach then refuses the host's
 * namespace. */
static pid_t nu__oci_init_pid(pid_t runtime)
{
    char path[64], buf[512];
    struct dirent *d;
    pid_t found = 0;
    DIR *tasks;

    snprintf(path, sizeof path, "/proc/%ld/task", (long)runtime);
    tasks = opendir(path);
    while (tasks != NULL && found == 0 && (d = readdir(tasks)) != NULL) {
        FILE *f;

        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%ld/task/%.16s/children",
                 (long)runtime, d->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof buf, f) != NULL)
            for (char *tok = strtok(buf, " \n"); tok != NULL && found == 0;
                 tok = strtok(NULL, " \n"))
                if (nu__oci_own_netns(strtol(tok, NULL, 10)))
                    found = (pid_t)strtol(tok, NULL, 10);
        fclose(f);
    }
    if (tasks != NULL)
        closedir(tasks);
    return found;
}

/* Queue a _set_env request carrying env (nu__sandbox_send_ahead): the
 * pod's first call reads its reply, so creation costs no round trip. */
static int nu__oci_queue_env(nu_sandbox_t *sb, const char *const *env,
                             nu_err_t *err)
{
    json_t *request = json_pack("{s:s,s:[]}", "tool", "_set_env", "env");
    json_t *list = json_object_get(request, "env");
    int rc;

    for (size_t i = 0; list != NULL && env[i] != NULL; i++)
        if (json_array_append_new(list, json_string(env[i])) != 0)
            list = NULL;
    if (list == NULL) {
        json_decref(request);
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");
    }
    rc = nu__sandbox_send_ahead(sb, request, NULL, 0, err);
    json_decref(request);
    return rc;
}

/* Start the runtime in the pod's cgroups; *pid (OUT). */
static int nu__oci_launch(const nu_sandbox_opts_t *opts, nu__oci_pod_t *pod,
                          int pod_sock, pid_t *pid, nu_err_t *err)
{
    nu_sandbox_limits_t limits = opts->limits;
    int sync[2] = { -1, -1 };
    int rc;

    if (limits.memory_bytes == 0)
        limits.memory_bytes = 2ULL << 30;
    if (limits.pids == 0)
        limits.pids = 1024;
    nu_sandbox_sweep(NULL);
    if (!(opts->flags & NU_SANDBOX_NO_CGROUPS)) {
        rc = nu__cgroup_create(&pod->cgroup, pod->container + 8, &limits,
                               err);
        if (rc < 0)
            return rc;
    }

    /* A socketpair, so that a child that died early costs an error return
     * (MSG_NOSIGNAL), not SIGPIPE. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0)
        return nu_err_errno(err, errno, "oci: cannot create a socketpair");
    rc = nu__oci_spawn(pod, pod_sock, sync[0], pid, err);
    close(sync[0]);
    if (rc == NU_OK)
        rc = nu__cgroup_attach(&pod->cgroup, *pid, err);
    if (rc == NU_OK && send(sync[1], "g", 1, MSG_NOSIGNAL) != 1)
        rc = nu_err_errno(err, errno, "oci: cannot release runtime '%s'",
                          pod->runtime);
    close(sync[1]);
    return rc;
}

int nu__oci_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                   nu_err_t *err)
{
    nu__oci_pod_t *pod;
    const char *base;
    char id[96];
    char tag[64];
    int sv[2] = { -1, -1 };
    int pidfd = -1;
    pid_t pid = -1;
    int rc;

    *out = NULL;
    pod = calloc(1, sizeof *pod);
    if (pod == NULL)
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");

    /* "oci" keeps the id apart from the ns tier's "<tag>.<n>" ids, which
     * name cgroups in the same directories. */
    nu__cgroup_owner_tag(tag, sizeof tag);
    snprintf(id, sizeof id, "%s.oci%u", tag,
             atomic_fetch_add(&nu__oci_seq, 1));
    snprintf(pod->container, sizeof pod->container, "nucleus-%s", id);

    rc = nu_oci_runtime_path(opts->isolation, pod->runtime,
                             sizeof pod->runtime, err);
    if (rc < 0)
        goto fail;
    base = strrchr(pod->runtime, '/');
    pod->is_crun = strcmp(base != NULL ? base + 1 : pod->runtime,
                          "crun") == 0;
    pod->hide_cgroup2 = pod->is_crun && nu__oci_hybrid_cgroups();
    rc = nu__oci_make_bundle(opts, pod, id, err);
    if (rc < 0)
        goto fail;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = nu_err_errno(err, errno, "oci: cannot create the pod's stream");
        goto fail;
    }
    rc = nu__oci_launch(opts, pod, sv[1], &pid, err);
    close(sv[1]);
    sv[1] = -1;
    if (rc < 0)
        goto fail;
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    rc = nu__sandbox_adopt(opts, id, sv[0], pid, pidfd, nu__oci_release, pod,
                           out, err);
    if (rc < 0) {
        nu__oci_explain_exit(pod, id, pidfd, err);
        nu__oci_explain(pod, err);
        goto fail;
    }
    nu__sandbox_set_netns_pid(*out, nu__oci_init_pid(pid));

    /* The pod's environment travels over the stream, never in the bundle
     * (config.json carries only the default one). */
    if (opts->env != NULL && nu__oci_queue_env(*out, opts->env, err) < 0) {
        nu_sandbox_close(*out);
        *out = NULL;
        return NU_ESANDBOX;
    }
    nu_log(NU_LOG_DEBUG, "oci", "pod %s started by %s, runtime pid %ld", id,
           pod->runtime, (long)pid);
    return NU_OK;

fail:
    if (sv[0] >= 0)
        close(sv[0]);
    nu__oci_kill(pid, pidfd);
    nu__oci_release(pod);
    return rc;
}
