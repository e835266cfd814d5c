/*
 * executor_fs.c - the read, write and edit tools.
 *
 * Writes never modify an existing file in place.  The new content goes to
 * a temporary file in the same directory, which is then renamed over the
 * target, so a reader sees the old or the new content and never a mix.
 * A consequence for hard links: when the target has other names
 * (st_nlink > 1), those names keep the old content, and the result
 * contains "hardlinks_detached": true.  This is deliberate.  A hard link can make a
 * file outside the workspace share its inode with a workspace name, and
 * writing through it would change the outside file; replacing the name
 * cannot.
 *
 * Written files get the requested permission bits (default: those of the
 * file replaced, or 0644), never set-user-ID, set-group-ID or sticky bits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "executor_int.h"

/* --- read --------------------------------------------------------------- */

static int nu__pread_all(int fd, unsigned char *buf, size_t n, uint64_t offset,
                         size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(fd, buf + *got, n - *got, (off_t)(offset + *got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

static int nu__read_result(const nu_resolved_t *r, const struct stat *st,
                           uint64_t offset, unsigned char *buf, size_t got,
                           nu_blob_t *blob_out, json_t **result)
{
    json_t *res = nu__exec_ok();
    int truncated = offset + got < (uint64_t)st->st_size;
    int rc = NU_OK;

    if (res == NULL)
        return NU_ENOMEM;

    if (json_object_set_new(res, "path", json_string(r->rel)) < 0 ||
        json_object_set_new(res, "size", json_integer((json_int_t)st->st_size)) < 0 ||
        json_object_set_new(res, "offset", json_integer((json_int_t)offset)) < 0 ||
        json_object_set_new(res, "bytes", json_integer((json_int_t)got)) < 0 ||
        json_object_set_new(res, "truncated", json_boolean(truncated)) < 0)
        rc = NU_ENOMEM;

    if (rc == NU_OK && blob_out != NULL) {
        blob_out->data = buf;
        blob_out->len = got;
        if (json_object_set_new(res, "content_encoding", json_string("blob")) < 0)
            rc = NU_ENOMEM;
    } else if (rc == NU_OK) {
        rc = nu__exec_set_bytes(res, "content", buf, got);
        free(buf);
    } else {
        free(buf);
    }

    if (rc < 0) {
        json_decref(res);
        return rc;
    }
    *result = res;
    return NU_OK;
}

int nu_exec_read(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_blob_t *blob_out, nu_err_t *err)
{
    nu_resolved_t r = { .dir_fd = -1 };
    const char *path;
    uint64_t offset, limit;
    unsigned char *buf = NULL;
    size_t want = 0, got = 0;
    struct stat st;
    int fd = -1, rc;

    *result = NULL;
    if (blob_out != NULL) {
        blob_out->data = NULL;
        blob_out->len = 0;
    }

    rc = nu__exec_arg_string("read", args, "path", 1, &path, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_uint("read", args, "offset", 0, INT64_MAX, &offset, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_uint("read", args, "limit", ex->cfg.max_read_bytes,
                               INT64_MAX, &limit, err);
    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "read", path, NU_RESOLVE_FOLLOW_FINAL, &r, err);
    if (rc < 0)
        goto fail;

    fd = nu__exec_open_regular("read", &r, &st, err);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }

    if (limit > ex->cfg.max_read_bytes)
        limit = ex->cfg.max_read_bytes;
    if (offset < (uint64_t)st.st_size)
        want = (size_t)((uint64_t)st.st_size - offset < limit
                            ? (uint64_t)st.st_size - offset : limit);

    buf = malloc(want + 1);
    if (buf == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "read: cannot read '%s': out of memory", r.rel);
        goto fail;
    }
    if (nu__pread_all(fd, buf, want, offset, &got) < 0) {
        rc = nu_err_errno(err, errno, "read: cannot read '%s'", r.rel);
        goto fail;
    }

    rc = nu__read_result(&r, &st, offset, buf, got, blob_out, result);
    buf = NULL;
    if (rc < 0) {
        nu_err_set(err, rc, "read: cannot build the result for '%s': out of memory", r.rel);
        goto fail;
    }
    close(fd);
    nu_resolved_free(&r);
    return NU_OK;

fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    nu_resolved_free(&r);
    return nu__exec_fail(result, err, rc, NULL);
}

/* --- atomic replacement -------------------------------------------------- */

static int nu__write_all(int fd, const unsigned char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Create a new temporary file in dir; its name goes to tmp. */
static int nu__create_temp(int dir, char tmp[32])
{
    for (int attempt = 0; attempt < 16; attempt++) {
        uint64_t rnd;
        int fd;

        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd)
            rnd = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL) ^ (uint64_t)attempt;
        snprintf(tmp, 32, ".nu-write-%016llx", (unsigned long long)rnd);

        fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    errno = EEXIST;
    return -1;
}

static int nu__fsync_dir(int dir)
{
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Replace name in dir by data with permission bits mode, as described at
 * the top of this file. */
static int nu__replace(const char *tool, const nu_resolved_t *r, const unsigned char *data,
                       size_t len, mode_t mode, int do_fsync, nu_err_t *err)
{
    char tmp[32];
    int fd = nu__create_temp(r->dir_fd, tmp);
    int rc = NU_OK;

    if (fd < 0)
        return nu_err_errno(err, errno, "%s: cannot create a temporary file next to '%s'",
                            tool, r->rel);

    if (nu__write_all(fd, data, len) < 0)
        rc = nu_err_errno(err, errno, "%s: cannot write '%s'", tool, r->rel);
    else if (fchmod(fd, mode) < 0)
        rc = nu_err_errno(err, errno, "%s: cannot set the mode of '%s'", tool, r->rel);
    else if (do_fsync && fsync(fd) < 0)
        rc = nu_err_errno(err, errno, "%s: cannot flush '%s' to disk", tool, r->rel);

    if (close(fd) < 0 && rc == NU_OK)
        rc = nu_err_errno(err, errno, "%s: cannot write '%s'", tool, r->rel);

    if (rc == NU_OK && renameat(r->dir_fd, tmp, r->dir_fd, r->name) < 0)
        rc = nu_err_errno(err, errno, "%s: cannot replace '%s'", tool, r->rel);

    if (rc < 0) {
        unlinkat(r->dir_fd, tmp, 0);
        return rc;
    }
    if (do_fsync && nu__fsync_dir(r->dir_fd) < 0)
        return nu_err_errno(err, errno, "%s: cannot flush the directory of '%s'",
                            tool, r->rel);
    return NU_OK;
}

/* Check the existing target (if any) before it is replaced: it must be a
 * regular file, not a symbolic link swapped in after resolution. */
static int nu__check_target(const char *tool, const nu_resolved_t *r, struct stat *st,
                            int *exists, nu_err_t *err)
{
    *exists = 0;
    if (fstatat(r->dir_fd, r->name, st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return NU_OK;
        return nu_err_errno(err, errno, "%s: cannot stat '%s'", tool, r->rel);
    }
    if (S_ISLNK(st->st_mode))
        return nu_err_set(err, NU_EDENIED,
                          "%s: cannot write '%s': it was replaced by a symbolic link "
                          "during the call", tool, r->rel);
    if (!S_ISREG(st->st_mode))
        return nu_err_set(err, NU_EINVAL, "%s: cannot write '%s': %s", tool, r->rel,
                          S_ISDIR(st->st_mode) ? "it is a directory" : "not a regular file");
    *exists = 1;
    return NU_OK;
}

/* Parse "mode" as an integer (420) or an octal string ("0644"). */
static int nu__arg_mode(const json_t *args, int *present, mode_t *mode, nu_err_t *err)
{
    json_t *v = json_object_get(args, "mode");
    long value = -1;

    *present = 0;
    if (v == NULL || json_is_null(v))
        return NU_OK;

    if (json_is_integer(v)) {
        value = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        value = strtol(s, &end, 8);
        if (s[0] == '\0' || *end != '\0' || errno != 0)
            value = -1;
    }

    if (value < 0 || value > 0777)
        return nu_err_set(err, NU_EINVAL,
                          "write: cannot use argument 'mode': expected permission bits "
                          "from 0 to 0777 as an integer or an octal string such as "
                          "\"0644\" (set-ID and sticky bits are not allowed)");
    *present = 1;
    *mode = (mode_t)value;
    return NU_OK;
}

static int nu__write_result(const nu_resolved_t *r, size_t bytes, int created,
                            nlink_t nlink, const char *count_key, size_t count,
                            json_t **result)
{
    json_t *res = nu__exec_ok();

    if (res == NULL ||
        json_object_set_new(res, "path", json_string(r->rel)) < 0 ||
        json_object_set_new(res, "bytes", json_integer((json_int_t)bytes)) < 0 ||
        json_object_set_new(res, "created", json_boolean(created)) < 0 ||
        (nlink > 1 && json_object_set_new(res, "hardlinks_detached", json_true()) < 0) ||
        (count_key != NULL &&
         json_object_set_new(res, count_key, json_integer((json_int_t)count)) < 0)) {
        json_decref(res);
        return NU_ENOMEM;
    }
    *result = res;
    return NU_OK;
}

/* --- write -------------------------------------------------------------- */

int nu_exec_write(nu_executor_t *ex, const json_t *args, json_t **result,
                  nu_err_t *err)
{
    nu_resolved_t r = { .dir_fd = -1 };
    const char *path;
    unsigned char *data = NULL;
    size_t len = 0;
    int mode_given = 0, create_dirs = 1, exists = 0, rc;
    mode_t mode = 0644;
    struct stat st = { 0 };

    *result = NULL;
    rc = nu__exec_arg_string("write", args, "path", 1, &path, err);
    if (rc == NU_OK)
        rc = nu__arg_mode(args, &mode_given, &mode, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_bool("write", args, "create_dirs", 1, &create_dirs, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_bytes("write", args, "content", 1, ex->cfg.max_write_bytes,
                                &data, &len, err);
    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "write", path,
                              NU_RESOLVE_FOLLOW_FINAL | NU_RESOLVE_MAY_NOT_EXIST |
                                  (create_dirs ? NU_RESOLVE_MKDIRS : 0),
                              &r, err);
    if (rc == NU_OK && strcmp(r.name, ".") == 0)
        rc = nu_err_set(err, NU_EINVAL, "write: cannot write '%s': it is the workspace "
                        "directory", path);
    if (rc == NU_OK)
        rc = nu__check_target("write", &r, &st, &exists, err);
    if (rc < 0)
        goto out;

    if (!mode_given && exists)
        mode = st.st_mode & 0777;

    rc = nu__replace("write", &r, data, len, mode, ex->cfg.fsync, err);
    if (rc < 0)
        goto out;

    rc = nu__write_result(&r, len, !exists, exists ? st.st_nlink : 0, NULL, 0, result);
    if (rc < 0)
        nu_err_set(err, rc, "write: cannot build the result for '%s': out of memory", r.rel);

out:
    free(data);
    nu_resolved_free(&r);
    if (rc < 0)
        return nu__exec_fail(result, err, rc, NULL);
    return NU_OK;
}

/* --- edit --------------------------------------------------------------- */

/* Count non-overlapping occurrences of needle, scanning left to right. */
static size_t nu__count(const unsigned char *hay, size_t hay_len, const char *needle,
                        size_t needle_len)
{
    size_t count = 0, pos = 0;

    while (pos + needle_len <= hay_len) {
        const unsigned char *hit = memmem(hay + pos, hay_len - pos, needle, needle_len);
        if (hit == NULL)
            break;
        count++;
        pos = (size_t)(hit - hay) + needle_len;
    }
    return count;
}

/* Build the edited content: every occurrence (or the only one) replaced. */
static unsigned char *nu__replace_all(const unsigned char *src, size_t len,
                                      const char *old, size_t old_len,
                                      const char *new_text, size_t new_len,
                                      size_t count, size_t *out_len)
{
    size_t total = len - count * old_len + count * new_len;
    unsigned char *out = malloc(total + 1), *p = out;
    size_t pos = 0;

    if (out == NULL)
        return NULL;

    for (size_t i = 0; i < count; i++) {
        const unsigned char *hit = memmem(src + pos, len - pos, old, old_len);
        size_t before = (size_t)(hit - (src + pos));
        memcpy(p, src + pos, before);
        p += before;
        memcpy(p, new_text, new_len);
        p += new_len;
        pos += before + old_len;
    }
    memcpy(p, src + pos, len - pos);
    *out_len = total;
    return out;
}

static int nu__edit_args(const json_t *args, const char **path, const char **old,
                         const char **new_text, int *replace_all, nu_err_t *err)
{
    int rc = nu__exec_arg_string("edit", args, "path", 1, path, err);

    if (rc == NU_OK)
        rc = nu__exec_arg_string("edit", args, "old", 1, old, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_string("edit", args, "new", 1, new_text, err);
    if (rc == NU_OK)
        rc = nu__exec_arg_bool("edit", args, "replace_all", 0, replace_all, err);
    if (rc < 0)
        return rc;

    if ((*old)[0] == '\0')
        return nu_err_set(err, NU_EINVAL,
                          "edit: cannot edit '%s': 'old' is empty (use write to create "
                          "or replace a whole file)", *path);
    if (strcmp(*old, *new_text) == 0)
        return nu_err_set(err, NU_EINVAL,
                          "edit: cannot edit '%s': 'old' and 'new' are the same", *path);
    return NU_OK;
}

int nu_exec_edit(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err)
{
    nu_resolved_t r = { .dir_fd = -1 };
    const char *path, *old, *new_text;
    unsigned char *src = NULL, *dst = NULL;
    size_t src_len = 0, dst_len = 0, count, old_len, new_len;
    int replace_all = 0, fd = -1, rc;
    struct stat st;

    *result = NULL;
    rc = nu__edit_args(args, &path, &old, &new_text, &replace_all, err);
    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "edit", path, NU_RESOLVE_FOLLOW_FINAL, &r, err);
    if (rc < 0)
        goto out;

    fd = nu__exec_open_regular("edit", &r, &st, err);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = nu__exec_slurp("edit", r.rel, fd, ex->cfg.max_write_bytes, &src, &src_len, err);
    if (rc < 0)
        goto out;

    old_len = strlen(old);
    new_len = strlen(new_text);
    count = nu__count(src, src_len, old, old_len);
    if (count == 0) {
        rc = nu_err_set(err, NU_ENOENT,
                        "edit: cannot edit '%s': the text of 'old' was not found "
                        "(read the file and copy the text exactly)", r.rel);
        goto out;
    }
    if (count > 1 && !replace_all) {
        rc = nu_err_set(err, NU_EINVAL,
                        "edit: cannot edit '%s': 'old' occurs %zu times; add "
                        "surrounding text to make it unique, or set replace_all",
                        r.rel, count);
        goto out;
    }

    if (src_len - count * old_len + count * new_len > ex->cfg.max_write_bytes) {
        rc = nu_err_set(err, NU_ELIMIT,
                        "edit: cannot edit '%s': the result would be larger than the "
                        "limit of %zu bytes", r.rel, ex->cfg.max_write_bytes);
        goto out;
    }
    dst = nu__replace_all(src, src_len, old, old_len, new_text, new_len, count, &dst_len);
    if (dst == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "edit: cannot edit '%s': out of memory", r.rel);
        goto out;
    }

    rc = nu__replace("edit", &r, dst, dst_len, st.st_mode & 0777, ex->cfg.fsync, err);
    if (rc == NU_OK) {
        rc = nu__write_result(&r, dst_len, 0, st.st_nlink, "replacements", count, result);
        if (rc < 0)
            nu_err_set(err, rc, "edit: cannot build the result for '%s': out of memory",
                       r.rel);
    }

out:
    if (fd >= 0)
        close(fd);
    free(src);
    free(dst);
    nu_resolved_free(&r);
    if (rc < 0)
        return nu__exec_fail(result, err, rc, NULL);
    return NU_OK;
}
