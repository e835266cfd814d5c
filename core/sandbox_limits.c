/*
 * sandbox_limits.c - per-pod cgroups and rlimits.
 *
 * Cgroups.  A pod gets one cgroup per hierarchy, named
 * "<owner pid>.<owner start time>.<sequence>" inside a "nucleus" directory
 * below the owner's own cgroup:
 *   - cgroup v1: the memory, pids and cpu hierarchies, each where mounted
 *     and writable (root);
 *   - cgroup v2: the unified hierarchy, when its root offers the memory and
 *     pids controllers and we may write there (a delegated subtree).
 * The owner's start time (field 22 of /proc/<pid>/stat) distinguishes a live
 * owner from a recycled pid.  When an owner dies without closing its pods, the
 * kernel kills the pods (PR_SET_PDEATHSIG on the init, PID 1 of the pod),
 * but the empty cgroups remain.  nu_sandbox_sweep, run by every
 * nu_sandbox_create, removes those whose owner is gone.
 *
 * Rlimits are the floor that applies without cgroups (unprivileged
 * callers): RLIMIT_DATA for memory, RLIMIT_FSIZE, RLIMIT_NOFILE,
 * RLIMIT_CPU, RLIMIT_CORE 0 and, when no pids cgroup exists, RLIMIT_NPROC.
 * RLIMIT_NPROC counts every process of the real uid on the host, also
 * outside the pod, so the host sets it to the processes the uid already
 * has plus the pod's pids limit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/log.h"
#include "sandbox_internal.h"

#define NU__CGROUP_ROOT "/sys/fs/cgroup"

static const char *const nu__v1_controllers[] = { "memory", "pids", "cpu",
                                                  NULL };

static int nu__write_text(const char *dir, const char *file,
                          const char *text)
{
    char path[640];
    int fd;
    ssize_t n;
    int saved;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = write(fd, text, strlen(text));
    saved = errno;
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -saved;
}

static int nu__read_text(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return (int)n;
}

/* Start time of pid in clock ticks since boot, 0 when pid does not
 * exist. */
static unsigned long long nu__start_time(long pid)
{
    char path[64];
    char buf[1024];
    char *p;
    unsigned long long start = 0;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (nu__read_text(path, buf, sizeof buf) < 0)
        return 0;
    p = strrchr(buf, ')');  /* the command name may contain spaces */
    if (p == NULL)
        return 0;
    /* Field 3 follows ") "; the start time is field 22. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
               "%*d %*d %*d %*d %*d %*d %llu", &start) != 1)
        return 0;
    return start;
}

int nu__cgroup_owner_tag(char *out, size_t size)
{
    /* Cached per pid: a forked child must not reuse its parent's start
     * time, or a sweep would take its live pods for a dead owner's. */
    static _Atomic long cached_pid;
    static _Atomic unsigned long long cached_start;
    long pid = (long)getpid();
    unsigned long long start = cached_start;

    if (cached_pid != pid || start == 0) {
        start = nu__start_time(pid);
        cached_start = start;
        cached_pid = pid;
    }
    return snprintf(out, size, "%ld.%llu", pid, start) < (int)size ?
           NU_OK : NU_ERANGE;
}

/* Our own cgroup path in the hierarchy whose /proc/self/cgroup line has
 * the given controller list ("memory"), or "" for the v2 line. */
static int nu__own_cgroup(const char *controller, char *out, size_t size)
{
    char buf[4096];
    char *line;
    char *save = NULL;

    if (nu__read_text("/proc/self/cgroup", buf, sizeof buf) < 0)
        return -1;
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *list = strchr(line, ':');
        char *path = list != NULL ? strchr(list + 1, ':') : NULL;
        size_t len;

        if (path == NULL)
            continue;
        len = (size_t)(path - list - 1);
        if ((controller[0] == '\0' && len == 0) ||
            (len == strlen(controller) &&
             strncmp(list + 1, controller, len) == 0)) {
            snprintf(out, size, "%s", strcmp(path + 1, "/") == 0 ? "" :
                     path + 1);
            return 0;
        }
    }
    return -1;
}

