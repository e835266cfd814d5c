/*
 * agent.c - the microVM guest agent: PID 1 of a "vm" tier pod.
 *
 * The agent is a static program (libc, jansson and PCRE2 linked in) that
 * the initramfs built by `nucleus vm image build` runs as /init.  It
 * plays the part the pod init (core/podinit.c) plays in a namespace pod,
 * with the virtual machine as the isolation boundary:
 *   1. mounts /proc, /sys, /dev (devtmpfs), /tmp and /run;
 *   2. loads the kernel modules listed in /lib/modules/nucleus/order, in
 *      that order (the image builder resolves their dependencies);
 *   3. mounts the workspace: the host shares its workspace directory over
 *      virtio-9p with mount tag "workspace", mounted at /workspace; then
 *      applies the pod's file-size and process limits from the kernel
 *      command line and makes / read-only;
 *   4. credits 64 bytes of host entropy, read from the virtio-rng
 *      device, to the guest's pool with RNDADDENTROPY;
 *   5. opens the virtio serial port named "nucleus", prints
 *      NU__AGENT_READY_LINE on the console and reads the host's hello;
 *   6. replies with its own hello, then serves requests with
 *      nu__serve_loop (core/sandbox_serve.c, shared with the pod init)
 *      until the host closes the port, and powers the machine off.
 * Secrets (SVIDs, keys) arrive later as _put_run_file requests, never on
 * the kernel command line.  Any failure after the port is open is sent
 * as an error frame; any failure powers the machine off, which ends the
 * pod.  Progress and errors go to the console (ttyS0), which the host
 * keeps as the pod's console log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/proto.h"
#include "sandbox_internal.h"
#include "sandbox_serve.h"
#include "vsock.h"
#include "net.h"

#define NU__AGENT_PORT_NAME "nucleus"
#define NU__AGENT_MODULES "/lib/modules/nucleus/order"
#define NU__AGENT_TAG "workspace"
#define NU__AGENT_POOL_MARKER ".nucleus-pool"

/* Bytes of host entropy credited to the guest's pool before the agent
 * reports ready. */
#define NU__AGENT_SEED_BYTES 64

/* Maximum bytes of host entropy a _set_env request may carry. */
#define NU__AGENT_SEED_MAX 256

/* The console line the host driver waits for before its hello. */
#define NU__AGENT_READY_LINE "nucleus-agent: ready"

static char nu__agent_env_path[] = "PATH=/usr/local/bin:/usr/bin:/bin:"
                                   "/usr/sbin:/sbin";
static char nu__agent_env_home[] = "HOME=/workspace";
static char nu__agent_env_lang[] = "LANG=C.UTF-8";
static char nu__agent_env_term[] = "TERM=dumb";
static const char *const nu__agent_env[] = {
    nu__agent_env_path, nu__agent_env_home, nu__agent_env_lang,
    nu__agent_env_term, NULL
};

