/*
 * resolve.c - resolve a request path beneath the workspace root.
 *
 * Threat model: the path and every symbolic link in the workspace are
 * chosen by the agent, which may also rename files while a call runs.  The
 * walk must never open anything outside the root, and must report the real
 * target so the host can apply its path rules to it.
 *
 * Algorithm:
 *   1. An absolute path must start with root_prefix, which is stripped; the
 *      rest is relative to the root.
 *   2. The walk keeps a stack of open directory descriptors, one per
 *      component of the resolved path, with the root (not owned) at the
 *      bottom, and the list of components still to visit.
 *   3. "." and empty components are skipped.  ".." pops the stack; popping
 *      the root is an escape and is rejected.  No ".." reaches the kernel.
 *   4. Any other component is opened relative to the top of the stack with
 *      O_PATH | O_NOFOLLOW (openat2 with RESOLVE_BENEATH |
 *      RESOLVE_NO_SYMLINKS where available), so the kernel follows no link.
 *   5. A symbolic link is read with readlinkat and its target is put in
 *      front of the components still to visit.  An absolute target goes
 *      through rule 1 and restarts from the root.  After 40 links the walk
 *      stops (loops end here).
 *   6. A directory is pushed; anything else may only be the last component.
 *
 * Races: each step is relative to a descriptor the walk already holds, so
 * renaming a directory or swapping it for a link while the walk runs can
 * change which file inside the workspace is reached, but not make the walk
 * leave the workspace.  The exception is a held directory being moved out
 * of the root, which the sandbox prevents: the workspace is its own bind
 * mount, and rename(2) across mounts fails with EXDEV.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "executor_int.h"

#define NU__RESOLVE_MAX_LINKS 40
#define NU__RESOLVE_MAX_PATH 4095
#define NU__RESOLVE_MAX_DEPTH 256

typedef struct nu__walk {
    int root_fd;
    const char *prefix;    /* root_prefix without a trailing slash, or "/" */
    size_t prefix_len;
    const char *request;   /* the path as given, for messages */

    int fds[NU__RESOLVE_MAX_DEPTH];      /* fds[i] is the directory names[i] */
    char *names[NU__RESOLVE_MAX_DEPTH];
    size_t depth;

    char *todo;            /* components still to visit, '/'-separated */
    size_t pos;            /* read position in todo */
    int links;
} nu__walk_t;

/* -1 unknown, 0 missing (ENOSYS), 1 present. */
static int nu__openat2_state = -1;

void nu__resolve_use_openat2(int enabled)
{
    nu__openat2_state = enabled ? -1 : 0;
}

/* Open one component name (no '/') relative to dir without following a
 * link.  Returns a descriptor or -1 with errno set. */
static int nu__open_component(int dir, const char *name)
{
    int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;

    if (nu__openat2_state != 0) {
        struct open_how how = {
            .flags = (uint64_t)flags,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                       RESOLVE_NO_MAGICLINKS,
        };
        int fd;

        do
            fd = (int)syscall(SYS_openat2, dir, name, &how, sizeof how);
        while (fd < 0 && (errno == EAGAIN || errno == EINTR));

        if (fd >= 0 || errno != ENOSYS) {
            nu__openat2_state = 1;
            return fd;
        }
        nu__openat2_state = 0;
    }
    return openat(dir, name, flags);
}

static int nu__walk_top(const nu__walk_t *w)
{
    return w->depth == 0 ? w->root_fd : w->fds[w->depth - 1];
}

static void nu__walk_pop(nu__walk_t *w)
{
    w->depth--;
    close(w->fds[w->depth]);
    free(w->names[w->depth]);
}

static void nu__walk_reset(nu__walk_t *w)
{
    while (w->depth > 0)
        nu__walk_pop(w);
}

static void nu__walk_free(nu__walk_t *w)
{
    nu__walk_reset(w);
    free(w->todo);
    w->todo = NULL;
}

/* Join the stack names and an optional final name with '/'. */
static char *nu__walk_rel(const nu__walk_t *w, const char *last)
{
    size_t len = 0;
    char *rel, *p;

    for (size_t i = 0; i < w->depth; i++)
        len += strlen(w->names[i]) + 1;
    if (last != NULL)
        len += strlen(last) + 1;
    if (len == 0)
        return strdup(".");

    rel = malloc(len);
    if (rel == NULL)
        return NULL;

    p = rel;
    for (size_t i = 0; i < w->depth; i++) {
        size_t n = strlen(w->names[i]);
        memcpy(p, w->names[i], n);
        p += n;
        *p++ = '/';
    }
    if (last != NULL) {
        size_t n = strlen(last);
        memcpy(p, last, n);
        p += n;
        *p++ = '/';
    }
    p[-1] = '\0';
    return rel;
}

