/*
 * bench_decide.c - cost of the static decision (nu_decide) per tool call.
 *
 * Decides a mix of eight calls taken from real agent work (reads, writes,
 * a glob, shell strings with pipes, a heredoc and redirections, a blocked
 * path, a fetch) against a coding permission.  Prints the mean time per
 * decision beside two baselines measured in the same run:
 *   - parse: nu_json_parse of the same request text, the least work any
 *     front end does per call;
 *   - spawn: posix_spawn + waitpid of /bin/true, the least work a run call
 *     costs when it executes.
 * Usage: bench_decide [ITERATIONS]   (default 20000 passes over the mix)
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "nucleus/decide.h"
#include "nucleus/json.h"
#include "nucleus/lattice.h"

extern char **environ;

static const char *const nu__calls[] = {
    "{\"tool\":\"read\",\"path\":\"src/flask/blueprints.py\"}",
    "{\"tool\":\"write\",\"path\":\"reproduce.py\",\"content\":\"import sys\\nprint(sys.version)\\n\"}",
    "{\"tool\":\"glob\",\"pattern\":\"**/*.py\",\"path\":\"src\"}",
    "{\"tool\":\"run\",\"command\":\"sed -n '/class Blueprint(Scaffold):/,/def __init__/p' src/flask/blueprints.py | head -n 50\"}",
    "{\"tool\":\"run\",\"command\":\"cat <<'EOF' > test_dummy.py\\ndef test_fail():\\n    assert 1 == 2\\nEOF\"}",
    "{\"tool\":\"run\",\"command\":\"pytest test_dummy.py > pytest_output.txt 2>&1\"}",
    "{\"tool\":\"read\",\"path\":\"config/.env.production\"}",
    "{\"tool\":\"web_fetch\",\"url\":\"https://docs.example.org/api?q=1\"}",
};
#define NU__NCALLS (sizeof nu__calls / sizeof nu__calls[0])

static double nu__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nu__perm(nu_perm_t *p)
{
    nu_perm_init_top(p);
    p->obligations = 0;
    for (size_t i = 0; nu_sensitive_patterns[i] != NULL; i++)
        nu_strset_add(&p->paths.block, nu_sensitive_patterns[i]);
    for (size_t i = 0; nu_autorun_patterns[i] != NULL; i++)
        nu_strset_add(&p->paths.write_block, nu_autorun_patterns[i]);
    nu_strset_add(&p->commands.block, "sudo");
    nu_strset_add(&p->commands.block, "git push");
}

static double nu__bench_decide(const nu_perm_t *p, json_t *calls[], long n)
{
    nu_decide_ctx_t ctx = {0};
    nu_decision_t d;
    double start = nu__now();

    for (long i = 0; i < n; i++) {
        for (size_t c = 0; c < NU__NCALLS; c++) {
            if (nu_decide(p, calls[c], &ctx, &d) != NU_OK) {
                fprintf(stderr, "bench_decide: cannot decide call %zu: %s\n",
                        c, d.reason);
                exit(1);
            }
        }
    }
    return (nu__now() - start) / (double)(n * NU__NCALLS);
}

static double nu__bench_parse(long n)
{
    nu_err_t err;
    double start = nu__now();

    for (long i = 0; i < n; i++) {
        for (size_t c = 0; c < NU__NCALLS; c++) {
            json_t *j = nu_json_parse(nu__calls[c], strlen(nu__calls[c]), &err);
            json_decref(j);
        }
    }
    return (nu__now() - start) / (double)(n * NU__NCALLS);
}

static double nu__bench_spawn(int n)
{
    char *argv[] = {"/bin/true", NULL};
    double start = nu__now();

    for (int i = 0; i < n; i++) {
        pid_t pid;
        int status;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, &status, 0) != pid) {
            fprintf(stderr, "bench_decide: cannot spawn /bin/true\n");
            exit(1);
        }
    }
    return (nu__now() - start) / n;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    json_t *calls[NU__NCALLS];
    nu_perm_t perm;
    nu_err_t err;

    if (n <= 0) {
        fprintf(stderr, "usage: bench_decide [ITERATIONS > 0]\n");
        return 2;
    }
    nu__perm(&perm);
    for (size_t c = 0; c < NU__NCALLS; c++) {
        calls[c] = nu_json_parse(nu__calls[c], strlen(nu__calls[c]), &err);
        if (calls[c] == NULL) {
            fprintf(stderr, "bench_decide: cannot parse call %zu: %s\n", c, err.msg);
            return 1;
        }
    }

    double decide = nu__bench_decide(&perm, calls, n);
    double parse = nu__bench_parse(n);
    double spawn = nu__bench_spawn(2000);

    printf("decide: %.2f us per call (mean over %ld x %zu calls)\n",
           decide * 1e6, n, NU__NCALLS);
    printf("baseline parse: %.2f us per call (nu_json_parse of the same text)\n",
           parse * 1e6);
    printf("baseline spawn: %.2f us per call (posix_spawn + waitpid of /bin/true, 2000 runs)\n",
           spawn * 1e6);
    printf("decide / parse = %.1f, decide / spawn = %.3f\n", decide / parse,
           decide / spawn);

    /* Per call, to show where the time goes. */
    for (size_t c = 0; c < NU__NCALLS; c++) {
        json_t *one[NU__NCALLS];
        for (size_t k = 0; k < NU__NCALLS; k++)
            one[k] = calls[c];
        double t = nu__bench_decide(&perm, one, n / 8 + 1);
        printf("  %6.2f us  %.70s\n", t * 1e6, nu__calls[c]);
    }

    for (size_t c = 0; c < NU__NCALLS; c++)
        json_decref(calls[c]);
    nu_perm_free(&perm);
    return 0;
}
