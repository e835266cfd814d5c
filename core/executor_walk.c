/*
 * executor_walk.c - directory walks, glob matching and the glob tool.
 *
 * Walks never follow symbolic links.  A link is reported as an entry, but
 * a link to a directory is not descended into, so a walk cannot loop or
 * leave the workspace.  Entries of each directory are visited in byte
 * order of their names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executor_int.h"

#define NU__GLOB_MAX_PATTERN 4095
#define NU__GLOB_MAX_COMPONENTS 128
#define NU__WALK_MAX_DEPTH 128

/* --- matching ----------------------------------------------------------- */

typedef struct nu__parts {
    char *buf;
    const char *items[NU__GLOB_MAX_COMPONENTS];
    size_t n;
} nu__parts_t;

/* Split s on '/' into at most NU__GLOB_MAX_COMPONENTS non-empty parts. */
static int nu__split(const char *s, nu__parts_t *p)
{
    char *save = NULL, *tok;

    p->n = 0;
    p->buf = strdup(s);
    if (p->buf == NULL)
        return -1;
    for (tok = strtok_r(p->buf, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
        if (p->n == NU__GLOB_MAX_COMPONENTS) {
            free(p->buf);
            return -1;
        }
        p->items[p->n++] = tok;
    }
    return 0;
}

static int nu__hidden(const char *name)
{
    return name[0] == '.';
}

/* Match path parts against pattern parts.  With prefix set, a path that
 * runs out before the pattern counts as a match (something below it
 * may still match).  Results are memoized per (pattern part, path part),
 * so several "**" cost O(parts^2) fnmatch calls, not an exponential
 * number. */
typedef struct nu__memo {
    const char *const *pat;
    size_t np;
    const char *const *path;
    size_t nc;
    int prefix, dots;
    unsigned char *seen;        /* (np + 1) x (nc + 1): 0 unknown, 1 no, 2 yes */
} nu__memo_t;

static int nu__match_at(nu__memo_t *m, size_t i, size_t j)
{
    unsigned char *slot = &m->seen[i * (m->nc + 1) + j];
    int r;

    if (*slot != 0)
        return *slot - 1;

    if (i == m->np) {
        r = j == m->nc;
    } else if (strcmp(m->pat[i], "**") == 0) {
        /* "**" absorbs k leading components, none of them hidden. */
        r = m->prefix && j == m->nc;
        for (size_t k = j; k <= m->nc && !r; k++) {
            if (k > j && !m->dots && nu__hidden(m->path[k - 1]))
                break;
            r = nu__match_at(m, i + 1, k);
        }
    } else if (j == m->nc) {
        r = m->prefix;
    } else {
        r = fnmatch(m->pat[i], m->path[j], m->dots ? 0 : FNM_PERIOD) == 0 &&
            nu__match_at(m, i + 1, j + 1);
    }
    *slot = (unsigned char)(r + 1);
    return r;
}

static int nu__match_parts(const char *const *pat, size_t np, const char *const *path,
                           size_t nc, int prefix, int dots)
{
    unsigned char small[256];
    nu__memo_t m = { pat, np, path, nc, prefix, dots, small };
    size_t cells = (np + 1) * (nc + 1);
    int r;

    if (cells > sizeof small && (m.seen = malloc(cells)) == NULL)
        return 0;
    memset(m.seen, 0, cells);
    r = nu__match_at(&m, 0, 0);
    if (m.seen != small)
        free(m.seen);
    return r;
}

static int nu__match(const char *pattern, const char *path, int prefix, int dots)
{
    nu__parts_t pat, parts;
    int matched = 0;

    if (nu__split(pattern, &pat) < 0)
        return 0;
    if (nu__split(path, &parts) == 0) {
        matched = nu__match_parts(pat.items, pat.n, parts.items, parts.n, prefix, dots);
        free(parts.buf);
    }
    free(pat.buf);
    return matched;
}

int nu__glob_match(const char *pattern, const char *path)
{
    return nu__match(pattern, path, 0, 0);
}

int nu__glob_match_prefix(const char *pattern, const char *dir)
{
    return nu__match(pattern, dir, 1, 0);
}

/* Test one exclusion pattern against a workspace-relative path.  A
 * pattern without '/' matches any single component.  A pattern with '/' is
 * anchored at the root and matches the path or any of its parents.  A
 * trailing '/' ("secrets/") is dropped, so it also matches files of that
 * name.  Leading dots need no explicit match, because exclusion errs on
 * the side of hiding. */
static int nu__excluded_by(const char *pattern, const char *path)
{
    char pat[PATH_MAX], buf[PATH_MAX];
    size_t plen = strlen(pattern), len = strlen(path);

    if (plen >= sizeof pat || len >= sizeof buf)
        return 1;
    memcpy(pat, pattern, plen + 1);
    while (plen > 1 && pat[plen - 1] == '/')
        pat[--plen] = '\0';
    memcpy(buf, path, len + 1);

    if (strchr(pat, '/') == NULL) {
        char *save = NULL;
        for (char *c = strtok_r(buf, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save))
            if (fnmatch(pat, c, 0) == 0)
                return 1;
        return 0;
    }

    for (;;) {
        char *slash;
        if (nu__match(pat, buf, 0, 1))
            return 1;
        slash = strrchr(buf, '/');
        if (slash == NULL)
            return 0;
        *slash = '\0';
    }
}

int nu__excluded(const json_t *exclude, const char *base_rel, const char *rel)
{
    char full[PATH_MAX];
    size_t i;
    json_t *p;

    if (json_array_size(exclude) == 0)
        return 0;
    if (strcmp(base_rel, ".") == 0)
        snprintf(full, sizeof full, "%s", rel);
    else if ((size_t)snprintf(full, sizeof full, "%s/%s", base_rel, rel) >= sizeof full)
        return 1;

    json_array_foreach(exclude, i, p) {
        if (nu__excluded_by(json_string_value(p), full))
            return 1;
    }
    return 0;
}

int nu__exclude_arg(const char *tool, const json_t *args, const json_t **out, nu_err_t *err)
{
    json_t *v = json_object_get(args, "exclude");
    size_t i;
    json_t *p;

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return NU_OK;
    if (!json_is_array(v))
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument 'exclude': expected a list of glob "
                          "patterns", tool);
    json_array_foreach(v, i, p) {
        if (!json_is_string(p) || json_string_length(p) == 0 ||
            strlen(json_string_value(p)) != json_string_length(p))
            return nu_err_set(err, NU_EINVAL,
                              "%s: cannot use exclude[%zu]: expected a non-empty string "
                              "without NUL", tool, i);
    }
    *out = v;
    return NU_OK;
}

