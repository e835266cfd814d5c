/*
 * executor_grep.c - the grep tool: PCRE2 search over workspace files.
 *
 * Each line (without its newline) is one subject, so "^" and "$" anchor
 * at line boundaries as in grep(1).  Patterns are compiled in UTF mode
 * with PCRE2_MATCH_INVALID_UTF, so files that are not valid UTF-8 are
 * searched safely instead of being rejected.  Every match runs under a
 * match limit and a depth limit from the executor configuration.  A
 * pattern that exceeds them, by catastrophic backtracking such as
 * "(a+)+$", fails the whole call with invalid_request instead of
 * hanging.
 *
 * Files are skipped when they are larger than max_grep_file_bytes or
 * binary (a NUL byte in the first 8 KiB, as GNU grep decides).  Hidden
 * entries (names starting with '.') are skipped unless "hidden" is true,
 * and symbolic links are never followed by the walk.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pcre2.h>

#include "executor_int.h"

#define NU__GREP_MAX_PATTERN 4096
#define NU__GREP_BINARY_PROBE 8192

typedef struct nu__grep {
    nu_executor_t *ex;
    const char *pattern;
    const char *glob;      /* file filter, or NULL */
    const char *base_rel;  /* directory searched, "." for the root */
    const json_t *exclude; /* patterns hidden from the walk, or NULL */
    int hidden;
    size_t context;
    size_t max;

    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;

    json_t *matches;
    int truncated;
    size_t files_searched, binary_skipped, large_skipped;
    nu_err_t *err;
} nu__grep_t;

static int nu__grep_compile(nu__grep_t *g, int ignore_case)
{
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE offset;
    int code;

    if (ignore_case)
        options |= PCRE2_CASELESS;
    if (strlen(g->pattern) > NU__GREP_MAX_PATTERN)
        return nu_err_set(g->err, NU_EINVAL,
                          "grep: cannot compile pattern '%.64s...': longer than %d bytes",
                          g->pattern, NU__GREP_MAX_PATTERN);

    g->code = pcre2_compile((PCRE2_SPTR)g->pattern, PCRE2_ZERO_TERMINATED, options,
                            &code, &offset, NULL);
    if (g->code == NULL) {
        pcre2_get_error_message(code, msg, sizeof msg);
        return nu_err_set(g->err, NU_EINVAL,
                          "grep: cannot compile pattern '%s': %s at offset %zu",
                          g->pattern, (const char *)msg, (size_t)offset);
    }

    /* JIT is optional: when it is unavailable the interpreter runs. */
    (void)pcre2_jit_compile(g->code, PCRE2_JIT_COMPLETE);

    g->md = pcre2_match_data_create_from_pattern(g->code, NULL);
    g->mctx = pcre2_match_context_create(NULL);
    if (g->md == NULL || g->mctx == NULL)
        return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");
    pcre2_set_match_limit(g->mctx, g->ex->cfg.grep_match_limit);
    pcre2_set_depth_limit(g->mctx, g->ex->cfg.grep_depth_limit);
    return NU_OK;
}

static void nu__grep_free(nu__grep_t *g)
{
    pcre2_match_data_free(g->md);
    pcre2_match_context_free(g->mctx);
    pcre2_code_free(g->code);
    json_decref(g->matches);
}

/* Line i of a file, as [*start, *end) without the newline and a final
 * carriage return. */
static void nu__line(const unsigned char *buf, const size_t *starts, size_t nlines,
                     size_t len, size_t i, size_t *start, size_t *end)
{
    *start = starts[i];
    if (i + 1 < nlines)
        *end = starts[i + 1] - 1;
    else
        *end = len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
    if (*end > *start && buf[*end - 1] == '\r')
        (*end)--;
}

/* Index the start offset of every line. */
static size_t *nu__index_lines(const unsigned char *buf, size_t len, size_t *nlines)
{
    size_t count = 1, k = 1;
    size_t *starts;

    for (size_t i = 0; i < len; i++)
        count += buf[i] == '\n';
    if (len > 0 && buf[len - 1] == '\n')
        count--; /* no empty line after a final newline */

    if (len == 0)
        count = 0; /* an empty file has no lines */

    starts = malloc((count ? count : 1) * sizeof *starts);
    if (starts == NULL)
        return NULL;
    starts[0] = 0;
    for (size_t i = 0; i < len && k < count; i++)
        if (buf[i] == '\n')
            starts[k++] = i + 1;
    *nlines = count;
    return starts;
}

static json_t *nu__grep_context(nu__grep_t *g, const unsigned char *buf, const size_t *starts,
                                size_t nlines, size_t len, size_t from, size_t to)
{
    json_t *lines = json_array();

    for (size_t i = from; lines != NULL && i < to && i < nlines; i++) {
        size_t s, e;
        nu__line(buf, starts, nlines, len, i, &s, &e);
        if (json_array_append_new(lines, nu__exec_text((const char *)buf + s, e - s,
                                                       g->ex->cfg.max_grep_line_bytes,
                                                       NULL)) < 0) {
            json_decref(lines);
            return NULL;
        }
    }
    return lines;
}

