/*
 * sandbox_vm_pool.c - the warm pool of the vm tier: guests booted and
 * greeted ahead of time, so that acquiring one is host-only work.
 *
 * With NUCLEUS_VM_POOL=N (1 to 8) and root, the first vm pod creation
 * starts a pool thread that keeps N guests ready.  For each one it:
 *   1. shares an empty RUN_DIR/share holding a marker file and an empty
 *      "ws" directory, made a shared bind mount of itself so that mounts
 *      below it propagate into QEMU's mount namespace;
 *   2. boots QEMU at nice NU__VM_POOL_NICE (the lowest priority), so a
 *      replacement boot yields the CPU to the pods in use;
 *   3. exchanges the hello frames: the agent sees the marker and binds
 *      its /workspace/ws over /workspace, still empty.
 * Acquisition (nu__vm_pool_acquire) then makes no guest round trip:
 *   1. it takes a ready guest and checks, without waiting, that QEMU is
 *      alive and that the guest sent nothing unexpected; a guest that
 *      died is discarded and the pool thread boots a replacement;
 *   2. raises every QEMU thread back to nice 0;
 *   3. binds the pod's workspace onto share/ws.  The mount propagates to
 *      QEMU's view, and 9p resolves each path again on every access, so
 *      the guest's /workspace shows the pod's workspace from then on;
 *   4. queues the pod's environment and 64 bytes of fresh host entropy
 *      as one _set_env request (nu__vm_queue_env).  The agent handles
 *      requests in order, so both are in place before the pod's first
 *      request runs, and that request reads the reply first.
 * A guest serves one pod and is never returned to the pool: closing the
 * pod powers it off.  So no guest sees another pod's workspace or
 * environment.  The pool thread also checks the waiting guests once a
 * second and replaces those that died.  A pooled guest serves only pods
 * with the image, accelerator, memory, CPU, file-size and process
 * limits (the last two are on its kernel command line), per-call timeout
 * and output limit it was greeted with, and no network and no Landlock
 * requirement; other pods boot cold.  Pooled QEMU processes have
 * PR_SET_PDEATHSIG tied to the pool thread, which lives as long as the
 * process.
 * NOTE: guests still waiting at process exit die with it but leave their
 * run directory until the next vm pod creation sweeps it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/log.h"
#include "nucleus/vm.h"
#include "sandbox_internal.h"
#include "sandbox_vm_internal.h"

#define NU__VM_POOL_MAX 8

/* Consecutive failed boots after which the pool thread stops. */
#define NU__VM_POOL_MAX_FAILURES 3

typedef struct nu__vm_slot {
    nu__vm_t *vm;          /* freed by the pod's release hook */
    nu_sandbox_t *sb;      /* the pod, hello exchanged */
} nu__vm_slot_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool started;
    int want;
    int count;
    nu__vm_slot_t ready[NU__VM_POOL_MAX];
    nu_sandbox_opts_t opts;     /* limits and hello of the pooled guests */
    char image_dir[4096];
    bool kvm;
} nu__vm_pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

/* Step 1 of the pool thread: the share directory and its mount. */
static int nu__vm_pool_share(nu__vm_t *vm, nu_err_t *err)
{
    char path[160];
    int fd;

    snprintf(vm->share, sizeof vm->share, "%s/share", vm->run_dir);
    snprintf(path, sizeof path, "%s/ws", vm->share);
    if (mkdir(vm->share, 0755) != 0 || mkdir(path, 0755) != 0)
        return nu_err_errno(err, errno, "vm: cannot create %s", path);
    snprintf(path, sizeof path, "%s/" NU__VM_POOL_MARKER, vm->share);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return nu_err_errno(err, errno, "vm: cannot create %s", path);
    close(fd);

    if (mount(vm->share, vm->share, NULL, MS_BIND, NULL) != 0)
        return nu_err_errno(err, errno, "vm: cannot bind %s onto itself",
                            vm->share);
    if (mount(NULL, vm->share, NULL, MS_SHARED, NULL) != 0)
        return nu_err_errno(err, errno, "vm: cannot make %s a shared mount",
                            vm->share);
    return NU_OK;
}

