/*
 * test_net.c - pod networking against real namespaces: veth setup, the
 * default-deny filter, escapes, drift, cleanup, the egress proxy and
 * web_fetch.
 *
 * Root-only tests skip with a message otherwise.  The test builds its own
 * "internet": a network namespace nutinet<pid> joined to the host by the
 * veth nutI<pid> (10.250.0.1/24 on the host, 10.250.0.2 and 10.250.0.3 in
 * the namespace), with HTTP servers on 10.250.0.2:8080, 10.250.0.2:9090,
 * 10.250.0.3:8080 and an HTTPS server (test CA) on 10.250.0.2:8443.  No
 * traffic goes anywhere else.  The group teardown deletes all of it.
 *
 * The test program links libnucleus, so it serves as the pod init.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/lattice.h"
#include "nucleus/net.h"
#include "nucleus/sandbox.h"

typedef struct world {
    char ns[32];
    char veth[16];
    char dir[64];
    char ca[128];
    bool ready;
} world_t;

static world_t world;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Capture the first line of a command's output. */
static __attribute__((unused)) void sh_out(char *out, size_t size, const char *cmd)
{
    FILE *fp = popen(cmd, "r");

    out[0] = '\0';
    if (fp == NULL)
        return;
    if (fgets(out, (int)size, fp) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(fp);
}

static const char server_py[] =
    "import http.server, ssl, sys, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        if self.path.startswith('/redirect'):\n"
    "            self.send_response(302)\n"
    "            self.send_header('Location', self.path.split('=',1)[1])\n"
    "            self.end_headers(); return\n"
    "        if self.path.startswith('/big'):\n"
    "            n = int(self.path.split('=',1)[1])\n"
    "            self.send_response(200)\n"
    "            self.send_header('Content-Length', str(n))\n"
    "            self.end_headers()\n"
    "            chunk = b'x' * 65536\n"
    "            while n > 0:\n"
    "                self.wfile.write(chunk[:min(n, 65536)]); n -= 65536\n"
    "            return\n"
    "        body = ('hello from %s:%d host=%s\\n' % (self.server.server_address[0],\n"
    "                self.server.server_address[1], self.headers.get('Host'))).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):\n"
    "    daemon_threads = True\n"
    "    allow_reuse_address = True\n"
    "s = S((sys.argv[1], int(sys.argv[2])), H)\n"
    "if len(sys.argv) > 3:\n"
    "    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    c.load_cert_chain(sys.argv[3], sys.argv[4])\n"
    "    s.socket = c.wrap_socket(s.socket, server_side=True)\n"
    "s.serve_forever()\n";

static void world_down(void)
{
    if (world.ns[0] == '\0')
        return;
    sh("ip netns pids %s 2>/dev/null | xargs -r kill -9 2>/dev/null", world.ns);
    sh("ip link del %s 2>/dev/null", world.veth);
    sh("ip netns del %s 2>/dev/null", world.ns);
    sh("rm -rf %s", world.dir);
    world.ns[0] = '\0';
}

static int make_ca(void)
{
    return sh("cd %s && "
              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
              "-nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=nutest-ca "
              ">/dev/null 2>&1 && "
              "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-keyout srv.key -out srv.csr -subj /CN=allowed.test "
              ">/dev/null 2>&1 && "
              "printf 'subjectAltName=DNS:allowed.test,DNS:other.test\\n' > ext && "
              "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
              "-CAcreateserial -out srv.pem -days 1 -extfile ext >/dev/null 2>&1",
              world.dir);
}

static int world_up(void **state)
{
    FILE *fp;
    char path[128];
    int pid = (int)getpid();

    (void)state;
    if (geteuid() != 0)
        return 0;
    snprintf(world.ns, sizeof world.ns, "nutinet%d", pid);
    snprintf(world.veth, sizeof world.veth, "nutI%d", pid);
    snprintf(world.dir, sizeof world.dir, "/tmp/nu-nettest-%d", pid);
    if (sh("mkdir -p %s", world.dir) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/server.py", world.dir);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(server_py, fp);
    fclose(fp);
    if (make_ca() != 0)
        goto fail;
    snprintf(world.ca, sizeof world.ca, "%s/ca.pem", world.dir);

    if (sh("ip netns add %s && "
           "ip link add %s type veth peer name eth0 netns %s && "
           "ip addr add 10.250.0.1/24 dev %s && ip link set %s up && "
           "echo 1 > /proc/sys/net/ipv4/conf/%s/forwarding && "
           "ip -n %s addr add 10.250.0.2/24 dev eth0 && "
           "ip -n %s addr add 10.250.0.3/24 dev eth0 && "
           "ip -n %s link set eth0 up && ip -n %s link set lo up",
           world.ns, world.veth, world.ns, world.veth, world.veth, world.veth,
           world.ns, world.ns, world.ns, world.ns) != 0)
        goto fail;
    if (sh("cd %s && "
           "(ip netns exec %s /usr/bin/python3 server.py 10.250.0.2 8080 &) && "
           "(ip netns exec %s /usr/bin/python3 server.py 10.250.0.2 9090 &) && "
           "(ip netns exec %s /usr/bin/python3 server.py 10.250.0.3 8080 &) && "
           "(ip netns exec %s /usr/bin/python3 server.py 10.250.0.2 8443 "
           "srv.pem srv.key &)",
           world.dir, world.ns, world.ns, world.ns, world.ns) != 0)
        goto fail;
    for (int i = 0; i < 50; i++) {
        if (sh("curl -s -m 1 -o /dev/null http://10.250.0.3:8080/ && "
               "curl -s -m 1 -o /dev/null http://10.250.0.2:9090/ && "
               "curl -s -m 1 -o /dev/null --cacert %s "
               "--resolve allowed.test:8443:10.250.0.2 "
               "https://allowed.test:8443/ && "
               "curl -s -m 1 -o /dev/null http://10.250.0.2:8080/",
               world.ca) == 0) {
            world.ready = true;
            return 0;
        }
        usleep(100000);
    }
fail:
    world_down();
    return -1;
}

static int world_teardown(void **state)
{
    (void)state;
    world_down();
    return 0;
}

/* --- pods ------------------------------------------------------------- */

typedef struct pod {
    char workspace[64];
    nu_perm_t perm;
    nu_net_t *net;
    nu_sandbox_t *sb;
} pod_t;

static void require_root(void)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root (CAP_NET_ADMIN)\n");
        skip();
    }
    if (!world.ready)
        fail_msg("the test network could not be set up");
}

