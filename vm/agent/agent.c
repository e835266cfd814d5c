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
 *      virtio-9p with mount tag "workspace", mounted at /workspace;
 *   4. credits 64 bytes of host entropy, read from the virtio-rng
 *      device, to the guest's pool with RNDADDENTROPY;
 *   5. opens the virtio serial port named "nucleus", prints
 *      NU__AGENT_READY_LINE on the console and reads the host's hello;
 *   6. replies with its own hello, then serves requests with the
 *      executor (executor.h) until the host closes the port, and powers
 *      the machine off.
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
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/proto.h"
#include "sandbox_internal.h"
#include "vsock.h"
#include "net.h"

#define NU__AGENT_PORT_NAME "nucleus"
#define NU__AGENT_MODULES "/lib/modules/nucleus/order"
#define NU__AGENT_TAG "workspace"
#define NU__AGENT_POOL_MARKER ".nucleus-pool"

/* Bytes of host entropy credited to the guest's pool before the agent
 * reports ready. */
#define NU__AGENT_SEED_BYTES 64

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

/* Read entropy that the host's /dev/urandom feeds through virtio-rng and
 * credit it to the guest's pool with RNDADDENTROPY, so that nothing in the
 * guest draws random numbers from a state that a VM image fixes. */
static int nu__agent_seed(void)
{
    struct {
        struct rand_pool_info info;
        uint8_t buf[NU__AGENT_SEED_BYTES];
    } req;
    ssize_t got = 0;
    int fd;
    int rc = -1;

    memset(&req, 0, sizeof req);
    fd = open("/dev/hwrng", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (got < NU__AGENT_SEED_BYTES) {
        ssize_t n = read(fd, req.buf + got, NU__AGENT_SEED_BYTES - got);
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            got += n;
    }
    close(fd);
    if (got != NU__AGENT_SEED_BYTES)
        goto out;

    req.info.entropy_count = NU__AGENT_SEED_BYTES * 8;
    req.info.buf_size = NU__AGENT_SEED_BYTES;
    fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    rc = ioctl(fd, RNDADDENTROPY, &req.info) == 0 ? 0 : -1;
    close(fd);

out:
    explicit_bzero(&req, sizeof req);
    return rc;
}

/* The host-only request that replaces the commands' base environment
 * (nu_sandbox_opts_t.env, credentials included), sent after the hello. */
#define NU__AGENT_SET_ENV "_set_env"
#define NU__AGENT_MAX_ENV 256

typedef struct nu__agent {
    char **env;                 /* NULL-terminated, from _set_env */
    int fd;
    int version;
    uint32_t timeout_ms;
    size_t output_max;
    nu_executor_t executor;
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
    nu_frame_t hello = { 0 };
    nu_executor_config_t cfg;
    json_t *config;
    json_t *reply;
    json_t *value;
    int rc;

    rc = nu_proto_read(ag->fd, &hello, -1, err);
    if (rc < 0)
        return rc;
    if (hello.type != NU_FRAME_HELLO) {
        nu_frame_free(&hello);
        return nu_err_set(err, NU_EPROTO, "agent: cannot start: expected "
                          "a hello frame first");
    }

    rc = nu_proto_negotiate(NU_PROTO_VERSION_MIN, NU_PROTO_VERSION_MAX,
        (int)json_integer_value(json_object_get(hello.json, "min_version")),
        (int)json_integer_value(json_object_get(hello.json, "max_version")),
        err);
    if (rc < 0)
        goto out;
    ag->version = rc;

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
    nu_executor_config_init(&cfg);
    cfg.base_env = nu__agent_env;
    value = json_object_get(config, "timeout_ms");
    if (json_integer_value(value) > 0)
        cfg.default_timeout_ms = (uint32_t)json_integer_value(value);
    value = json_object_get(config, "output_max");
    if (json_integer_value(value) > 0)
        cfg.max_output_bytes = (size_t)json_integer_value(value);
    ag->timeout_ms = cfg.default_timeout_ms;
    ag->output_max = cfg.max_output_bytes;
    rc = nu_executor_init(&ag->executor, "/workspace", &cfg, err);
    if (rc < 0)
        goto out;

    /* The VM is the boundary: no Landlock inside, so landlock_abi is 0. */
    reply = json_pack("{s:i,s:i,s:i,s:s}", "version", ag->version, "pid",
                      (int)getpid(), "landlock_abi", 0, "isolation", "vm");
    if (reply == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "agent: out of memory");
        goto out;
    }
    rc = nu_proto_write(ag->fd, (uint8_t)ag->version, NU_FRAME_HELLO, reply,
                        NULL, 0, err);
    json_decref(reply);

out:
    nu_frame_free(&hello);
    return rc;
}

static void nu__agent_free_env(char **env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        explicit_bzero(env[i], strlen(env[i]));
        free(env[i]);
    }
    free(env);
}

/* Replace the base environment of later commands with the request's
 * "env" array of "NAME=value" strings. */