/* Steps 1 to 3 of the pool thread for one guest; called unlocked. */
static int nu__vm_pool_boot_one(nu__vm_slot_t *slot, nu_err_t *err)
{
    char id[96];
    nu__vm_t *vm = nu__vm_new(nu__vm_pool.image_dir, "", err);
    int rc;

    if (vm == NULL)
        return err->code;
    vm->pooled = true;
    rc = nu__vm_pool_share(vm, err);
    if (rc == NU_OK)
        rc = nu__vm_boot(vm, &nu__vm_pool.opts, nu__vm_pool.kvm,
                         nu__vm_pool.kvm ? NU__VM_BOOT_KVM_MS :
                         NU__VM_BOOT_TCG_MS, err);
    if (rc < 0) {
        nu__vm_free(vm);
        return rc;
    }

    nu__vm_pod_id(id, sizeof id);
    rc = nu__sandbox_adopt(&nu__vm_pool.opts, id, vm->serial_fd, vm->pid,
                           vm->pidfd, nu__vm_release, vm, &slot->sb, err);
    if (rc < 0) {
        nu__vm_free(vm);
        return rc;
    }
    slot->vm = vm;
    return NU_OK;
}

/* Whether a waiting guest is still usable: QEMU has not exited, and the
 * agent, which sends nothing unless asked, has neither sent data nor
 * closed the port.  Does not wait. */
static bool nu__vm_slot_alive(const nu__vm_slot_t *slot)
{
    struct pollfd p[2] = {
        { .fd = slot->vm->pidfd, .events = POLLIN },
        { .fd = slot->vm->serial_fd, .events = POLLIN },
    };

    return nu_sandbox_state(slot->sb) == NU_SANDBOX_READY &&
           poll(p, 2, 0) == 0;
}

/* Move the dead waiting guests to dead[] (the caller closes them) and
 * return how many there were.  Called locked. */
static int nu__vm_pool_prune(nu__vm_slot_t *dead)
{
    int kept = 0;
    int ndead = 0;

    for (int i = 0; i < nu__vm_pool.count; i++) {
        if (nu__vm_slot_alive(&nu__vm_pool.ready[i]))
            nu__vm_pool.ready[kept++] = nu__vm_pool.ready[i];
        else
            dead[ndead++] = nu__vm_pool.ready[i];
    }
    nu__vm_pool.count = kept;
    return ndead;
}

static void nu__vm_pool_discard(nu__vm_slot_t *dead, int ndead)
{
    for (int i = 0; i < ndead; i++) {
        nu_log(NU_LOG_WARN, "vm", "warm pool: guest %s (QEMU pid %ld) died "
               "while waiting; replacing it", nu_sandbox_id(dead[i].sb),
               (long)dead[i].vm->pid);
        nu_sandbox_close(dead[i].sb);
    }
}

static void *nu__vm_pool_main(void *arg)
{
    int failures = 0;

    (void)arg;
    pthread_mutex_lock(&nu__vm_pool.lock);
    for (;;) {
        nu__vm_slot_t dead[NU__VM_POOL_MAX];
        nu__vm_slot_t slot = { 0 };
        struct timespec until;
        int ndead = nu__vm_pool_prune(dead);
        nu_err_t err;
        int rc;

        if (ndead > 0) {
            pthread_mutex_unlock(&nu__vm_pool.lock);
            nu__vm_pool_discard(dead, ndead);
            pthread_mutex_lock(&nu__vm_pool.lock);
            continue;
        }
        if (nu__vm_pool.count >= nu__vm_pool.want) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&nu__vm_pool.wake, &nu__vm_pool.lock,
                                   &until);
            continue;
        }

        pthread_mutex_unlock(&nu__vm_pool.lock);
        rc = nu__vm_pool_boot_one(&slot, &err);
        pthread_mutex_lock(&nu__vm_pool.lock);
        if (rc < 0) {
            failures++;
            nu_log(NU_LOG_ERROR, "vm", "warm pool: boot %d of %d failed: %s",
                   failures, NU__VM_POOL_MAX_FAILURES, err.msg);
            /* Stop rather than boot-loop: pods fall back to cold boots. */
            if (failures >= NU__VM_POOL_MAX_FAILURES) {
                nu_log(NU_LOG_ERROR, "vm", "warm pool stopped; vm pods boot "
                       "cold");
                nu__vm_pool.want = 0;
            }
            continue;
        }
        failures = 0;
        nu__vm_pool.ready[nu__vm_pool.count++] = slot;
    }
    return NULL;
}