/* The "nucleus" parent directory of one hierarchy, created if needed. */
static int nu__nucleus_dir(const char *mount, const char *controller,
                           char *out, size_t size)
{
    char own[256];

    if (nu__own_cgroup(controller, own, sizeof own) != 0)
        return -1;
    if (snprintf(out, size, "%s%s/nucleus", mount, own) >= (int)size)
        return -1;
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static bool nu__v2_usable(void)
{
    char buf[256];
    char path[] = NU__CGROUP_ROOT "/cgroup.controllers";

    if (geteuid() != 0 || nu__read_text(path, buf, sizeof buf) < 0)
        return false;
    return strstr(buf, "memory") != NULL && strstr(buf, "pids") != NULL;
}

static void nu__write_limits_v1(const char *controller, const char *dir,
                                const nu_sandbox_limits_t *limits)
{
    char text[64];

    if (strcmp(controller, "memory") == 0) {
        snprintf(text, sizeof text, "%" PRIu64, limits->memory_bytes);
        nu__write_text(dir, "memory.limit_in_bytes", text);
        nu__write_text(dir, "memory.memsw.limit_in_bytes", text);
    } else if (strcmp(controller, "pids") == 0) {
        snprintf(text, sizeof text, "%u", limits->pids);
        nu__write_text(dir, "pids.max", text);
    } else if (strcmp(controller, "cpu") == 0 && limits->cpu_millis > 0) {
        nu__write_text(dir, "cpu.cfs_period_us", "100000");
        snprintf(text, sizeof text, "%u", limits->cpu_millis * 100);
        nu__write_text(dir, "cpu.cfs_quota_us", text);
    }
}

static void nu__write_limits_v2(const char *dir,
                                const nu_sandbox_limits_t *limits)
{
    char text[64];

    snprintf(text, sizeof text, "%" PRIu64, limits->memory_bytes);
    nu__write_text(dir, "memory.max", text);
    nu__write_text(dir, "memory.swap.max", "0");
    snprintf(text, sizeof text, "%u", limits->pids);
    nu__write_text(dir, "pids.max", text);
    if (limits->cpu_millis > 0) {
        snprintf(text, sizeof text, "%u 100000", limits->cpu_millis * 100);
        nu__write_text(dir, "cpu.max", text);
    }
}

int nu__cgroup_create(nu__cgroup_t *cg, const char *name,
                      const nu_sandbox_limits_t *limits, nu_err_t *err)
{
    char parent[512];

    memset(cg, 0, sizeof *cg);
    if (geteuid() != 0)
        return NU_OK;  /* no writable hierarchy without delegation */

    if (nu__v2_usable()) {
        /* NOTE: this branch runs only on hosts with a delegated cgroup v2
         * tree; the test machine has cgroup v1 controllers only. */
        if (nu__nucleus_dir(NU__CGROUP_ROOT, "", parent, sizeof parent) == 0) {
            nu__write_text(parent, "cgroup.subtree_control",
                           "+memory +pids +cpu");
            if (snprintf(cg->paths[0], sizeof cg->paths[0], "%s/%s",
                         parent, name) >= (int)sizeof cg->paths[0])
                return nu_err_set(err, NU_ERANGE, "sandbox: cannot create "
                                  "cgroup below '%s': path too long", parent);
            if (mkdir(cg->paths[0], 0755) != 0)
                return nu_err_errno(err, errno, "sandbox: cannot create "
                                    "cgroup '%s'", cg->paths[0]);
            cg->count = 1;
            cg->version = 2;
            nu__write_limits_v2(cg->paths[0], limits);
        }
        return NU_OK;
    }

    for (size_t i = 0; nu__v1_controllers[i] != NULL; i++) {
        char mount[128];
        char *dir = cg->paths[cg->count];

        /* Without a bandwidth limit the cpu hierarchy has nothing to do. */
        if (strcmp(nu__v1_controllers[i], "cpu") == 0 &&
            limits->cpu_millis == 0)
            continue;
        snprintf(mount, sizeof mount, NU__CGROUP_ROOT "/%s",
                 nu__v1_controllers[i]);
        if (access(mount, W_OK) != 0 ||
            nu__nucleus_dir(mount, nu__v1_controllers[i], parent,
                            sizeof parent) != 0)
            continue;
        if (snprintf(dir, sizeof cg->paths[0], "%s/%s", parent, name) >=
            (int)sizeof cg->paths[0])
            continue;
        if (mkdir(dir, 0755) != 0) {
            int saved = errno;
            nu__cgroup_destroy(cg);
            return nu_err_errno(err, saved, "sandbox: cannot create cgroup "
                                "'%s'", dir);
        }
        cg->count++;
        cg->version = 1;
        nu__write_limits_v1(nu__v1_controllers[i], dir, limits);
    }
    return NU_OK;
}

int nu__cgroup_attach(const nu__cgroup_t *cg, pid_t pid, nu_err_t *err)
{
    char text[32];
    int rc;

    snprintf(text, sizeof text, "%ld", (long)pid);
    for (size_t i = 0; i < cg->count; i++) {
        rc = nu__write_text(cg->paths[i], "cgroup.procs", text);
        if (rc < 0)
            return nu_err_errno(err, -rc, "sandbox: cannot move pod init %ld "
                                "into cgroup '%s'", (long)pid, cg->paths[i]);
    }
    return NU_OK;
}

/* Kill every process listed in dir/cgroup.procs; returns how many. */
static int nu__kill_members(const char *dir)
{
    char path[640];
    char buf[8192];
    char *line;
    char *save = NULL;
    int killed = 0;

    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    if (nu__read_text(path, buf, sizeof buf) <= 0)
        return 0;
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        long pid = strtol(line, NULL, 10);
        if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
            killed++;
    }
    return killed;
}

