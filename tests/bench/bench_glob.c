/*
 * bench_glob.c - glob matching and path-check cost, beside glibc fnmatch(3).
 *
 * Cases:
 *   1. the pattern **, slash, *a*a*a*a*a*b against a 1049-byte path (50
 *      segments of 20 'a's), the pathological shape for backtracking
 *      matchers.  It runs once as is, where the literal suffix precheck
 *      rejects it, and once with a last segment of 'b's, where the
 *      automaton runs over the whole path;
 *   2. git's own performance case (t3070): "*a" x16 against "a" x60 + "b";
 *   3. one nu_perm_check_path against the nucleus.SENSITIVE block list,
 *      averaged over 16 typical workspace paths.
 *
 * The baseline is glibc's fnmatch(3) with FNM_PATHNAME on the same
 * pattern and text ("**" written as "*" in case 1, since fnmatch has no
 * "**").  In case 3 the baseline applies the gitignore rules on top of
 * fnmatch the way a simple implementation would: a pattern without a
 * slash on every segment, a pattern with a slash on every leading prefix,
 * and a leading "**" component by trying every suffix of the path.  The
 * program checks that both give the same answers; the figures compare
 * cost, not semantics.
 */
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nucleus/glob.h"
#include "nucleus/lattice.h"

static const char *const typical_paths[] = {
    "src/main.c", "src/lattice/meet.c", "README.md", "docs/guide/install.md",
    "tests/unit/test_glob.c", "certs/server.pem", ".env", "app/.env.local",
    "home/.ssh/id_ed25519", "package.json", "node_modules/left-pad/index.js",
    "build/release/nucleus", ".git/config", "config/credentials.json",
    "scripts/deploy.sh", "src/key_value.rs",
};
#define NPATHS (sizeof typical_paths / sizeof typical_paths[0])

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*bench_fn)(void *ctx, long i);

/* Run fn until 0.3 s have passed; return nanoseconds per call. */
static double measure(bench_fn fn, void *ctx, int *result)
{
    long calls = 0;
    long batch = 16;
    double start = now_seconds();
    double elapsed;
    int acc = 0;

    do {
        for (long i = 0; i < batch; i++)
            acc += fn(ctx, calls + i);
        calls += batch;
        batch *= 2;
        elapsed = now_seconds() - start;
    } while (elapsed < 0.3);

    *result = acc;
    return elapsed * 1e9 / (double)calls;
}

typedef struct {
    const char *nu_pattern;
    const char *fn_pattern;
    const char *text;
} match_case_t;

static int run_nu_glob(void *ctx, long i)
{
    const match_case_t *c = ctx;
    (void)i;
    return nu_glob_match(c->nu_pattern, c->text, NU_GLOB_PATHNAME);
}

static int run_fnmatch(void *ctx, long i)
{
    const match_case_t *c = ctx;
    (void)i;
    return fnmatch(c->fn_pattern, c->text, FNM_PATHNAME) == 0;
}

static int run_check_path(void *ctx, long i)
{
    const nu_perm_t *p = ctx;
    return nu_perm_check_path(p, typical_paths[i % NPATHS], NU_ACCESS_READ, NULL);
}

/* Does pat match path or one of its leading directories?  With
 * anchored false, pat is matched against the last name of each. */
static int fn_match_prefixes(const char *pat, const char *path, int anchored)
{
    char buf[4096];

    snprintf(buf, sizeof buf, "%s", path);
    for (char *end = buf;; end++) {
        if (*end != '/' && *end != '\0')
            continue;

        char saved = *end;
        *end = '\0';
        const char *slash = strrchr(buf, '/');
        const char *name = anchored ? buf : (slash != NULL ? slash + 1 : buf);
        int hit = fnmatch(pat, name, FNM_PATHNAME) == 0;
        *end = saved;

        if (hit)
            return 1;
        if (saved == '\0')
            return 0;
    }
}