/* Start the pool on first use when NUCLEUS_VM_POOL requests one.  Called
 * locked. */
static void nu__vm_pool_start(const nu_sandbox_opts_t *opts,
                              const char *image_dir, bool kvm)
{
    const char *env = getenv("NUCLEUS_VM_POOL");
    char *end = NULL;
    long want = env != NULL ? strtol(env, &end, 10) : 0;
    pthread_attr_t attr;
    pthread_t thread;

    if (nu__vm_pool.started || env == NULL || env[0] == '\0' ||
        (end != NULL && *end == '\0' && want == 0))
        return;
    nu__vm_pool.started = true;
    if (end == NULL || *end != '\0' || want < 0 || want > NU__VM_POOL_MAX) {
        nu_log(NU_LOG_WARN, "vm", "warm pool not started: invalid "
               "NUCLEUS_VM_POOL '%s' (use 0 to %d)", env, NU__VM_POOL_MAX);
        return;
    }
    if (geteuid() != 0) {
        nu_log(NU_LOG_WARN, "vm", "warm pool not started: it needs root "
               "for its bind mounts");
        return;
    }

    nu_sandbox_opts_init(&nu__vm_pool.opts);
    nu__vm_pool.opts.limits = opts->limits;
    nu__vm_pool.opts.timeout_ms = opts->timeout_ms;
    nu__vm_pool.opts.output_max = opts->output_max;
    snprintf(nu__vm_pool.image_dir, sizeof nu__vm_pool.image_dir, "%s",
             image_dir);
    nu__vm_pool.kvm = kvm;
    nu__vm_pool.want = (int)want;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, nu__vm_pool_main, NULL) != 0) {
        nu__vm_pool.want = 0;
        nu_log(NU_LOG_ERROR, "vm", "warm pool not started: cannot create "
               "its thread");
    } else {
        nu_log(NU_LOG_INFO, "vm", "warm pool of %ld guests started", want);
    }
    pthread_attr_destroy(&attr);
}

/* Whether the pool's guests were booted and greeted for such a pod. */
static bool nu__vm_pool_matches(const nu_sandbox_opts_t *opts,
                                const char *image_dir, bool kvm)
{
    const nu_sandbox_opts_t *pool = &nu__vm_pool.opts;

    return nu__vm_pool.kvm == kvm &&
           strcmp(nu__vm_pool.image_dir, image_dir) == 0 &&
           pool->limits.memory_bytes == opts->limits.memory_bytes &&
           pool->limits.cpu_millis == opts->limits.cpu_millis &&
           pool->limits.file_size_bytes == opts->limits.file_size_bytes &&
           pool->limits.pids == opts->limits.pids &&
           pool->timeout_ms == opts->timeout_ms &&
           pool->output_max == opts->output_max &&
           (opts->flags & NU_SANDBOX_REQUIRE_LANDLOCK) == 0;
}

/* Step 1 of acquisition: a live matching guest, or false. */
static bool nu__vm_pool_take(const nu_sandbox_opts_t *opts,
                             const char *image_dir, bool kvm,
                             nu__vm_slot_t *out)
{
    nu__vm_slot_t dead[NU__VM_POOL_MAX];
    int ndead = 0;
    bool found = false;

    pthread_mutex_lock(&nu__vm_pool.lock);
    nu__vm_pool_start(opts, image_dir, kvm);
    while (nu__vm_pool.count > 0 && nu__vm_pool_matches(opts, image_dir,
                                                        kvm)) {
        nu__vm_slot_t slot = nu__vm_pool.ready[--nu__vm_pool.count];

        pthread_cond_signal(&nu__vm_pool.wake);
        if (nu__vm_slot_alive(&slot)) {
            *out = slot;
            found = true;
            break;
        }
        dead[ndead++] = slot;
    }
    pthread_mutex_unlock(&nu__vm_pool.lock);
    nu__vm_pool_discard(dead, ndead);
    return found;
}

