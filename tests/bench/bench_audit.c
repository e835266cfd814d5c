/*
 * bench_audit.c - audit log throughput, verification speed and proof
 * latency, each beside a baseline measured in the same run.
 *
 *   bench_audit [EVENTS] [THREADS]     (defaults 1000000 and 16)
 *
 * 1. appends in crash mode: THREADS threads append EVENTS events in
 *    total; reported as events/s and CPU time per event;
 * 2. appends in power mode (synchronous=FULL), EVENTS / 20 events;
 * 3. verification of the crash-mode log (chain, tree, signatures) beside
 *    the floor: bare mbedTLS SHA-256 over 256-byte inputs divided by the
 *    hashes one event needs (chain hash, leaf hash and on average one
 *    interior node), and `openssl speed` for reference;
 * 4. inclusion proofs against the newest checkpoint of that log: the
 *    mean and the maximum over 1000 random events.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "nucleus/audit.h"

#define HASHES_PER_EVENT 3.0

typedef struct loader {
    nu_audit_t *a;
    int id;
    int64_t count;
    int failed;
} loader_t;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A typical tool-call record: about 330 bytes of preimage. */
static void *load(void *arg)
{
    loader_t *l = arg;
    char pod[32], path[64], digest[NU_SHA256_HEX_LEN + 1];

    snprintf(pod, sizeof pod, "pod-%d", l->id);
    for (int64_t i = 0; i < l->count; i++) {
        nu_audit_event_t ev = { 0 };
        nu_err_t err = { 0 };
        json_t *args;

        snprintf(path, sizeof path, "src/module-%d/file-%" PRId64 ".c",
                 l->id, i);
        nu_audit_digest(path, strlen(path), digest);
        args = json_pack("{s:s, s:i}", "path", path, "limit", 4096);
        ev.pod = pod;
        ev.spiffe_id = "spiffe://nucleus.local/ns/bench/pod/p1";
        ev.type = "tool_call";
        ev.tool = "read";
        ev.operation = "read";
        ev.args = args;
        ev.decision = "allow";
        ev.result_digest = digest;
        if (nu_audit_append(l->a, &ev, NULL, 0, NULL, &err) != NU_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            l->failed = 1;
        }
        json_decref(args);
        if (l->failed)
            break;
    }
    return NULL;
}