int nu__glob_check(const char *tool, const char *pattern, nu_err_t *err)
{
    nu__parts_t p;

    if (pattern[0] == '\0')
        return nu_err_set(err, NU_EINVAL, "%s: cannot use an empty glob pattern", tool);
    if (pattern[0] == '/')
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use glob pattern '%s': it must be relative (put "
                          "the directory in 'path')", tool, pattern);
    if (strlen(pattern) > NU__GLOB_MAX_PATTERN || nu__split(pattern, &p) < 0)
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use glob pattern '%.64s...': longer than %d bytes "
                          "or %d components", tool, pattern, NU__GLOB_MAX_PATTERN,
                          NU__GLOB_MAX_COMPONENTS);

    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.items[i], ".") == 0 || strcmp(p.items[i], "..") == 0) {
            free(p.buf);
            return nu_err_set(err, NU_EINVAL,
                              "%s: cannot use glob pattern '%s': '.' and '..' "
                              "components are not allowed", tool, pattern);
        }
    }
    free(p.buf);
    return NU_OK;
}

/* --- walking ------------------------------------------------------------ */

typedef struct nu__walker {
    nu__walk_visit_t visit;
    void *ctx;
    size_t entries, max_entries;
    int capped;
    char rel[PATH_MAX];
    nu_err_t *err;
} nu__walker_t;

