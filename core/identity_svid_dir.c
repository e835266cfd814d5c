/*
 * identity_svid_dir.c - SVID files on disk and their rotation.
 *
 * Layout made by nu_svid_install for path P = DIR/NAME:
 *   DIR/NAME         symbolic link to ".NAME.<generation>" (relative, so it
 *                    resolves the same inside a pod that mounts DIR)
 *   DIR/.NAME.<g>/   svid.pem, svid.key (0600), bundle.pem
 * Installing generation g+1 writes and syncs the new directory, points a
 * temporary link at it and renames that link over DIR/NAME (rename(2) is
 * atomic), then removes generations below g.  Keeping generation g lets a
 * reader that opened it just before the swap finish reading.
 *
 * Reader protocol: open DIR/NAME once with O_DIRECTORY, then read every
 * file with openat(2) from that descriptor, so all files come from one
 * generation.  If a file is missing (two rotations passed while reading),
 * start again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity_internal.h"
#include "nucleus/home.h"
#include "nucleus/log.h"

#define NU__CERT_FILE "svid.pem"
#define NU__KEY_FILE "svid.key"
#define NU__BUNDLE_FILE "bundle.pem"

static int nu__write_three(int dirfd, const char *dir, const nu_svid_t *svid,
                           nu_err_t *err)
{
    int rc = nu__id_write_file(dirfd, dir, NU__BUNDLE_FILE, svid->bundle_pem,
                               0644, err);

    if (rc == NU_OK)
        rc = nu__id_write_file(dirfd, dir, NU__KEY_FILE, svid->key_pem, 0600,
                               err);
    if (rc == NU_OK)
        rc = nu__id_write_file(dirfd, dir, NU__CERT_FILE, svid->cert_pem,
                               0644, err);
    if (rc == NU_OK && fsync(dirfd) != 0)
        rc = nu_err_errno(err, errno, "identity: cannot sync '%s'", dir);
    return rc;
}

int nu_svid_write_dir(const char *dir, const nu_svid_t *svid, nu_err_t *err)
{
    int dirfd, rc = nu_mkdir_p(dir, err);

    if (rc != NU_OK)
        return rc;
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return nu_err_errno(err, errno, "identity: cannot open '%s'", dir);
    rc = nu__write_three(dirfd, dir, svid, err);
    close(dirfd);
    return rc;
}

/* ---- generations ------------------------------------------------------------ */