static int nu__grep_add(nu__grep_t *g, const char *file, const unsigned char *buf,
                        const size_t *starts, size_t nlines, size_t len, size_t i)
{
    json_t *m = json_object();
    size_t s, e;
    int cut = 0;

    nu__line(buf, starts, nlines, len, i, &s, &e);
    if (m == NULL ||
        json_object_set_new(m, "file", json_string(file)) < 0 ||
        json_object_set_new(m, "line", json_integer((json_int_t)i + 1)) < 0 ||
        nu__exec_set_text(m, "text", (const char *)buf + s, e - s,
                          g->ex->cfg.max_grep_line_bytes, &cut) < 0 ||
        (cut && json_object_set_new(m, "text_truncated", json_true()) < 0))
        goto nomem;

    if (g->context > 0) {
        size_t from = i > g->context ? i - g->context : 0;
        if (json_object_set_new(m, "before", nu__grep_context(g, buf, starts, nlines, len,
                                                              from, i)) < 0 ||
            json_object_set_new(m, "after", nu__grep_context(g, buf, starts, nlines, len,
                                                             i + 1, i + 1 + g->context)) < 0)
            goto nomem;
    }

    if (json_array_append_new(g->matches, m) < 0)
        return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");
    return NU_OK;

nomem:
    json_decref(m);
    return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");
}

static int nu__grep_match_error(nu__grep_t *g, const char *file, size_t line, int rc)
{
    PCRE2_UCHAR msg[256];

    pcre2_get_error_message(rc, msg, sizeof msg);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
        return nu_err_set(g->err, NU_EINVAL,
                          "grep: cannot match pattern '%s' in '%s' line %zu: %s "
                          "(the pattern backtracks too much; simplify it)",
                          g->pattern, file, line, (const char *)msg);
    return nu_err_set(g->err, NU_EINTERNAL,
                      "grep: cannot match pattern '%s' in '%s' line %zu: %s",
                      g->pattern, file, line, (const char *)msg);
}

/* Search one loaded file; returns NU_OK, NU__WALK_STOP at the match cap,
 * or an error. */
static int nu__grep_buffer(nu__grep_t *g, const char *file, const unsigned char *buf,
                           size_t len)
{
    size_t nlines = 0;
    size_t *starts = nu__index_lines(buf, len, &nlines);
    int rc = NU_OK;

    if (starts == NULL)
        return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");

    for (size_t i = 0; i < nlines && rc == NU_OK; i++) {
        size_t s, e;
        int m;

        nu__line(buf, starts, nlines, len, i, &s, &e);
        m = pcre2_match(g->code, (PCRE2_SPTR)buf + s, e - s, 0, 0, g->md, g->mctx);
        if (m == PCRE2_ERROR_NOMATCH)
            continue;
        if (m < 0) {
            rc = nu__grep_match_error(g, file, i + 1, m);
            break;
        }
        if (json_array_size(g->matches) == g->max) {
            g->truncated = 1;
            rc = NU__WALK_STOP;
            break;
        }
        rc = nu__grep_add(g, file, buf, starts, nlines, len, i);
    }
    free(starts);
    return rc;
}

/* Open, load and search the regular file name in dir_fd. */
static int nu__grep_file(nu__grep_t *g, int dir_fd, const char *name, const char *file)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    unsigned char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int rc;

    if (fd < 0)
        return NU_OK; /* removed or replaced while walking */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return NU_OK;
    }
    if ((uint64_t)st.st_size > g->ex->cfg.max_grep_file_bytes) {
        g->large_skipped++;
        close(fd);
        return NU_OK;
    }

    rc = nu__exec_slurp("grep", file, fd, g->ex->cfg.max_grep_file_bytes, &buf, &len,
                        g->err);
    close(fd);
    if (rc == NU_ELIMIT) {
        g->large_skipped++; /* grew while being read */
        return NU_OK;
    }
    if (rc < 0)
        return rc;

    if (memchr(buf, 0, len < NU__GREP_BINARY_PROBE ? len : NU__GREP_BINARY_PROBE)) {
        g->binary_skipped++;
        free(buf);
        return NU_OK;
    }

    g->files_searched++;
    rc = nu__grep_buffer(g, file, buf, len);
    free(buf);
    return rc;
}

/* The workspace-relative name of rel below the searched directory. */
static char *nu__grep_name(const nu__grep_t *g, const char *rel)
{
    size_t n;
    char *full;

    if (strcmp(g->base_rel, ".") == 0)
        return strdup(rel);
    n = strlen(g->base_rel) + strlen(rel) + 2;
    full = malloc(n);
    if (full != NULL)
        snprintf(full, n, "%s/%s", g->base_rel, rel);
    return full;
}