/* Apply rule 1 to an absolute path: return the part after root_prefix, or
 * NULL when the path is outside it. */
static const char *nu__strip_prefix(const nu__walk_t *w, const char *abs)
{
    if (w->prefix_len == 1)
        return abs + 1;
    if (strncmp(abs, w->prefix, w->prefix_len) != 0)
        return NULL;
    if (abs[w->prefix_len] != '\0' && abs[w->prefix_len] != '/')
        return NULL;
    return abs + w->prefix_len;
}

/* Replace the to-do list by head + "/" + the unvisited rest. */
static int nu__walk_splice(nu__walk_t *w, const char *head, nu_err_t *err)
{
    const char *rest = w->todo + w->pos;
    size_t head_len = strlen(head), rest_len = strlen(rest);
    char *todo;

    if (head_len + rest_len + 1 > 2 * NU__RESOLVE_MAX_PATH)
        return nu_err_set(err, NU_EINVAL,
                          "path: cannot resolve '%s': expanded path is longer "
                          "than %d bytes", w->request, 2 * NU__RESOLVE_MAX_PATH);

    todo = malloc(head_len + rest_len + 2);
    if (todo == NULL)
        return nu_err_set(err, NU_ENOMEM, "path: cannot resolve '%s': out of memory",
                          w->request);

    memcpy(todo, head, head_len);
    todo[head_len] = '/';
    memcpy(todo + head_len + 1, rest, rest_len + 1);

    free(w->todo);
    w->todo = todo;
    w->pos = 0;
    return NU_OK;
}

/* Start (or restart, for an absolute link target) from path. */
static int nu__walk_start(nu__walk_t *w, const char *path, nu_err_t *err)
{
    const char *rel = path;

    if (path[0] == '/') {
        rel = nu__strip_prefix(w, path);
        if (rel == NULL)
            return nu_err_set(err, NU_EDENIED,
                              "path: cannot resolve '%s': '%s' is outside the "
                              "workspace '%s'", w->request, path, w->prefix);
        nu__walk_reset(w);
    }
    return nu__walk_splice(w, rel, err);
}

/* Copy the next component into name; returns 0 at the end. */
static int nu__walk_next(nu__walk_t *w, char name[NAME_MAX + 1], nu_err_t *err)
{
    const char *s = w->todo + w->pos;
    size_t n;

    while (*s == '/')
        s++;
    n = strcspn(s, "/");
    w->pos = (size_t)(s - w->todo) + n;
    if (n == 0)
        return 0;

    if (n > NAME_MAX)
        return nu_err_set(err, NU_EINVAL,
                          "path: cannot resolve '%.64s...': a component is "
                          "longer than %d bytes", w->request, NAME_MAX);
    memcpy(name, s, n);
    name[n] = '\0';
    return 1;
}

/* True when only separators and "." remain, so name is the last step. */
static int nu__walk_at_end(const nu__walk_t *w)
{
    const char *s = w->todo + w->pos;

    for (;;) {
        while (*s == '/')
            s++;
        if (*s == '\0')
            return 1;
        if (s[0] == '.' && (s[1] == '/' || s[1] == '\0')) {
            s++;
            continue;
        }
        return 0;
    }
}

/* Rule 5: read the link (fd, or name in dir when fd is -1) and splice its
 * target in front of the rest. */
static int nu__walk_follow(nu__walk_t *w, int dir, const char *name, int fd,
                           nu_err_t *err)
{
    char target[PATH_MAX];
    ssize_t n;

    if (++w->links > NU__RESOLVE_MAX_LINKS)
        return nu_err_set(err, NU_EDENIED,
                          "path: cannot resolve '%s': more than %d symbolic "
                          "links (a loop?)", w->request, NU__RESOLVE_MAX_LINKS);

    n = fd >= 0 ? readlinkat(fd, "", target, sizeof target - 1)
                : readlinkat(dir, name, target, sizeof target - 1);
    if (n < 0)
        return nu_err_errno(err, errno, "path: cannot read symbolic link '%s' in '%s'",
                            name, w->request);
    if (n == 0)
        return nu_err_set(err, NU_ENOENT,
                          "path: cannot resolve '%s': symbolic link '%s' is empty",
                          w->request, name);
    target[n] = '\0';

    if (target[0] == '/') {
        const char *rel = nu__strip_prefix(w, target);
        if (rel == NULL)
            return nu_err_set(err, NU_EDENIED,
                              "path: cannot resolve '%s': symbolic link '%s' "
                              "points outside the workspace to '%s'",
                              w->request, name, target);
        nu__walk_reset(w);
        return nu__walk_splice(w, rel, err);
    }
    return nu__walk_splice(w, target, err);
}