/* gitignore-style rules on fnmatch: the baseline for case 3. */
static int fn_match_path(const char *pattern, const char *path)
{
    char pat[256];
    size_t len = strlen(pattern);

    snprintf(pat, sizeof pat, "%s", pattern);
    if (len > 0 && pat[len - 1] == '/')
        pat[--len] = '\0';

    if (strncmp(pat, "**/", 3) != 0)
        return fn_match_prefixes(pat, path, strchr(pat, '/') != NULL);

    /* A leading "**" component: the rest, anchored at any directory. */
    for (const char *start = path; start != NULL;) {
        if (fn_match_prefixes(pat + 3, start, 1))
            return 1;
        start = strchr(start, '/');
        if (start != NULL)
            start++;
    }
    return 0;
}

static int run_fn_check_path(void *ctx, long i)
{
    const char *path = typical_paths[i % NPATHS];
    (void)ctx;
    for (size_t k = 0; nu_sensitive_patterns[k] != NULL; k++) {
        if (fn_match_path(nu_sensitive_patterns[k], path))
            return 0;
    }
    return 1;
}

static void report(const char *name, double ours, double base, bool agree)
{
    printf("%-36s nucleus %9.1f ns   fnmatch %9.1f ns   answers %s\n",
           name, ours, base, agree ? "agree" : "DIFFER");
}

int main(void)
{
    static char long_path[1100];
    char git_text[62];
    char git_pattern[40] = "";
    int r1, r2; /* keep the measured calls from being optimized away */
    size_t len = 0;
    nu_perm_t perm;

    for (int seg = 0; seg < 50; seg++) {
        memset(long_path + len, 'a', 20);
        len += 20;
        long_path[len++] = seg < 49 ? '/' : '\0';
    }
    memset(git_text, 'a', 60);
    git_text[60] = 'b';
    git_text[61] = '\0';
    for (int i = 0; i < 16; i++)
        strcat(git_pattern, "*a");

    static char long_path_b[1100];
    memcpy(long_path_b, long_path, sizeof long_path);
    memset(long_path_b + len - 21, 'b', 20);

    match_case_t patho = { "**/*a*a*a*a*a*b", "*/*a*a*a*a*a*b", long_path };
    match_case_t patho_b = { "**/*a*a*a*a*a*b", "*/*a*a*a*a*a*b", long_path_b };
    match_case_t git = { git_pattern, git_pattern, git_text };

    double ours = measure(run_nu_glob, &patho, &r1);
    double base = measure(run_fnmatch, &patho, &r2);
    report("**/*a*a*a*a*a*b, 1049-byte path", ours, base,
           run_nu_glob(&patho, 0) == run_fnmatch(&patho, 0));

    ours = measure(run_nu_glob, &patho_b, &r1);
    base = measure(run_fnmatch, &patho_b, &r2);
    report("  same, last segment of 'b's", ours, base,
           run_nu_glob(&patho_b, 0) == run_fnmatch(&patho_b, 0));

    ours = measure(run_nu_glob, &git, &r1);
    base = measure(run_fnmatch, &git, &r2);
    report("git t3070 perf case", ours, base,
           run_nu_glob(&git, 0) == run_fnmatch(&git, 0));

    nu_perm_init_top(&perm);
    nu_strset_free(&perm.paths.block);
    for (size_t k = 0; nu_sensitive_patterns[k] != NULL; k++) {
        if (nu_strset_add(&perm.paths.block, nu_sensitive_patterns[k]) != NU_OK) {
            fprintf(stderr, "bench_glob: cannot build the SENSITIVE set: out of memory\n");
            return 1;
        }
    }
    bool agree = true;
    for (long i = 0; i < (long)NPATHS; i++)
        agree = agree && run_check_path(&perm, i) == run_fn_check_path(NULL, i);
    ours = measure(run_check_path, &perm, &r1);
    base = measure(run_fn_check_path, NULL, &r2);
    report("check_path vs SENSITIVE (per path)", ours, base, agree);
    nu_perm_free(&perm);
    return 0;
}
