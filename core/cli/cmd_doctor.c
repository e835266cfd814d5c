/*
 * cmd_doctor.c - nucleus doctor: which isolation mechanisms this host has.
 *
 * Each probe tries the mechanism for real in a short-lived child (a
 * namespace is unshared, a filter built, a pod started) rather than
 * reading version numbers, and prints one line: the mechanism, "ok",
 * "missing" or "limited", and why.  The other tiers are probed the same
 * way where that is quick: each OCI runtime found starts a pod.  The vm
 * tier is not booted (a boot takes seconds), so its lines report the QEMU
 * binary, the default guest image and whether /dev/kvm opens.  The exit
 * status is 0 when the ns tier can start a pod, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "nucleus/home.h"
#include "nucleus/net.h"
#include "nucleus/oci.h"
#include "nucleus/sandbox.h"
#include "nucleus/vm.h"
#include "sandbox_fc_internal.h"
#include "sandbox_internal.h"
#include "sandbox_vm_internal.h"

static void nu__report(const char *name, const char *status,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void nu__report(const char *name, const char *status,
                       const char *fmt, ...)
{
    va_list ap;

    printf("  %-18s %-8s ", name, status);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Run fn in a child; returns 0 on success or the errno it exited with. */
static int nu__in_child(int (*fn)(void *), void *arg)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return errno;
    if (pid == 0)
        _exit(fn(arg));
    if (waitpid(pid, &status, 0) < 0)
        return errno;
    if (WIFSIGNALED(status))
        return EINTR;
    return WEXITSTATUS(status);
}

static int nu__try_unshare(void *arg)
{
    int flags = *(int *)arg;

    if (geteuid() != 0)
        flags |= CLONE_NEWUSER;
    return unshare(flags) == 0 ? 0 : errno;
}

/* Create a user namespace as an unprivileged uid (65534 when we are
 * root), as pods of non-root callers do. */
static int nu__try_unprivileged_userns(void *arg)
{
    (void)arg;
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
                           setuid(65534) != 0))
        return errno;
    return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

static void nu__probe_namespaces(void)
{
    static const struct { const char *name; int flag; } types[] = {
        { "user", CLONE_NEWUSER }, { "mount", CLONE_NEWNS },
        { "pid", CLONE_NEWPID }, { "net", CLONE_NEWNET },
        { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
        { "cgroup", CLONE_NEWCGROUP },
    };
    char name[32];
    FILE *f = fopen("/proc/sys/user/max_user_namespaces", "re");
    long max_userns = -1;

    if (f != NULL) {
        if (fscanf(f, "%ld", &max_userns) != 1)
            max_userns = -1;
        fclose(f);
    }

    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int flag = types[i].flag;
        int rc = flag == CLONE_NEWUSER ?
                 nu__in_child(nu__try_unprivileged_userns, NULL) :
                 nu__in_child(nu__try_unshare, &flag);

        snprintf(name, sizeof name, "%s namespace", types[i].name);
        if (rc == 0 && flag == CLONE_NEWUSER)
            nu__report(name, "ok", "unprivileged creation works "
                       "(user.max_user_namespaces = %ld)", max_userns);
        else if (rc == 0)
            nu__report(name, "ok", "%s", geteuid() == 0 ? "as root" :
                       "inside a user namespace");
        else
            nu__report(name, "missing", "unshare failed: %s%s",
                       strerror(rc), flag == CLONE_NEWUSER ?
                       " (check user.max_user_namespaces, "
                       "kernel.unprivileged_userns_clone and AppArmor's "
                       "restrict_unprivileged_userns)" : "");
    }
}

static void nu__probe_seccomp(void)
{
    const struct scmp_version *v = seccomp_version();
    nu_err_t err;

    if (prctl(PR_GET_SECCOMP) < 0) {
        nu__report("seccomp", "missing", "prctl(PR_GET_SECCOMP) failed: %s "
                   "(kernel built without CONFIG_SECCOMP_FILTER)",
                   strerror(errno));
        return;
    }
    if (nu__seccomp_install(false, &err) != NU_OK) {
        nu__report("seccomp", "missing", "%s", err.msg);
        return;
    }
    nu__report("seccomp", "ok", "filter builds with libseccomp %u.%u.%u, "
               "API level %u", v->major, v->minor, v->micro,
               seccomp_api_get());
}

