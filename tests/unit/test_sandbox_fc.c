/*
 * test_sandbox_fc.c - the Firecracker driver against recorded API
 * fixtures, a fake vsock socket and a fake Firecracker.
 *
 * Firecracker cannot be installed on the development host.  A server
 * thread plays its API: it listens on a unix socket in /tmp and replies
 * to each request with the next exchange of a fixture in
 * tests/fixtures/firecracker (written from Firecracker's API
 * description), recording what the driver sent.  The tests compare the
 * recorded method, path and body of each request with the fixture.
 *
 * The last two tests start whole pods through nu_sandbox_create with
 * this program as the "firecracker" binary, and then also as the
 * "jailer": run under those names it serves the API, then plays the
 * guest agent behind the vsock socket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "nucleus/proto.h"
#include "nucleus/sandbox.h"
#include "sandbox_fc_internal.h"

/* --- HTTP on a unix socket -------------------------------------------- */

typedef struct http_request {
    char method[16];
    char path[256];
    char body[8192];
} http_request_t;

static int listen_unix(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(fd, 8) != 0)
        return -1;
    return fd;
}

/* Read one request: headers up to the blank line, then Content-Length
 * bytes of body. */
static int read_http_request(int fd, http_request_t *req)
{
    char buf[16384];
    size_t len = 0;
    char *end = NULL;
    char *cl;
    size_t body_len = 0;
    size_t have;

    memset(req, 0, sizeof *req);
    while (end == NULL) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (sscanf(buf, "%15s %255s", req->method, req->path) != 2)
        return -1;
    cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl != NULL && cl < end)
        body_len = strtoul(cl + 17, NULL, 10);
    if (body_len >= sizeof req->body)
        return -1;
    have = len - (size_t)(end + 4 - buf);
    memcpy(req->body, end + 4, have);
    while (have < body_len) {
        ssize_t n = read(fd, req->body + have, body_len - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
    req->body[body_len] = '\0';
    return 0;
}

static void write_http_response(int fd, int status, const char *body)
{
    char head[256];
    int n;

    if (body == NULL || body[0] == '\0')
        n = snprintf(head, sizeof head, "HTTP/1.1 %d Status\r\nConnection: "
                     "close\r\n\r\n", status);
    else
        n = snprintf(head, sizeof head, "HTTP/1.1 %d Status\r\nContent-Type:"
                     " application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, strlen(body));
    if (write(fd, head, (size_t)n) != n)
        return;
    if (body != NULL && write(fd, body, strlen(body)) < 0)
        return;
}

/* --- the fixture server ----------------------------------------------- */

typedef struct fixture_server {
    char dir[64];
    char socket_path[NU__FC_SOCKET_MAX];
    json_t *fixture;
    json_t *exchanges;
    json_t *received;          /* [{"method", "path", "body"}] */
    int listener;
    int stop[2];
    pthread_t thread;
} fixture_server_t;

static json_t *load_fixture(const char *name)
{
    const char *src = getenv("NU_SOURCE_DIR");
    char path[PATH_MAX];
    json_error_t error;
    json_t *fixture;

    if (src == NULL)
        fail_msg("NU_SOURCE_DIR is not set (run the test through ctest)");
    snprintf(path, sizeof path, "%s/tests/fixtures/firecracker/%s", src,
             name);
    fixture = json_load_file(path, 0, &error);
    if (fixture == NULL)
        fail_msg("cannot load fixture %s: %s (line %d)", path, error.text,
                 error.line);
    return fixture;
}

/* Answer the i-th exchange's recorded response. */
static void answer(fixture_server_t *server, int fd, size_t i)
{
    json_t *response = json_object_get(json_array_get(server->exchanges, i),
                                       "response");
    json_t *body = json_object_get(response, "body");
    const char *raw = json_string_value(json_object_get(response,
                                                        "raw_body"));
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    if (response == NULL)
        write_http_response(fd, 400, "{\"fault_message\":\"the fixture has "
                            "no more exchanges\"}");
    else
        write_http_response(fd, (int)json_integer_value(
                                json_object_get(response, "status")),
                            text != NULL ? text : raw);
    free(text);
}

static void *fixture_server_main(void *arg)
{
    fixture_server_t *server = arg;

    for (size_t i = 0;; i++) {
        struct pollfd p[2] = {
            { .fd = server->listener, .events = POLLIN },
            { .fd = server->stop[0], .events = POLLIN },
        };
        http_request_t req;
        json_t *body;
        int fd;

        if (poll(p, 2, 10000) <= 0 || (p[1].revents & POLLIN))
            break;
        fd = accept4(server->listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            break;
        if (read_http_request(fd, &req) == 0) {
            body = req.body[0] != '\0' ? json_loads(req.body, 0, NULL)
                                       : json_null();
            json_array_append_new(server->received,
                json_pack("{s:s,s:s,s:o}", "method", req.method, "path",
                          req.path, "body", body != NULL ? body :
                          json_string(req.body)));
            answer(server, fd, i);
        }
        close(fd);
    }
    return NULL;
}

static void fixture_server_start(fixture_server_t *server, const char *name)
{
    memset(server, 0, sizeof *server);
    snprintf(server->dir, sizeof server->dir, "/tmp/nu-fctest-XXXXXX");
    assert_non_null(mkdtemp(server->dir));
    snprintf(server->socket_path, sizeof server->socket_path, "%s/api.socket",
             server->dir);
    server->fixture = load_fixture(name);
    server->exchanges = json_object_get(server->fixture, "exchanges");
    assert_true(json_array_size(server->exchanges) > 0);
    server->received = json_array();
    server->listener = listen_unix(server->socket_path);
    assert_true(server->listener >= 0);
    assert_int_equal(pipe2(server->stop, O_CLOEXEC), 0);
    assert_int_equal(pthread_create(&server->thread, NULL,
                                    fixture_server_main, server), 0);
}

static void fixture_server_stop(fixture_server_t *server)
{
    assert_int_equal(write(server->stop[1], "x", 1), 1);
    pthread_join(server->thread, NULL);
    close(server->stop[0]);
    close(server->stop[1]);
    close(server->listener);
    unlink(server->socket_path);
    rmdir(server->dir);
    json_decref(server->received);
    json_decref(server->fixture);
}

/* Check that the first count requests match the fixture's exchanges one
 * by one: method, path and body as JSON. */
static void assert_requests_match(fixture_server_t *server, size_t count)
{
    assert_int_equal(json_array_size(server->received), count);
    for (size_t i = 0; i < count; i++) {
        json_t *want = json_object_get(json_array_get(server->exchanges, i),
                                       "request");
        json_t *got = json_array_get(server->received, i);
        char *want_body = json_dumps(json_object_get(want, "body"),
                                     JSON_COMPACT | JSON_SORT_KEYS);
        char *got_body = json_dumps(json_object_get(got, "body"),
                                    JSON_COMPACT | JSON_SORT_KEYS |
                                    JSON_ENCODE_ANY);

        assert_string_equal(json_string_value(json_object_get(got, "method")),
                            json_string_value(json_object_get(want,
                                                              "method")));
        assert_string_equal(json_string_value(json_object_get(got, "path")),
                            json_string_value(json_object_get(want, "path")));
        assert_non_null(want_body);
        assert_non_null(got_body);
        assert_string_equal(got_body, want_body);
        free(want_body);
        free(got_body);
    }
}

/* The configuration the fixtures boot.json and its faults describe: the
 * paths are those inside the jailer's chroot. */
static void jailed_config(nu__fc_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->vcpus = 2;
    cfg->mem_mib = 256;
    snprintf(cfg->kernel, sizeof cfg->kernel, "/vmlinux");
    snprintf(cfg->initrd, sizeof cfg->initrd, "/initramfs.cpio");
    snprintf(cfg->boot_args, sizeof cfg->boot_args, "%s", NU__FC_BOOT_ARGS);
    snprintf(cfg->workspace_image, sizeof cfg->workspace_image,
             "/workspace.ext4");
    cfg->workspace_read_only = true;
    snprintf(cfg->vsock_uds, sizeof cfg->vsock_uds, "/vsock.socket");
    cfg->guest_cid = NU__FC_GUEST_CID;
}

/* --- API sequence and errors ------------------------------------------ */

static void test_fc_configure_sequence(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "boot.json");
    jailed_config(&cfg);

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_OK);
    assert_requests_match(&server, 6);
    fixture_server_stop(&server);
}

static void test_fc_configure_with_network(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "boot_network.json");
    memset(&cfg, 0, sizeof cfg);
    cfg.vcpus = 1;
    cfg.mem_mib = 128;
    snprintf(cfg.kernel, sizeof cfg.kernel, "/srv/nucleus/image/vmlinux");
    snprintf(cfg.initrd, sizeof cfg.initrd,
             "/srv/nucleus/image/initramfs.cpio");
    snprintf(cfg.boot_args, sizeof cfg.boot_args,
             "console=ttyS0 nucleus.transport=vsock");
    snprintf(cfg.workspace_image, sizeof cfg.workspace_image,
             "/tmp/nucleus-fc.1.abc/workspace.ext4");
    cfg.workspace_read_only = true;
    snprintf(cfg.vsock_uds, sizeof cfg.vsock_uds,
             "/tmp/nucleus-fc.1.abc/vsock.socket");
    cfg.guest_cid = 3;
    snprintf(cfg.tap, sizeof cfg.tap, "nu-tap0");
    snprintf(cfg.guest_mac, sizeof cfg.guest_mac, "06:00:ac:10:00:02");

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_OK);
    assert_requests_match(&server, 7);
    fixture_server_stop(&server);
}

