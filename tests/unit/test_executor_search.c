/*
 * test_executor_search.c - the glob and grep tools.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "executor_int.h"
#include "test_executor_util.h"

static int setup(void **state)
{
    ws_t *w = ws_new(NULL);

    ws_mkdir(w, "src");
    ws_mkdir(w, "src/lib");
    ws_mkdir(w, ".git");
    ws_puts(w, "README.md", "# demo\nTODO: write docs\n");
    ws_puts(w, "src/main.c", "#include \"lib.h\"\nint main(void)\n{\n    return lib();\n}\n");
    ws_puts(w, "src/lib/lib.c", "int lib(void)\n{\n    return 42; /* TODO */\n}\n");
    ws_puts(w, "src/lib/lib.h", "int lib(void);\n");
    ws_puts(w, ".git/config", "TODO hidden\n");
    ws_puts(w, ".hidden.c", "int hidden;\n");
    ws_write(w, "src/blob.bin", "TODO\0\1\2binary", 14);
    ws_symlink(w, "outlink", w->outside);
    ws_symlink(w, "srclink", "src");
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    ws_free(*state);
    return 0;
}

static void assert_matches(json_t *r, const char *const *expected, size_t n)
{
    json_t *m = json_object_get(r, "matches");

    assert_true(json_is_array(m));
    if (json_array_size(m) != n) {
        char *dump = json_dumps(m, 0);
        fail_msg("expected %zu matches, got %s", n, dump);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(m, i)), expected[i]);
}

/* --- glob --------------------------------------------------------------- */

static void test_glob_recursive_sorted(void **state)
{
    static const char *const expected[] = { "src/lib/lib.c", "src/main.c" };
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"**/*.c\"}");

    assert_matches(r, expected, 2);
    assert_true(json_is_false(json_object_get(r, "truncated")));
    json_decref(r);
}

static void test_glob_one_level(void **state)
{
    static const char *const expected[] = { "README.md", "outlink", "src", "srclink" };
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"*\"}");

    assert_matches(r, expected, 4);
    json_decref(r);
}

static void test_glob_hidden_explicit(void **state)
{
    static const char *const expected[] = { ".git/config" };
    static const char *const dot_c[] = { ".hidden.c" };
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\".git/*\"}");

    assert_matches(r, expected, 1);
    json_decref(r);
    r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\".*.c\"}");
    assert_matches(r, dot_c, 1);
    json_decref(r);
}

static void test_glob_base_path(void **state)
{
    static const char *const expected[] = { "src/lib/lib.h" };
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"**/*.h\",\"path\":\"src\"}");

    assert_matches(r, expected, 1);
    json_decref(r);

    /* A link to a directory inside is followed when it is the base. */
    r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"**/*.h\",\"path\":\"srclink\"}");
    assert_matches(r, expected, 1);
    json_decref(r);
}

static void test_glob_does_not_follow_links(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"**/secret\"}");

    assert_matches(r, NULL, 0);
    json_decref(r);
    r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"srclink/*\"}");
    assert_matches(r, NULL, 0);
    json_decref(r);
}

static void test_glob_truncated(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_glob_matches = 3;
    w = ws_new(&cfg);
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d.txt", i);
        ws_puts(w, name, "x");
    }
    r = ws_ok(w, "{\"tool\":\"glob\",\"pattern\":\"*.txt\"}");
    assert_int_equal(json_array_size(json_object_get(r, "matches")), 3);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
    ws_free(w);
}

static void test_glob_errors(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"glob\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"../*\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"/etc/*\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"*\",\"path\":\"outlink\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"*\",\"path\":\"..\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"*\",\"path\":\"README.md\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"glob\",\"pattern\":\"*\",\"path\":\"nope\"}", "not_found");
}

/* --- grep --------------------------------------------------------------- */

static void test_grep_finds_lines(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"TODO\"}");
    json_t *m = json_object_get(r, "matches");

    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "README.md");
    assert_int_equal(int_field(json_array_get(m, 0), "line"), 2);
    assert_string_equal(str_field(json_array_get(m, 0), "text"), "TODO: write docs");
    assert_string_equal(str_field(json_array_get(m, 1), "file"), "src/lib/lib.c");
    assert_int_equal(int_field(json_array_get(m, 1), "line"), 3);
    assert_int_equal(int_field(r, "binary_skipped"), 1);
    assert_true(json_is_false(json_object_get(r, "truncated")));
    json_decref(r);
}

static void test_grep_hidden_on_request(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"TODO\",\"hidden\":true}");

    assert_int_equal(json_array_size(json_object_get(r, "matches")), 3);
    json_decref(r);
}

static void test_grep_anchors_per_line(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"^int \\\\w+\\\\(void\\\\)$\","
                              "\"path\":\"src\"}");
    json_t *m = json_object_get(r, "matches");

    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "src/lib/lib.c");
    assert_string_equal(str_field(json_array_get(m, 1), "file"), "src/main.c");
    json_decref(r);
}

static void test_grep_context_lines(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"return\",\"path\":\"src/main.c\","
                              "\"context\":1}");
    json_t *m = json_array_get(json_object_get(r, "matches"), 0);

    assert_non_null(m);
    assert_string_equal(str_field(m, "file"), "src/main.c");
    assert_int_equal(int_field(m, "line"), 4);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "before"), 0)), "{");
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "after"), 0)), "}");
    assert_int_equal(json_array_size(json_object_get(m, "after")), 1);
    json_decref(r);
}

static void test_grep_glob_filter(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"lib\",\"glob\":\"*.h\"}");
    json_t *m = json_object_get(r, "matches");

    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "src/lib/lib.h");
    json_decref(r);

    r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"lib\",\"glob\":\"src/*.c\"}");
    m = json_object_get(r, "matches");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "src/main.c");
    json_decref(r);
}

