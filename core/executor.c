/*
 * executor.c - tool call dispatch, results, arguments and byte encoding.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "executor_int.h"

void nu_executor_config_init(nu_executor_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->root_prefix = "/workspace";
    cfg->max_read_bytes = 8u << 20;
    cfg->max_write_bytes = 16u << 20;
    cfg->max_output_bytes = 1u << 20;
    cfg->max_stdin_bytes = 8u << 20;
    cfg->max_glob_matches = 1000;
    cfg->max_grep_matches = 500;
    cfg->max_grep_file_bytes = 8u << 20;
    cfg->max_grep_line_bytes = 1000;
    cfg->max_grep_context = 20;
    cfg->max_walk_entries = 200000;
    cfg->grep_match_limit = 1000000;
    cfg->grep_depth_limit = 10000;
    cfg->default_timeout_ms = 120000;
    cfg->max_timeout_ms = 600000;
    cfg->term_grace_ms = 2000;
    cfg->drain_ms = 200;
}

int nu_executor_init_fd(nu_executor_t *ex, int root_fd,
                        const nu_executor_config_t *cfg, nu_err_t *err)
{
    struct stat st;

    memset(ex, 0, sizeof *ex);
    ex->root_fd = root_fd;
    if (cfg != NULL)
        ex->cfg = *cfg;
    else
        nu_executor_config_init(&ex->cfg);

    if (ex->cfg.root_prefix == NULL || ex->cfg.root_prefix[0] != '/') {
        nu_executor_close(ex);
        return nu_err_set(err, NU_EINVAL,
                          "executor: cannot use root prefix '%s': it must be an "
                          "absolute path such as /workspace",
                          ex->cfg.root_prefix ? ex->cfg.root_prefix : "(null)");
    }

    if (fstat(root_fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
        nu_executor_close(ex);
        return nu_err_set(err, NU_EINVAL,
                          "executor: cannot use the workspace root: not a directory");
    }
    return NU_OK;
}

int nu_executor_init(nu_executor_t *ex, const char *root,
                     const nu_executor_config_t *cfg, nu_err_t *err)
{
    int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        memset(ex, 0, sizeof *ex);
        ex->root_fd = -1;
        return nu_err_errno(err, errno, "executor: cannot open workspace '%s'", root);
    }
    return nu_executor_init_fd(ex, fd, cfg, err);
}

void nu_executor_close(nu_executor_t *ex)
{
    if (ex->root_fd >= 0)
        close(ex->root_fd);
    ex->root_fd = -1;
}

void nu_blob_free(nu_blob_t *blob)
{
    if (blob == NULL)
        return;
    free(blob->data);
    blob->data = NULL;
    blob->len = 0;
}

nu_kind_t nu_exec_kind(int code)
{
    switch (code) {
    case NU_OK: return NU_KIND_NONE;
    case NU_EINVAL: case NU_ELIMIT: case NU_ERANGE: case NU_EPARSE:
        return NU_KIND_INVALID_REQUEST;
    case NU_EDENIED: return NU_KIND_PATH_DENIED;
    case NU_ENOENT: return NU_KIND_NOT_FOUND;
    case NU_ETIMEDOUT: return NU_KIND_TIMEOUT;
    case NU_ENOMEM: case NU_EINTERNAL: return NU_KIND_INTERNAL;
    default: return NU_KIND_IO_ERROR;
    }
}

/* --- results ------------------------------------------------------------ */