static void test_fc_fault_names_call(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "boot_source_fault.json");
    jailed_config(&cfg);

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_ESANDBOX);
    assert_string_equal(err.msg, "firecracker: cannot PUT /boot-source: "
                        "HTTP 400: The kernel file cannot be opened: No such "
                        "file or directory (os error 2)");
    /* Nothing is sent after the failed call. */
    assert_requests_match(&server, 2);
    fixture_server_stop(&server);
}

static void test_fc_instance_start_fault(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "instance_start_fault.json");
    jailed_config(&cfg);

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_ESANDBOX);
    assert_non_null(strstr(err.msg, "firecracker: cannot PUT /actions: "
                           "HTTP 400: Start microvm error"));
    assert_non_null(strstr(err.msg, "Invalid Elf magic number"));
    assert_requests_match(&server, 6);
    fixture_server_stop(&server);
}

static void test_fc_unexpected_status(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "unexpected_status.json");
    jailed_config(&cfg);

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_EPROTO);
    assert_string_equal(err.msg, "firecracker: cannot PUT /machine-config: "
                        "unexpected HTTP status 301 (expected 204)");
    assert_requests_match(&server, 1);
    fixture_server_stop(&server);
}

static void test_fc_server_error_raw_body(void **state)
{
    fixture_server_t server;
    nu__fc_config_t cfg;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "server_error.json");
    jailed_config(&cfg);

    assert_int_equal(nu__fc_configure(server.socket_path, &cfg, 2000, &err),
                     NU_ESANDBOX);
    assert_string_equal(err.msg, "firecracker: cannot PUT /machine-config: "
                        "HTTP 500: internal error");
    assert_requests_match(&server, 1);
    fixture_server_stop(&server);
}