/* Parse ".NAME.<g>" into g; returns 0 or -1 when entry is not a generation. */
static int nu__generation_of(const char *entry, const char *name, uint64_t *g)
{
    size_t n = strlen(name);
    char *end;

    if (entry[0] != '.' || strncmp(entry + 1, name, n) != 0 ||
        entry[n + 1] != '.' || entry[n + 2] < '0' || entry[n + 2] > '9')
        return -1;
    errno = 0;
    *g = strtoull(entry + n + 2, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

/* Generation the link NAME points at (0 when there is no link).  Fails with
 * NU_EEXIST when NAME is something other than a symbolic link. */
static int nu__current_generation(int parentfd, const char *path,
                                  const char *name, uint64_t *g, nu_err_t *err)
{
    char target[512];
    struct stat st;
    ssize_t n;

    *g = 0;
    if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? NU_OK
                               : nu_err_errno(err, errno, "identity: cannot "
                                              "stat '%s'", path);
    if (!S_ISLNK(st.st_mode))
        return nu_err_set(err, NU_EEXIST, "identity: cannot install SVID at "
                          "'%s': it exists and is not a link made by nucleus "
                          "(remove it first)", path);
    n = readlinkat(parentfd, name, target, sizeof target - 1);
    if (n < 0)
        return nu_err_errno(err, errno, "identity: cannot read link '%s'", path);
    target[n] = '\0';
    if (nu__generation_of(target, name, g) != 0)
        return nu_err_set(err, NU_EEXIST, "identity: cannot install SVID at "
                          "'%s': the link points at '%s', not at a generation "
                          "directory", path, target);
    return NU_OK;
}

/* Remove generation directory entry (its three files, then itself). */
static void nu__remove_generation(int parentfd, const char *entry)
{
    static const char *const files[] = { NU__CERT_FILE, NU__KEY_FILE,
                                         NU__BUNDLE_FILE };
    int fd = openat(parentfd, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                    O_CLOEXEC);

    if (fd >= 0) {
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
            unlinkat(fd, files[i], 0);
        close(fd);
    }
    unlinkat(parentfd, entry, AT_REMOVEDIR);
}

/* Remove generations below keep (the one before the current). */
static void nu__prune(int parentfd, const char *name, uint64_t keep)
{
    int fd = dup(parentfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *ent;
    uint64_t g;

    if (dir == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((ent = readdir(dir)) != NULL)
        if (nu__generation_of(ent->d_name, name, &g) == 0 && g < keep)
            nu__remove_generation(parentfd, ent->d_name);
    closedir(dir);
}

/* Point NAME at target through a temporary link and rename(2). */
static int nu__swap_link(int parentfd, const char *path, const char *name,
                         const char *target, nu_err_t *err)
{
    char tmp[300];

    snprintf(tmp, sizeof tmp, ".%s.link", name);
    unlinkat(parentfd, tmp, 0);
    if (symlinkat(target, parentfd, tmp) != 0)
        return nu_err_errno(err, errno, "identity: cannot create link for "
                            "'%s'", path);
    if (renameat(parentfd, tmp, parentfd, name) != 0) {
        int saved = errno;
        unlinkat(parentfd, tmp, 0);
        return nu_err_errno(err, saved, "identity: cannot replace '%s'", path);
    }
    if (fsync(parentfd) != 0)
        return nu_err_errno(err, errno, "identity: cannot sync the directory "
                            "of '%s'", path);
    return NU_OK;
}

int nu_svid_install(const char *path, const nu_svid_t *svid, nu_err_t *err)
{
    char parent[4096], base[256], gen_dir[300];
    char *copy1 = strdup(path), *copy2 = strdup(path);
    int parentfd = -1, genfd = -1, rc;
    uint64_t current;

    if (copy1 == NULL || copy2 == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "identity: out of memory");
        goto out;
    }
    snprintf(parent, sizeof parent, "%s", dirname(copy1));
    snprintf(base, sizeof base, "%s", basename(copy2));
    rc = nu_mkdir_p(parent, err);
    if (rc != NU_OK)
        goto out;
    parentfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parentfd < 0) {
        rc = nu_err_errno(err, errno, "identity: cannot open '%s'", parent);
        goto out;
    }
    rc = nu__current_generation(parentfd, path, base, &current, err);
    if (rc != NU_OK)
        goto out;

    snprintf(gen_dir, sizeof gen_dir, ".%s.%" PRIu64, base, current + 1);
    nu__remove_generation(parentfd, gen_dir);   /* left over from a crash */
    if (mkdirat(parentfd, gen_dir, 0755) != 0 ||
        (genfd = openat(parentfd, gen_dir, O_RDONLY | O_DIRECTORY |
                        O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = nu_err_errno(err, errno, "identity: cannot create '%s/%s'",
                          parent, gen_dir);
        goto out;
    }
    rc = nu__write_three(genfd, gen_dir, svid, err);
    if (rc == NU_OK)
        rc = nu__swap_link(parentfd, path, base, gen_dir, err);
    if (rc == NU_OK && current > 0)
        nu__prune(parentfd, base, current);

out:
    if (genfd >= 0)
        close(genfd);
    if (parentfd >= 0)
        close(parentfd);
    free(copy1);
    free(copy2);
    return rc;
}

static int nu__read_once(const char *path, char **cert, char **key,
                         char **bundle, nu_err_t *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return nu_err_errno(err, errno, "identity: cannot open '%s'", path);
    rc = nu__id_read_file(fd, NU__CERT_FILE, cert, NULL, err);
    if (rc == NU_OK)
        rc = nu__id_read_file(fd, NU__KEY_FILE, key, NULL, err);
    if (rc == NU_OK && bundle != NULL)
        rc = nu__id_read_file(fd, NU__BUNDLE_FILE, bundle, NULL, err);
    close(fd);
    return rc;
}

int nu_svid_read_dir(const char *path, char **cert_pem, char **key_pem,
                     char **bundle_pem, nu_err_t *err)
{
    int rc = NU_ENOENT;

    for (int attempt = 0; attempt < 3 && rc == NU_ENOENT; attempt++) {
        *cert_pem = *key_pem = NULL;
        if (bundle_pem != NULL)
            *bundle_pem = NULL;
        rc = nu__read_once(path, cert_pem, key_pem, bundle_pem, err);
        if (rc != NU_OK) {
            free(*cert_pem);
            free(*key_pem);
            if (bundle_pem != NULL)
                free(*bundle_pem);
            *cert_pem = *key_pem = NULL;
        }
    }
    return rc;
}

/* ---- rotation ------------------------------------------------------------ */

struct nu_svid_rotator {
    nu_ca_t *ca;
    char id[NU_SPIFFEID_MAX + 1];
    char path[4096];
    int64_t ttl;

    pthread_mutex_t lock;           /* guards the fields below */
    int64_t due_ms;                 /* wall-clock ms of the next rotation */
    uint64_t generation;

    uv_timer_t timer;
    int uv_started;

    pthread_t thread;
    pthread_cond_t wake;
    int thread_started;
    int stopping;
};

static int64_t nu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nu_svid_rotator_new(nu_ca_t *ca, const char *spiffe_id, int64_t ttl,
                        const char *path, nu_svid_rotator_t **out,
                        nu_err_t *err)
{
    nu_svid_rotator_t *r;
    nu_spiffeid_t id;
    int rc = nu_spiffeid_parse(spiffe_id, strlen(spiffe_id), &id, err);

    if (rc != NU_OK)
        return rc;
    if (strlen(path) >= sizeof r->path)
        return nu_err_set(err, NU_EINVAL, "identity: SVID path is too long");
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return nu_err_set(err, NU_ENOMEM, "identity: out of memory");
    r->ca = ca;
    memcpy(r->id, id.id, strlen(id.id) + 1);
    memcpy(r->path, path, strlen(path) + 1);
    r->ttl = ttl != 0 ? ttl : NU_SVID_TTL_DEFAULT;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    *out = r;
    return NU_OK;
}

int nu_svid_rotator_rotate(nu_svid_rotator_t *r, nu_err_t *err)
{
    nu_svid_t svid;
    int64_t issued_ms, lifetime_ms, now_ms;
    int rc = nu_ca_issue(r->ca, r->id, r->ttl, &svid, err);

    if (rc == NU_OK)
        rc = nu_svid_install(r->path, &svid, err);

    pthread_mutex_lock(&r->lock);
    now_ms = nu__now_ms();
    if (rc == NU_OK) {
        /* Half of the real lifetime, not counting the back-dating. */
        issued_ms = ((int64_t)svid.not_before + NU_SVID_BACKDATE) * 1000;
        lifetime_ms = (int64_t)svid.not_after * 1000 - issued_ms;
        r->due_ms = issued_ms + lifetime_ms / 2;
        r->generation++;
        nu_log(NU_LOG_INFO, "identity", "installed SVID %s at %s "
               "(generation %" PRIu64 ", expires at %lld)", r->id, r->path,
               r->generation, (long long)svid.not_after);
    } else {
        int64_t left = r->due_ms > 0 ? (r->due_ms - now_ms) * 2 : 0;
        int64_t retry = left / 4 > 0 && left / 4 < 10000 ? left / 4 : 10000;
        r->due_ms = now_ms + retry;
        nu_log(NU_LOG_ERROR, "identity", "cannot rotate SVID %s at %s, "
               "retrying in %lld ms: %s", r->id, r->path, (long long)retry,
               err != NULL ? err->msg : "error");
    }
    pthread_mutex_unlock(&r->lock);
    nu_svid_free(&svid);
    return rc;
}

int64_t nu_svid_rotator_delay_ms(const nu_svid_rotator_t *r)
{
    nu_svid_rotator_t *m = (nu_svid_rotator_t *)r;
    int64_t delay;

    pthread_mutex_lock(&m->lock);
    delay = m->due_ms - nu__now_ms();
    pthread_mutex_unlock(&m->lock);
    return delay > 0 ? delay : 0;
}

uint64_t nu_svid_rotator_generation(const nu_svid_rotator_t *r)
{
    nu_svid_rotator_t *m = (nu_svid_rotator_t *)r;
    uint64_t g;

    pthread_mutex_lock(&m->lock);
    g = m->generation;
    pthread_mutex_unlock(&m->lock);
    return g;
}

static void nu__on_timer(uv_timer_t *timer)
{
    nu_svid_rotator_t *r = timer->data;
    nu_err_t err;

    nu_svid_rotator_rotate(r, &err);    /* failures are logged and retried */
    uv_timer_start(&r->timer, nu__on_timer,
                   (uint64_t)nu_svid_rotator_delay_ms(r), 0);
}

int nu_svid_rotator_start_uv(nu_svid_rotator_t *r, uv_loop_t *loop,
                             nu_err_t *err)
{
    int rc = nu_svid_rotator_rotate(r, err);

    if (rc != NU_OK)
        return rc;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->uv_started = 1;
    uv_timer_start(&r->timer, nu__on_timer,
                   (uint64_t)nu_svid_rotator_delay_ms(r), 0);
    return NU_OK;
}

static void *nu__rotator_main(void *arg)
{
    nu_svid_rotator_t *r = arg;
    nu_err_t err;

    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        int64_t delay = r->due_ms - nu__now_ms();
        if (delay > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += delay / 1000;
            ts.tv_nsec += (delay % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r->wake, &r->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&r->lock);
        nu_svid_rotator_rotate(r, &err);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int nu_svid_rotator_start_thread(nu_svid_rotator_t *r, nu_err_t *err)
{
    int rc = nu_svid_rotator_rotate(r, err);

    if (rc != NU_OK)
        return rc;
    rc = pthread_create(&r->thread, NULL, nu__rotator_main, r);
    if (rc != 0)
        return nu_err_errno(err, rc, "identity: cannot start the rotation "
                            "thread");
    r->thread_started = 1;
    return NU_OK;
}

static void nu__rotator_release(nu_svid_rotator_t *r)
{
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void nu__on_timer_closed(uv_handle_t *handle)
{
    nu__rotator_release(handle->data);
}

void nu_svid_rotator_free(nu_svid_rotator_t *r)
{
    if (r == NULL)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->lock);
        r->stopping = 1;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    if (r->uv_started) {
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, nu__on_timer_closed);
        return;
    }
    nu__rotator_release(r);
}