static json_t *nu__agent_set_env(nu__agent_t *ag, const json_t *request)
{
    const json_t *list = json_object_get(request, "env");
    size_t count = json_array_size(list);
    char **env;

    if (!json_is_array(list) || count > NU__AGENT_MAX_ENV)
        return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "invalid_request",
                         "error", "agent: cannot set environment: expected "
                         "an array of at most 256 strings");
    env = calloc(count + 1, sizeof *env);
    for (size_t i = 0; env != NULL && i < count; i++) {
        const char *item = json_string_value(json_array_get(list, i));

        if (item == NULL || strchr(item, '=') == NULL || item[0] == '=') {
            nu__agent_free_env(env);
            return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind",
                             "invalid_request", "error", "agent: cannot set "
                             "environment: every entry must be NAME=value");
        }
        env[i] = strdup(item);
        if (env[i] == NULL) {
            nu__agent_free_env(env);
            env = NULL;
        }
    }
    if (env == NULL)
        return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "internal",
                         "error", "agent: out of memory");

    nu__agent_free_env(ag->env);
    ag->env = env;
    ag->executor.cfg.base_env = (const char *const *)env;
    return json_pack("{s:b,s:i}", "ok", 1, "count", (int)count);
}

/* The same request handling as the pod init's, plus _set_env. */
static json_t *nu__agent_handle(nu__agent_t *ag, const nu_frame_t *frame,
                                nu_blob_t *blob)
{
    const json_t *request = frame->json;
    const char *tool = json_string_value(json_object_get(request, "tool"));
    json_t *result = NULL;
    nu_err_t err;

    if (tool != NULL && strcmp(tool, "ping") == 0)
        return json_pack("{s:b,s:i}", "ok", 1, "pid", (int)getpid());
    if (tool != NULL && strcmp(tool, NU__AGENT_SET_ENV) == 0)
        return nu__agent_set_env(ag, request);
    if (tool != NULL && strcmp(tool, NU__PUT_RUN_FILE) == 0)
        result = json_object_get(request, "link") != NULL
               ? nu__put_run_link(request)
               : nu__put_run_file(request, frame->blob, frame->blob_len);
    if (tool != NULL && strcmp(tool, "run") == 0 &&
        json_is_true(json_object_get(request, "stream")))
        result = nu__stream_run(&ag->executor, ag->fd, ag->version, request,
                                ag->output_max, ag->timeout_ms);
    if (result != NULL)
        return result;

    nu_exec_tool(&ag->executor, request, &result,
                 json_is_true(json_object_get(request, "want_blob")) ? blob :
                 NULL, &err);
    if (result == NULL)
        result = json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "internal",
                           "error", "agent: out of memory");
    return result;
}

/* Serve requests until the host closes the port.  Returns 0 then, 1
 * after a protocol error. */
static int nu__agent_serve(nu__agent_t *ag)
{
    for (;;) {
        struct pollfd p = { .fd = ag->fd, .events = POLLIN };
        nu_frame_t frame = { 0 };
        nu_blob_t blob = { 0 };
        json_t *result;
        nu_err_t err;
        int rc;

        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        rc = poll(&p, 1, 1000);
        if (rc == 0 || (rc < 0 && errno == EINTR))
            continue;
        /* A virtio serial port reports POLLHUP while the host side is
         * disconnected; the host never reconnects, so that is the end. */
        if (rc > 0 && (p.revents & POLLIN) == 0)
            return 0;

        rc = nu_proto_read(ag->fd, &frame, 30000, &err);
        if (rc == NU_EIO)
            return 0;
        if (rc < 0) {
            nu__agent_error(ag->fd, err.msg);
            return 1;
        }
        if (frame.type != NU_FRAME_REQUEST ||
            !json_is_integer(json_object_get(frame.json, "id"))) {
            nu__agent_error(ag->fd, "agent: cannot serve: expected a "
                            "request frame with an integer id");
            nu_frame_free(&frame);
            return 1;
        }

        result = nu__agent_handle(ag, &frame, &blob);
        json_object_set(result, "id", json_object_get(frame.json, "id"));
        rc = nu_proto_write(ag->fd, (uint8_t)ag->version, NU_FRAME_RESPONSE,
                            result, blob.data, blob.len, &err);
        json_decref(result);
        nu_blob_free(&blob);
        nu_frame_free(&frame);
        if (rc < 0)
            return 1;
    }
}

int main(void)
{
    nu__agent_t ag;
    nu_err_t err;
    int modules_rc;
    int seed_rc;
    int workspace_rc;

    memset(&ag, 0, sizeof ag);
    ag.executor.root_fd = -1;
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

    ag.fd = nu__agent_open_port();
    if (ag.fd < 0) {
        nu__agent_say("cannot open the virtio serial port",
                      NU__AGENT_PORT_NAME);
        nu__agent_poweroff();
    }
    fprintf(stderr, "%s\n", NU__AGENT_READY_LINE);
    if (modules_rc < 0 || seed_rc < 0 || workspace_rc < 0) {
        nu__agent_error(ag.fd, modules_rc < 0
                        ? "agent: cannot start: a kernel module failed to "
                          "load (see the pod's console log)"
                        : seed_rc < 0
                        ? "agent: cannot start: cannot read host entropy "
                          "from /dev/hwrng (virtio-rng)"
                        : "agent: cannot start: cannot mount the workspace "
                          "share (see the pod's console log)");
        nu__agent_poweroff();
    }

    if (nu__agent_start(&ag, &err) < 0) {
        nu__agent_error(ag.fd, err.msg);
        nu__agent_poweroff();
    }
    nu__agent_serve(&ag);
    nu_executor_close(&ag.executor);
    nu__agent_free_env(ag.env);
    nu__agent_poweroff();
}
