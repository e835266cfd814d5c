/*
 * test_path.c - lexical normalization of workspace paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nucleus/lattice.h"

typedef struct {
    const char *in;
    int rc;
    const char *out;
} path_case_t;

static void run_cases(const path_case_t *cases, size_t n)
{
    char out[NU_PATH_MAX + 1];

    for (size_t i = 0; i < n; i++) {
        int rc = nu_path_normalize(cases[i].in, out, sizeof out);

        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, expected %d", cases[i].in, rc, cases[i].rc);
        if (rc == NU_OK && strcmp(out, cases[i].out) != 0)
            fail_msg("'%s': got '%s', expected '%s'", cases[i].in, out, cases[i].out);
    }
}

static void test_path_resolves_dots_and_slashes(void **state)
{
    static const path_case_t cases[] = {
        { "src/main.c", NU_OK, "src/main.c" },
        { "./src//main.c", NU_OK, "src/main.c" },
        { "src/./lib/../main.c", NU_OK, "src/main.c" },
        { "src/", NU_OK, "src" },
        { ".", NU_OK, "" },
        { "a/..", NU_OK, "" },
        { "a/b/../../c", NU_OK, "c" },
        { ".env", NU_OK, ".env" },
        { "..a/b..", NU_OK, "..a/b.." },
        { "...", NU_OK, "..." },
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_path_rejects_escapes(void **state)
{
    static const path_case_t cases[] = {
        { "..", NU_EPERM, NULL },
        { "../etc/passwd", NU_EPERM, NULL },
        { "a/../../b", NU_EPERM, NULL },
        { "src/../../workspace/x", NU_EPERM, NULL },
        { "/workspace/..", NU_EPERM, NULL },
        { "/workspace/../etc/passwd", NU_EPERM, NULL },
        { "/etc/passwd", NU_EPERM, NULL },
        { "/workspacefoo/a", NU_EPERM, NULL },
        { "/", NU_EPERM, NULL },
        { "", NU_EINVAL, NULL },
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0]);
    assert_int_equal(nu_path_normalize(NULL, (char[8]){ 0 }, 8), NU_EINVAL);
}

static void test_path_accepts_workspace_absolute(void **state)
{
    static const path_case_t cases[] = {
        { "/workspace", NU_OK, "" },
        { "/workspace/", NU_OK, "" },
        { "/workspace/src/main.c", NU_OK, "src/main.c" },
        { "//workspace//src/./main.c", NU_OK, "src/main.c" },
        { "/workspace/a/../b", NU_OK, "b" },
        /* "/.." is "/" in the kernel, so this is /workspace/x. */
        { "/../workspace/x", NU_OK, "x" },
    };

    (void)state;
    run_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_path_limits(void **state)
{
    char *in = malloc(NU_PATH_MAX + 2);
    char out[NU_PATH_MAX + 1];

    (void)state;
    assert_non_null(in);

    memset(in, 'a', NU_PATH_MAX + 1);
    in[NU_PATH_MAX + 1] = '\0';
    assert_int_equal(nu_path_normalize(in, out, sizeof out), NU_ELIMIT);
    in[NU_PATH_MAX] = '\0';
    assert_int_equal(nu_path_normalize(in, out, sizeof out), NU_OK);
    assert_int_equal(strlen(out), NU_PATH_MAX);

    /* NU_PATH_MAX_SEGMENTS segments pass, one more does not. */
    size_t len = 0;
    for (int i = 0; i < NU_PATH_MAX_SEGMENTS; i++) {
        in[len++] = 'a';
        in[len++] = '/';
    }
    in[len - 1] = '\0';
    assert_int_equal(nu_path_normalize(in, out, sizeof out), NU_OK);
    in[len - 1] = '/';
    in[len] = 'b';
    in[len + 1] = '\0';
    assert_int_equal(nu_path_normalize(in, out, sizeof out), NU_ELIMIT);

    /* Dot segments do not count. */
    len = 0;
    for (int i = 0; i < 1000; i++) {
        in[len++] = '.';
        in[len++] = '/';
    }
    memcpy(in + len, "x", 2);
    assert_int_equal(nu_path_normalize(in, out, sizeof out), NU_OK);
    assert_string_equal(out, "x");

    /* A small output buffer is reported, never overrun. */
    assert_int_equal(nu_path_normalize("abc/def", out, 4), NU_ERANGE);
    assert_int_equal(nu_path_normalize("abc/def", out, 8), NU_OK);
    assert_int_equal(nu_path_normalize("abc", out, 0), NU_ERANGE);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_resolves_dots_and_slashes),
        cmocka_unit_test(test_path_rejects_escapes),
        cmocka_unit_test(test_path_accepts_workspace_absolute),
        cmocka_unit_test(test_path_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
