/*
 * test_executor_util.h - a temporary workspace and call helpers shared by
 * the executor tests.  Include after <cmocka.h>.
 */
#ifndef TEST_EXECUTOR_UTIL_H
#define TEST_EXECUTOR_UTIL_H

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/json.h"

typedef struct ws {
    char top[64];      /* contains root/ and outside/ */
    char root[96];
    char outside[96];
    nu_executor_t ex;
} ws_t;

static inline void ws_path(const ws_t *w, const char *rel, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", w->root, rel);
}

static inline void ws_write(const ws_t *w, const char *rel, const void *data, size_t len)
{
    char path[PATH_MAX];
    FILE *f;

    ws_path(w, rel, path, sizeof path);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static inline void ws_puts(const ws_t *w, const char *rel, const char *text)
{
    ws_write(w, rel, text, strlen(text));
}

/* Return the content of a workspace file (malloc'd, NUL-terminated). */
static inline char *ws_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static inline char *ws_read(const ws_t *w, const char *rel)
{
    char path[PATH_MAX];

    ws_path(w, rel, path, sizeof path);
    return ws_slurp(path, NULL);
}

static inline void ws_mkdir(const ws_t *w, const char *rel)
{
    char path[PATH_MAX];

    ws_path(w, rel, path, sizeof path);
    assert_int_equal(mkdir(path, 0755), 0);
}

static inline void ws_symlink(const ws_t *w, const char *rel, const char *target)
{
    char path[PATH_MAX];

    ws_path(w, rel, path, sizeof path);
    assert_int_equal(symlink(target, path), 0);
}

/* Create the workspace; cfg may be NULL for the defaults. */
static inline ws_t *ws_new(const nu_executor_config_t *cfg)
{
    ws_t *w = calloc(1, sizeof *w);
    nu_err_t err = { 0 };
    char secret[160];
    FILE *f;

    assert_non_null(w);
    strcpy(w->top, "/tmp/nu-exec-XXXXXX");
    assert_non_null(mkdtemp(w->top));
    snprintf(w->root, sizeof w->root, "%s/root", w->top);
    snprintf(w->outside, sizeof w->outside, "%s/outside", w->top);
    assert_int_equal(mkdir(w->root, 0755), 0);
    assert_int_equal(mkdir(w->outside, 0755), 0);

    snprintf(secret, sizeof secret, "%s/secret", w->outside);
    f = fopen(secret, "w");
    assert_non_null(f);
    fputs("outside secret\n", f);
    fclose(f);

    if (nu_executor_init(&w->ex, w->root, cfg, &err) != NU_OK)
        fail_msg("executor init failed: %s", err.msg);
    return w;
}

static inline void ws_free(ws_t *w)
{
    char cmd[128];

    nu_executor_close(&w->ex);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->top);
    assert_int_equal(system(cmd), 0);
    free(w);
}

/* Run one call given as JSON text; returns the result (the caller
 * decrefs it) and stores the return code in *rc. */
static inline json_t *ws_call(ws_t *w, const char *call_json, int *rc)
{
    json_error_t jerr;
    json_t *call = json_loads(call_json, JSON_ALLOW_NUL, &jerr);
    json_t *result = NULL;
    nu_err_t err = { 0 };

    if (call == NULL)
        fail_msg("bad test JSON '%s': %s", call_json, jerr.text);
    *rc = nu_exec_tool(&w->ex, call, &result, NULL, &err);
    json_decref(call);
    assert_non_null(result);
    if (*rc != NU_OK)
        assert_string_equal(json_string_value(json_object_get(result, "error")), err.msg);
    return result;
}

/* Run a call that must succeed. */
static inline json_t *ws_ok(ws_t *w, const char *call_json)
{
    int rc;
    json_t *r = ws_call(w, call_json, &rc);

    if (rc != NU_OK)
        fail_msg("call %s failed: %s", call_json,
                 json_string_value(json_object_get(r, "error")));
    assert_true(json_is_true(json_object_get(r, "ok")));
    return r;
}

/* Run a call that must fail with kind; returns nothing. */
static inline void ws_fails(ws_t *w, const char *call_json, const char *kind)
{
    int rc;
    json_t *r = ws_call(w, call_json, &rc);
    const char *got = json_string_value(json_object_get(r, "kind"));

    if (rc == NU_OK)
        fail_msg("call %s succeeded, expected kind %s", call_json, kind);
    assert_true(json_is_false(json_object_get(r, "ok")));
    assert_non_null(got);
    if (strcmp(got, kind) != 0)
        fail_msg("call %s failed with %s (%s), expected %s", call_json, got,
                 json_string_value(json_object_get(r, "error")), kind);
    assert_string_equal(nu_kind_name(nu_exec_kind(rc)), kind);
    json_decref(r);
}

static inline const char *str_field(const json_t *r, const char *key)
{
    const char *s = json_string_value(json_object_get(r, key));
    assert_non_null(s);
    return s;
}

static inline long long int_field(const json_t *r, const char *key)
{
    json_t *v = json_object_get(r, key);
    assert_true(json_is_integer(v));
    return (long long)json_integer_value(v);
}

#endif