static int nu__cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read the names of dir (an O_RDONLY descriptor, consumed) into a sorted
 * array. */
static int nu__read_names(int fd, char ***names_out, size_t *count_out)
{
    DIR *d = fdopendir(fd);
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;

    if (d == NULL) {
        close(fd);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (count == cap) {
            char **bigger = realloc(names, (cap ? cap * 2 : 32) * sizeof *names);
            if (bigger == NULL)
                goto nomem;
            names = bigger;
            cap = cap ? cap * 2 : 32;
        }
        names[count] = strdup(e->d_name);
        if (names[count] == NULL)
            goto nomem;
        count++;
    }
    closedir(d);
    qsort(names, count, sizeof *names, nu__cmp_names);
    *names_out = names;
    *count_out = count;
    return 0;

nomem:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    closedir(d);
    errno = ENOMEM;
    return -1;
}

static int nu__walk_dir(nu__walker_t *w, int dir_fd, size_t rel_len, int depth);

/* Visit one entry of a directory, and descend when the visitor returns 1. */
static int nu__walk_entry(nu__walker_t *w, int dir_fd, const char *name, size_t rel_len,
                          int depth)
{
    size_t name_len = strlen(name);
    struct stat st;
    int rc, sub;

    if (w->entries == w->max_entries) {
        w->capped = 1;
        return NU__WALK_STOP;
    }
    w->entries++;

    if (rel_len + name_len + 2 > sizeof w->rel)
        return NU_OK;
    if (rel_len > 0)
        w->rel[rel_len++] = '/';
    memcpy(w->rel + rel_len, name, name_len + 1);

    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return NU_OK; /* removed while walking */

    rc = w->visit(w->ctx, dir_fd, name, w->rel, &st);
    if (rc != 1 || !S_ISDIR(st.st_mode) || depth >= NU__WALK_MAX_DEPTH)
        return rc == 1 ? NU_OK : rc;

    sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return NU_OK; /* unreadable or replaced: skip it */
    return nu__walk_dir(w, sub, rel_len + name_len, depth + 1);
}

/* Walk dir_fd, which is closed on return.  The first rel_len bytes of
 * w->rel are its path. */
static int nu__walk_dir(nu__walker_t *w, int dir_fd, size_t rel_len, int depth)
{
    char **names = NULL;
    size_t count = 0;
    int rc = NU_OK, fd;

    fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0 || nu__read_names(fd, &names, &count) < 0) {
        rc = errno == ENOMEM ? nu_err_set(w->err, NU_ENOMEM, "walk: out of memory")
                             : NU_OK;
        close(dir_fd);
        return rc;
    }

    for (size_t i = 0; i < count && rc == NU_OK; i++) {
        rc = nu__walk_entry(w, dir_fd, names[i], rel_len, depth);
        w->rel[rel_len] = '\0';
    }

    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    close(dir_fd);
    return rc;
}

int nu__exec_walk(const nu_resolved_t *base, size_t max_entries,
                  nu__walk_visit_t visit, void *ctx, int *capped, nu_err_t *err)
{
    nu__walker_t w = { .visit = visit, .ctx = ctx, .max_entries = max_entries, .err = err };
    int fd, rc;

    *capped = 0;
    fd = openat(base->dir_fd, base->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOTDIR)
        return nu_err_set(err, NU_EINVAL, "walk: cannot list '%s': not a directory",
                          base->rel);
    if (fd < 0)
        return nu_err_errno(err, errno, "walk: cannot open directory '%s'", base->rel);

    rc = nu__walk_dir(&w, fd, 0, 0);
    *capped = w.capped;
    return rc == NU__WALK_STOP ? NU_OK : rc;
}

/* --- the glob tool ------------------------------------------------------ */