static void test_fc_snapshot_calls(void **state)
{
    fixture_server_t server;
    nu_err_t err;

    (void)state;
    fixture_server_start(&server, "snapshot.json");

    assert_int_equal(nu__fc_snapshot_create(server.socket_path,
                                            "/snap/vm.state", "/snap/vm.mem",
                                            2000, &err), NU_OK);
    assert_int_equal(nu__fc_snapshot_load(server.socket_path,
                                          "/snap/vm.state", "/snap/vm.mem",
                                          "/run/b/vsock.socket", 2000, &err),
                     NU_OK);
    assert_requests_match(&server, 3);
    fixture_server_stop(&server);
}

static void test_fc_socket_never_appears(void **state)
{
    nu_err_t err;

    (void)state;
    assert_int_equal(nu__fc_api_wait("/tmp/nu-fctest-absent/api.socket", -1,
                                     100, &err), NU_ETIMEDOUT);
    assert_string_equal(err.msg, "firecracker: cannot connect to the API "
                        "socket /tmp/nu-fctest-absent/api.socket: it did not "
                        "appear within 100 ms");
}

static void test_fc_process_exits_before_socket(void **state)
{
    nu_err_t err;
    pid_t pid;
    int pidfd;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(1);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pidfd >= 0);

    assert_int_equal(nu__fc_api_wait("/tmp/nu-fctest-absent/api.socket",
                                     pidfd, 5000, &err), NU_ESANDBOX);
    assert_non_null(strstr(err.msg, "exited before its API socket"));
    close(pidfd);
    waitpid(pid, NULL, 0);
}

static void test_fc_call_without_server(void **state)
{
    nu_err_t err;

    (void)state;
    assert_int_equal(nu__fc_api_call("/tmp/nu-fctest-absent/api.socket",
                                     "PUT", "/entropy", NULL, 1000, &err),
                     NU_EIO);
    assert_non_null(strstr(err.msg, "firecracker: cannot PUT /entropy on "
                           "/tmp/nu-fctest-absent/api.socket"));
}

/* --- jailer ----------------------------------------------------------- */

static void test_fc_jailer_argv(void **state)
{
    nu__fc_jail_t jail = {
        .jailer = "/usr/bin/jailer",
        .firecracker = "/usr/bin/firecracker",
        .id = "nucleus-42-0",
        .uid = 1234,
        .gid = 5678,
        .chroot_base = "/tmp/nucleus-fc.42.x/jail",
        .api_socket = "/api.socket",
    };
    static const char *const want[] = {
        "/usr/bin/jailer", "--id", "nucleus-42-0", "--exec-file",
        "/usr/bin/firecracker", "--uid", "1234", "--gid", "5678",
        "--chroot-base-dir", "/tmp/nucleus-fc.42.x/jail", "--",
        "--api-sock", "/api.socket", NULL,
    };
    char *argv[NU__FC_JAILER_ARGS];
    char numbers[2][16];
    char root[PATH_MAX];
    nu_err_t err;
    size_t i;

    (void)state;
    assert_int_equal(nu__fc_jailer_argv(&jail, argv, numbers, &err), NU_OK);
    for (i = 0; want[i] != NULL; i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], want[i]);
    }
    assert_null(argv[i]);

    assert_int_equal(nu__fc_jail_root(&jail, root, sizeof root, &err), NU_OK);
    assert_string_equal(root, "/tmp/nucleus-fc.42.x/jail/firecracker/"
                        "nucleus-42-0/root");
}

static void test_fc_jailer_rejects_bad_id(void **state)
{
    char too_long[66];
    const char *const bad[] = { "", "a/b", "a b", "../x", "nucleus.1",
                                too_long };
    nu__fc_jail_t jail = {
        .jailer = "/usr/bin/jailer", .firecracker = "/usr/bin/firecracker",
        .chroot_base = "/srv/jailer", .api_socket = "/api.socket",
    };
    char *argv[NU__FC_JAILER_ARGS];
    char numbers[2][16];
    nu_err_t err;

    (void)state;
    memset(too_long, 'a', 65);
    too_long[65] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jail.id = bad[i];
        assert_int_equal(nu__fc_jailer_argv(&jail, argv, numbers, &err),
                         NU_EINVAL);
        assert_non_null(strstr(err.msg, "invalid jailer id"));
    }
}

/* --- vsock handshake -------------------------------------------------- */

typedef struct fake_uds {
    char dir[64];
    char path[NU__FC_SOCKET_MAX];
    int listener;
    int refusals;             /* connections closed before answering */
    const char *answer;       /* the line sent after the refusals */
    char request[64];         /* the last request line received */
    pthread_t thread;
} fake_uds_t;