static void test_grep_ignore_case_and_max(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"todo\",\"ignore_case\":true,"
                              "\"max\":1}");

    assert_int_equal(json_array_size(json_object_get(r, "matches")), 1);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
}

static void test_grep_long_line_cut(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r, *m;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_grep_line_bytes = 8;
    w = ws_new(&cfg);
    ws_puts(w, "long.txt", "needle in a very long line\n");
    r = ws_ok(w, "{\"tool\":\"grep\",\"pattern\":\"needle\"}");
    m = json_array_get(json_object_get(r, "matches"), 0);
    assert_string_equal(str_field(m, "text"), "needle i");
    assert_true(json_is_true(json_object_get(m, "text_truncated")));
    json_decref(r);
    ws_free(w);
}

static void test_grep_invalid_utf8_line(void **state)
{
    ws_t *w = *state;
    json_t *r, *m;

    ws_write(w, "latin1.txt", "caf\xe9 match\n", 11);
    r = ws_ok(w, "{\"tool\":\"grep\",\"pattern\":\"match\",\"path\":\"latin1.txt\"}");
    m = json_array_get(json_object_get(r, "matches"), 0);
    assert_string_equal(str_field(m, "text"), "caf\xef\xbf\xbd match");
    json_decref(r);
}

static void test_grep_catastrophic_pattern(void **state)
{
    ws_t *w = *state;
    char line[4096];
    struct timespec t0, t1;
    double seconds;

    memset(line, 'a', sizeof line - 2);
    line[sizeof line - 2] = 'b';
    line[sizeof line - 1] = '\n';
    ws_write(w, "evil.txt", line, sizeof line);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"(a+)+$\",\"path\":\"evil.txt\"}",
             "invalid_request");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(seconds < 5.0);
}

static void test_grep_errors(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"grep\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"(unclosed\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"x\",\"context\":1000}", "invalid_request");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"x\",\"path\":\"outlink\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"x\",\"path\":\"../outside\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"x\",\"path\":\"nope\"}", "not_found");
    ws_fails(w, "{\"tool\":\"grep\",\"pattern\":\"x\",\"glob\":\"../*\"}", "invalid_request");
}

static void test_grep_skips_linked_outside(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"outside secret\"}");

    assert_int_equal(json_array_size(json_object_get(r, "matches")), 0);
    json_decref(r);
}

static void test_glob_exclude(void **state)
{
    static const char *const expected[] = { "src/main.c" };
    static const char *const no_lib_dir[] = { "src", "src/blob.bin", "src/main.c" };
    json_t *r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"**/*.c\","
                              "\"exclude\":[\"lib.c\"]}");

    assert_matches(r, expected, 1);
    json_decref(r);

    r = ws_ok(*state, "{\"tool\":\"glob\",\"pattern\":\"src/**\","
                      "\"exclude\":[\"src/lib/\"]}");
    assert_matches(r, no_lib_dir, 3);
    json_decref(r);

    ws_fails(*state, "{\"tool\":\"glob\",\"pattern\":\"*\",\"exclude\":\"lib\"}",
             "invalid_request");
    ws_fails(*state, "{\"tool\":\"glob\",\"pattern\":\"*\",\"exclude\":[\"\"]}",
             "invalid_request");
}

static void test_grep_exclude(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"TODO\",\"hidden\":true,"
                              "\"exclude\":[\".git\",\"src/lib\"]}");
    json_t *m = json_object_get(r, "matches");

    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "README.md");
    json_decref(r);

    /* Patterns are matched against workspace paths, whatever the base. */
    r = ws_ok(*state, "{\"tool\":\"grep\",\"pattern\":\"lib\",\"path\":\"src/lib\","
                      "\"exclude\":[\"src/lib/*.h\"]}");
    m = json_object_get(r, "matches");
    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(str_field(json_array_get(m, 0), "file"), "src/lib/lib.c");
    json_decref(r);
}

static void test_search_limits_from_config(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_grep_file_bytes = 16;
    cfg.max_walk_entries = 3;
    w = ws_new(&cfg);
    ws_puts(w, "a.txt", "needle\n");
    ws_puts(w, "b.txt", "needle and a line longer than sixteen bytes\n");
    ws_puts(w, "c.txt", "needle\n");
    ws_puts(w, "d.txt", "needle\n");

    r = ws_ok(w, "{\"tool\":\"grep\",\"pattern\":\"needle\"}");
    assert_int_equal(json_array_size(json_object_get(r, "matches")), 2);
    assert_int_equal(int_field(r, "large_skipped"), 1);
    assert_int_equal(int_field(r, "files_searched"), 2);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);

    r = ws_ok(w, "{\"tool\":\"glob\",\"pattern\":\"*.txt\"}");
    assert_int_equal(json_array_size(json_object_get(r, "matches")), 3);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
    ws_free(w);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_glob_recursive_sorted),
        T(test_glob_one_level),
        T(test_glob_hidden_explicit),
        T(test_glob_base_path),
        T(test_glob_does_not_follow_links),
        T(test_glob_truncated),
        T(test_glob_errors),
        T(test_glob_exclude),
        T(test_grep_finds_lines),
        T(test_grep_hidden_on_request),
        T(test_grep_anchors_per_line),
        T(test_grep_context_lines),
        T(test_grep_glob_filter),
        T(test_grep_ignore_case_and_max),
        T(test_grep_long_line_cut),
        T(test_grep_invalid_utf8_line),
        T(test_grep_catastrophic_pattern),
        T(test_grep_errors),
        T(test_grep_skips_linked_outside),
        T(test_grep_exclude),
        T(test_search_limits_from_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