json_t *nu__exec_ok(void)
{
    json_t *r = json_object();

    if (r != NULL && json_object_set_new(r, "ok", json_true()) < 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

int nu__exec_fail(json_t **result, nu_err_t *err, int code, json_t *partial)
{
    json_t *r = partial != NULL ? partial : json_object();
    const char *msg = err != NULL ? err->msg : nu_strerror(code);

    *result = NULL;
    if (r == NULL)
        return code;

    if (json_object_set_new(r, "ok", json_false()) < 0 ||
        json_object_set_new(r, "kind", json_string(nu_kind_name(nu_exec_kind(code)))) < 0 ||
        json_object_set_new(r, "error", json_string(msg)) < 0) {
        json_decref(r);
        return code;
    }
    *result = r;
    return code;
}

/* --- bytes and text ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t nu__utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return c == 0 ? 0 : 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (len < n)
        return 0;

    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int nu__utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t n = nu__utf8_seq(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

static const char nu__b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *nu__base64_encode(const unsigned char *data, size_t len, size_t *out_len)
{
    size_t n = 4 * ((len + 2) / 3);
    char *out = malloc(n + 1), *p = out;
    size_t i = 0;

    if (out == NULL)
        return NULL;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = nu__b64[v >> 18];
        *p++ = nu__b64[(v >> 12) & 63];
        *p++ = nu__b64[(v >> 6) & 63];
        *p++ = nu__b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        *p++ = nu__b64[v >> 18];
        *p++ = nu__b64[(v >> 12) & 63];
        *p++ = i + 1 < len ? nu__b64[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    if (out_len != NULL)
        *out_len = n;
    return out;
}

static int nu__b64_value(char c)
{
    const char *p = c != '\0' ? strchr(nu__b64, c) : NULL;
    return p != NULL ? (int)(p - nu__b64) : -1;
}

/* Strict RFC 4648 decoding: padding required, no white space. */
int nu__base64_decode(const char *text, size_t len, unsigned char **out,
                      size_t *out_len)
{
    unsigned char *buf, *p;

    *out = NULL;
    if (len % 4 != 0)
        return NU_EINVAL;

    buf = malloc(len / 4 * 3 + 1);
    if (buf == NULL)
        return NU_ENOMEM;

    p = buf;
    for (size_t i = 0; i < len; i += 4) {
        int pad = (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=');
        int v[4];

        if (pad > 0 && i + 4 != len)
            goto bad;
        for (int k = 0; k < 4 - pad; k++) {
            v[k] = nu__b64_value(text[i + k]);
            if (v[k] < 0)
                goto bad;
        }
        for (int k = 4 - pad; k < 4; k++)
            v[k] = 0;

        *p++ = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            *p++ = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        if (pad < 1)
            *p++ = (unsigned char)((v[2] & 3) << 6 | v[3]);
    }
    *out = buf;
    *out_len = (size_t)(p - buf);
    return NU_OK;

bad:
    free(buf);
    return NU_EINVAL;
}

int nu__exec_set_bytes(json_t *obj, const char *field,
                       const unsigned char *data, size_t len)
{
    char enc_field[64];
    json_t *value;
    const char *enc;

    snprintf(enc_field, sizeof enc_field, "%s_encoding", field);
    if (data == NULL)
        data = (const unsigned char *)"";

    if (nu__utf8_valid(data, len)) {
        value = json_stringn((const char *)data, len);
        enc = "utf-8";
    } else {
        size_t n;
        char *b64 = nu__base64_encode(data, len, &n);
        value = b64 != NULL ? json_stringn(b64, n) : NULL;
        free(b64);
        enc = "base64";
    }

    if (value == NULL || json_object_set_new(obj, field, value) < 0 ||
        json_object_set_new(obj, enc_field, json_string(enc)) < 0)
        return NU_ENOMEM;
    return NU_OK;
}

json_t *nu__exec_text(const char *data, size_t len, size_t max, int *cut)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)data;
    char *buf = malloc((len < max ? len : max) * 3 + 4);
    size_t i = 0, o = 0;
    json_t *v;

    if (cut != NULL)
        *cut = 0;
    if (buf == NULL)
        return NULL;

    while (i < len) {
        size_t n = nu__utf8_seq(s + i, len - i);
        size_t out_n = n == 0 ? 3 : n;

        if (o + out_n > max) {
            if (cut != NULL)
                *cut = 1;
            break;
        }
        if (n == 0) {
            memcpy(buf + o, replacement, 3);
            i++;
        } else {
            memcpy(buf + o, s + i, n);
            i += n;
        }
        o += out_n;
    }
    v = json_stringn(buf, o);
    free(buf);
    return v;
}

int nu__exec_set_text(json_t *obj, const char *field, const char *data,
                      size_t len, size_t max, int *cut)
{
    json_t *v = nu__exec_text(data, len, max, cut);

    if (v == NULL || json_object_set_new(obj, field, v) < 0)
        return NU_ENOMEM;
    return NU_OK;
}

/* --- arguments ---------------------------------------------------------- */

int nu__exec_arg_string(const char *tool, const json_t *args, const char *key,
                        int required, const char **out, nu_err_t *err)
{
    json_t *v = json_object_get(args, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return nu_err_set(err, NU_EINVAL,
                              "%s: cannot run the tool: argument '%s' is missing",
                              tool, key);
        return NU_OK;
    }
    if (!json_is_string(v))
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument '%s': expected a string", tool, key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument '%s': it contains a NUL byte",
                          tool, key);
    *out = json_string_value(v);
    return NU_OK;
}