static void *fake_uds_main(void *arg)
{
    fake_uds_t *uds = arg;

    for (int i = 0; i <= uds->refusals; i++) {
        struct pollfd p = { .fd = uds->listener, .events = POLLIN };
        ssize_t n;
        int fd;

        if (poll(&p, 1, 5000) <= 0)
            break;
        fd = accept4(uds->listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            break;
        n = read(fd, uds->request, sizeof uds->request - 1);
        uds->request[n > 0 ? n : 0] = '\0';
        if (i == uds->refusals && uds->answer != NULL) {
            /* The answer and the first stream byte in one write: the
             * driver must not consume the byte. */
            char out[80];
            int len = snprintf(out, sizeof out, "%sX", uds->answer);
            if (write(fd, out, (size_t)len) != len)
                break;
            /* Keep the stream open until the test has read the byte. */
            p.fd = fd;
            poll(&p, 1, 2000);
        }
        close(fd);
    }
    return NULL;
}

static void fake_uds_start(fake_uds_t *uds, int refusals, const char *answer)
{
    memset(uds, 0, sizeof *uds);
    snprintf(uds->dir, sizeof uds->dir, "/tmp/nu-fctest-XXXXXX");
    assert_non_null(mkdtemp(uds->dir));
    snprintf(uds->path, sizeof uds->path, "%s/vsock.socket", uds->dir);
    uds->listener = listen_unix(uds->path);
    assert_true(uds->listener >= 0);
    uds->refusals = refusals;
    uds->answer = answer;
    assert_int_equal(pthread_create(&uds->thread, NULL, fake_uds_main, uds),
                     0);
}

static void fake_uds_stop(fake_uds_t *uds)
{
    pthread_join(uds->thread, NULL);
    close(uds->listener);
    unlink(uds->path);
    rmdir(uds->dir);
}

static void test_fc_vsock_handshake(void **state)
{
    fake_uds_t uds;
    nu_err_t err;
    char byte = 0;
    int fd;

    (void)state;
    /* Two refusals: the guest agent is not listening yet. */
    fake_uds_start(&uds, 2, "OK 1073741824\n");

    fd = nu__fc_vsock_connect(uds.path, NU__FC_VSOCK_PORT, -1, 5000, &err);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, &byte, 1), 1);
    assert_int_equal(byte, 'X');
    close(fd);
    fake_uds_stop(&uds);
    assert_string_equal(uds.request, "CONNECT 1024\n");
}

static void test_fc_vsock_bad_answer(void **state)
{
    fake_uds_t uds;
    nu_err_t err;

    (void)state;
    fake_uds_start(&uds, 0, "FAILURE port 1024\n");

    assert_int_equal(nu__fc_vsock_connect(uds.path, NU__FC_VSOCK_PORT, -1,
                                          5000, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "expected \"OK <port>\", got \"FAILURE "
                           "port 1024\""));
    fake_uds_stop(&uds);
}

static void test_fc_vsock_timeout(void **state)
{
    nu_err_t err;

    (void)state;
    assert_int_equal(nu__fc_vsock_connect("/tmp/nu-fctest-absent/v.socket",
                                          NU__FC_VSOCK_PORT, -1, 100, &err),
                     NU_ETIMEDOUT);
    assert_string_equal(err.msg, "firecracker: the guest agent did not "
                        "accept a connection on vsock port 1024 within 100 "
                        "ms");
}

/* --- binaries and whole pods ------------------------------------------ */

static char image_dir[64];

/* An image directory with a stand-in ELF kernel and initramfs, which the
 * fake Firecracker never reads. */
static void make_image_dir(void)
{
    char path[128];
    FILE *f;

    snprintf(image_dir, sizeof image_dir, "/tmp/nu-fcimage-XXXXXX");
    assert_non_null(mkdtemp(image_dir));
    snprintf(path, sizeof path, "%s/vmlinuz", image_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("\177ELF stand-in kernel", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/initramfs.cpio", image_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("stand-in initramfs", f);
    fclose(f);
}

static void remove_image_dir(void)
{
    char path[128];

    snprintf(path, sizeof path, "%s/vmlinuz", image_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/initramfs.cpio", image_dir);
    unlink(path);
    rmdir(image_dir);
}

static void test_fc_missing_binary(void **state)
{
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    char isolation[96];
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err;

    (void)state;
    make_image_dir();
    unsetenv("NUCLEUS_FIRECRACKER");
    setenv("PATH", "/nonexistent-nucleus-bin", 1);
    nu_sandbox_opts_init(&opts);
    snprintf(isolation, sizeof isolation, "firecracker:%s", image_dir);
    opts.isolation = isolation;
    opts.workspace = "/tmp";

    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);
    assert_null(sb);
    assert_string_equal(err.msg, "sandbox: cannot start firecracker: not "
                        "found in PATH (install Firecracker or set "
                        "NUCLEUS_FIRECRACKER)");

    /* Without an image as well, the missing binary is still reported. */
    opts.isolation = "firecracker:/nonexistent-nucleus-image";
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);
    assert_non_null(strstr(err.msg, "not found in PATH"));
    opts.isolation = isolation;

    setenv("NUCLEUS_FIRECRACKER", "/nonexistent-nucleus-bin/fc", 1);
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);
    assert_non_null(strstr(err.msg, "NUCLEUS_FIRECRACKER=/nonexistent-"
                           "nucleus-bin/fc is not an executable file"));

    unsetenv("NUCLEUS_FIRECRACKER");
    if (old_path != NULL)
        setenv("PATH", old_path, 1);
    free(old_path);
    remove_image_dir();
}

