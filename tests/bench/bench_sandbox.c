/*
 * bench_sandbox.c - namespace pod speed and memory, beside bubblewrap
 * measured in the same run.
 *
 *   bench_sandbox [ROUNDS]     (default 50; run /bin/true uses 4x ROUNDS)
 *
 * Figures are medians, 90th percentiles and minimums in milliseconds.
 * The minimum shows the cost without interference from other load.
 *   create   nu_sandbox_create until the init reports ready
 *   bwrap    `bwrap --unshare-all --die-with-parent --ro-bind / / true`,
 *            spawn to exit (a cold sandbox running one command)
 *   run      a run call of /bin/true in a running pod, host side end to end
 * and the memory of one idle pod: the init's RSS and PSS, plus the host's
 * heap growth per pod.  Needs root or unprivileged user namespaces; bwrap
 * figures are skipped when bwrap is missing.
 */
#include <malloc.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/sandbox.h"

extern char **environ;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double percentile(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(int)(p * (n - 1))];
}

static long status_kib(pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    long value = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, file);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0)
            value = strtol(line + strlen(key), NULL, 10);
    fclose(f);
    return value;
}

static int create(const char *workspace, nu_sandbox_t **sb)
{
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };

    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    if (nu_sandbox_create(&opts, sb, &err) != NU_OK) {
        fprintf(stderr, "bench_sandbox: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static double bench_bwrap_once(void)
{
    char *argv[] = { "bwrap", "--unshare-all", "--die-with-parent",
                     "--ro-bind", "/", "/", "true", NULL };
    double start = now_ms();
    pid_t pid;
    int status;

    if (posix_spawnp(&pid, "bwrap", NULL, NULL, argv, environ) != 0)
        return -1;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return now_ms() - start;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    int runs = rounds * 4;
    char workspace[] = "/tmp/nu-bench-XXXXXX";
    double *create_ms = calloc((size_t)rounds, sizeof(double));
    double *bwrap_ms = calloc((size_t)rounds, sizeof(double));
    double *run_ms = calloc((size_t)runs, sizeof(double));
    nu_sandbox_t *sb = NULL;
    json_t *call;
    int bwrap_ok = 1;

    if (rounds < 2 || mkdtemp(workspace) == NULL) {
        fprintf(stderr, "usage: bench_sandbox [ROUNDS >= 2]\n");
        return 2;
    }

    /* Warm-up: the first pod also copies the init into its memfd. */
    if (create(workspace, &sb) != 0)
        return 1;
    nu_sandbox_close(sb);

    for (int i = 0; i < rounds; i++) {
        double start = now_ms();
        if (create(workspace, &sb) != 0)
            return 1;
        create_ms[i] = now_ms() - start;
        nu_sandbox_close(sb);

        bwrap_ms[i] = bench_bwrap_once();
        if (bwrap_ms[i] < 0)
            bwrap_ok = 0;
    }

    if (create(workspace, &sb) != 0)
        return 1;
    call = json_pack("{s:s,s:[s]}", "tool", "run", "argv", "/bin/true");
    for (int i = 0; i < runs; i++) {
        json_t *result = NULL;
        nu_err_t err;
        double start = now_ms();

        if (nu_sandbox_tool(sb, call, &result, &err) != NU_OK ||
            json_integer_value(json_object_get(result, "exit_code")) != 0) {
            fprintf(stderr, "bench_sandbox: run failed: %s\n", err.msg);
            return 1;
        }
        run_ms[i] = now_ms() - start;
        json_decref(result);
    }
    json_decref(call);

    /* Memory of an idle pod: the init after the runs, and the host heap
     * growth for ten more pods. */
    long rss = status_kib(nu_sandbox_pid(sb), "status", "VmRSS:");
    long pss = status_kib(nu_sandbox_pid(sb), "smaps_rollup", "Pss:");
    struct mallinfo2 before = mallinfo2();
    nu_sandbox_t *extra[10];
    for (int i = 0; i < 10; i++)
        if (create(workspace, &extra[i]) != 0)
            return 1;
    struct mallinfo2 after = mallinfo2();
    double host_kib = (double)(after.uordblks - before.uordblks) / 10 / 1024;
    for (int i = 0; i < 10; i++)
        nu_sandbox_close(extra[i]);
    nu_sandbox_close(sb);

    double c_med = median(create_ms, rounds);
    double c_p90 = percentile(create_ms, rounds, 0.9);
    double r_med = median(run_ms, runs);
    double r_p90 = percentile(run_ms, runs, 0.9);
    printf("pod create to ready   median %6.2f ms  p90 %6.2f ms  min %6.2f ms"
           "  (%d rounds)\n", c_med, c_p90, create_ms[0], rounds);
    if (bwrap_ok) {
        double b_med = median(bwrap_ms, rounds);
        printf("bwrap cold true       median %6.2f ms  p90 %6.2f ms  min %6.2f ms"
               "\n", b_med, percentile(bwrap_ms, rounds, 0.9), bwrap_ms[0]);
        printf("create / bwrap        %6.2fx\n", c_med / b_med);
        printf("run /bin/true in pod  median %6.2f ms  p90 %6.2f ms  min %6.2f ms"
               "  (%d runs)\n", r_med, r_p90, run_ms[0], runs);
        printf("run / bwrap           %6.2fx\n", r_med / b_med);
    } else {
        printf("bwrap: not run (missing, or it failed on this host)\n");
        printf("run /bin/true in pod  median %6.2f ms  p90 %6.2f ms  (%d runs)\n",
               r_med, r_p90, runs);
    }
    printf("idle pod memory       init RSS %ld KiB, PSS %ld KiB, host heap "
           "%.1f KiB per pod\n", rss, pss, host_kib);

    rmdir(workspace);
    free(create_ms);
    free(bwrap_ms);
    free(run_ms);
    return 0;
}
