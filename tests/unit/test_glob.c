/*
 * test_glob.c - wildmatch semantics, gitignore-style path rules and the
 * linear-time guarantee.
 *
 * The wildmatch cases are git's own table (t/t3070-wildmatch.sh as JSON
 * Lines), read at run time from $NU_SHARED_DIR/cases/wildmatch.  The test
 * skips with a message when that directory is absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lattice_internal.h"
#include "nucleus/glob.h"
#include "nucleus/json.h"
#include "nucleus/lattice.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Open a file of the shared wildmatch cases, or skip the test. */
static FILE *open_wildmatch_cases(const char *name)
{
    const char *shared = getenv("NU_SHARED_DIR");
    char path[4096];
    FILE *f;

    if (shared == NULL) {
        print_message("skip: NU_SHARED_DIR is not set, no wildmatch table\n");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/cases/wildmatch/%s", shared, name);
    f = fopen(path, "r");
    if (f == NULL)
        print_message("skip: cannot open %s\n", path);
    return f;
}

static json_t *parse_line(const char *line)
{
    nu_err_t err;
    json_t *rec = nu_json_parse(line, strlen(line), &err);

    if (rec == NULL)
        fail_msg("wildmatch table: %s", err.msg);
    return rec;
}

static void test_glob_matches_git_wildmatch_table(void **state)
{
    static const struct { const char *column; int flags; } modes[] = {
        { "glob", NU_GLOB_PATHNAME },
        { "glob_icase", NU_GLOB_PATHNAME | NU_GLOB_CASEFOLD },
        { "pathmatch", 0 },
        { "pathmatch_icase", NU_GLOB_CASEFOLD },
    };
    FILE *f = open_wildmatch_cases("t3070-wildmatch.jsonl");
    char line[8192];
    int checked = 0;
    int failed = 0;

    (void)state;
    if (f == NULL)
        skip();

    while (fgets(line, sizeof line, f) != NULL) {
        json_t *rec = parse_line(line);
        const char *pattern = json_string_value(json_object_get(rec, "pattern"));
        const char *text = json_string_value(json_object_get(rec, "text"));
        int lineno = (int)json_integer_value(json_object_get(rec, "line"));

        assert_non_null(pattern);
        assert_non_null(text);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            json_t *want = json_object_get(rec, modes[m].column);
            bool got = nu_glob_match(pattern, text, modes[m].flags);
            bool general = nu_glob_match(pattern, text, modes[m].flags |
                                         NU__GLOB_NO_PRECHECK | NU__GLOB_WIDE);

            assert_true(json_is_integer(want));
            checked++;
            if (got != (json_integer_value(want) == 1) || general != got) {
                failed++;
                print_error("line %d %s: pattern '%s' text '%s': got %d, "
                            "general automaton %d\n", lineno, modes[m].column,
                            pattern, text, got, general);
            }
        }
        json_decref(rec);
    }
    fclose(f);

    assert_int_equal(checked, 190 * 4);
    assert_int_equal(failed, 0);
}

static void test_glob_git_perf_case_is_fast(void **state)
{
    FILE *f = open_wildmatch_cases("t3070-wildmatch-perf.jsonl");
    char line[8192];

    (void)state;
    if (f == NULL)
        skip();
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);

    json_t *rec = parse_line(line);
    const char *pattern = json_string_value(json_object_get(rec, "pattern"));
    const char *text = json_string_value(json_object_get(rec, "text"));
    double start = now_seconds();

    assert_false(nu_glob_match(pattern, text, NU_GLOB_PATHNAME));
    assert_true(now_seconds() - start < 0.05);
    json_decref(rec);
}

/* 50 ms for 1000 matches; AddressSanitizer slows every memory access
 * several times over, so sanitized builds get four times as long. */
#if defined(__SANITIZE_ADDRESS__)
#define NU_GLOB_1000_BOUND 0.2
#else
#define NU_GLOB_1000_BOUND 0.05
#endif