static void test_fc_missing_image(void **state)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err;

    (void)state;
    /* Any executable passes the binary check, which comes first. */
    setenv("NUCLEUS_FIRECRACKER", "/bin/true", 1);
    nu_sandbox_opts_init(&opts);
    opts.isolation = "firecracker:/nonexistent-nucleus-image";
    opts.workspace = "/tmp";

    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);
    assert_non_null(strstr(err.msg, "firecracker: cannot find the guest "
                           "image /nonexistent-nucleus-image/initramfs.cpio"));
    unsetenv("NUCLEUS_FIRECRACKER");
}


/* The driver's run base (sandbox_fc.c), created as the driver would. */
static void fc_run_base(char *out, size_t size)
{
    if (geteuid() == 0) {
        mkdir("/run/nucleus", 0755);
        snprintf(out, size, "/run/nucleus/fc");
    } else {
        snprintf(out, size, "/tmp/nucleus-fc-%ld", (long)geteuid());
    }
    mkdir(out, 0700);
}

static void test_fc_sweeps_dead_owner_dirs(void **state)
{
    char stale[64], nested[128], isolation[96], base[40];
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err;
    pid_t dead;
    FILE *f;

    (void)state;
    dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    fc_run_base(base, sizeof base);
    snprintf(stale, sizeof stale, "%s/%ld.XXXXXX", base, (long)dead);
    assert_non_null(mkdtemp(stale));
    snprintf(nested, sizeof nested, "%s/jail", stale);
    assert_int_equal(mkdir(nested, 0755), 0);
    snprintf(nested, sizeof nested, "%s/jail/vsock.socket", stale);
    f = fopen(nested, "w");
    assert_non_null(f);
    fclose(f);

    make_image_dir();
    setenv("NUCLEUS_FIRECRACKER", "/nonexistent-nucleus-bin/fc", 1);
    nu_sandbox_opts_init(&opts);
    snprintf(isolation, sizeof isolation, "firecracker:%s", image_dir);
    opts.isolation = isolation;
    opts.workspace = "/tmp";
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);

    /* The dead owner's directory went, with what was inside it. */
    assert_int_equal(access(stale, F_OK), -1);
    unsetenv("NUCLEUS_FIRECRACKER");
    remove_image_dir();
}

/* --- a fake Firecracker ------------------------------------------------
 *
 * Run as "firecracker --api-sock PATH --id ID", this program returns
 * 204 for every API call until InstanceStart, writing the calls to
 * $NU_FC_FAKE_LOG.  It then plays the guest agent behind the vsock
 * socket: the first connection is closed unanswered (the agent is not
 * listening yet), the second gets "OK", the hello and a response
 * {"ok": true} to every request until the host closes the stream. */

/* The fake jailer's chroot: the fake Firecracker prefixes the paths of
 * API bodies with it ("" without a jailer). */
static char fake_root[PATH_MAX];

/* Whether the file starts as an ext4 image: magic 0xEF53 at byte 1080. */
static bool is_ext4(const char *path)
{
    unsigned char magic[2] = { 0 };
    char host[PATH_MAX * 2];
    int fd;

    snprintf(host, sizeof host, "%s%s", fake_root, path);
    fd = open(host, O_RDONLY | O_CLOEXEC);
    bool ok;

    if (fd < 0)
        return false;
    ok = pread(fd, magic, 2, 1080) == 2 && magic[0] == 0x53 &&
         magic[1] == 0xEF;
    close(fd);
    return ok;
}

/* Serve the API until InstanceStart and store the vsock uds_path in
 * uds. */
static int fake_api(const char *api, json_t *calls, char *uds, size_t size)
{
    int listener = listen_unix(api);
    bool started = false;

    if (listener < 0)
        return -1;
    while (!started) {
        http_request_t req;
        json_t *body;
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            return -1;
        /* The driver's readiness probe connects and closes at once. */
        if (read_http_request(fd, &req) != 0) {
            close(fd);
            continue;
        }
        body = json_loads(req.body, 0, NULL);
        if (strcmp(req.path, "/vsock") == 0 &&
            (size_t)snprintf(uds, size, "%s%s", fake_root,
                             json_string_value(json_object_get(
                                 body, "uds_path"))) >= size)
            uds[0] = '\0';
        if (strcmp(req.path, "/drives/workspace") == 0)
            json_object_set_new(body, "image_is_ext4", json_boolean(is_ext4(
                json_string_value(json_object_get(body, "path_on_host")))));
        started = strcmp(req.path, "/actions") == 0;
        json_array_append_new(calls, json_pack("{s:s,s:s,s:o*}", "method",
                                               req.method, "path", req.path,
                                               "body", body));
        write_http_response(fd, 204, NULL);
        close(fd);
    }
    close(listener);
    return 0;
}