static void nu__probe_landlock(void)
{
    int abi = nu__landlock_abi();

    if (abi == 0)
        nu__report("landlock", "missing", "landlock_create_ruleset failed: "
                   "%s (boot with lsm=...,landlock)", strerror(errno));
    else if (abi < 6)
        nu__report("landlock", "limited", "ABI %d: file system rules only; "
                   "signal and abstract-socket scoping need ABI 6", abi);
    else
        nu__report("landlock", "ok", "ABI %d: file system, signal and "
                   "abstract unix socket scoping", abi);
}

static void nu__probe_cgroups(void)
{
    FILE *f = fopen("/proc/self/mounts", "re");
    char dev[256], dir[512], type[64], opts[512];
    char v1[512] = "";
    bool v2 = false;
    char v2_ctl[256] = "";

    if (f == NULL) {
        nu__report("cgroups", "missing", "cannot read /proc/self/mounts");
        return;
    }
    while (fscanf(f, "%255s %511s %63s %511s %*d %*d", dev, dir, type,
                  opts) == 4) {
        if (strcmp(type, "cgroup2") == 0) {
            char path[600];
            FILE *c;

            v2 = true;
            snprintf(path, sizeof path, "%s/cgroup.controllers", dir);
            c = fopen(path, "re");
            if (c != NULL) {
                if (fgets(v2_ctl, sizeof v2_ctl, c) == NULL)
                    v2_ctl[0] = '\0';
                v2_ctl[strcspn(v2_ctl, "\n")] = '\0';
                fclose(c);
            }
        } else if (strcmp(type, "cgroup") == 0) {
            const char *base = strrchr(dir, '/');
            base = base != NULL ? base + 1 : dir;
            if ((strcmp(base, "memory") == 0 || strcmp(base, "pids") == 0 ||
                 strcmp(base, "cpu") == 0) &&
                strlen(v1) + strlen(base) + 24 < sizeof v1) {
                strcat(v1, base);
                strcat(v1, access(dir, W_OK) == 0 ? " (writable) " :
                       " (read-only) ");
            }
        }
    }
    fclose(f);

    if (v2)
        nu__report("cgroup v2", strstr(v2_ctl, "memory") != NULL &&
                   strstr(v2_ctl, "pids") != NULL ? "ok" : "limited",
                   "controllers: %s", v2_ctl[0] != '\0' ? v2_ctl :
                   "none delegated (pods use v1 or rlimits)");
    else
        nu__report("cgroup v2", "missing", "no cgroup2 mount");
    if (v1[0] != '\0')
        nu__report("cgroup v1", geteuid() == 0 ? "ok" : "limited", "%s%s",
                   v1, geteuid() == 0 ? "" : "- needs root to create "
                   "cgroups");
    else
        nu__report("cgroup v1", "missing", "no memory, pids or cpu "
                   "hierarchy mounted");
}

static void nu__probe_rlimits(void)
{
    static const struct { const char *name; int res; } limits[] = {
        { "NPROC", RLIMIT_NPROC }, { "NOFILE", RLIMIT_NOFILE },
        { "AS", RLIMIT_AS }, { "DATA", RLIMIT_DATA },
        { "FSIZE", RLIMIT_FSIZE }, { "CPU", RLIMIT_CPU },
        { "CORE", RLIMIT_CORE },
    };
    char line[512] = "";

    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl;
        char item[64];

        if (getrlimit(limits[i].res, &rl) != 0)
            continue;
        if (rl.rlim_max == RLIM_INFINITY)
            snprintf(item, sizeof item, "%s=inf ", limits[i].name);
        else
            snprintf(item, sizeof item, "%s=%llu ", limits[i].name,
                     (unsigned long long)rl.rlim_max);
        strncat(line, item, sizeof line - strlen(line) - 1);
    }
    nu__report("rlimits", "ok", "hard limits: %s", line);
}

/* Direct egress to network.allow entries needs forwarding on the uplink. */
static void nu__probe_uplink(void)
{
    char ifname[32];
    nu_err_t err = { 0 };
    int rc = nu_net_uplink_check(ifname, sizeof ifname, &err);
    const char *msg = strncmp(err.msg, "net: ", 5) == 0 ? err.msg + 5
                                                        : err.msg;

    if (rc == NU_OK)
        nu__report("egress uplink", "ok", "%s forwards IPv4", ifname);
    else if (rc == NU_EPOLICY)
        nu__report("egress uplink", "limited", "%s", msg);
    else
        nu__report("egress uplink", "limited", "%s; pods reach "
                   "network.allow entries only through the proxy", msg);
}