int nu__exec_arg_uint(const char *tool, const json_t *args, const char *key,
                      uint64_t def, uint64_t max, uint64_t *out, nu_err_t *err)
{
    json_t *v = json_object_get(args, key);

    *out = def;
    if (v == NULL || json_is_null(v))
        return NU_OK;
    if (json_is_real(v) && json_real_value(v) >= 0 &&
        json_real_value(v) == (double)(uint64_t)json_real_value(v) &&
        json_real_value(v) <= (double)max) {
        *out = (uint64_t)json_real_value(v);
        return NU_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument '%s': expected an integer from "
                          "0 to %llu", tool, key, (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return NU_OK;
}

int nu__exec_arg_bool(const char *tool, const json_t *args, const char *key,
                      int def, int *out, nu_err_t *err)
{
    json_t *v = json_object_get(args, key);

    *out = def;
    if (v == NULL || json_is_null(v))
        return NU_OK;
    if (!json_is_boolean(v))
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument '%s': expected true or false",
                          tool, key);
    *out = json_is_true(v);
    return NU_OK;
}

int nu__exec_arg_bytes(const char *tool, const json_t *args, const char *field,
                       int required, size_t max, unsigned char **data,
                       size_t *len, nu_err_t *err)
{
    char enc_field[64];
    const char *enc = NULL;
    json_t *v = json_object_get(args, field);
    int rc;

    *data = NULL;
    *len = 0;
    snprintf(enc_field, sizeof enc_field, "%s_encoding", field);
    rc = nu__exec_arg_string(tool, args, enc_field, 0, &enc, err);
    if (rc < 0)
        return rc;

    if (v == NULL || json_is_null(v)) {
        if (required)
            return nu_err_set(err, NU_EINVAL,
                              "%s: cannot run the tool: argument '%s' is missing",
                              tool, field);
        return NU_OK;
    }
    if (!json_is_string(v))
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use argument '%s': expected a string", tool, field);

    if (enc == NULL || strcmp(enc, "utf-8") == 0) {
        *len = json_string_length(v);
        if (*len > max)
            goto too_large;
        *data = malloc(*len + 1);
        if (*data == NULL)
            return nu_err_set(err, NU_ENOMEM, "%s: cannot copy '%s': out of memory",
                              tool, field);
        memcpy(*data, json_string_value(v), *len);
        (*data)[*len] = '\0';
        return NU_OK;
    }

    if (strcmp(enc, "base64") != 0)
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot use '%s' value '%s': expected utf-8 or base64",
                          tool, enc_field, enc);
    if (json_string_length(v) / 4 * 3 > max + 2)
        goto too_large;

    rc = nu__base64_decode(json_string_value(v), json_string_length(v), data, len);
    if (rc == NU_ENOMEM)
        return nu_err_set(err, rc, "%s: cannot decode '%s': out of memory", tool, field);
    if (rc < 0)
        return nu_err_set(err, NU_EINVAL,
                          "%s: cannot decode argument '%s': invalid base64 (RFC 4648 "
                          "with padding, no white space)", tool, field);
    if (*len > max) {
        free(*data);
        *data = NULL;
        goto too_large;
    }
    return NU_OK;

too_large:
    return nu_err_set(err, NU_ELIMIT,
                      "%s: cannot accept argument '%s': larger than the limit of "
                      "%zu bytes", tool, field, max);
}

int nu__exec_resolve(nu_executor_t *ex, const char *tool, const char *path,
                     int flags, nu_resolved_t *out, nu_err_t *err)
{
    int rc = nu_resolve(ex->root_fd, ex->cfg.root_prefix, path, flags, out, err);

    if (rc < 0 && err != NULL) {
        /* Replace the "path" area of the message by the tool name. */
        char msg[NU_ERR_MAX + 64];
        const char *detail = strncmp(err->msg, "path: ", 6) == 0 ? err->msg + 6 : err->msg;
        size_t n;

        snprintf(msg, sizeof msg, "%s: %s", tool, detail);
        n = strnlen(msg, NU_ERR_MAX - 1);
        memcpy(err->msg, msg, n);
        err->msg[n] = '\0';
    }
    return rc;
}