/* Play the guest agent on the host end of the vsock stream. */
static int fake_guest(int fd)
{
    nu_frame_t frame = { 0 };
    json_t *reply;
    nu_err_t err;

    if (nu_proto_read(fd, &frame, 5000, &err) < 0 ||
        frame.type != NU_FRAME_HELLO)
        return 1;
    nu_frame_free(&frame);
    reply = json_pack("{s:i,s:i,s:i,s:s}", "version", NU_PROTO_VERSION_MAX,
                      "pid", (int)getpid(), "landlock_abi", 0, "isolation",
                      "vm");
    nu_proto_write(fd, NU_PROTO_VERSION_MAX, NU_FRAME_HELLO, reply, NULL, 0,
                   &err);
    json_decref(reply);
    while (nu_proto_read(fd, &frame, 30000, &err) == NU_OK) {
        reply = json_pack("{s:b,s:O}", "ok", 1, "id",
                          json_object_get(frame.json, "id"));
        nu_proto_write(fd, NU_PROTO_VERSION_MAX, NU_FRAME_RESPONSE, reply,
                       NULL, 0, &err);
        json_decref(reply);
        nu_frame_free(&frame);
    }
    return 0;
}

static int fake_firecracker_run(const char *api)
{
    const char *log = getenv("NU_FC_FAKE_LOG");
    json_t *calls = json_array();
    char uds[NU__FC_SOCKET_MAX] = "";
    char line[64];
    int listener;

    if (api == NULL || log == NULL || fake_api(api, calls, uds,
                                               sizeof uds) < 0)
        return 2;
    json_dump_file(calls, log, JSON_INDENT(2));
    json_decref(calls);

    listener = listen_unix(uds);
    if (listener < 0)
        return 3;
    for (int attempt = 0;; attempt++) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        ssize_t n;

        if (fd < 0)
            return 4;
        n = read(fd, line, sizeof line - 1);
        line[n > 0 ? n : 0] = '\0';
        if (attempt == 0 || strcmp(line, "CONNECT 1024\n") != 0) {
            close(fd);
            continue;
        }
        if (write(fd, "OK 1073741824\n", 14) != 14)
            return 5;
        close(listener);
        return fake_guest(fd);
    }
}

static int fake_firecracker_main(int argc, char **argv)
{
    const char *api = NULL;

    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--api-sock") == 0)
            api = argv[i + 1];
    return fake_firecracker_run(api);
}

/* Run as "jailer ...", record the arguments and the owners of the files
 * in the chroot to $NU_FC_FAKE_JAIL_LOG, then play Firecracker with its
 * paths inside the chroot (no real chroot: the test checks paths). */
static int fake_jailer_main(int argc, char **argv)
{
    static const char *const files[] = {
        "vmlinux", "initramfs.cpio", "workspace.ext4", NULL,
    };
    const char *log = getenv("NU_FC_FAKE_JAIL_LOG");
    const char *id = NULL, *exec_file = NULL, *base = NULL, *api = NULL;
    json_t *record = json_pack("{s:[],s:{}}", "argv", "owners");
    char api_host[PATH_MAX * 2];

    for (int i = 0; i < argc; i++) {
        json_array_append_new(json_object_get(record, "argv"),
                              json_string(argv[i]));
        if (i + 1 < argc && strcmp(argv[i], "--id") == 0)
            id = argv[i + 1];
        if (i + 1 < argc && strcmp(argv[i], "--exec-file") == 0)
            exec_file = argv[i + 1];
        if (i + 1 < argc && strcmp(argv[i], "--chroot-base-dir") == 0)
            base = argv[i + 1];
        if (i + 1 < argc && strcmp(argv[i], "--api-sock") == 0)
            api = argv[i + 1];
    }
    if (log == NULL || id == NULL || exec_file == NULL || base == NULL ||
        api == NULL)
        return 2;
    snprintf(fake_root, sizeof fake_root, "%s/%s/%s/root", base,
             strrchr(exec_file, '/') != NULL ? strrchr(exec_file, '/') + 1 :
             exec_file, id);
    for (size_t i = 0; files[i] != NULL; i++) {
        char path[PATH_MAX * 2];
        struct stat st;

        snprintf(path, sizeof path, "%s/%s", fake_root, files[i]);
        if (stat(path, &st) == 0)
            json_object_set_new(json_object_get(record, "owners"), files[i],
                                json_pack("[i,i]", (int)st.st_uid,
                                          (int)st.st_gid));
    }
    json_dump_file(record, log, 0);
    json_decref(record);
    snprintf(api_host, sizeof api_host, "%s%s", fake_root, api);
    return fake_firecracker_run(api_host);
}