static int nu__grep_visit(void *arg, int parent_fd, const char *name, const char *rel,
                          const struct stat *st)
{
    nu__grep_t *g = arg;
    char *file;
    int rc;

    if (!g->hidden && name[0] == '.')
        return 0;
    if (nu__excluded(g->exclude, g->base_rel, rel))
        return 0;
    if (S_ISDIR(st->st_mode))
        return 1;
    if (!S_ISREG(st->st_mode))
        return 0;

    if (g->glob != NULL) {
        int matched = strchr(g->glob, '/') != NULL ? nu__glob_match(g->glob, rel)
                                                  : fnmatch(g->glob, name, 0) == 0;
        if (!matched)
            return 0;
    }

    file = nu__grep_name(g, rel);
    if (file == NULL)
        return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");
    rc = nu__grep_file(g, parent_fd, name, file);
    free(file);
    return rc;
}

static int nu__grep_args(nu__grep_t *g, const json_t *args, const char **path,
                         int *ignore_case)
{
    uint64_t context, max;
    int rc;

    rc = nu__exec_arg_string("grep", args, "pattern", 1, &g->pattern, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_string("grep", args, "path", 0, path, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_string("grep", args, "glob", 0, &g->glob, g->err);
    if (rc == NU_OK && g->glob != NULL)
        rc = nu__glob_check("grep", g->glob, g->err);
    if (rc == NU_OK)
        rc = nu__exclude_arg("grep", args, &g->exclude, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_uint("grep", args, "context", 0, g->ex->cfg.max_grep_context,
                               &context, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_uint("grep", args, "max", g->ex->cfg.max_grep_matches, UINT32_MAX,
                               &max, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_bool("grep", args, "ignore_case", 0, ignore_case, g->err);
    if (rc == NU_OK)
        rc = nu__exec_arg_bool("grep", args, "hidden", 0, &g->hidden, g->err);
    if (rc < 0)
        return rc;

    g->context = (size_t)context;
    g->max = max < g->ex->cfg.max_grep_matches ? (size_t)max : g->ex->cfg.max_grep_matches;
    return NU_OK;
}

/* Search the resolved base: one file, or a directory tree. */
static int nu__grep_base(nu__grep_t *g, const nu_resolved_t *base, int *capped)
{
    struct stat st;
    int rc;

    *capped = 0;
    if (fstatat(base->dir_fd, base->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return nu_err_errno(g->err, errno, "grep: cannot stat '%s'", base->rel);

    if (S_ISREG(st.st_mode))
        rc = nu__grep_file(g, base->dir_fd, base->name, base->rel);
    else if (S_ISDIR(st.st_mode))
        rc = nu__exec_walk(base, g->ex->cfg.max_walk_entries, nu__grep_visit, g, capped,
                           g->err);
    else
        rc = nu_err_set(g->err, NU_EINVAL, "grep: cannot search '%s': not a regular file "
                        "or directory", base->rel);
    return rc == NU__WALK_STOP ? NU_OK : rc;
}

static int nu__grep_result(nu__grep_t *g, int capped, json_t **result)
{
    json_t *res = nu__exec_ok();

    if (res == NULL ||
        json_object_set(res, "matches", g->matches) < 0 ||
        json_object_set_new(res, "truncated", json_boolean(g->truncated || capped)) < 0 ||
        json_object_set_new(res, "files_searched", json_integer((json_int_t)g->files_searched)) < 0 ||
        json_object_set_new(res, "binary_skipped", json_integer((json_int_t)g->binary_skipped)) < 0 ||
        json_object_set_new(res, "large_skipped", json_integer((json_int_t)g->large_skipped)) < 0) {
        json_decref(res);
        return nu_err_set(g->err, NU_ENOMEM, "grep: out of memory");
    }
    *result = res;
    return NU_OK;
}

int nu_exec_grep(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err)
{
    nu__grep_t g = { .ex = ex, .err = err };
    nu_resolved_t base = { .dir_fd = -1 };
    const char *path = NULL;
    int ignore_case = 0, capped = 0, rc;

    *result = NULL;
    rc = nu__grep_args(&g, args, &path, &ignore_case);
    if (rc == NU_OK)
        rc = nu__grep_compile(&g, ignore_case);
    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "grep", path != NULL ? path : ".",
                              NU_RESOLVE_FOLLOW_FINAL, &base, err);
    if (rc < 0)
        goto out;

    g.base_rel = base.rel;
    g.matches = json_array();
    if (g.matches == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "grep: out of memory");
        goto out;
    }

    rc = nu__grep_base(&g, &base, &capped);
    if (rc == NU_OK)
        rc = nu__grep_result(&g, capped, result);

out:
    nu__grep_free(&g);
    nu_resolved_free(&base);
    if (rc < 0)
        return nu__exec_fail(result, err, rc, NULL);
    return NU_OK;
}