/* rmdir with retries: a cgroup stays busy until its last task is reaped. */
static int nu__remove_dir(const char *dir)
{
    struct timespec pause = { 0, 2 * 1000 * 1000 };

    for (int attempt = 0; attempt < 250; attempt++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        nu__kill_members(dir);
        nanosleep(&pause, NULL);
    }
    return -EBUSY;
}

void nu__cgroup_destroy(nu__cgroup_t *cg)
{
    for (size_t i = 0; i < cg->count; i++) {
        int rc = nu__remove_dir(cg->paths[i]);
        if (rc < 0)
            nu_log(NU_LOG_WARN, "sandbox", "cannot remove cgroup '%s': %s",
                   cg->paths[i], strerror(-rc));
    }
    cg->count = 0;
}

/* Is the owner named by a "<pid>.<start>.<seq>" cgroup name gone? */
static bool nu__owner_dead(const char *name)
{
    char *end;
    long pid = strtol(name, &end, 10);
    unsigned long long start;

    if (end == name || *end != '.' || pid <= 0)
        return false;  /* not ours: leave it alone */
    start = strtoull(end + 1, NULL, 10);
    return nu__start_time(pid) != start;
}

static int nu__sweep_dir(const char *parent)
{
    DIR *dir = opendir(parent);
    struct dirent *entry;
    char path[768];
    int removed = 0;

    if (dir == NULL)
        return 0;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_type != DT_DIR || entry->d_name[0] == '.' ||
            !nu__owner_dead(entry->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", parent, entry->d_name);
        nu__kill_members(path);
        if (nu__remove_dir(path) == 0) {
            removed++;
            nu_log(NU_LOG_INFO, "sandbox", "removed cgroup '%s' of a dead "
                   "owner", path);
        }
    }
    closedir(dir);
    return removed;
}

int nu_sandbox_sweep(nu_err_t *err)
{
    char parent[512];
    char own[256];
    int removed = 0;

    (void)err;
    if (geteuid() != 0)
        return 0;

    for (size_t i = 0; nu__v1_controllers[i] != NULL; i++) {
        if (nu__own_cgroup(nu__v1_controllers[i], own, sizeof own) != 0)
            continue;
        snprintf(parent, sizeof parent, NU__CGROUP_ROOT "/%s%s/nucleus",
                 nu__v1_controllers[i], own);
        removed += nu__sweep_dir(parent);
    }
    if (nu__own_cgroup("", own, sizeof own) == 0) {
        snprintf(parent, sizeof parent, NU__CGROUP_ROOT "%s/nucleus", own);
        removed += nu__sweep_dir(parent);
    }
    return removed;
}

static int nu__set_limit(int resource, uint64_t value)
{
    struct rlimit rl = { .rlim_cur = value, .rlim_max = value };
    struct rlimit old;

    /* Never raise a limit the host already set lower. */
    if (getrlimit(resource, &old) == 0 && old.rlim_max != RLIM_INFINITY &&
        old.rlim_max < value) {
        rl.rlim_cur = old.rlim_max;
        rl.rlim_max = old.rlim_max;
    }
    return setrlimit(resource, &rl) == 0 ? 0 : -errno;
}

int nu__rlimits_apply(const nu_sandbox_limits_t *limits,
                      uint64_t nproc_limit)
{
    int rc = 0;

    if (rc == 0)
        rc = nu__set_limit(RLIMIT_CORE, 0);
#if !defined(__SANITIZE_ADDRESS__)
    /* NOTE: sanitizer builds skip RLIMIT_DATA, because AddressSanitizer
     * reserves terabytes of shadow memory at start-up. */
    if (rc == 0)
        rc = nu__set_limit(RLIMIT_DATA, limits->memory_bytes);
#endif
    if (rc == 0)
        rc = nu__set_limit(RLIMIT_FSIZE, limits->file_size_bytes);
    if (rc == 0)
        rc = nu__set_limit(RLIMIT_NOFILE, limits->open_files);
    if (rc == 0 && limits->cpu_seconds > 0)
        rc = nu__set_limit(RLIMIT_CPU, limits->cpu_seconds);
    if (rc == 0 && nproc_limit > 0)
        rc = nu__set_limit(RLIMIT_NPROC, nproc_limit);
    return rc;
}
