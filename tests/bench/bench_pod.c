/*
 * bench_pod.c - pipeline overhead of one tool call.
 *
 * Measures, in one run on one workspace with a 1 KiB file:
 *   executor   nu_exec_tool in-process (the executor's own work, no pod)
 *   transport  nu_sandbox_tool on a bare sandbox (executor + protocol)
 *   pipeline   nu_pod_call (decide, hooks, approvals, budget, audit off,
 *              redaction, plus the transport)
 * and prints the medians; pipeline overhead = pipeline - executor.
 *
 *   bench_pod [ITERATIONS]      (default 2000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/pod.h"
#include "nucleus/sandbox.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    char dir[] = "/tmp/nu-bench-pod.XXXXXX";
    char path[128], text[1025];
    double *t = calloc((size_t)n, sizeof *t);
    json_t *call = json_pack("{s:s, s:s}", "tool", "read", "path", "one-kib.txt");
    nu_err_t err;
    FILE *fp;

    if (t == NULL || call == NULL || mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof path, "%s/one-kib.txt", dir);
    memset(text, 'a', 1024);
    text[1024] = '\0';
    fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);

    /* 1. executor alone, in-process */
    nu_executor_t ex;
    if (nu_executor_init(&ex, dir, NULL, &err) != NU_OK) {
        fprintf(stderr, "bench_pod: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        json_t *r = NULL;
        nu_blob_t blob = { 0 };
        double t0 = now_us();
        nu_exec_tool(&ex, call, &r, &blob, &err);
        t[i] = now_us() - t0;
        json_decref(r);
        nu_blob_free(&blob);
    }
    double executor = median(t, n);
    nu_executor_close(&ex);

    /* 2. the same call through a bare sandbox */
    nu_sandbox_opts_t so;
    nu_sandbox_t *sb;
    nu_sandbox_opts_init(&so);
    so.workspace = dir;
    if (nu_sandbox_create(&so, &sb, &err) != NU_OK) {
        fprintf(stderr, "bench_pod: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        json_t *r = NULL;
        double t0 = now_us();
        nu_sandbox_tool(sb, call, &r, &err);
        t[i] = now_us() - t0;
        json_decref(r);
    }
    double transport = median(t, n);
    nu_sandbox_close(sb);

    /* 3. the whole pipeline */
    nu_pod_options_t po;
    nu_pod_t *pod;
    /* codegen's checks with an unlimited budget, so every call runs. */
    static const char bench_profile[] =
        "return nucleus.profile { name = 'bench',\n"
        "  capabilities = { read_files = 'always', run_bash = 'low_risk' },\n"
        "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE,\n"
        "            write_block = nucleus.AUTORUN },\n"
        "  commands = { allow = nucleus.ALL, block = { 'sudo' } } }\n";
    nu_profile_t *profile;
    if (nu_profile_load_string(&profile, "bench.lua", bench_profile,
                               sizeof bench_profile - 1, NULL, &err) != NU_OK) {
        fprintf(stderr, "bench_pod: %s\n", err.msg);
        return 1;
    }
    nu_pod_options_init(&po);
    po.profile = profile;
    po.workspace = dir;
    if (nu_pod_create(&po, &pod, &err) != NU_OK) {
        fprintf(stderr, "bench_pod: %s\n", err.msg);
        return 1;
    }
    int denied = 0;
    for (int i = 0; i < n; i++) {
        nu_call_result_t r;
        double t0 = now_us();
        nu_pod_call(pod, call, &r);
        t[i] = now_us() - t0;
        denied += r.decision.verdict != NU_DECISION_ALLOW;
        nu_call_result_clear(&r);
    }
    double pipeline = median(t, n);
    nu_pod_close(pod);
    nu_profile_free(profile);

    printf("read of a 1 KiB file, %d calls each, medians:\n", n);
    printf("  executor only (in-process)     %8.1f us\n", executor);
    printf("  sandbox round trip (no policy) %8.1f us\n", transport);
    printf("  nu_pod_call (whole pipeline)   %8.1f us\n", pipeline);
    printf("  pipeline overhead (pod_call - executor) %8.1f us   target <= 20 us\n",
           pipeline - executor);
    printf("  policy share (pod_call - sandbox round trip) %8.1f us\n",
           pipeline - transport);
    if (denied)
        printf("  warning: %d calls were not allowed\n", denied);

    snprintf(path, sizeof path, "rm -rf %s", dir);
    if (system(path) != 0)
        return 1;
    json_decref(call);
    free(t);
    return 0;
}
