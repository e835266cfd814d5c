/*
 * bench_oci.c - oci pod creation beside a bare `RUNTIME run` of a bundle
 * that runs /bin/true, measured in the same run.
 *
 *   bench_oci [ROUNDS [RUNTIME...]]   (default 20 rounds; crun and runc)
 *
 * Figures are medians, 90th percentiles and minimums in milliseconds:
 *   create   nu_sandbox_create with isolation "oci:RUNTIME" until the
 *            init reports ready (bundle written, runtime started,
 *            handshake done)
 *   close    nu_sandbox_close (runtime killed, `delete -f`, bundle removed)
 *   bare     `RUNTIME --root DIR run --bundle B ID` of a bundle whose
 *            process is /bin/true, with the same namespaces and read-only
 *            /usr, spawn to exit (the runtime removes the container)
 *   same     the same for the config.json of an oci pod with /bin/true as
 *            its process: the runtime's share of "create"
 *   ns       nu_sandbox_create of the ns tier, for scale
 * Needs root and the runtimes; a missing runtime is reported and skipped.
 */
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/oci.h"
#include "nucleus/sandbox.h"

static const char bare_config[] =
    "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\","
    "\"readonly\":true},\"process\":{\"args\":[\"/bin/true\"],\"cwd\":\"/\","
    "\"env\":[\"PATH=/usr/bin:/bin\"],\"user\":{\"uid\":0,\"gid\":0},"
    "\"noNewPrivileges\":true},\"hostname\":\"bare\","
    "\"mounts\":[{\"destination\":\"/usr\",\"type\":\"bind\","
    "\"source\":\"/usr\",\"options\":[\"rbind\",\"ro\"]},"
    "{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\","
    "\"options\":[\"nosuid\",\"mode=755\",\"size=64k\"]}],"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},"
    "{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"mount\"},"
    "{\"type\":\"cgroup\"}]}}";

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