/* Best of three runs of 1000 non-matching calls, in seconds, so that a
 * busy machine does not fail the test. */
static double time_1000_misses(const char *pattern, const char *text)
{
    double best = 1e9;

    for (int run = 0; run < 3; run++) {
        double start = now_seconds();

        for (int i = 0; i < 1000; i++)
            assert_false(nu_glob_match(pattern, text, NU_GLOB_PATHNAME));
        double elapsed = now_seconds() - start;
        if (elapsed < best)
            best = elapsed;
    }
    return best;
}

static void test_glob_pathological_pattern_is_linear(void **state)
{
    static const char pattern[] = "**/*a*a*a*a*a*b";
    char path[1100];
    size_t len = 0;
    double elapsed;

    (void)state;
    /* 50 segments of 20 'a's: every star has many places to start. */
    for (int seg = 0; seg < 50; seg++) {
        memset(path + len, 'a', 20);
        len += 20;
        path[len++] = seg < 49 ? '/' : '\0';
    }
    assert_int_equal(strlen(path), 1049);

    /* The bound is generous: the automaton needs a few ms. */
    elapsed = time_1000_misses(pattern, path);
    print_message("1000 misses of %s on 1049 bytes: %.2f ms\n", pattern,
                  elapsed * 1e3);
    assert_true(elapsed < NU_GLOB_1000_BOUND);

    /* A last segment of 'b's passes the literal suffix precheck, so the
     * whole automaton runs over all 1049 bytes. */
    memset(path + len - 21, 'b', 20);
    elapsed = time_1000_misses(pattern, path);
    print_message("the same, last segment of 'b's: %.2f ms\n", elapsed * 1e3);
    assert_true(elapsed < NU_GLOB_1000_BOUND);

    memset(path + len - 21, 'a', 19);
    assert_true(nu_glob_match(pattern, path, NU_GLOB_PATHNAME));
}

static void test_glob_rejects_overlong_text(void **state)
{
    char *text = malloc(NU_PATH_MAX + 2);
    char segs[2 * (NU_PATH_MAX_SEGMENTS + 1) + 1];

    (void)state;
    assert_non_null(text);
    memset(text, 'a', NU_PATH_MAX + 1);
    text[NU_PATH_MAX + 1] = '\0';
    assert_false(nu_glob_match("*", text, 0));
    text[NU_PATH_MAX] = '\0';
    assert_true(nu_glob_match("*", text, 0));
    free(text);

    for (int i = 0; i <= NU_PATH_MAX_SEGMENTS; i++) {
        segs[2 * i] = 'a';
        segs[2 * i + 1] = '/';
    }
    segs[2 * NU_PATH_MAX_SEGMENTS + 1] = '\0';
    assert_false(nu_glob_match("**", segs, NU_GLOB_PATHNAME));
    segs[2 * NU_PATH_MAX_SEGMENTS - 1] = '\0';
    assert_true(nu_glob_match("**", segs, NU_GLOB_PATHNAME));
}

static void test_glob_valid_patterns(void **state)
{
    static const char *const valid[] = {
        "*.pem", "**/x", "[a-z]", "[]]", "[!]a]", "[[:alpha:]]", "[[:]",
        "a\\*", "", "[\\]]",
    };
    static const char *const invalid[] = {
        "[abc", "a\\", "[[:nope:]]", "[a-", "[\\", "[[:alpha:]",
    };
    char *huge = malloc(NU_GLOB_PATTERN_MAX + 2);

    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        assert_true(nu_glob_valid(valid[i]));
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_false(nu_glob_valid(invalid[i]));

    assert_non_null(huge);
    memset(huge, 'a', NU_GLOB_PATTERN_MAX + 1);
    huge[NU_GLOB_PATTERN_MAX + 1] = '\0';
    assert_false(nu_glob_valid(huge));
    huge[NU_GLOB_PATTERN_MAX] = '\0';
    assert_true(nu_glob_valid(huge));
    free(huge);
}