static int nu__walk_push(nu__walk_t *w, int fd, const char *name, nu_err_t *err)
{
    char *copy;

    if (w->depth == NU__RESOLVE_MAX_DEPTH) {
        close(fd);
        return nu_err_set(err, NU_EINVAL,
                          "path: cannot resolve '%s': deeper than %d directories",
                          w->request, NU__RESOLVE_MAX_DEPTH);
    }
    copy = strdup(name);
    if (copy == NULL) {
        close(fd);
        return nu_err_set(err, NU_ENOMEM, "path: cannot resolve '%s': out of memory",
                          w->request);
    }
    w->fds[w->depth] = fd;
    w->names[w->depth] = copy;
    w->depth++;
    return NU_OK;
}

/* Fill out with parent dir, name and relative path. */
static int nu__walk_finish(nu__walk_t *w, const char *name, int exists,
                           nu_resolved_t *out, nu_err_t *err)
{
    int parent = nu__walk_top(w);

    out->dir_fd = fcntl(parent, F_DUPFD_CLOEXEC, 3);
    if (out->dir_fd < 0)
        return nu_err_errno(err, errno, "path: cannot resolve '%s'", w->request);

    out->name = strdup(name);
    out->rel = nu__walk_rel(w, strcmp(name, ".") == 0 ? NULL : name);
    out->exists = exists;
    if (out->name == NULL || out->rel == NULL) {
        nu_resolved_free(out);
        return nu_err_set(err, NU_ENOMEM, "path: cannot resolve '%s': out of memory",
                          w->request);
    }
    return NU_OK;
}

/* The target is a directory on the stack (or the root): name it by its
 * parent and last name, as for any other target. */
static int nu__walk_finish_dir(nu__walk_t *w, nu_resolved_t *out, nu_err_t *err)
{
    char *last;
    int rc;

    if (w->depth == 0)
        return nu__walk_finish(w, ".", 1, out, err);

    /* Pop the last directory so its parent becomes the top, keeping its
     * name for the result. */
    last = w->names[w->depth - 1];
    w->names[w->depth - 1] = NULL;
    nu__walk_pop(w);
    rc = nu__walk_finish(w, last, 1, out, err);
    free(last);
    return rc;
}

/* Handle one ordinary component.  Returns NU_OK to continue, 1 when out
 * is filled, or a negative code. */
static int nu__walk_step(nu__walk_t *w, const char *name, int flags,
                         nu_resolved_t *out, nu_err_t *err)
{
    int top = nu__walk_top(w);
    int last = nu__walk_at_end(w);
    struct stat st;
    int fd, rc;

    fd = nu__open_component(top, name);
    if (fd < 0 && errno == ENOENT) {
        if (last && (flags & NU_RESOLVE_MAY_NOT_EXIST)) {
            rc = nu__walk_finish(w, name, 0, out, err);
            return rc < 0 ? rc : 1;
        }
        if (!last && (flags & NU_RESOLVE_MKDIRS)) {
            if (mkdirat(top, name, 0755) < 0 && errno != EEXIST)
                return nu_err_errno(err, errno, "path: cannot create directory '%s' for '%s'",
                                    name, w->request);
            fd = nu__open_component(top, name);
        }
    }
    if (fd < 0) {
        if (errno == ENOENT)
            return nu_err_set(err, NU_ENOENT, "path: cannot resolve '%s': '%s' not found",
                              w->request, name);
        if (errno == EXDEV || errno == ELOOP) {
            /* openat2 saw the component leave the directory. */
            nu_err_errno(err, errno, "path: cannot resolve '%s' at '%s'",
                         w->request, name);
            if (err != NULL)
                err->code = NU_EDENIED;
            return NU_EDENIED;
        }
        return nu_err_errno(err, errno, "path: cannot open '%s' in '%s'", name, w->request);
    }

    if (fstat(fd, &st) < 0) {
        rc = nu_err_errno(err, errno, "path: cannot stat '%s' in '%s'", name, w->request);
        close(fd);
        return rc;
    }

    if (S_ISLNK(st.st_mode) && (!last || (flags & NU_RESOLVE_FOLLOW_FINAL))) {
        rc = nu__walk_follow(w, top, name, fd, err);
        close(fd);
        return rc;
    }

    if (last) {
        close(fd);
        rc = nu__walk_finish(w, name, 1, out, err);
        return rc < 0 ? rc : 1;
    }

    if (!S_ISDIR(st.st_mode)) {
        close(fd);
        return nu_err_set(err, NU_ENOENT,
                          "path: cannot resolve '%s': '%s' is not a directory",
                          w->request, name);
    }
    return nu__walk_push(w, fd, name, err);
}

