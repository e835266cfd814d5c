/*
 * bench_vm.c - vm pod boot to agent-ready, beside a bare boot of the same
 * kernel measured in the same run.
 *
 *   bench_vm [ROUNDS]     (default 3; each round boots twice)
 *
 *   bare    qemu-system-x86_64 -M microvm with the machine options, kernel
 *           and command line of a vm pod and an initramfs whose /init only
 *           powers off: spawn to QEMU exit
 *   ours    nu_sandbox_create with isolation "vm:IMAGE": spawn to the
 *           agent's hello frame (9p, virtio-serial and virtio-rng set up)
 *   run     a run call of `true` in the booted pod, host side end to end
 *   close   nu_sandbox_close
 *   warm    nu_sandbox_create taking a guest from the warm pool
 *           (NUCLEUS_VM_POOL=1, needs root): host-only work (checks,
 *           renice, bind mount of the workspace, queued environment and
 *           entropy seed); the hello was exchanged at pool boot
 *   first   the first run call of `true` after a warm acquisition, which
 *           also reads the queued environment's reply
 * Each warm round waits until the pool thread has booted a replacement
 * at nice 19.  Figures are medians and minimums in milliseconds, and the
 * load average is printed before and after, because other work on the
 * host slows TCG guests.  The accelerator is
 * $NUCLEUS_VM_ACCEL, "tcg" when unset, for both boots.  The images are
 * built from the agent and baseline init next to this build's nucleus
 * binary (two directories above this program).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/sandbox.h"
#include "nucleus/vm.h"

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

static void report(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    printf("%-6s median %9.1f ms   min %9.1f ms   (n=%d)\n", name,
           v[n / 2], v[0], n);
}

static void print_load(const char *when)
{
    char line[128] = "";
    FILE *fp = fopen("/proc/loadavg", "r");

    if (fp != NULL && fgets(line, sizeof line, fp) != NULL)
        printf("load average %s: %s", when, line);
    if (fp != NULL)
        fclose(fp);
}

static int build_image(const char *agent, const char *out, bool init_only)
{
    nu_vm_image_opts_t opts = { 0 };
    nu_err_t err;

    opts.agent = agent;
    opts.out_dir = out;
    opts.init_only = init_only;
    if (nu_vm_image_build(&opts, &err) != NU_OK) {
        fprintf(stderr, "bench_vm: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Boot the poweroff image and return the milliseconds until QEMU exits,
 * or -1 when the boot fails. */