static int run_appends(const char *home, nu_audit_durability_t mode,
                       int64_t events, int threads, nu_audit_t **out)
{
    nu_audit_options_t opts = { 0 };
    loader_t *ls = calloc((size_t)threads, sizeof *ls);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    double t0, c0, secs, cpu;
    int failed = 0;

    opts.home = home;
    opts.durability = mode;
    if (nu_audit_open(&opts, &a, &err) != NU_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }

    t0 = now();
    c0 = cpu_seconds();
    for (int i = 0; i < threads; i++) {
        ls[i] = (loader_t){ a, i, events / threads, 0 };
        pthread_create(&tids[i], NULL, load, &ls[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        failed |= ls[i].failed;
    }
    secs = now() - t0;
    cpu = cpu_seconds() - c0;

    printf("append %-5s %d threads: %" PRId64 " events in %.2f s = %.0f "
           "events/s (CPU %.1f us/event)\n",
           mode == NU_AUDIT_POWER ? "power" : "crash", threads,
           events / threads * threads, secs,
           (double)(events / threads * threads) / secs,
           cpu * 1e6 / (double)(events / threads * threads));
    free(ls);
    free(tids);
    if (out != NULL)
        *out = a;
    else
        nu_audit_close(a);
    return failed ? -1 : 0;
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bare mbedTLS SHA-256 over 256-byte inputs for about a second: hashes
 * per wall-clock second and per CPU second of this thread. */
static void sha256_floor(double *per_wall, double *per_cpu)
{
    unsigned char buf[256], out[32];
    double t0 = now(), c0 = thread_cpu_seconds(), secs;
    long n = 0;

    memset(buf, 0x5a, sizeof buf);
    do {
        for (int i = 0; i < 1000; i++, n++) {
            buf[0] = (unsigned char)n;
            mbedtls_sha256_ret(buf, sizeof buf, out, 0);
        }
        secs = now() - t0;
    } while (secs < 1.0);
    *per_wall = (double)n / secs;
    *per_cpu = (double)n / (thread_cpu_seconds() - c0);
}

static void print_openssl_speed(void)
{
    FILE *p = popen("openssl speed -seconds 1 -bytes 256 -evp sha256 "
                    "2>/dev/null | tail -1", "r");
    char line[256];

    if (p == NULL)
        return;
    if (fgets(line, sizeof line, p) != NULL)
        printf("openssl speed -evp sha256 (256-byte blocks, in 1000s of "
               "bytes/s): %s", line);
    pclose(p);
}

/* The machine may be shared, so the floor is measured before and after
 * verification and averaged, and both are also given per CPU second,
 * which load on other cores does not change. */
static void run_verify(nu_audit_t *a)
{
    nu_audit_report_t rep;
    nu_err_t err = { 0 };
    double w1, c1, w2, c2, t0, cpu0, secs, cpu, wall_rate, cpu_rate;
    double floor_wall, floor_cpu;

    sha256_floor(&w1, &c1);
    t0 = now();
    cpu0 = cpu_seconds();
    if (nu_audit_verify(a, NULL, &rep, &err) != NU_OK) {
        fprintf(stderr, "bench: verify failed at %" PRId64 ": %s %s\n",
                rep.bad_seq, rep.reason, err.msg);
        return;
    }
    secs = now() - t0;
    cpu = cpu_seconds() - cpu0;
    sha256_floor(&w2, &c2);

    wall_rate = (double)rep.events / secs;
    cpu_rate = (double)rep.events / cpu;
    floor_wall = (w1 + w2) / 2 / HASHES_PER_EVENT;
    floor_cpu = (c1 + c2) / 2 / HASHES_PER_EVENT;
    printf("verify: %" PRId64 " events, %" PRId64 " checkpoints in %.2f s = "
           "%.0f events/s (%.0f per CPU second, 2 threads)\n", rep.events,
           rep.checkpoints, secs, wall_rate, cpu_rate);
    printf("floor: mbedTLS SHA-256 over 256-byte inputs, %.0f hashes/s "
           "(%.0f and %.0f before and after) / %.0f hashes per event = %.0f "
           "events/s; verify reaches %.0f%% of it\n", (w1 + w2) / 2, w1, w2,
           HASHES_PER_EVENT, floor_wall, 100.0 * wall_rate / floor_wall);
    printf("floor per CPU second: %.0f events/s; verify reaches %.0f%% of "
           "it\n", floor_cpu, 100.0 * cpu_rate / floor_cpu);
    print_openssl_speed();
}

static void run_proofs(nu_audit_t *a, int64_t size)
{
    double total = 0, worst = 0;
    nu_err_t err = { 0 };
    int n = 1000;

    srand(42);
    for (int i = 0; i < n; i++) {
        int64_t seq = 1 + (int64_t)(((uint64_t)rand() << 16 ^
                                     (uint64_t)rand()) % (uint64_t)size);
        double t0 = now(), dt;
        json_t *proof = nu_audit_prove_inclusion(a, seq, &err);

        dt = now() - t0;
        if (proof == NULL) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return;
        }
        json_decref(proof);
        total += dt;
        if (dt > worst)
            worst = dt;
    }
    printf("inclusion proof on a %" PRId64 "-event log: mean %.3f ms, max "
           "%.3f ms over %d random events (target <= 1 ms)\n", size,
           total * 1e3 / n, worst * 1e3, n);
}

int main(int argc, char **argv)
{
    int64_t events = argc > 1 ? atoll(argv[1]) : 1000000;
    int threads = argc > 2 ? atoi(argv[2]) : 16;
    char crash_home[] = "/tmp/nu-bench-audit-XXXXXX";
    char power_home[] = "/tmp/nu-bench-audit-power-XXXXXX";
    char cmd[128];
    nu_audit_t *a = NULL;
    int64_t size = 0;
    int64_t cp = 0;

    if (events < threads || threads < 1) {
        fprintf(stderr, "usage: bench_audit [EVENTS] [THREADS]\n");
        return 2;
    }
    if (mkdtemp(crash_home) == NULL || mkdtemp(power_home) == NULL)
        return 1;
    printf("machine: %ld cores; load average and other processes affect "
           "every figure below alike\n", sysconf(_SC_NPROCESSORS_ONLN));

    if (run_appends(crash_home, NU_AUDIT_CRASH, events, threads, &a) != 0)
        return 1;
    if (run_appends(power_home, NU_AUDIT_POWER, events / 20, threads,
                    NULL) != 0)
        return 1;

    nu_audit_checkpoint(a, &cp, NULL);
    nu_audit_size(a, &size, NULL);
    run_verify(a);
    run_proofs(a, size - 1);
    nu_audit_close(a);

    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", crash_home, power_home);
    return system(cmd) == 0 ? 0 : 1;
}