static void test_fc_pod_with_fake_firecracker(void **state)
{
    char bin_dir[64], fake[128], log[128], self[PATH_MAX], work[64];
    char isolation[96], file[128], kernel[128];
    nu_sandbox_opts_t opts;
    nu_frame_t response = { 0 };
    nu_sandbox_t *sb = NULL;
    json_t *calls, *call, *body;
    json_t *request;
    nu_err_t err;
    ssize_t n;
    pid_t pid;
    FILE *f;

    (void)state;
    make_image_dir();
    snprintf(bin_dir, sizeof bin_dir, "/tmp/nu-fcbin-XXXXXX");
    assert_non_null(mkdtemp(bin_dir));
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(fake, sizeof fake, "%s/firecracker", bin_dir);
    assert_int_equal(symlink(self, fake), 0);
    snprintf(log, sizeof log, "%s/calls.json", bin_dir);
    setenv("NUCLEUS_FIRECRACKER", fake, 1);
    setenv("NUCLEUS_JAILER", "/nonexistent-nucleus-bin/jailer", 1);
    setenv("NU_FC_FAKE_LOG", log, 1);
    unsetenv("NUCLEUS_FIRECRACKER_TAP");

    snprintf(work, sizeof work, "/tmp/nu-fcwork-XXXXXX");
    assert_non_null(mkdtemp(work));
    snprintf(file, sizeof file, "%s/readme", work);
    f = fopen(file, "w");
    assert_non_null(f);
    fputs("copied into the image\n", f);
    fclose(f);

    nu_sandbox_opts_init(&opts);
    snprintf(isolation, sizeof isolation, "firecracker:%s", image_dir);
    opts.isolation = isolation;
    opts.workspace = work;
    opts.limits.memory_bytes = 256ULL << 20;
    opts.limits.cpu_millis = 1500;

    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
        fail_msg("nu_sandbox_create: %s", err.msg);
    request = json_pack("{s:s}", "tool", "ping");
    assert_int_equal(nu_sandbox_call(sb, request, NULL, 0, NULL, NULL,
                                     &response, &err), NU_OK);
    assert_true(json_is_true(json_object_get(response.json, "ok")));
    json_decref(request);
    nu_frame_free(&response);
    pid = nu_sandbox_pid(sb);
    assert_true(pid > 0);
    nu_sandbox_close(sb);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);

    calls = json_load_file(log, 0, NULL);
    assert_non_null(calls);
    assert_int_equal(json_array_size(calls), 6);
    {
        static const char *const paths[] = {
            "/machine-config", "/boot-source", "/drives/workspace",
            "/vsock", "/entropy", "/actions",
        };
        for (size_t i = 0; i < 6; i++)
            assert_string_equal(json_string_value(json_object_get(
                json_array_get(calls, i), "path")), paths[i]);
    }
    body = json_object_get(json_array_get(calls, 0), "body");
    assert_int_equal(json_integer_value(json_object_get(body, "vcpu_count")),
                     2);
    assert_int_equal(json_integer_value(json_object_get(body,
                                                        "mem_size_mib")),
                     256);
    body = json_object_get(json_array_get(calls, 1), "body");
    snprintf(kernel, sizeof kernel, "%s/vmlinuz", image_dir);
    assert_string_equal(json_string_value(json_object_get(body,
                        "kernel_image_path")), kernel);
    assert_string_equal(json_string_value(json_object_get(body,
                        "boot_args")), NU__FC_BOOT_ARGS);
    call = json_array_get(calls, 2);
    body = json_object_get(call, "body");
    assert_true(json_is_true(json_object_get(body, "is_read_only")));
    assert_true(json_is_true(json_object_get(body, "image_is_ext4")));
    /* The run directory with the image is gone after close. */
    assert_int_equal(access(json_string_value(json_object_get(body,
                            "path_on_host")), F_OK), -1);
    json_decref(calls);

    unlink(file);
    rmdir(work);
    unlink(log);
    unlink(fake);
    rmdir(bin_dir);
    unsetenv("NUCLEUS_FIRECRACKER");
    unsetenv("NUCLEUS_JAILER");
    remove_image_dir();
}