static void nu__probe_memfd(void)
{
    int fd = memfd_create("nucleus-doctor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    FILE *f = fopen("/proc/sys/vm/memfd_noexec", "re");
    int noexec = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &noexec) != 1)
            noexec = 0;
        fclose(f);
    }
    if (fd < 0) {
        nu__report("memfd exec", "missing", "memfd_create failed: %s",
                   strerror(errno));
        return;
    }
    close(fd);
    if (noexec >= 2)
        nu__report("memfd exec", "missing", "vm.memfd_noexec = %d forbids "
                   "executing memfds (set it to 0 or 1)", noexec);
    else
        nu__report("memfd exec", "ok", "sealed memfd init program "
                   "(vm.memfd_noexec = %d)", noexec);
}

/* Start a pod with the given isolation (NULL: ns) on an empty workspace,
 * and return true when it started.  *ms is the creation time, err the
 * failure and *landlock_abi the ABI the pod enforces. */
static bool nu__start_pod(const char *isolation, double *ms,
                          int *landlock_abi, nu_err_t *err)
{
    char workspace[] = "/tmp/nucleus-doctor-XXXXXX";
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    struct timespec t0, t1;
    bool ok;

    if (mkdtemp(workspace) == NULL) {
        nu_err_errno(err, errno, "cannot create a workspace");
        return false;
    }
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = isolation;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok = nu_sandbox_create(&opts, &sb, err) == NU_OK;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
          (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    *landlock_abi = ok ? nu_sandbox_landlock_abi(sb) : 0;
    nu_sandbox_close(sb);
    rmdir(workspace);
    return ok;
}

/* The end-to-end probe: pivot_root and everything else, by starting a
 * pod on an empty workspace. */
static bool nu__probe_pod(void)
{
    nu_err_t err = { 0 };
    double ms;
    int abi;

    if (!nu__start_pod(NULL, &ms, &abi, &err)) {
        nu__report("ns pod", "missing", "%s", err.msg);
        return false;
    }
    nu__report("pivot_root", "ok", "new root assembled and pivoted");
    nu__report("ns pod", "ok", "pod started in %.1f ms, Landlock ABI %d "
               "enforced", ms, abi);
    return true;
}

/* --- the other tiers -------------------------------------------------- */

/* Run "PROGRAM --version" and copy the first line of its output into
 * out ("" when it printed nothing within 3 s or could not run). */
static void nu__version_line(const char *program, char *out, size_t size)
{
    int fds[2];
    pid_t pid;
    ssize_t n = 0;

    out[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    pid = fork();
    if (pid == 0) {
        int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);

        if (null_fd < 0 || dup2(null_fd, 0) != 0 || dup2(fds[1], 1) != 1 ||
            dup2(null_fd, 2) != 2)
            _exit(127);
        execl(program, program, "--version", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (pid > 0) {
        struct pollfd pfd = { .fd = fds[0], .events = POLLIN };

        if (poll(&pfd, 1, 3000) == 1)
            n = read(fds[0], out, size - 1);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* Each OCI runtime that the oci tier finds (nu_oci_runtime_path) starts
 * one pod. */
static void nu__probe_oci(void)
{
    static const char *const runtimes[] = { "crun", "runc", "runsc",
                                            "kata-runtime" };

    for (size_t i = 0; i < sizeof runtimes / sizeof runtimes[0]; i++) {
        char isolation[32], path[PATH_MAX], version[160];
        nu_err_t err = { 0 };
        double ms;
        int abi;

        snprintf(isolation, sizeof isolation, "oci:%s", runtimes[i]);
        if (nu_oci_runtime_path(isolation, path, sizeof path, &err) < 0) {
            nu__report(isolation, "missing", "not on PATH or in /usr/sbin, "
                       "/sbin or /usr/local/sbin");
            continue;
        }
        nu__version_line(path, version, sizeof version);
        if (nu__start_pod(isolation, &ms, &abi, &err))
            nu__report(isolation, "ok", "%s (%s): pod started in %.1f ms",
                       path, version[0] != '\0' ? version : "no version",
                       ms);
        else
            nu__report(isolation, "missing", "%s", err.msg);
    }
}

/* Find name on PATH, or take it as a path when it contains '/'. */
static bool nu__which(const char *name, char *out, size_t size)
{
    const char *p = getenv("PATH");

    if (strchr(name, '/') != NULL) {
        snprintf(out, size, "%s", name);
        return access(out, X_OK) == 0;
    }
    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ":");

        if (len > 0 && (size_t)snprintf(out, size, "%.*s/%s", (int)len, p,
                                        name) < size &&
            access(out, X_OK) == 0)
            return true;
        p += len;
        p += *p == ':';
    }
    return false;
}

static void nu__probe_qemu(void)
{
    const char *env = getenv("NUCLEUS_QEMU");
    const char *name = env != NULL && env[0] != '\0' ? env :
                       "qemu-system-x86_64";
    char path[PATH_MAX], version[160];

    if (!nu__which(name, path, sizeof path)) {
        nu__report("vm QEMU", "missing", "cannot find '%s' (install "
                   "qemu-system-x86 or set NUCLEUS_QEMU)", name);
        return;
    }
    nu__version_line(path, version, sizeof version);
    nu__report("vm QEMU", "ok", "%s (%s)", path, version[0] != '\0' ?
               version : "no version");
}

/* The default image of "vm" and "firecracker" pods, as nucleus vm image
 * build writes it, checked against the SHA-256 values of its image.json
 * as a boot checks it.  The state directory is resolved, not created. */
static void nu__probe_vm_image(void)
{
    char home[PATH_MAX], dir[PATH_MAX + 16];
    nu_err_t err = { 0 };

    if (nu_home_resolve(NULL, home, sizeof home, &err) < 0) {
        nu__report("vm image", "missing", "%s", err.msg);
        return;
    }
    snprintf(dir, sizeof dir, "%s/vm/image", home);
    if (nu__vm_image_verify(dir, &err) < 0) {
        /* An image that exists but does not match its manifest is
         * damaged, not missing. */
        nu__report("vm image", access(dir, F_OK) == 0 ? "damaged" : "missing",
                   "%s", err.msg);
        return;
    }
    nu__report("vm image", "ok", "%s (" NU_VM_KERNEL_FILE ", "
               NU_VM_INITRAMFS_FILE " match " NU_VM_MANIFEST_FILE ")", dir);
}

/* Whether /dev/kvm opens.  Only a boot shows that KVM works (nested KVM
 * may open and still hang the guest), and a boot takes seconds, so the
 * first vm pod's probe boot decides. */
static void nu__probe_kvm(void)
{
    const char *accel = getenv("NUCLEUS_VM_ACCEL");
    int fd;

    if (accel != NULL && (strcmp(accel, "kvm") == 0 ||
                          strcmp(accel, "tcg") == 0)) {
        nu__report("vm KVM", strcmp(accel, "kvm") == 0 ? "ok" : "limited",
                   "NUCLEUS_VM_ACCEL=%s chooses the accelerator", accel);
        return;
    }
    fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        nu__report("vm KVM", "limited", "/dev/kvm: %s; vm pods use TCG "
                   "(emulation, slow)", strerror(errno));
        return;
    }
    close(fd);
    nu__report("vm KVM", "ok", "/dev/kvm opens; a probe boot at the first "
               "vm pod decides between KVM and TCG");
}

static void nu__probe_firecracker(void)
{
    char path[PATH_MAX];
    nu_err_t err = { 0 };

    if (nu__fc_find_binary(path, sizeof path, &err) < 0)
        nu__report("firecracker", "missing", "%s", err.msg);
    else
        nu__report("firecracker", "ok", "%s (not started; it uses the vm "
                   "image and /dev/kvm)", path);
}

int nu_cmd_doctor(int argc, char **argv)
{
    bool pod_ok;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
                     strcmp(argv[1], "-h") == 0)) {
        printf("usage: nucleus doctor\n\nReport which isolation mechanisms "
               "this host supports, and why the others are missing.\n");
        return NU_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "nucleus doctor: unexpected argument '%s'\n",
                argv[1]);
        return NU_EXIT_USAGE;
    }

    printf("nucleus %s on Linux, uid %u\n\nns tier (namespaces + seccomp + "
           "Landlock + limits):\n", NU_VERSION, (unsigned)geteuid());
    nu__probe_namespaces();
    nu__probe_seccomp();
    nu__probe_landlock();
    nu__probe_cgroups();
    nu__probe_rlimits();
    nu__probe_memfd();
    nu__probe_uplink();
    pod_ok = nu__probe_pod();

    printf("\noci tier (the ns tier's pod under an OCI runtime):\n");
    nu__probe_oci();
    printf("\nvm tier (a microVM per pod):\n");
    nu__probe_qemu();
    nu__probe_vm_image();
    nu__probe_kvm();
    nu__probe_firecracker();
    return pod_ok ? NU_EXIT_OK : NU_EXIT_FAIL;
}