/* Print "nucleus-agent: MESSAGE: DETAIL" on the console. */
static void nu__agent_say(const char *message, const char *detail)
{
    fprintf(stderr, "nucleus-agent: %s%s%s\n", message,
            detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

static void __attribute__((noreturn)) nu__agent_poweroff(void)
{
    sync();
    reboot(RB_POWER_OFF);
    /* Without ACPI the power-off request may return; the host starts
     * QEMU with -no-reboot, so a reset ends the machine as well. */
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}

/* Step 1.  A mount that fails is reported and the agent goes on, because
 * the steps that need it fail later with a precise error. */
static void nu__agent_mounts(void)
{
    static const struct {
        const char *source, *target, *type, *data;
        unsigned long flags;
    } mounts[] = {
        { "proc", "/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
        { "sysfs", "/sys", "sysfs", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC },
        { "devtmpfs", "/dev", "devtmpfs", "mode=0755", MS_NOSUID },
        { "tmpfs", "/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV },
        { "tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV },
    };

    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        mkdir(mounts[i].target, 0755);
        if (mount(mounts[i].source, mounts[i].target, mounts[i].type,
                  mounts[i].flags, mounts[i].data) != 0 && errno != EBUSY)
            nu__agent_say("cannot mount", mounts[i].target);
    }
}

/* Step 2.  A module that is already loaded (built in, or loaded as a
 * dependency) gives EEXIST, which is fine. */
static int nu__agent_modules(void)
{
    char line[512];
    FILE *list = fopen(NU__AGENT_MODULES, "re");
    int failed = 0;

    if (list == NULL)
        return 0;  /* a kernel with everything built in */
    while (fgets(line, sizeof line, list) != NULL) {
        int fd;

        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0')
            continue;
        fd = open(line, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) != 0 &&
                       errno != EEXIST)) {
            nu__agent_say("cannot load module", line);
            failed = 1;
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(list);
    return failed ? -1 : 0;
}

/* Step 3. */
static int nu__agent_workspace(void)
{
    int vsock_rc;

    mkdir("/workspace", 0755);
    vsock_rc = nu__agent_vsock_workspace();
    if (vsock_rc != NU__AGENT_VSOCK_UNUSED)
        return vsock_rc;
    if (mount(NU__AGENT_TAG, "/workspace", "9p", MS_NOSUID | MS_NODEV,
              "trans=virtio,version=9p2000.L,msize=262144,cache=none") != 0) {
        nu__agent_say("cannot mount the workspace share", strerror(errno));
        return -1;
    }
    return 0;
}

/* Find /dev/vportNpM whose /sys/class/virtio-ports name is "nucleus". */
static int nu__agent_open_port(void)
{
    int vsock_fd = nu__agent_vsock_open();

    if (vsock_fd != NU__AGENT_VSOCK_UNUSED)
        return vsock_fd;

    DIR *dir = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    int fd = -1;

    if (dir == NULL)
        return -1;
    while (fd < 0 && (e = readdir(dir)) != NULL) {
        char path[300], name[64] = "";
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name",
                 e->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(name, sizeof name, f) != NULL)
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        if (strcmp(name, NU__AGENT_PORT_NAME) != 0)
            continue;
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    closedir(dir);
    return fd;
}

/* Credit len bytes of host entropy to the guest's pool with
 * RNDADDENTROPY, then reseed the CRNG with RNDRESEEDCRNG, so that random
 * numbers drawn afterwards depend on them.  Also the credit_entropy hook
 * of the _set_env request, which brings a pooled guest fresh entropy at
 * acquisition.  Returns 0, or -1 with errno set. */
static int nu__agent_credit(const uint8_t *data, size_t len)
{
    struct {
        struct rand_pool_info info;
        uint8_t buf[NU__AGENT_SEED_MAX];
    } req;
    int saved;
    int fd;
    int rc;

    if (len == 0 || len > NU__AGENT_SEED_MAX) {
        errno = EINVAL;
        return -1;
    }
    memset(&req, 0, sizeof req);
    memcpy(req.buf, data, len);
    req.info.entropy_count = (int)(len * 8);
    req.info.buf_size = (int)len;
    fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    rc = fd < 0 ? -1 : ioctl(fd, RNDADDENTROPY, &req.info);
    if (rc == 0)
        rc = ioctl(fd, RNDRESEEDCRNG);
    saved = errno;
    if (fd >= 0)
        close(fd);
    explicit_bzero(&req, sizeof req);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

/* Read entropy that the host's /dev/urandom feeds through virtio-rng and
 * credit it to the guest's pool, so that nothing in the guest draws
 * random numbers from a state that a VM image fixes. */
static int nu__agent_seed(void)
{
    uint8_t buf[NU__AGENT_SEED_BYTES];
    ssize_t got = 0;
    int fd;
    int rc = -1;

    fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (got < NU__AGENT_SEED_BYTES) {
        ssize_t n = read(fd, buf + got, NU__AGENT_SEED_BYTES - got);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            got += n;
    }
    close(fd);
    if (got == NU__AGENT_SEED_BYTES)
        rc = nu__agent_credit(buf, sizeof buf);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

/* Read the unsigned value of " NAME=" on the kernel command line into
 * *value.  Returns 1 when found, 0 when absent, -1 when it is invalid. */
static int nu__agent_cmdline_value(const char *cmdline, const char *name,
                                   unsigned long long *value)
{
    const char *at = cmdline;
    size_t len = strlen(name);
    char *end;

    while ((at = strstr(at, name)) != NULL) {
        if ((at == cmdline || at[-1] == ' ') && at[len] == '=')
            break;
        at += len;
    }
    if (at == NULL)
        return 0;
    errno = 0;
    *value = strtoull(at + len + 1, &end, 10);
    if (errno != 0 || end == at + len + 1 || (*end != ' ' && *end != '\n' &&
                                              *end != '\0'))
        return -1;
    return 1;
}

static int nu__agent_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Put the agent, and so every command it starts, into the cgroup
 * /sys/fs/cgroup/pod with pids.max = pids, as the ns tier's pod cgroup.
 * RLIMIT_NPROC would not do: the guest's commands run as root, which it
 * does not limit. */
static int nu__agent_pids(unsigned long long pids)
{
    char text[32];

    if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV |
              MS_NOEXEC, NULL) != 0 && errno != EBUSY) {
        nu__agent_say("cannot mount cgroup2 on /sys/fs/cgroup",
                      strerror(errno));
        return -1;
    }
    snprintf(text, sizeof text, "%llu", pids);
    if (nu__agent_write_file("/sys/fs/cgroup/cgroup.subtree_control",
                             "+pids") != 0 ||
        (mkdir("/sys/fs/cgroup/pod", 0755) != 0 && errno != EEXIST) ||
        nu__agent_write_file("/sys/fs/cgroup/pod/pids.max", text) != 0 ||
        nu__agent_write_file("/sys/fs/cgroup/pod/cgroup.procs", "0") != 0) {
        nu__agent_say("cannot set the process limit in /sys/fs/cgroup/pod",
                      strerror(errno));
        return -1;
    }
    return 0;
}

/* Apply the pod's file-size limit (RLIMIT_FSIZE, inherited by every
 * command) and process limit from nucleus.fsize and nucleus.pids on the
 * kernel command line, which the host always sets. */
static int nu__agent_limits(void)
{
    char cmdline[4096];
    unsigned long long fsize = 0, pids = 0;
    struct rlimit limit;
    ssize_t n;
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

    n = fd >= 0 ? read(fd, cmdline, sizeof cmdline - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0) {
        nu__agent_say("cannot read /proc/cmdline", strerror(errno));
        return -1;
    }
    cmdline[n] = '\0';
    if (nu__agent_cmdline_value(cmdline, "nucleus.fsize", &fsize) != 1 ||
        nu__agent_cmdline_value(cmdline, "nucleus.pids", &pids) != 1 ||
        fsize == 0 || pids == 0) {
        nu__agent_say("cannot apply the pod's limits", "nucleus.fsize or "
                      "nucleus.pids is missing or invalid on the kernel "
                      "command line");
        return -1;
    }
    limit.rlim_cur = limit.rlim_max = (rlim_t)fsize;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) {
        nu__agent_say("cannot set RLIMIT_FSIZE", strerror(errno));
        return -1;
    }
    return nu__agent_pids(pids);
}

/* Make the guest's root file system read-only, as in the other tiers.
 * /tmp, /run, /dev and /workspace are their own mounts and stay
 * writable. */
static int nu__agent_seal_root(void)
{
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
        nu__agent_say("cannot make / read-only", strerror(errno));
        return -1;
    }
    return 0;
}

/* Leave the guest's commands no capability, as in the other tiers.  The
 * agent keeps its own (it credits host entropy later), but every command
 * it executes gets an empty set: the bounding set is emptied, and exec
 * computes a root program's capabilities from it.  Without capabilities a
 * command cannot raise its limits, remount, unmount /workspace or chown
 * host files over 9p.  /sys (with the cgroup file system) is made
 * read-only first, so root cannot leave the pod cgroup or raise
 * pids.max through plain file writes. */
/* Take the consoles away from the guest's commands: a command that
 * writes to /dev/console, a serial port or /dev/kmsg, or triggers SysRq
 * output, makes QEMU grow console.log in the host's run directory
 * without bound.  The agent keeps its own descriptors of the console.
 * Commands cannot recreate the nodes: they have no CAP_MKNOD. */
static int nu__agent_hide_consoles(void)
{
    DIR *dev = opendir("/dev");
    struct dirent *e;
    int rc = 0;

    while (dev != NULL && (e = readdir(dev)) != NULL) {
        const char *n = e->d_name;

        if (strcmp(n, "console") != 0 && strcmp(n, "kmsg") != 0 &&
            strncmp(n, "ttyS", 4) != 0 && strncmp(n, "hvc", 3) != 0 &&
            strncmp(n, "vcs", 3) != 0 &&
            !(strncmp(n, "tty", 3) == 0 && n[3] >= '0' && n[3] <= '9'))
            continue;
        if (unlinkat(dirfd(dev), n, 0) != 0) {
            nu__agent_say("cannot remove console node", n);
            rc = -1;
        }
    }
    if (dev != NULL)
        closedir(dev);
    if (mount("/dev/null", "/proc/sysrq-trigger", NULL, MS_BIND, NULL) != 0 ||
        mount(NULL, "/proc/sysrq-trigger", NULL, MS_REMOUNT | MS_BIND |
              MS_RDONLY, NULL) != 0) {
        nu__agent_say("cannot cover /proc/sysrq-trigger", strerror(errno));
        rc = -1;
    }
    return dev != NULL ? rc : -1;
}

static int nu__agent_drop_caps(void)
{
    static const char *const ro[] = { "/sys/fs/cgroup", "/sys" };

    if (nu__agent_hide_consoles() != 0)
        return -1;

    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++)
        if (mount(NULL, ro[i], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
                  MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
            nu__agent_say("cannot remount read-only", ro[i]);
            return -1;
        }
    for (int cap = 0; ; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
            continue;
        if (errno == EINVAL && cap > 0)
            break;  /* past the last capability of this kernel */
        nu__agent_say("cannot drop a capability from the bounding set",
                      strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct nu__agent {
    int fd;                     /* the virtio serial port */
    nu__serve_t serve;
} nu__agent_t;

static void nu__agent_error(int fd, const char *message)
{
    json_t *json = json_pack("{s:s}", "message", message);

    nu__agent_say(message, NULL);
    if (json != NULL)
        nu_proto_write(fd, 1, NU_FRAME_ERROR, json, NULL, 0, NULL);
    json_decref(json);
}

/* Steps 5 and 6: read the host's hello and send the reply. */
static int nu__agent_start(nu__agent_t *ag, nu_err_t *err)
{
    nu_frame_t hello;
    json_t *config;
    int rc;

    nu__serve_init(&ag->serve, "agent", ag->fd);
    ag->serve.accept_set_env = true;
    ag->serve.hangup_ends = true;
    ag->serve.report_error = nu__agent_error;
    ag->serve.credit_entropy = nu__agent_credit;
    rc = nu__serve_hello(&ag->serve, -1, &hello, err);
    if (rc < 0)
        return rc;

    config = json_object_get(hello.json, "config");
    if (json_is_true(json_object_get(config, "require_landlock"))) {
        rc = nu_err_set(err, NU_ENOTSUP, "agent: cannot start: the guest "
                        "applies no Landlock because the VM is the "
                        "boundary; drop NU_SANDBOX_REQUIRE_LANDLOCK for vm "
                        "pods");
        goto out;
    }
    /* A guest of the host's warm pool shares an empty directory; on
     * acquisition the host binds the workspace onto its "ws". */
    if (access("/workspace/" NU__AGENT_POOL_MARKER, F_OK) == 0 &&
        mount("/workspace/ws", "/workspace", NULL, MS_BIND, NULL) != 0) {
        rc = nu_err_errno(err, errno, "agent: cannot start: cannot mount "
                          "the pooled workspace");
        goto out;
    }
    rc = nu__serve_executor(&ag->serve, config, nu__agent_env, err);
    if (rc < 0)
        goto out;

    /* The VM is the boundary: no Landlock inside, so landlock_abi is 0. */
    rc = nu__serve_ready(&ag->serve, json_pack("{s:i,s:s}", "landlock_abi",
                                               0, "isolation", "vm"), err);

out:
    nu_frame_free(&hello);
    return rc;
}

/* Serve requests (sandbox_serve.c, shared with the pod init, plus
 * _set_env) until the host closes the port, then release the executor
 * and the environment. */
static void nu__agent_serve(nu__agent_t *ag)
{
    nu__serve_loop(&ag->serve);
    nu__serve_close(&ag->serve);
}

int main(void)
{
    nu__agent_t ag;
    nu_err_t err;
    int modules_rc;
    int seed_rc;
    int workspace_rc;
    int limits_rc;

    memset(&ag, 0, sizeof ag);
    setenv("PATH", nu__agent_env_path + 5, 1);

    nu__agent_mounts();
    /* nu_sandbox_put_file writes SVIDs and bundles below /run/nucleus. */
    if (mkdir("/run/nucleus", 0755) != 0 && errno != EEXIST)
        nu__agent_say("cannot create /run/nucleus", strerror(errno));
    /* The namespace tier's default host name. */
    if (sethostname("nucleus", 7) != 0)
        nu__agent_say("cannot set the host name", strerror(errno));
    modules_rc = nu__agent_modules();
    if (nu__agent_net_setup() < 0)  /* virtio_net is loaded by now */
        nu__agent_poweroff();
    seed_rc = nu__agent_seed();
    workspace_rc = nu__agent_workspace();
    limits_rc = nu__agent_limits();
    if (limits_rc == 0)
        limits_rc = nu__agent_seal_root();
    if (limits_rc == 0)
        limits_rc = nu__agent_drop_caps();

    ag.fd = nu__agent_open_port();
    if (ag.fd < 0) {
        nu__agent_say("cannot open the virtio serial port",
                      NU__AGENT_PORT_NAME);
        nu__agent_poweroff();
    }
    fprintf(stderr, "%s\n", NU__AGENT_READY_LINE);
    if (modules_rc < 0 || seed_rc < 0 || workspace_rc < 0 ||
        limits_rc < 0) {
        nu__agent_error(ag.fd, modules_rc < 0
                        ? "agent: cannot start: a kernel module failed to "
                          "load (see the pod's console log)"
                        : seed_rc < 0
                        ? "agent: cannot start: cannot read host entropy "
                          "from /dev/hwrng (virtio-rng)"
                        : workspace_rc < 0
                        ? "agent: cannot start: cannot mount the workspace "
                          "share (see the pod's console log)"
                        : "agent: cannot start: cannot apply the pod's "
                          "limits, make / read-only or drop capabilities "
                          "(see the pod's console log)");
        nu__agent_poweroff();
    }

    if (nu__agent_start(&ag, &err) < 0) {
        nu__agent_error(ag.fd, err.msg);
        nu__agent_poweroff();
    }
    nu__agent_serve(&ag);
    nu__agent_poweroff();
}