static void report(const char *label, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    printf("  %-8s median %7.2f  p90 %7.2f  min %7.2f ms\n", label,
           n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2,
           v[(int)(0.9 * (n - 1))], v[0]);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The bare bundle in dir: config.json, rootfs with the merged-/usr
 * links, and a runtime state directory. */
static int make_bare_bundle(const char *dir)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof path, "%s/rootfs", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/rootfs/bin", dir);
    if (symlink("usr/bin", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/rootfs/lib", dir);
    if (symlink("usr/lib", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/rootfs/lib64", dir);
    if (symlink("usr/lib64", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/state", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(bare_config, fp);
    return fclose(fp);
}

/* Is this a cgroup v1 host with a cgroup2 mount that has controllers,
 * which crun 1.8 refuses? */
static bool hybrid_cgroups(void)
{
    char controllers[64] = "";
    FILE *fp = fopen("/sys/fs/cgroup/unified/cgroup.controllers", "r");

    if (fp == NULL)
        return false;
    if (fgets(controllers, sizeof controllers, fp) == NULL)
        controllers[0] = '\0';
    fclose(fp);
    return controllers[0] != '\0' && controllers[0] != '\n';
}

/* A bundle in dir with the config.json of an oci pod for workspace, whose
 * process is /bin/true instead of the init. */
static int make_same_bundle(const char *dir, const char *workspace)
{
    nu_oci_bundle_t bundle = { .init_source = "/bin/true" };
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    json_t *config = NULL;
    char path[512];
    static const char *const links[][2] = {
        { "usr/bin", "bin" }, { "usr/lib", "lib" }, { "usr/lib64", "lib64" },
        { "usr/sbin", "sbin" },
    };

    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    if (nu_oci_config(&opts, &bundle, &config, &err) != NU_OK) {
        fprintf(stderr, "bench_oci: %s\n", err.msg);
        return -1;
    }
    json_array_set_new(json_object_get(json_object_get(config, "process"),
                                       "args"), 0, json_string("/bin/true"));
    json_array_remove(json_object_get(json_object_get(config, "process"),
                                      "args"), 1);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (json_dump_file(config, path, JSON_COMPACT) != 0) {
        json_decref(config);
        return -1;
    }
    json_decref(config);

    snprintf(path, sizeof path, "%s/rootfs", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/rootfs/%s", dir, links[i][1]);
        if (symlink(links[i][0], path) != 0)
            return -1;
    }
    snprintf(path, sizeof path, "%s/state", dir);
    return mkdir(path, 0700);
}

/* One `RUNTIME run` of the bare bundle; returns its duration or -1. */
static double bare_run(const char *runtime, const char *dir, int round)
{
    bool hybrid = hybrid_cgroups();
    char state[512];
    char id[64];
    char *argv[] = { (char *)runtime, "--root", state, "run", "--bundle",
                     (char *)dir, id, NULL, NULL };
    double start;
    pid_t pid;
    int status;

    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(id, sizeof id, "nucleus-bench-%ld-%d", (long)getpid(), round);
    /* The same option the oci tier passes crun. */
    hybrid = hybrid && strstr(runtime, "crun") != NULL;
    if (strstr(runtime, "crun") != NULL) {
        memmove(&argv[2], &argv[1], 7 * sizeof argv[0]);
        argv[1] = "--cgroup-manager=disabled";
    }

    start = now_ms();
    pid = fork();
    if (pid == 0) {
        /* As the oci tier does on a hybrid cgroup host (sandbox_oci.c):
         * crun runs with the cgroup2 mount covered. */
        if (hybrid &&
            (unshare(CLONE_NEWNS) != 0 ||
             mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
             mount("tmpfs", "/sys/fs/cgroup/unified", "tmpfs", MS_RDONLY,
                   "size=4k") != 0))
            _exit(125);
        execv(runtime, argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    return now_ms() - start;
}

static nu_sandbox_t *create(const char *workspace, const char *isolation,
                            double *ms)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    double start;

    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = isolation;
    start = now_ms();
    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK) {
        fprintf(stderr, "bench_oci: cannot create %s pod: %s\n", isolation,
                err.msg);
        return NULL;
    }
    *ms = now_ms() - start;
    return sb;
}

static int bench_runtime(const char *name, const char *workspace,
                         const char *bare_dir, const char *same_dir,
                         int rounds)
{
    char isolation[64];
    char path[4096];
    double *create_ms = calloc((size_t)rounds, sizeof *create_ms);
    double *close_ms = calloc((size_t)rounds, sizeof *close_ms);
    double *bare_ms = calloc((size_t)rounds, sizeof *bare_ms);
    double *same_ms = calloc((size_t)rounds, sizeof *same_ms);
    double create_median;
    nu_err_t err = { 0 };
    nu_sandbox_t *sb;
    double start;
    int rc = 1;

    snprintf(isolation, sizeof isolation, "oci:%s", name);
    if (create_ms == NULL || close_ms == NULL || bare_ms == NULL ||
        same_ms == NULL)
        goto out;
    if (nu_oci_runtime_path(isolation, path, sizeof path, &err) != NU_OK) {
        printf("%s: skipped: %s\n", name, err.msg);
        rc = 0;
        goto out;
    }

    /* Warm-up: page cache, the runtime binary, the init program. */
    sb = create(workspace, isolation, &start);
    if (sb == NULL)
        goto out;
    nu_sandbox_close(sb);
    if (bare_run(path, bare_dir, -1) < 0 || bare_run(path, same_dir, -1) < 0) {
        fprintf(stderr, "bench_oci: '%s run' of a bench bundle failed\n",
                path);
        goto out;
    }

    for (int i = 0; i < rounds; i++) {
        sb = create(workspace, isolation, &create_ms[i]);
        if (sb == NULL)
            goto out;
        start = now_ms();
        nu_sandbox_close(sb);
        close_ms[i] = now_ms() - start;
        bare_ms[i] = bare_run(path, bare_dir, i);
        same_ms[i] = bare_run(path, same_dir, i);
        if (bare_ms[i] < 0 || same_ms[i] < 0)
            goto out;
    }

    printf("%s (%s), %d rounds:\n", name, path, rounds);
    report("create", create_ms, rounds);
    report("close", close_ms, rounds);
    report("bare", bare_ms, rounds);
    report("same", same_ms, rounds);
    create_median = median_of(create_ms, rounds);
    printf("  create / bare: %.2fx\n", create_median /
           median_of(bare_ms, rounds));
    rc = 0;

out:
    free(create_ms);
    free(close_ms);
    free(bare_ms);
    free(same_ms);
    return rc;
}

static int bench_ns(const char *workspace, int rounds)
{
    double *ms = calloc((size_t)rounds, sizeof *ms);
    nu_sandbox_t *sb;

    if (ms == NULL)
        return 1;
    for (int i = 0; i < rounds; i++) {
        sb = create(workspace, NULL, &ms[i]);
        if (sb == NULL) {
            free(ms);
            return 1;
        }
        nu_sandbox_close(sb);
    }
    printf("ns tier, %d rounds:\n", rounds);
    report("create", ms, rounds);
    free(ms);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = { "crun", "runc", NULL };
    const char *const *runtimes = defaults;
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    char workspace[] = "/tmp/nu-bench-oci-XXXXXX";
    char bare_dir[] = "/tmp/nu-bench-oci-bare-XXXXXX";
    char same_dir[] = "/tmp/nu-bench-oci-same-XXXXXX";
    char cmd[192];
    double load[1] = { 0 };
    int rc = 0;

    if (rounds < 1) {
        fprintf(stderr, "usage: bench_oci [ROUNDS [RUNTIME...]]\n");
        return 2;
    }
    if (argc > 2)
        runtimes = (const char *const *)&argv[2];
    if (geteuid() != 0) {
        printf("bench_oci: skipped: the runtimes run as root here\n");
        return 0;
    }
    if (mkdtemp(workspace) == NULL || mkdtemp(bare_dir) == NULL ||
        mkdtemp(same_dir) == NULL || make_bare_bundle(bare_dir) != 0 ||
        make_same_bundle(same_dir, workspace) != 0) {
        perror("bench_oci: cannot create the bench directories");
        return 1;
    }

    getloadavg(load, 1);
    printf("load average at start: %.1f\n", load[0]);
    for (size_t i = 0; rc == 0 && runtimes[i] != NULL; i++)
        rc = bench_runtime(runtimes[i], workspace, bare_dir, same_dir,
                           rounds);
    if (rc == 0)
        rc = bench_ns(workspace, rounds);

    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", workspace, bare_dir,
             same_dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