int nu__exec_open_regular(const char *tool, const nu_resolved_t *r,
                          struct stat *st, nu_err_t *err)
{
    int fd = openat(r->dir_fd, r->name,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ELOOP)
            return nu_err_set(err, NU_EDENIED,
                              "%s: cannot open '%s': it was replaced by a symbolic "
                              "link during the call", tool, r->rel);
        if (errno == ENOENT)
            return nu_err_set(err, NU_ENOENT, "%s: cannot open '%s': not found",
                              tool, r->rel);
        return nu_err_errno(err, errno, "%s: cannot open '%s'", tool, r->rel);
    }

    if (fstat(fd, st) < 0) {
        int rc = nu_err_errno(err, errno, "%s: cannot stat '%s'", tool, r->rel);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return nu_err_set(err, NU_EINVAL, "%s: cannot read '%s': %s", tool, r->rel,
                          S_ISDIR(st->st_mode) ? "it is a directory (use glob to list it)"
                                               : "not a regular file");
    }
    return fd;
}

int nu__exec_slurp(const char *tool, const char *rel, int fd, size_t max,
                   unsigned char **data, size_t *len, nu_err_t *err)
{
    struct stat st;
    size_t cap, used = 0;
    unsigned char *buf;

    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) < 0)
        return nu_err_errno(err, errno, "%s: cannot stat '%s'", tool, rel);
    if ((uint64_t)st.st_size > max)
        return nu_err_set(err, NU_ELIMIT,
                          "%s: cannot load '%s': %lld bytes is larger than the limit "
                          "of %zu bytes", tool, rel, (long long)st.st_size, max);

    cap = (size_t)st.st_size + 1;
    buf = malloc(cap + 1);
    if (buf == NULL)
        return nu_err_set(err, NU_ENOMEM, "%s: cannot load '%s': out of memory", tool, rel);

    /* Read until EOF: the file may have grown since fstat. */
    for (;;) {
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = nu_err_errno(err, errno, "%s: cannot read '%s'", tool, rel);
            free(buf);
            return rc;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used == cap) {
            unsigned char *bigger;
            if (cap > max) {
                free(buf);
                return nu_err_set(err, NU_ELIMIT,
                                  "%s: cannot load '%s': larger than the limit of "
                                  "%zu bytes", tool, rel, max);
            }
            bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                free(buf);
                return nu_err_set(err, NU_ENOMEM, "%s: cannot load '%s': out of memory",
                                  tool, rel);
            }
            buf = bigger;
            cap *= 2;
        }
    }
    buf[used] = '\0';
    *data = buf;
    *len = used;
    return NU_OK;
}

/* --- dispatch ----------------------------------------------------------- */

static uint64_t nu__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int nu_exec_tool(nu_executor_t *ex, const json_t *call, json_t **result,
                 nu_blob_t *blob_out, nu_err_t *err)
{
    uint64_t start = nu__now_ns();
    const char *tool = NULL;
    const json_t *args = call;
    json_t *nested;
    int rc;

    *result = NULL;
    if (!json_is_object(call)) {
        nu_err_set(err, NU_EINVAL, "executor: cannot run the call: expected a JSON object");
        rc = nu__exec_fail(result, err, NU_EINVAL, NULL);
        goto out;
    }

    rc = nu__exec_arg_string("executor", call, "tool", 1, &tool, err);
    if (rc < 0) {
        rc = nu__exec_fail(result, err, rc, NULL);
        goto out;
    }

    nested = json_object_get(call, "args");
    if (json_is_object(nested))
        args = nested;

    if (strcmp(tool, "read") == 0)
        rc = nu_exec_read(ex, args, result, blob_out, err);
    else if (strcmp(tool, "write") == 0)
        rc = nu_exec_write(ex, args, result, err);
    else if (strcmp(tool, "edit") == 0)
        rc = nu_exec_edit(ex, args, result, err);
    else if (strcmp(tool, "glob") == 0)
        rc = nu_exec_glob(ex, args, result, err);
    else if (strcmp(tool, "grep") == 0)
        rc = nu_exec_grep(ex, args, result, err);
    else if (strcmp(tool, "run") == 0)
        rc = nu_exec_run(ex, args, result, err);
    else {
        nu_err_set(err, NU_EINVAL,
                   "executor: cannot run tool '%s': unknown (expected read, write, "
                   "edit, glob, grep or run)", tool);
        rc = nu__exec_fail(result, err, NU_EINVAL, NULL);
    }

out:
    ex->last_exec_ns = nu__now_ns() - start;
    return rc;
}
