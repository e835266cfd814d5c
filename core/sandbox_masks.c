/*
 * sandbox_masks.c - expand a permission's block and write_block globs into
 * the workspace paths that a pod hides or makes read-only.
 *
 * The walk runs on the host before the pod starts, so it finds the files
 * that exist at creation.  A file created later under a blocked name is
 * not masked by the mount namespace.  The pipeline's path rules, applied
 * to the path the executor resolves, still deny file tools on it, but a
 * command run inside the pod can read it.  docs/sandbox.md states
 * this gap.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nucleus/glob.h"
#include "nucleus/sandbox.h"

typedef struct nu__list {
    char **items;
    size_t count;
    size_t cap;
} nu__list_t;

typedef struct nu__walk {
    const nu_perm_t *perm;
    dev_t dev;
    size_t visited;
    size_t max_entries;
    nu__list_t block;
    nu__list_t write_block;
} nu__walk_t;

static int nu__list_add(nu__list_t *l, const char *item)
{
    if (l->count + 2 > l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 16;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (grown == NULL)
            return NU_ENOMEM;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->count] = strdup(item);
    if (l->items[l->count] == NULL)
        return NU_ENOMEM;
    l->count++;
    l->items[l->count] = NULL;
    return NU_OK;
}

/* Make sure an empty list is still a NULL-terminated array. */
static int nu__list_finish(nu__list_t *l)
{
    if (l->items != NULL)
        return NU_OK;
    l->items = calloc(1, sizeof *l->items);
    return l->items != NULL ? NU_OK : NU_ENOMEM;
}

static bool nu__set_matches(const nu_strset_t *set, const char *rel)
{
    for (size_t i = 0; i < set->count; i++)
        if (nu_glob_match_path(set->items[i], rel))
            return true;
    return false;
}

/* A directory path gets a trailing slash so that "dir/" patterns match. */
static bool nu__matches(const nu_strset_t *set, const char *rel, bool dir)
{
    char with_slash[NU_PATH_MAX + 2];

    if (set->top)
        return true;
    if (nu__set_matches(set, rel))
        return true;
    if (dir && snprintf(with_slash, sizeof with_slash, "%s/", rel) <
               (int)sizeof with_slash)
        return nu__set_matches(set, with_slash);
    return false;
}

static int nu__walk_dir(nu__walk_t *w, int dir_fd, const char *prefix,
                        nu_err_t *err);

static int nu__visit(nu__walk_t *w, int dir_fd, const char *name,
                     const char *rel, nu_err_t *err)
{
    struct stat st;
    bool is_dir;
    int rc = NU_OK;

    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return NU_OK;  /* vanished meanwhile */
    is_dir = S_ISDIR(st.st_mode);

    if (nu__matches(&w->perm->paths.block, rel, is_dir))
        return nu__list_add(&w->block, rel);
    if (nu__matches(&w->perm->paths.write_block, rel, is_dir))
        return nu__list_add(&w->write_block, rel);  /* covers the subtree */

    if (is_dir && st.st_dev == w->dev) {
        int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                         O_CLOEXEC);
        if (sub >= 0)
            rc = nu__walk_dir(w, sub, rel, err);  /* closes sub */
    }
    return rc;
}

static int nu__walk_dir(nu__walk_t *w, int dir_fd, const char *prefix,
                        nu_err_t *err)
{
    DIR *dir = fdopendir(dir_fd);
    struct dirent *entry;
    char rel[NU_PATH_MAX];
    int rc = NU_OK;

    if (dir == NULL) {
        close(dir_fd);
        return NU_OK;
    }
    while (rc == NU_OK && (entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 ||
            strcmp(entry->d_name, "..") == 0)
            continue;
        if (++w->visited > w->max_entries) {
            rc = nu_err_set(err, NU_ELIMIT, "sandbox: cannot expand masks: "
                            "the workspace has more than %zu entries (raise "
                            "the limit or narrow the workspace)",
                            w->max_entries);
            break;
        }
        if (snprintf(rel, sizeof rel, "%s%s%s", prefix,
                     prefix[0] != '\0' ? "/" : "", entry->d_name) >=
            (int)sizeof rel)
            continue;  /* too long to be matched by any rule */
        rc = nu__visit(w, dirfd(dir), entry->d_name, rel, err);
        if (rc == NU_ENOMEM)
            nu_err_set(err, rc, "sandbox: cannot expand masks: out of "
                       "memory");
    }
    closedir(dir);
    return rc;
}

void nu_sandbox_free_list(char **list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

int nu_sandbox_collect(const char *workspace, const nu_perm_t *perm,
                       size_t max_entries, char ***block,
                       char ***write_block, nu_err_t *err)
{
    nu__walk_t w = { .perm = perm };
    struct stat st;
    int fd;
    int rc;

    *block = NULL;
    *write_block = NULL;
    w.max_entries = max_entries != 0 ? max_entries : 200000;

    fd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = nu_err_errno(err, errno, "sandbox: cannot open workspace '%s'",
                          workspace);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    w.dev = st.st_dev;

    rc = nu__walk_dir(&w, fd, "", err);
    if (rc == NU_OK)
        rc = nu__list_finish(&w.block);
    if (rc == NU_OK)
        rc = nu__list_finish(&w.write_block);
    if (rc == NU_ENOMEM)
        nu_err_set(err, rc, "sandbox: cannot expand masks: out of memory");
    if (rc < 0) {
        nu_sandbox_free_list(w.block.items);
        nu_sandbox_free_list(w.write_block.items);
        return rc;
    }
    *block = w.block.items;
    *write_block = w.write_block.items;
    return NU_OK;
}