typedef struct nu__glob_ctx {
    const char *pattern;
    const char *base_rel;  /* "." or the base directory */
    const json_t *exclude; /* patterns hidden from the walk, or NULL */
    json_t *matches;
    size_t max;
    int truncated;
} nu__glob_ctx_t;

static int nu__glob_visit(void *arg, int parent_fd, const char *name, const char *rel,
                          const struct stat *st)
{
    nu__glob_ctx_t *g = arg;

    if (nu__excluded(g->exclude, g->base_rel, rel))
        return 0;
    if (nu__glob_match(g->pattern, rel)) {
        json_t *s;

        if (json_array_size(g->matches) == g->max) {
            g->truncated = 1;
            return NU__WALK_STOP;
        }
        if (strcmp(g->base_rel, ".") == 0) {
            s = json_string(rel);
        } else {
            size_t n = strlen(g->base_rel) + strlen(rel) + 2;
            char *full = malloc(n);
            if (full == NULL)
                return NU_ENOMEM;
            snprintf(full, n, "%s/%s", g->base_rel, rel);
            s = json_string(full);
            free(full);
        }
        /* Names that are not UTF-8 cannot be JSON strings; skip them. */
        if (s != NULL && json_array_append_new(g->matches, s) < 0)
            return NU_ENOMEM;
    }
    return S_ISDIR(st->st_mode) && nu__glob_match_prefix(g->pattern, rel);
}

static int nu__glob_cmp(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a),
                  json_string_value(*(json_t *const *)b));
}

/* Sort the match array in byte order. */
static int nu__sort_strings(json_t *array, json_t **sorted)
{
    size_t n = json_array_size(array);
    json_t **items = malloc((n ? n : 1) * sizeof *items);

    *sorted = json_array();
    if (items == NULL || *sorted == NULL) {
        free(items);
        json_decref(*sorted);
        *sorted = NULL;
        return NU_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(array, i);
    qsort(items, n, sizeof *items, nu__glob_cmp);
    for (size_t i = 0; i < n; i++)
        json_array_append(*sorted, items[i]);
    free(items);
    return NU_OK;
}

int nu_exec_glob(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err)
{
    nu_resolved_t base = { .dir_fd = -1 };
    nu__glob_ctx_t g = { 0 };
    const char *pattern, *path;
    json_t *sorted = NULL, *res = NULL;
    int capped = 0, rc;

    *result = NULL;
    rc = nu__exec_arg_string("glob", args, "pattern", 1, &pattern, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_string("glob", args, "path", 0, &path, err);
    if (rc == NU_OK)
        rc = nu__glob_check("glob", pattern, err);
    if (rc == NU_OK)
        rc = nu__exclude_arg("glob", args, &g.exclude, err);
    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "glob", path != NULL ? path : ".",
                              NU_RESOLVE_FOLLOW_FINAL, &base, err);
    if (rc < 0)
        goto out;

    g.pattern = pattern;
    g.base_rel = base.rel;
    g.max = ex->cfg.max_glob_matches;
    g.matches = json_array();
    if (g.matches == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "glob: out of memory");
        goto out;
    }

    rc = nu__exec_walk(&base, ex->cfg.max_walk_entries, nu__glob_visit, &g, &capped, err);
    if (rc == NU_ENOMEM)
        nu_err_set(err, rc, "glob: cannot list '%s': out of memory", base.rel);
    if (rc < 0)
        goto out;

    res = nu__exec_ok();
    if (res == NULL || nu__sort_strings(g.matches, &sorted) < 0 ||
        json_object_set_new(res, "matches", sorted) < 0 ||
        json_object_set_new(res, "truncated", json_boolean(g.truncated || capped)) < 0) {
        rc = nu_err_set(err, NU_ENOMEM, "glob: out of memory");
        goto out;
    }
    *result = res;
    res = NULL;

out:
    json_decref(res);
    json_decref(g.matches);
    nu_resolved_free(&base);
    if (rc < 0)
        return nu__exec_fail(result, err, rc, NULL);
    return NU_OK;
}