static int nu__walk_run(nu__walk_t *w, int flags, nu_resolved_t *out, nu_err_t *err)
{
    char name[NAME_MAX + 1];
    int rc;

    for (;;) {
        rc = nu__walk_next(w, name, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return nu__walk_finish_dir(w, out, err);

        if (strcmp(name, ".") == 0)
            continue;

        if (strcmp(name, "..") == 0) {
            if (w->depth == 0)
                return nu_err_set(err, NU_EDENIED,
                                  "path: cannot resolve '%s': '..' leaves the "
                                  "workspace", w->request);
            nu__walk_pop(w);
            continue;
        }

        rc = nu__walk_step(w, name, flags, out, err);
        if (rc != NU_OK)
            return rc < 0 ? rc : NU_OK;
    }
}

static int nu__check_request(const char *path, nu_err_t *err)
{
    size_t len;

    if (path == NULL || path[0] == '\0')
        return nu_err_set(err, NU_EINVAL, "path: cannot resolve an empty path");

    len = strnlen(path, NU__RESOLVE_MAX_PATH + 1);
    if (len > NU__RESOLVE_MAX_PATH)
        return nu_err_set(err, NU_EINVAL,
                          "path: cannot resolve '%.64s...': longer than %d bytes",
                          path, NU__RESOLVE_MAX_PATH);
    return NU_OK;
}

/* A path ending in '/' names a directory, as in POSIX path resolution. */
static int nu__check_trailing_slash(const char *path, nu_resolved_t *out, nu_err_t *err)
{
    struct stat st;

    if (path[strlen(path) - 1] != '/' || !out->exists)
        return NU_OK;
    if (fstatat(out->dir_fd, out->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISDIR(st.st_mode)) {
        nu_resolved_free(out);
        return nu_err_set(err, NU_ENOENT,
                          "path: cannot resolve '%s': not a directory", path);
    }
    return NU_OK;
}

int nu_resolve(int root_fd, const char *root_prefix, const char *path,
               int flags, nu_resolved_t *out, nu_err_t *err)
{
    nu__walk_t w;
    int rc;

    memset(out, 0, sizeof *out);
    out->dir_fd = -1;

    rc = nu__check_request(path, err);
    if (rc < 0)
        return rc;

    memset(&w, 0, sizeof w);
    w.root_fd = root_fd;
    w.request = path;
    w.prefix = root_prefix != NULL ? root_prefix : "/workspace";
    w.prefix_len = strlen(w.prefix);
    while (w.prefix_len > 1 && w.prefix[w.prefix_len - 1] == '/')
        w.prefix_len--;

    w.todo = strdup("");
    if (w.todo == NULL)
        return nu_err_set(err, NU_ENOMEM, "path: cannot resolve '%s': out of memory", path);

    rc = nu__walk_start(&w, path, err);
    if (rc == NU_OK)
        rc = nu__walk_run(&w, flags, out, err);
    if (rc == NU_OK)
        rc = nu__check_trailing_slash(path, out, err);

    nu__walk_free(&w);
    return rc;
}

void nu_resolved_free(nu_resolved_t *r)
{
    if (r == NULL)
        return;
    if (r->dir_fd >= 0)
        close(r->dir_fd);
    free(r->name);
    free(r->rel);
    r->dir_fd = -1;
    r->name = NULL;
    r->rel = NULL;
}

int nu_resolve_path(int root_fd, const char *root_prefix, const char *path,
                    char **rel_out, nu_err_t *err)
{
    nu_resolved_t r;
    int rc;

    *rel_out = NULL;
    rc = nu_resolve(root_fd, root_prefix, path,
                    NU_RESOLVE_FOLLOW_FINAL | NU_RESOLVE_MAY_NOT_EXIST, &r, err);
    if (rc < 0)
        return rc;

    *rel_out = r.rel;
    r.rel = NULL;
    nu_resolved_free(&r);
    return NU_OK;
}