/* Step 2 of acquisition: nice 0 for every thread of QEMU.  New threads
 * inherit their creator's nice value, and Linux keeps one per thread. */
static int nu__vm_pool_renice(const nu__vm_t *vm, nu_err_t *err)
{
    char path[64];
    struct dirent *e;
    DIR *dir;
    int rc = NU_OK;

    snprintf(path, sizeof path, "/proc/%ld/task", (long)vm->pid);
    dir = opendir(path);
    if (dir == NULL)
        return nu_err_errno(err, errno, "vm: cannot list %s", path);
    while ((e = readdir(dir)) != NULL) {
        long tid = strtol(e->d_name, NULL, 10);

        if (tid > 0 && setpriority(PRIO_PROCESS, (id_t)tid, 0) != 0 &&
            errno != ESRCH) {
            rc = nu_err_errno(err, errno, "vm: cannot raise the priority "
                              "of QEMU thread %ld", tid);
            break;
        }
    }
    closedir(dir);
    return rc;
}

/* Lay the pod's masks on share/ws (sandbox_vm_masks.c).  The guest runs
 * no pod command before acquisition returns, so nothing in it reads the
 * workspace before the masks are in place. */
static int nu__vm_pool_masks(nu__vm_t *vm, const nu_sandbox_opts_t *opts,
                             nu_err_t *err)
{
    char path[160];
    const char *failed = NULL;
    int ws_fd;
    int empty_fd;
    int rc = NU_OK;

    snprintf(path, sizeof path, "%s/ws", vm->share);
    ws_fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    empty_fd = open(vm->empty, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (ws_fd < 0 || empty_fd < 0)
        rc = nu_err_errno(err, errno, "vm: cannot open %s or %s for the "
                          "masks", path, vm->empty);
    else if (nu__vm_lay_masks(ws_fd, empty_fd, opts->block_paths,
                              opts->write_block_paths, &failed) != 0)
        rc = nu_err_errno(err, errno, "vm: cannot cover the blocked or "
                          "write-blocked path '%s' in a pooled guest's "
                          "share", failed != NULL ? failed : "");
    if (ws_fd >= 0)
        close(ws_fd);
    if (empty_fd >= 0)
        close(empty_fd);
    return rc;
}

/* Step 3 of acquisition.  share/ws is opened without following a
 * symbolic link, so a guest that replaced it cannot redirect the bind. */
static int nu__vm_pool_attach(nu__vm_t *vm, const char *workspace,
                              const nu_sandbox_opts_t *opts, nu_err_t *err)
{
    char path[160];
    int fd;
    int rc;

    snprintf(path, sizeof path, "%s/ws", vm->share);
    fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return nu_err_errno(err, errno, "vm: cannot open %s", path);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rc = mount(workspace, path, NULL, MS_BIND | MS_REC, NULL);
    close(fd);
    if (rc != 0)
        return nu_err_errno(err, errno, "vm: cannot bind the workspace %s "
                            "into a pooled guest's share", workspace);
    vm->attached = true;
    snprintf(vm->workspace, sizeof vm->workspace, "%s", workspace);
    return nu__vm_pool_masks(vm, opts, err);
}

int nu__vm_pool_acquire(const nu_sandbox_opts_t *opts,
                        const char *image_dir, const char *workspace,
                        bool kvm, nu_sandbox_t **out, nu_err_t *err)
{
    nu__vm_slot_t slot;
    int rc;

    *out = NULL;
    if (!nu__vm_pool_take(opts, image_dir, kvm, &slot))
        return NU_ENOENT;

    rc = nu__vm_pool_renice(slot.vm, err);
    if (rc == NU_OK)
        rc = nu__vm_pool_attach(slot.vm, workspace, opts, err);
    if (rc == NU_OK)
        rc = nu__vm_queue_env(slot.sb, opts->env, err);
    if (rc < 0) {
        nu_sandbox_close(slot.sb);
        return rc;
    }
    *out = slot.sb;
    return NU_OK;
}

int nu_vm_pool_ready(void)
{
    int count;

    pthread_mutex_lock(&nu__vm_pool.lock);
    count = nu__vm_pool.count;
    pthread_mutex_unlock(&nu__vm_pool.lock);
    return count;
}