static void test_fc_pod_through_fake_jailer(void **state)
{
    char bin_dir[64], fake_fc[128], fake_jailer[128], log[128], jail_log[128];
    char self[PATH_MAX], work[64], isolation[96], file[128];
    static const char *const files[] = {
        "vmlinux", "initramfs.cpio", "workspace.ext4",
    };
    nu_sandbox_opts_t opts;
    nu_frame_t response = { 0 };
    nu_sandbox_t *sb = NULL;
    json_t *calls, *record, *argv_json, *body, *request;
    const char *base;
    char run_base[40];
    nu_err_t err;
    ssize_t n;
    FILE *f;

    (void)state;
    if (geteuid() != 0) {
        printf("skip: the jailer path runs only as root\n");
        skip();
    }
    make_image_dir();
    snprintf(bin_dir, sizeof bin_dir, "/tmp/nu-fcbin-XXXXXX");
    assert_non_null(mkdtemp(bin_dir));
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(fake_fc, sizeof fake_fc, "%s/firecracker", bin_dir);
    snprintf(fake_jailer, sizeof fake_jailer, "%s/jailer", bin_dir);
    assert_int_equal(symlink(self, fake_fc), 0);
    assert_int_equal(symlink(self, fake_jailer), 0);
    snprintf(log, sizeof log, "%s/calls.json", bin_dir);
    snprintf(jail_log, sizeof jail_log, "%s/jail.json", bin_dir);
    setenv("NUCLEUS_FIRECRACKER", fake_fc, 1);
    setenv("NUCLEUS_JAILER", fake_jailer, 1);
    setenv("NUCLEUS_JAILER_UID", "12345", 1);
    setenv("NUCLEUS_JAILER_GID", "23456", 1);
    setenv("NU_FC_FAKE_LOG", log, 1);
    setenv("NU_FC_FAKE_JAIL_LOG", jail_log, 1);
    unsetenv("NUCLEUS_FIRECRACKER_TAP");

    snprintf(work, sizeof work, "/tmp/nu-fcwork-XXXXXX");
    assert_non_null(mkdtemp(work));
    snprintf(file, sizeof file, "%s/readme", work);
    f = fopen(file, "w");
    assert_non_null(f);
    fputs("copied into the image\n", f);
    fclose(f);

    nu_sandbox_opts_init(&opts);
    snprintf(isolation, sizeof isolation, "firecracker:%s", image_dir);
    opts.isolation = isolation;
    opts.workspace = work;
    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
        fail_msg("nu_sandbox_create: %s", err.msg);
    request = json_pack("{s:s}", "tool", "ping");
    assert_int_equal(nu_sandbox_call(sb, request, NULL, 0, NULL, NULL,
                                     &response, &err), NU_OK);
    assert_true(json_is_true(json_object_get(response.json, "ok")));
    json_decref(request);
    nu_frame_free(&response);
    nu_sandbox_close(sb);

    /* The jailer's command line. */
    record = json_load_file(jail_log, 0, NULL);
    assert_non_null(record);
    argv_json = json_object_get(record, "argv");
    assert_int_equal(json_array_size(argv_json), 14);
    assert_string_equal(json_string_value(json_array_get(argv_json, 0)),
                        fake_jailer);
    assert_string_equal(json_string_value(json_array_get(argv_json, 1)),
                        "--id");
    assert_int_equal(strncmp(json_string_value(json_array_get(argv_json, 2)),
                             "nucleus-", 8), 0);
    assert_string_equal(json_string_value(json_array_get(argv_json, 4)),
                        fake_fc);
    assert_string_equal(json_string_value(json_array_get(argv_json, 6)),
                        "12345");
    assert_string_equal(json_string_value(json_array_get(argv_json, 8)),
                        "23456");
    base = json_string_value(json_array_get(argv_json, 10));
    fc_run_base(run_base, sizeof run_base);
    assert_int_equal(strncmp(base, run_base, strlen(run_base)), 0);
    assert_string_equal(json_string_value(json_array_get(argv_json, 11)),
                        "--");
    assert_string_equal(json_string_value(json_array_get(argv_json, 13)),
                        "/api.socket");
    /* The files in the chroot belong to the jailer's user. */
    for (size_t i = 0; i < 3; i++) {
        json_t *owner = json_object_get(json_object_get(record, "owners"),
                                        files[i]);
        assert_non_null(owner);
        assert_int_equal(json_integer_value(json_array_get(owner, 0)),
                         12345);
        assert_int_equal(json_integer_value(json_array_get(owner, 1)),
                         23456);
    }
    /* The run directory, chroot included, is gone after close. */
    assert_int_equal(access(base, F_OK), -1);
    json_decref(record);

    /* API paths are those inside the chroot. */
    calls = json_load_file(log, 0, NULL);
    assert_non_null(calls);
    assert_int_equal(json_array_size(calls), 6);
    body = json_object_get(json_array_get(calls, 1), "body");
    assert_string_equal(json_string_value(json_object_get(body,
                        "kernel_image_path")), "/vmlinux");
    assert_string_equal(json_string_value(json_object_get(body,
                        "initrd_path")), "/initramfs.cpio");
    body = json_object_get(json_array_get(calls, 2), "body");
    assert_string_equal(json_string_value(json_object_get(body,
                        "path_on_host")), "/workspace.ext4");
    assert_true(json_is_true(json_object_get(body, "image_is_ext4")));
    body = json_object_get(json_array_get(calls, 3), "body");
    assert_string_equal(json_string_value(json_object_get(body,
                        "uds_path")), "/vsock.socket");
    json_decref(calls);

    unlink(file);
    rmdir(work);
    unlink(log);
    unlink(jail_log);
    unlink(fake_fc);
    unlink(fake_jailer);
    rmdir(bin_dir);
    unsetenv("NUCLEUS_FIRECRACKER");
    unsetenv("NUCLEUS_JAILER");
    unsetenv("NUCLEUS_JAILER_UID");
    unsetenv("NUCLEUS_JAILER_GID");
    remove_image_dir();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_configure_sequence),
        cmocka_unit_test(test_fc_configure_with_network),
        cmocka_unit_test(test_fc_fault_names_call),
        cmocka_unit_test(test_fc_instance_start_fault),
        cmocka_unit_test(test_fc_unexpected_status),
        cmocka_unit_test(test_fc_server_error_raw_body),
        cmocka_unit_test(test_fc_snapshot_calls),
        cmocka_unit_test(test_fc_socket_never_appears),
        cmocka_unit_test(test_fc_process_exits_before_socket),
        cmocka_unit_test(test_fc_call_without_server),
        cmocka_unit_test(test_fc_jailer_argv),
        cmocka_unit_test(test_fc_jailer_rejects_bad_id),
        cmocka_unit_test(test_fc_vsock_handshake),
        cmocka_unit_test(test_fc_vsock_bad_answer),
        cmocka_unit_test(test_fc_vsock_timeout),
        cmocka_unit_test(test_fc_missing_binary),
        cmocka_unit_test(test_fc_missing_image),
        cmocka_unit_test(test_fc_sweeps_dead_owner_dirs),
        cmocka_unit_test(test_fc_pod_with_fake_firecracker),
        cmocka_unit_test(test_fc_pod_through_fake_jailer),
    };
    const char *name = strrchr(argv[0], '/');

    signal(SIGPIPE, SIG_IGN);
    if (strcmp(name != NULL ? name + 1 : argv[0], "firecracker") == 0)
        return fake_firecracker_main(argc, argv);
    if (strcmp(name != NULL ? name + 1 : argv[0], "jailer") == 0)
        return fake_jailer_main(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