static void test_glob_long_pattern_uses_many_words(void **state)
{
    char pattern[400];
    char text[400];

    (void)state;
    /* 150 tokens of "?*" spread the automaton over several words. */
    for (int i = 0; i < 150; i++) {
        pattern[2 * i] = '?';
        pattern[2 * i + 1] = '*';
    }
    pattern[300] = 'z';
    pattern[301] = '\0';
    memset(text, 'q', 300);
    text[300] = 'z';
    text[301] = '\0';
    assert_true(nu_glob_match(pattern, text, NU_GLOB_PATHNAME));
    text[100] = '\0';
    assert_false(nu_glob_match(pattern, text, NU_GLOB_PATHNAME));
}

typedef struct {
    const char *pattern;
    const char *path;
    bool match;
} path_case_t;

static void test_glob_path_rules(void **state)
{
    static const path_case_t cases[] = {
        /* No slash: the base name at any depth. */
        { "*.pem", "server.pem", true },
        { "*.pem", "certs/server.pem", true },
        { "*.pem", "a/b/c/server.pem", true },
        { "*.pem", "server.pem.txt", false },
        { "id_rsa*", "home/.ssh/id_rsa.pub", true },
        /* A parent directory matching covers everything below it. */
        { ".ssh", ".ssh/id_ed25519", true },
        { ".ssh/", ".ssh/keys/a", true },
        { ".ssh/", "x/.ssh", true },
        { ".ssh/", "x/.sshd", false },
        { "secrets/", "app/secrets/db.txt", true },
        /* A slash anchors the pattern at the root. */
        { "src/*.c", "src/main.c", true },
        { "src/*.c", "lib/src/main.c", false },
        { "src/*.c", "src/sub/main.c", false },
        { "/build", "build/out.o", true },
        { "/build", "x/build/out.o", false },
        { "**/.git/config", ".git/config", true },
        { "**/.git/config", "vendor/lib/.git/config", true },
        { "**/.git/hooks/", "a/.git/hooks/pre-commit", true },
        { "**/.git/hooks/", ".git/hooksx", false },
        { "docs/**", "docs/a/b.md", true },
        { "docs/**", "docs", false },
        { "docs", "docs", true },
        /* The root itself. */
        { "src", "", false },
        { "**", "", true },
        /* Invalid patterns match nothing. */
        { "[abc", "a", false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = nu_glob_match_path(cases[i].pattern, cases[i].path);
        if (got != cases[i].match)
            fail_msg("pattern '%s' path '%s': expected %d", cases[i].pattern,
                     cases[i].path, cases[i].match);
    }
}

/* Path rules are cached per thread.  With more rules than the cache has
 * slots, a rule must give the same answers after it was evicted. */
static void test_glob_path_rule_cache_eviction(void **state)
{
    char pattern[64];
    char path[64];

    (void)state;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3000; i++) {
            snprintf(pattern, sizeof pattern, "dir%d/*.c", i);
            snprintf(path, sizeof path, "dir%d/main.c", i);
            assert_true(nu_glob_match_path(pattern, path));
            snprintf(path, sizeof path, "dir%d/main.c", i + 1);
            assert_false(nu_glob_match_path(pattern, path));

            snprintf(pattern, sizeof pattern, "name%d", i);
            snprintf(path, sizeof path, "a/name%d/b", i);
            assert_true(nu_glob_match_path(pattern, path));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_matches_git_wildmatch_table),
        cmocka_unit_test(test_glob_git_perf_case_is_fast),
        cmocka_unit_test(test_glob_pathological_pattern_is_linear),
        cmocka_unit_test(test_glob_rejects_overlong_text),
        cmocka_unit_test(test_glob_valid_patterns),
        cmocka_unit_test(test_glob_long_pattern_uses_many_words),
        cmocka_unit_test(test_glob_path_rules),
        cmocka_unit_test(test_glob_path_rule_cache_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