static const char *const test_hosts[] = {
    "allowed.test=10.250.0.2", "other.test=10.250.0.2",
    "blocked.test=10.250.0.3", "loopback.test=127.0.0.1",
    "meta.test=169.254.169.254", NULL
};

static void perm_egress(nu_perm_t *p)
{
    nu_perm_init_top(p);
    nu_strset_free(&p->network.allow);
    nu_strset_free(&p->network.domains);
    nu_strset_free(&p->network.trusted);
    nu_strset_init_empty(&p->network.allow);
    nu_strset_init_empty(&p->network.domains);
    nu_strset_init_empty(&p->network.trusted);
    assert_int_equal(nu_strset_add(&p->network.allow, "10.250.0.2:8080"), NU_OK);
    assert_int_equal(nu_strset_add(&p->network.domains, "allowed.test"), NU_OK);
}

static void pod_open(pod_t *pod, uint32_t interval_ms)
{
    nu_net_opts_t nopts;
    nu_sandbox_opts_t sopts;
    nu_err_t err = { 0 };
    const char *env[16];
    const char *const *extra;
    size_t n = 0;
    int rc;

    memset(pod, 0, sizeof *pod);
    snprintf(pod->workspace, sizeof pod->workspace, "/tmp/nu-netpod-XXXXXX");
    assert_non_null(mkdtemp(pod->workspace));
    perm_egress(&pod->perm);

    nu_net_opts_init(&nopts);
    nopts.hosts = test_hosts;
    nopts.ca_file = world.ca;
    nopts.check_interval_ms = interval_ms;
    rc = nu_net_prepare(&pod->perm, &nopts, &pod->net, &err);
    if (rc != NU_OK)
        fail_msg("prepare failed: %s", err.msg);

    env[n++] = "PATH=/usr/bin:/bin";
    env[n++] = "HOME=/workspace";
    for (extra = nu_net_env(pod->net); *extra != NULL; extra++)
        env[n++] = *extra;
    env[n] = NULL;

    nu_sandbox_opts_init(&sopts);
    sopts.workspace = pod->workspace;
    sopts.env = env;
    rc = nu_sandbox_create(&sopts, &pod->sb, &err);
    if (rc != NU_OK)
        fail_msg("sandbox create failed: %s", err.msg);

    rc = nu_net_attach(pod->net, nu_sandbox_pid(pod->sb), &err);
    if (rc != NU_OK)
        fail_msg("attach failed: %s", err.msg);
}

static void pod_close(pod_t *pod)
{
    nu_net_close(pod->net);
    nu_sandbox_close(pod->sb);
    nu_perm_free(&pod->perm);
    sh("rm -rf %s", pod->workspace);
}

/* Run a shell command in the pod; returns its exit status, stdout in out. */
static int pod_sh(pod_t *pod, char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int pod_sh(pod_t *pod, char *out, size_t size, const char *fmt, ...)
{
    char cmd[1024];
    json_t *call, *result = NULL;
    nu_err_t err = { 0 };
    va_list ap;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    call = json_pack("{s:s,s:[s,s,s],s:i}", "tool", "run", "argv", "/bin/sh",
                     "-c", cmd, "timeout", 20);
    assert_int_equal(nu_sandbox_tool(pod->sb, call, &result, &err), NU_OK);
    json_decref(call);
    if (!json_is_true(json_object_get(result, "ok")))
        fail_msg("run failed: %s", json_dumps(result, 0));
    status = (int)json_integer_value(json_object_get(result, "exit_code"));
    if (out != NULL)
        snprintf(out, size, "%s",
                 json_string_value(json_object_get(result, "stdout")) != NULL
                     ? json_string_value(json_object_get(result, "stdout"))
                     : "");
    json_decref(result);
    return status;
}

/* --- tests: setup and teardown ---------------------------------------- */

static void test_net_attach_and_close(void **state)
{
    pod_t pod;
    char out[4096];
    char name[16];

    (void)state;
    require_root();
    pod_open(&pod, 0);
    snprintf(name, sizeof name, "%s", nu_net_host_ifname(pod.net));
    assert_int_equal(pod_sh(&pod, out, sizeof out, "cat /proc/net/dev"), 0);
    assert_non_null(strstr(out, "nup"));
    pod_close(&pod);
    assert_int_not_equal(sh("ip link show %s >/dev/null 2>&1", name), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_attach_and_close),
    };

    return cmocka_run_group_tests(tests, world_up, world_teardown);
}