static double bare_boot(const char *image, const char *accel)
{
    char kernel[4200], initrd[4200], serial[4200];
    double start = now_ms();
    int status;
    pid_t pid;

    snprintf(kernel, sizeof kernel, "%s/" NU_VM_KERNEL_FILE, image);
    snprintf(initrd, sizeof initrd, "%s/" NU_VM_INITRAMFS_FILE, image);
    snprintf(serial, sizeof serial, "file:%s/console.log", image);
    pid = fork();
    if (pid == 0) {
        execlp("qemu-system-x86_64", "qemu-system-x86_64", "-M",
               "microvm,x-option-roms=off,pit=on,pic=on,rtc=on", "-accel",
               accel, "-cpu", strcmp(accel, "kvm") == 0 ? "host" : "max",
               "-m", "512", "-smp", "1", "-nodefaults", "-no-user-config",
               "-display", "none", "-no-reboot", "-nic", "none", "-kernel",
               kernel, "-initrd", initrd, "-append",
               "console=ttyS0 quiet panic=-1 reboot=t tsc_early_khz=2000000 "
               "no_timer_check", "-serial", serial, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    return now_ms() - start;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    const char *accel = getenv("NUCLEUS_VM_ACCEL");
    char exe[PATH_MAX], build[PATH_MAX], agent[PATH_MAX + 32];
    char poweroff[PATH_MAX + 32], isolation[64];
    char full_dir[] = "/tmp/nu-bench-vm-XXXXXX";
    char bare_dir[] = "/tmp/nu-bench-vmbare-XXXXXX";
    char workspace[] = "/tmp/nu-bench-vmws-XXXXXX";
    double bare[32], ours[32], run[32], closing[32], warm[32], first[32];
    char cmd[256];
    ssize_t n;

    if (rounds < 1 || rounds > 32) {
        fprintf(stderr, "bench_vm: invalid ROUNDS '%s' (use 1 to 32)\n",
                argv[1]);
        return 2;
    }
    if (accel == NULL) {
        accel = "tcg";
        setenv("NUCLEUS_VM_ACCEL", accel, 1);
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 1;
    exe[n] = '\0';
    snprintf(build, sizeof build, "%s", exe);
    for (int up = 0; up < 3; up++)
        *strrchr(build, '/') = '\0';
    snprintf(agent, sizeof agent, "%s/nucleus-vm-agent", build);
    snprintf(poweroff, sizeof poweroff, "%s/nucleus-vm-poweroff", build);

    if (mkdtemp(full_dir) == NULL || mkdtemp(bare_dir) == NULL ||
        mkdtemp(workspace) == NULL)
        return 1;
    if (build_image(agent, full_dir, false) != 0 ||
        build_image(poweroff, bare_dir, true) != 0)
        return 1;
    snprintf(isolation, sizeof isolation, "vm:%s", full_dir);
    printf("accelerator: %s%s\n", accel, strcmp(accel, "tcg") == 0 ?
           " (emulated: no usable KVM on this host)" : "");
    print_load("before");

    for (int i = 0; i < rounds; i++) {
        nu_sandbox_opts_t opts;
        nu_sandbox_t *sb = NULL;
        nu_frame_t response = { 0 };
        nu_err_t err;
        json_t *call;
        double start;

        fprintf(stderr, "bench_vm: round %d of %d\n", i + 1, rounds);
        bare[i] = bare_boot(bare_dir, accel);
        if (bare[i] < 0) {
            fprintf(stderr, "bench_vm: the bare boot failed (see "
                    "%s/console.log)\n", bare_dir);
            return 1;
        }

        nu_sandbox_opts_init(&opts);
        opts.workspace = workspace;
        opts.isolation = isolation;
        start = now_ms();
        if (nu_sandbox_create(&opts, &sb, &err) != NU_OK) {
            fprintf(stderr, "bench_vm: %s\n", err.msg);
            return 1;
        }
        ours[i] = now_ms() - start;

        call = json_pack("{s:s,s:s}", "tool", "run", "command", "true");
        start = now_ms();
        if (nu_sandbox_call(sb, call, NULL, 0, NULL, NULL, &response,
                            &err) != NU_OK) {
            fprintf(stderr, "bench_vm: %s\n", err.msg);
            return 1;
        }
        run[i] = now_ms() - start;
        nu_frame_free(&response);
        json_decref(call);

        start = now_ms();
        nu_sandbox_close(sb);
        closing[i] = now_ms() - start;
    }

    /* Warm pool: the first create starts it; later ones take a guest the
     * pool thread booted while the previous round ran. */
    setenv("NUCLEUS_VM_POOL", "1", 1);
    for (int i = -1; i < rounds; i++) {
        nu_sandbox_opts_t opts;
        nu_sandbox_t *sb = NULL;
        nu_frame_t response = { 0 };
        nu_err_t err;
        json_t *call;
        double start;
        double took;

        for (int wait = 0; i >= 0 && wait < 2400 && nu_vm_pool_ready() == 0;
             wait++)
            usleep(50000);
        nu_sandbox_opts_init(&opts);
        opts.workspace = workspace;
        opts.isolation = isolation;
        start = now_ms();
        if (nu_sandbox_create(&opts, &sb, &err) != NU_OK) {
            fprintf(stderr, "bench_vm: %s\n", err.msg);
            return 1;
        }
        took = now_ms() - start;

        call = json_pack("{s:s,s:s}", "tool", "run", "command", "true");
        start = now_ms();
        if (nu_sandbox_call(sb, call, NULL, 0, NULL, NULL, &response,
                            &err) != NU_OK) {
            fprintf(stderr, "bench_vm: %s\n", err.msg);
            return 1;
        }
        if (i >= 0) {
            warm[i] = took;
            first[i] = now_ms() - start;
        }
        nu_frame_free(&response);
        json_decref(call);
        nu_sandbox_close(sb);
    }
    print_load("after");

    report("bare", bare, rounds);
    report("ours", ours, rounds);
    report("run", run, rounds);
    report("close", closing, rounds);
    report("warm", warm, rounds);
    report("first", first, rounds);
    printf("overhead: ours / bare = %.2f (medians)\n",
           ours[rounds / 2] / bare[rounds / 2]);

    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", full_dir, bare_dir,
             workspace);
    return system(cmd) == 0 ? 0 : 1;
}
