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
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/lattice.h"
#include "nucleus/net.h"
#include "nucleus/sandbox.h"
#include "net_internal.h"

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
    sh("test -f %s/host.pid && kill $(cat %s/host.pid) 2>/dev/null", world.dir,
       world.dir);
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
    /* The test network uses fixed addresses, so runs from several build
     * trees take turns. */
    int lock = open("/run/lock/nucleus-test-net.lock",
                    O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0)
        return -1;
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
    for (int i = 0; i < 300; i++) {
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
        fail_msg("the test network could not be set up (see the messages "
                 "of the group setup above)");
}

static const char *const test_hosts[] = {
    "allowed.test=10.250.0.2", "other.test=10.250.0.2",
    "blocked.test=10.250.0.3", "loopback.test=127.0.0.1",
    "meta.test=169.254.169.254", "private.test=10.250.0.3",
    "closed.test=10.250.0.2", NULL
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
    /* allowed.test is a private address, which the proxy reaches through
     * the name only where network.allow names it, so 8443 is listed too. */
    assert_int_equal(nu_strset_add(&p->network.allow, "10.250.0.2:8443"), NU_OK);
    assert_int_equal(nu_strset_add(&p->network.domains, "allowed.test"), NU_OK);
    /* Allowed names pinned to addresses the proxy must still refuse. */
    assert_int_equal(nu_strset_add(&p->network.domains, "loopback.test"), NU_OK);
    assert_int_equal(nu_strset_add(&p->network.domains, "meta.test"), NU_OK);
    /* An allowed name of a private address that network.allow does not
     * name, and one whose allowed port has no server. */
    assert_int_equal(nu_strset_add(&p->network.domains, "private.test"), NU_OK);
    assert_int_equal(nu_strset_add(&p->network.domains, "closed.test"), NU_OK);
    assert_int_equal(nu_strset_add(&p->network.allow, "10.250.0.2:8081"), NU_OK);
}

/* Probe run inside the pod.  "raw REQUEST" sends bytes to the proxy and
 * prints the reply.  "connect TARGET SNI" opens a CONNECT tunnel and a TLS
 * session with that SNI. */
static const char probe_py[] =
    "import os, socket, ssl, sys\n"
    "host, port = os.environ['HTTP_PROXY'][7:].rsplit(':', 1)\n"
    "s = socket.create_connection((host, int(port)), timeout=5)\n"
    "if sys.argv[1] == 'raw':\n"
    "    s.sendall(sys.argv[2].replace('|', '\\r\\n').encode())\n"
    "    data = b''\n"
    "    while True:\n"
    "        d = s.recv(65536)\n"
    "        if not d: break\n"
    "        data += d\n"
    "    sys.stdout.write(data.decode('latin1'))\n"
    "else:\n"
    "    target, sni = sys.argv[2], sys.argv[3]\n"
    "    s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (target, target)).encode())\n"
    "    line = s.recv(4096).split(b'\\r\\n')[0]\n"
    "    if b' 200 ' not in line + b' ':\n"
    "        print('refused', line.decode()); sys.exit(3)\n"
    "    ctx = ssl.create_default_context(cafile='/workspace/ca.pem')\n"
    "    ctx.check_hostname = False\n"
    "    t = ctx.wrap_socket(s, server_hostname=sni)\n"
    "    t.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
    "    data = b''\n"
    "    while True:\n"
    "        d = t.recv(4096)\n"
    "        if not d: break\n"
    "        data += d\n"
    "    print(data.decode())\n";

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
    assert_int_equal(sh("cp %s %s/ca.pem", world.ca, pod->workspace), 0);
    {
        char path[128];
        FILE *fp;
        snprintf(path, sizeof path, "%s/probe.py", pod->workspace);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(probe_py, fp);
        fclose(fp);
    }

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



static void test_net_allow_everything(void **state)
{
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_sandbox_t *sb = NULL;
    nu_sandbox_opts_t sopts;
    nu_err_t err = { 0 };
    char workspace[64] = "/tmp/nu-netpod-XXXXXX";

    (void)state;
    require_root();
    /* TOP allow entries: the rules have no destination match, which
     * iptables-save prints differently; the read-back must still match. */
    nu_perm_init_top(&perm);
    assert_non_null(mkdtemp(workspace));
    assert_int_equal(nu_net_prepare(&perm, NULL, &net, &err), NU_OK);
    nu_sandbox_opts_init(&sopts);
    sopts.workspace = workspace;
    assert_int_equal(nu_sandbox_create(&sopts, &sb, &err), NU_OK);
    if (nu_net_attach(net, nu_sandbox_pid(sb), &err) != NU_OK)
        fail_msg("attach failed: %s", err.msg);
    assert_int_equal(nu_net_check(net, &err), NU_OK);
    nu_net_close(net);
    nu_sandbox_close(sb);
    nu_perm_free(&perm);
    sh("rm -rf %s", workspace);
}

/* --- tests: direct connections through the filter --------------------- */

static pod_t shared_pod;

/* A curl in the pod that bypasses the proxy; returns curl's exit status. */
static int direct(pod_t *pod, const char *url)
{
    return pod_sh(pod, NULL, 0,
                  "curl -s -m 3 --noproxy '*' -o /dev/null %s", url);
}

static void test_net_direct_allowed(void **state)
{
    char out[256];

    (void)state;
    require_root();
    pod_open(&shared_pod, 0);
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "curl -s -m 3 --noproxy '*' http://10.250.0.2:8080/"),
                     0);
    assert_non_null(strstr(out, "hello from 10.250.0.2:8080"));
}

static void test_net_direct_other_address(void **state)
{
    (void)state;
    require_root();
    assert_int_not_equal(direct(&shared_pod, "http://10.250.0.3:8080/"), 0);
}

static void test_net_direct_other_port(void **state)
{
    (void)state;
    require_root();
    assert_int_not_equal(direct(&shared_pod, "http://10.250.0.2:9090/"), 0);
}

static void test_net_dns_blocked(void **state)
{
    char cmd[512];

    (void)state;
    require_root();
    /* UDP: the pod's OUTPUT chain drops it, so sendto fails with EPERM. */
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; s=socket.socket(2,2); "
        "s.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"
        "\\x04data\\x07allowed\\x04test\\x00\\x00\\x01\\x00\\x01', "
        "('10.250.0.2', 53))\""), 0);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import socket; s=socket.socket(2,2); "
             "s.sendto(b'x', ('%s', 53))\"", nu_net_host_addr(shared_pod.net));
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0, "%s", cmd), 0);
    /* TCP to port 53, to the test server and the host side. */
    assert_int_not_equal(direct(&shared_pod, "http://10.250.0.2:53/"), 0);
    snprintf(cmd, sizeof cmd, "http://%s:53/", nu_net_host_addr(shared_pod.net));
    assert_int_not_equal(direct(&shared_pod, cmd), 0);
    /* Names do not resolve inside the pod: a tunnel has no resolver. */
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; "
        "socket.getaddrinfo('secret-data.allowed.test', 80)\""), 0);
}

static void test_net_icmp_and_raw_blocked(void **state)
{
    (void)state;
    require_root();
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; s=socket.socket(2, 2, 1); "
        "s.sendto(b'\\x08\\x00\\xf7\\xff\\x00\\x00\\x00\\x00', "
        "('10.250.0.2', 0))\""), 0);
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; socket.socket(2, 3, 1)\""), 0);
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; socket.socket(17, 3, 768)\""), 0);
}

static void test_net_ipv6_disabled(void **state)
{
    char out[64];

    (void)state;
    require_root();
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "cat /proc/sys/net/ipv6/conf/all/disable_ipv6"), 0);
    assert_string_equal(out, "1\n");
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; s=socket.socket(10, 1); "
        "s.settimeout(2); s.connect(('2001:db8::1', 8080))\""), 0);
    /* An IPv4-mapped address is IPv4 traffic and meets the IPv4 rules. */
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
        "python3 -c \"import socket; s=socket.socket(10, 1); "
        "s.settimeout(2); s.connect(('::ffff:10.250.0.3', 8080))\""), 0);
}

static void test_net_host_unreachable(void **state)
{
    char url[128];

    (void)state;
    require_root();
    /* The host's address on the test veth, where nothing may answer the
     * pod, and the host side of the pod's own veth off the proxy port. */
    assert_int_equal(sh("cd %s && { /usr/bin/python3 server.py 10.250.0.1 8081 & "
                        "echo $! > host.pid; } && "
                        "for i in $(seq 50); do curl -s -m 1 -o /dev/null "
                        "http://10.250.0.1:8081/ && exit 0; sleep 0.1; done; "
                        "exit 1", world.dir), 0);
    assert_int_not_equal(direct(&shared_pod, "http://10.250.0.1:8081/"), 0);
    snprintf(url, sizeof url, "http://%s:8081/", nu_net_host_addr(shared_pod.net));
    assert_int_not_equal(direct(&shared_pod, url), 0);
    sh("kill $(cat %s/host.pid) && rm %s/host.pid", world.dir, world.dir);
}

static void test_net_metadata_rule(void **state)
{
    char cmd[256];

    (void)state;
    require_root();
    /* Asserted by rule only: no traffic is sent to 169.254.0.0/16. */
    snprintf(cmd, sizeof cmd, "nsenter -t %d -n iptables-save -t filter | "
             "grep -q -- '-A OUTPUT -d 169.254.0.0/16 -j DROP'",
             (int)nu_sandbox_pid(shared_pod.sb));
    assert_int_equal(sh("%s", cmd), 0);
    assert_int_equal(sh("iptables-save -t filter | grep -q -- "
                        "'-A NUF[0-9]* -d 169.254.0.0/16 -j DROP'"), 0);
}


/* --- tests: the egress proxy ------------------------------------------ */

/* Send a raw request (lines joined by '|') to the proxy from the pod. */
static void proxy_raw(char *out, size_t size, const char *request)
{
    pod_sh(&shared_pod, out, size, "python3 /workspace/probe.py raw '%s'",
           request);
}

static void test_net_proxy_http_allowed(void **state)
{
    char out[512];

    (void)state;
    require_root();
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "curl -s -m 5 http://allowed.test:8080/"), 0);
    assert_string_equal(out, "hello from 10.250.0.2:8080 host=allowed.test:8080\n");
}

static void test_net_proxy_https_allowed(void **state)
{
    char out[512];

    (void)state;
    require_root();
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "curl -s -m 5 --cacert /workspace/ca.pem "
                            "https://allowed.test:8443/"), 0);
    assert_non_null(strstr(out, "hello from 10.250.0.2:8443"));
}

static void test_net_proxy_name_denied(void **state)
{
    char out[512];

    (void)state;
    require_root();
    pod_sh(&shared_pod, out, sizeof out,
           "curl -s -m 5 -o /dev/null -w '%%{http_code}' http://blocked.test:8080/");
    assert_string_equal(out, "403");
    assert_int_not_equal(pod_sh(&shared_pod, NULL, 0,
                                "curl -s -m 5 --cacert /workspace/ca.pem "
                                "https://blocked.test:8443/"), 0);
}

static void test_net_proxy_ip_encodings(void **state)
{
    static const char *const hosts[] = {
        "10.250.0.3:8080", "184156163:8080", "012.0372.0.03:8080",
        "0xa.0xfa.0.3:8080", "[::ffff:10.250.0.3]:8080",
        "10.250.0.2:9090", "127.0.0.1:8080", "localhost:8080",
    };
    char req[256];
    char out[1024];

    (void)state;
    require_root();
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        snprintf(req, sizeof req, "GET http://%s/ HTTP/1.1|Host: %s||",
                 hosts[i], hosts[i]);
        proxy_raw(out, sizeof out, req);
        if (strncmp(out, "HTTP/1.1 403", 12) != 0)
            fail_msg("%s: expected 403, got '%.60s'", hosts[i], out);
    }
}

static void test_net_proxy_forbidden_addresses(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    /* Allowed names pinned to loopback and a metadata address: the proxy
     * refuses before connecting. */
    proxy_raw(out, sizeof out,
              "GET http://loopback.test:8080/ HTTP/1.1|Host: loopback.test:8080||");
    assert_memory_equal(out, "HTTP/1.1 403", 12);
    proxy_raw(out, sizeof out,
              "GET http://meta.test/ HTTP/1.1|Host: meta.test||");
    assert_memory_equal(out, "HTTP/1.1 403", 12);
}

static void test_net_proxy_host_spoofing(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    proxy_raw(out, sizeof out,
              "GET http://allowed.test:8080/ HTTP/1.1|Host: blocked.test:8080||");
    assert_memory_equal(out, "HTTP/1.1 403", 12);
    proxy_raw(out, sizeof out, "GET http://allowed.test:8080/ HTTP/1.1||");
    assert_memory_equal(out, "HTTP/1.1 403", 12);
    proxy_raw(out, sizeof out, "GET / HTTP/1.1|Host: allowed.test:8080||");
    assert_memory_equal(out, "HTTP/1.1 400", 12);
}

static void test_net_proxy_sni_mismatch(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "python3 /workspace/probe.py connect "
                            "allowed.test:8443 allowed.test"), 0);
    assert_non_null(strstr(out, "hello from 10.250.0.2:8443"));
    assert_int_not_equal(pod_sh(&shared_pod, out, sizeof out,
                                "python3 /workspace/probe.py connect "
                                "allowed.test:8443 other.test"), 0);
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "python3 /workspace/probe.py connect "
                            "blocked.test:8443 blocked.test"), 3);
}

static void test_net_proxy_redirect_out(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    pod_sh(&shared_pod, out, sizeof out,
           "curl -s -m 5 -L -w '%%{http_code}' "
           "'http://allowed.test:8080/redirect?to=http://blocked.test:8080/'");
    assert_null(strstr(out, "hello from 10.250.0.3"));
    assert_non_null(strstr(out, "403"));
}

static void test_net_proxy_counters(void **state)
{
    nu_net_stats_t stats;

    (void)state;
    require_root();
    nu_net_stats(shared_pod.net, &stats);
    assert_true(stats.bytes_in > 100);
    assert_true(stats.bytes_out > 100);
    assert_true(stats.connections >= 10);
    assert_true(stats.denied >= 8);
}


static void test_net_proxy_private_name(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    /* private.test is an allowed name, but its address 10.250.0.3 is
     * private and not in network.allow. */
    proxy_raw(out, sizeof out,
              "GET http://private.test:8080/ HTTP/1.1|Host: private.test:8080||");
    assert_memory_equal(out, "HTTP/1.1 403", 12);
    assert_non_null(strstr(out, "network.allow"));
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "python3 /workspace/probe.py connect "
                            "private.test:8443 private.test"), 3);
    assert_non_null(strstr(out, "403"));
}

/* A broad allow entry does not open this host's addresses, loopback,
 * link-local or private ones: only an entry inside those ranges does. */
static void test_net_addr_broad_allow(void **state)
{
    nu_net_t net;
    uint32_t loopback = htonl(0x7f000001u);
    uint32_t metadata = htonl(0xa9fea9feu);
    uint32_t private_addr = htonl(0x0a0b0c0du);
    uint32_t pod_addr = htonl(0x0ad50001u);

    (void)state;
    memset(&net, 0, sizeof net);
    pthread_rwlock_init(&net.perm_lock, NULL);
    nu_perm_init_bottom(&net.perm);
    net.range_base = 0x0ad50000u;
    net.range_prefix = 16;

    assert_int_equal(nu_strset_add(&net.perm.network.allow, "0.0.0.0/0"), 0);
    assert_int_equal(nu_strset_add(&net.perm.network.allow, "10.0.0.0/8:5432"),
                     0);
    assert_true(nu__net_addr_forbidden(&net, loopback, 7001));
    assert_true(nu__net_addr_forbidden(&net, metadata, 80));
    assert_true(nu__net_addr_forbidden(&net, pod_addr, 5432));
    assert_false(nu__net_addr_forbidden(&net, private_addr, 5432));
    assert_true(nu__net_addr_forbidden(&net, private_addr, 22));
    assert_false(nu__net_addr_forbidden(&net, htonl(0x5db8d822u), 443));

    /* An entry inside the range names it. */
    assert_int_equal(nu_strset_add(&net.perm.network.allow,
                                   "127.0.0.1:7001"), 0);
    assert_false(nu__net_addr_forbidden(&net, loopback, 7001));
    assert_true(nu__net_addr_forbidden(&net, loopback, 7002));

    nu_perm_free(&net.perm);
    pthread_rwlock_destroy(&net.perm_lock);
}

static void test_net_proxy_duplicate_host(void **state)
{
    char out[1024];

    (void)state;
    require_root();
    proxy_raw(out, sizeof out, "GET http://allowed.test:8080/ HTTP/1.1|"
              "Host: allowed.test:8080|Host: other.test||");
    assert_memory_equal(out, "HTTP/1.1 400", 12);
    assert_non_null(strstr(out, "more than one Host header"));
    proxy_raw(out, sizeof out, "GET http://allowed.test:8080/ HTTP/1.1|"
              "Host: allowed.test:8080||");
    assert_non_null(strstr(out, " 200 "));
}

static void test_net_proxy_foreign_peer(void **state)
{
    char cmd[256];
    char out[64];

    (void)state;
    require_root();
    /* The test process is on the host, not the pod: its requests carry no
     * credential, so the proxy refuses them. */
    snprintf(cmd, sizeof cmd, "curl -s -m 5 -o /dev/null -w '%%{http_code}' "
             "-x http://%s:%d http://allowed.test:8080/",
             nu_net_host_addr(shared_pod.net), nu_net_proxy_port(shared_pod.net));
    sh_out(out, sizeof out, cmd);
    assert_string_equal(out, "403");
    snprintf(cmd, sizeof cmd, "curl -s -m 5 -o /dev/null -w '%%{http_code}' "
             "-x http://%s:%d -U nucleus:0123 http://allowed.test:8080/",
             nu_net_host_addr(shared_pod.net), nu_net_proxy_port(shared_pod.net));
    sh_out(out, sizeof out, cmd);
    assert_string_equal(out, "403");
}

/* Opens argv[1] idle connections to the proxy and prints how many got a
 * 503 from it. */
static const char hold_py[] =
    "import os, socket, sys, time\n"
    "host, port = os.environ['HTTP_PROXY'][7:].rsplit(':', 1)\n"
    "socks = [socket.create_connection((host, int(port)), timeout=5)\n"
    "         for _ in range(int(sys.argv[1]))]\n"
    "time.sleep(1)\n"
    "refused = 0\n"
    "for s in socks:\n"
    "    s.setblocking(False)\n"
    "    try:\n"
    "        if s.recv(100).startswith(b'HTTP/1.1 503'): refused += 1\n"
    "    except BlockingIOError: pass\n"
    "print(refused)\n";

static void test_net_proxy_connection_cap(void **state)
{
    char path[128];
    char out[512];
    FILE *fp;
    int refused;

    (void)state;
    require_root();
    snprintf(path, sizeof path, "%s/hold.py", shared_pod.workspace);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(hold_py, fp);
    fclose(fp);

    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "python3 /workspace/hold.py %d",
                            NU_NET_PROXY_MAX_CONNS + 4), 0);
    refused = atoi(out);
    if (refused < 4 || refused > 6)
        fail_msg("expected 4 connections over the cap refused, got %d", refused);

    /* The closed connections free their places. */
    assert_int_equal(pod_sh(&shared_pod, out, sizeof out,
                            "curl -s -m 5 http://allowed.test:8080/"), 0);
    assert_non_null(strstr(out, "hello from 10.250.0.2:8080"));
}

static void test_net_proxy_denied_list(void **state)
{
    json_t *denied;
    char *text;

    (void)state;
    require_root();
    denied = nu_net_denied(shared_pod.net);
    assert_non_null(denied);
    text = json_dumps(denied, 0);
    assert_non_null(strstr(text, "\"blocked.test:8080\""));
    assert_non_null(strstr(text, "\"private.test:8080\""));
    /* Each destination once, however often it was refused. */
    assert_null(strstr(strstr(text, "\"blocked.test:8080\"") + 1,
                       "\"blocked.test:8080\""));
    free(text);
    json_decref(denied);
}

static bool has_reason(const nu_net_denial_t *items, size_t n,
                       const char *reason, int status)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].reason, reason) == 0 && items[i].status == status)
            return true;
    return false;
}

static void test_net_proxy_denial_events(void **state)
{
    static nu_net_denial_t items[NU_NET_DENIALS_MAX];
    static const struct { const char *reason; int status; } expected[] = {
        { "not_in_policy", 403 }, { "private_address", 403 },
        { "foreign_peer", 403 }, { "host_mismatch", 403 },
        { "sni_mismatch", 403 }, { "bad_request", 400 },
        { "connection_limit", 503 },
    };
    nu_net_stats_t stats;
    size_t n;

    (void)state;
    require_root();
    n = nu_net_denials_take(shared_pod.net, items, NU_NET_DENIALS_MAX);
    nu_net_stats(shared_pod.net, &stats);
    assert_int_equal(stats.denials_dropped, 0);
    /* Every 403 is queued, besides the 400s and 503s. */
    assert_true(n >= stats.denied);
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (!has_reason(items, n, expected[i].reason, expected[i].status))
            fail_msg("no %d refusal with reason %s among %zu queued",
                     expected[i].status, expected[i].reason, n);

    for (size_t i = 0; i < n; i++) {
        assert_non_null(strchr(items[i].destination, ':'));
        assert_true(items[i].detail[0] != '\0');
        assert_true(items[i].time_ms > 1700000000000LL);
        if (i > 0)
            assert_true(items[i].time_ms >= items[i - 1].time_ms);
    }

    /* Taken entries are gone. */
    assert_int_equal(nu_net_denials_take(shared_pod.net, items, 1), 0);
}

/* --- tests: web_fetch -------------------------------------------------- */

static json_t *fetch(const char *url, json_int_t max_bytes)
{
    json_t *call = json_pack("{s:s}", "url", url);
    json_t *result = NULL;
    nu_err_t err = { 0 };

    if (max_bytes > 0)
        json_object_set_new(call, "max_bytes", json_integer(max_bytes));
    assert_int_equal(nu_net_fetch_pod(shared_pod.net, call, &result, &err), NU_OK);
    json_decref(call);
    return result;
}

static const char *field(json_t *result, const char *key)
{
    const char *value = json_string_value(json_object_get(result, key));
    return value != NULL ? value : "";
}

static void assert_denied(const char *url, const char *kind)
{
    json_t *r = fetch(url, 0);

    if (strcmp(field(r, "kind"), kind) != 0)
        fail_msg("%s: expected %s, got %s", url, kind, json_dumps(r, 0));
    json_decref(r);
}

static void test_net_fetch_allowed(void **state)
{
    json_t *r;

    (void)state;
    require_root();
    r = fetch("http://allowed.test:8080/", 0);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
    assert_string_equal(field(r, "body"),
                        "hello from 10.250.0.2:8080 host=allowed.test:8080\n");
    assert_string_equal(field(json_object_get(r, "headers"), "content-length"), "50");
    json_decref(r);

    r = fetch("https://allowed.test:8443/", 0);
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
    assert_non_null(strstr(field(r, "body"), "hello from 10.250.0.2:8443"));
    json_decref(r);
}

static void test_net_fetch_denied_hosts(void **state)
{
    nu_net_stats_t before, after;

    (void)state;
    require_root();
    nu_net_stats(shared_pod.net, &before);
    assert_denied("http://blocked.test:8080/", "network_denied");
    assert_denied("https://blocked.test:8443/", "network_denied");
    assert_denied("http://10.250.0.3:8080/", "network_denied");
    assert_denied("http://0xa.0xfa.0.3:8080/", "network_denied");
    assert_denied("http://184156163:8080/", "network_denied");
    assert_denied("http://[::ffff:10.250.0.3]:8080/", "network_denied");
    assert_denied("http://10.250.0.2:9090/", "network_denied");
    assert_denied("http://localhost:8080/", "network_denied");
    nu_net_stats(shared_pod.net, &after);
    /* Checked before connecting: the proxy saw none of them. */
    assert_int_equal(after.connections, before.connections);

    assert_denied("http://loopback.test:8080/", "network_denied");
    assert_denied("ftp://allowed.test/", "invalid_request");
    assert_denied("http://user@allowed.test:8080/", "invalid_request");
}

static void test_net_fetch_redirects(void **state)
{
    char url[2048];
    json_t *r;

    (void)state;
    require_root();
    r = fetch("http://allowed.test:8080/redirect?to=http://allowed.test:8080/", 0);
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
    assert_string_equal(field(r, "url"), "http://allowed.test:8080/");
    json_decref(r);

    assert_denied("http://allowed.test:8080/redirect?to=http://blocked.test:8080/",
                  "network_denied");
    assert_denied("http://allowed.test:8080/redirect?to=http://10.250.0.3:8080/",
                  "network_denied");

    /* Six hops: one more than the limit. */
    snprintf(url, sizeof url, "http://allowed.test:8080/");
    for (int i = 0; i < 6; i++) {
        char next[2048];
        snprintf(next, sizeof next, "http://allowed.test:8080/redirect?to=%.1500s", url);
        snprintf(url, sizeof url, "%s", next);
    }
    r = fetch(url, 0);
    assert_string_equal(field(r, "kind"), "network_denied");
    assert_non_null(strstr(field(r, "error"), "more than 5 redirects"));
    json_decref(r);
}

static void test_net_fetch_size_cap(void **state)
{
    json_t *r;

    (void)state;
    require_root();
    r = fetch("http://allowed.test:8080/big?n=200000", 1000);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(json_is_true(json_object_get(r, "truncated")));
    assert_int_equal(strlen(field(r, "body")), 1000);
    json_decref(r);
}

static void test_net_fetch_proxy_errors(void **state)
{
    (void)state;
    require_root();
    /* Refused by the proxy's address check before the tunnel opens. */
    assert_denied("http://private.test:8080/", "network_denied");
    assert_denied("https://private.test:8443/", "network_denied");
    /* Nothing listens on the allowed 10.250.0.2:8081: the proxy's 502
     * is an I/O error, not a server reply. */
    assert_denied("http://closed.test:8081/", "io_error");
}

static void test_net_fetch_tls_verified(void **state)
{
    nu_fetch_opts_t opts;
    char proxy[64];
    json_t *call = json_pack("{s:s}", "url", "https://allowed.test:8443/");
    json_t *r = NULL;
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    nu_fetch_opts_init(&opts);
    snprintf(proxy, sizeof proxy, "http://%s:%d",
             nu_net_host_addr(shared_pod.net), nu_net_proxy_port(shared_pod.net));
    opts.proxy = proxy;
    opts.proxy_credential = shared_pod.net->proxy_credential;
    assert_int_equal(nu_net_fetch(&shared_pod.perm, call, &opts, &r, &err), NU_OK);
    assert_string_equal(field(r, "kind"), "io_error");
    json_decref(r);
    json_decref(call);
}

static void test_net_check_clean(void **state)
{
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    assert_int_equal(nu_net_check(shared_pod.net, &err), NU_OK);
    assert_false(nu_net_drifted(shared_pod.net));
    pod_close(&shared_pod);
}

/* --- tests: drift ------------------------------------------------------ */

static void wait_drift(pod_t *pod)
{
    for (int i = 0; i < 50 && !nu_net_drifted(pod->net); i++)
        usleep(50000);
    assert_true(nu_net_drifted(pod->net));
    for (int i = 0; i < 50 && kill(nu_sandbox_pid(pod->sb), 0) == 0; i++) {
        nu_sandbox_state(pod->sb);
        usleep(50000);
    }
}

static void test_net_drift_pod_rule(void **state)
{
    pod_t pod;
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    pod_open(&pod, 200);
    assert_int_equal(sh("nsenter -t %d -n iptables -P OUTPUT ACCEPT",
                        (int)nu_sandbox_pid(pod.sb)), 0);
    assert_int_equal(nu_net_check(pod.net, &err), NU_EPOLICY);
    assert_non_null(strstr(err.msg, "OUTPUT"));
    wait_drift(&pod);
    assert_int_equal(nu_sandbox_state(pod.sb), NU_SANDBOX_DEAD);
    pod_close(&pod);
}

static void test_net_drift_host_rule(void **state)
{
    pod_t pod;
    nu_err_t err = { 0 };
    char ifname[16];

    (void)state;
    require_root();
    pod_open(&pod, 200);
    snprintf(ifname, sizeof ifname, "%s", nu_net_host_ifname(pod.net));
    assert_int_equal(sh("iptables -I NUF%s 1 -j ACCEPT", ifname + 3), 0);
    assert_int_equal(nu_net_check(pod.net, &err), NU_EPOLICY);
    wait_drift(&pod);
    assert_int_equal(nu_sandbox_state(pod.sb), NU_SANDBOX_DEAD);
    pod_close(&pod);
    assert_int_not_equal(sh("iptables -S NUF%s >/dev/null 2>&1", ifname + 3), 0);
}


/* Lower the open-file limit to `limit` for ms milliseconds, so every new
 * descriptor of this process fails with EMFILE, then restore it. */
static void starve_fds(rlim_t limit, unsigned ms)
{
    struct rlimit saved, low;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    usleep(ms * 1000);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

static void test_net_check_failure_not_drift(void **state)
{
    pod_t pod;

    (void)state;
    require_root();
    pod_open(&pod, 300);

    /* One or two failed read-backs, then good ones: the pod lives. */
    starve_fds(3, 350);
    usleep(1200 * 1000);
    assert_false(nu_net_drifted(pod.net));
    assert_int_not_equal(nu_sandbox_state(pod.sb), NU_SANDBOX_DEAD);

    /* Failures in a row past the maximum: killed, and not for drift. */
    starve_fds(3, 300 * (NU_NET_CHECK_FAILURES_MAX + 2));
    wait_drift(&pod);
    assert_true(nu_net_check_failed(pod.net));
    assert_int_equal(nu_sandbox_state(pod.sb), NU_SANDBOX_DEAD);
    pod_close(&pod);
}

/* From the host, with the owner's proxy credential: open a CONNECT tunnel
 * to argv[3], print "open" once the proxy replies 200, then "closed" when
 * the proxy ends the tunnel (or "timeout" after 10 s). */
static const char tunnel_py[] =
    "import base64, socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
    "auth = base64.b64encode(sys.argv[4].encode()).decode()\n"
    "s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n'\n"
    "           'Proxy-Authorization: Basic %s\\r\\n\\r\\n'\n"
    "           % (sys.argv[3], sys.argv[3], auth)).encode())\n"
    "head = s.recv(4096)\n"
    "print('open' if b' 200 ' in head.split(b'\\r\\n')[0] + b' ' else 'refused',\n"
    "      flush=True)\n"
    "try:\n"
    "    while s.recv(4096): pass\n"
    "    print('closed', flush=True)\n"
    "except socket.timeout:\n"
    "    print('timeout', flush=True)\n";

static void test_net_restrict_running_pod(void **state)
{
    pod_t pod;
    nu_perm_t narrow, none;
    nu_err_t err = { 0 };
    char out[512], cmd[512], line[64];
    json_t *call, *r = NULL;
    FILE *tunnel;

    (void)state;
    require_root();
    pod_open(&pod, 200);
    assert_int_equal(direct(&pod, "http://10.250.0.2:8080/"), 0);

    /* Drop 10.250.0.2:8443 and :8081: direct egress is cut, the proxy
     * keeps serving what is still allowed. */
    assert_int_equal(nu_perm_copy(&narrow, &pod.perm), NU_OK);
    nu_strset_free(&narrow.network.allow);
    nu_strset_init_empty(&narrow.network.allow);
    assert_int_equal(nu_strset_add(&narrow.network.allow, "10.250.0.2:8080"), NU_OK);
    if (nu_net_restrict(pod.net, &narrow, &err) != NU_OK)
        fail_msg("restrict failed: %s", err.msg);
    assert_int_not_equal(direct(&pod, "http://10.250.0.2:8080/"), 0);
    assert_int_equal(pod_sh(&pod, out, sizeof out,
                            "curl -s -m 5 http://allowed.test:8080/"), 0);
    assert_non_null(strstr(out, "hello from 10.250.0.2:8080"));
    assert_int_not_equal(pod_sh(&pod, NULL, 0, "curl -s -m 5 --cacert "
                                "/workspace/ca.pem https://allowed.test:8443/"), 0);
    call = json_pack("{s:s}", "url", "https://allowed.test:8443/");
    assert_int_equal(nu_net_fetch_pod(pod.net, call, &r, &err), NU_OK);
    assert_string_equal(json_string_value(json_object_get(r, "kind")),
                        "network_denied");
    json_decref(r);
    json_decref(call);

    /* Widening back is refused. */
    assert_int_equal(nu_net_restrict(pod.net, &pod.perm, &err), NU_EINVAL);

    /* A tunnel opened before the next narrowing. */
    snprintf(cmd, sizeof cmd, "python3 -c \"$NU_TUNNEL_PY\" %s %d "
             "allowed.test:8080 '%s'", nu_net_host_addr(pod.net),
             nu_net_proxy_port(pod.net), pod.net->proxy_credential);
    setenv("NU_TUNNEL_PY", tunnel_py, 1);
    tunnel = popen(cmd, "r");
    assert_non_null(tunnel);
    assert_non_null(fgets(line, sizeof line, tunnel));
    assert_string_equal(line, "open\n");

    /* No egress at all: the proxy refuses everything and closes the
     * tunnel. */
    assert_int_equal(nu_perm_copy(&none, &narrow), NU_OK);
    nu_strset_free(&none.network.allow);
    nu_strset_free(&none.network.domains);
    nu_strset_init_empty(&none.network.allow);
    nu_strset_init_empty(&none.network.domains);
    assert_int_equal(nu_net_restrict(pod.net, &none, &err), NU_OK);
    assert_non_null(fgets(line, sizeof line, tunnel));
    assert_string_equal(line, "closed\n");
    pclose(tunnel);
    pod_sh(&pod, out, sizeof out, "curl -s -m 5 -o /dev/null -w '%%{http_code}' "
           "http://allowed.test:8080/");
    assert_string_equal(out, "403");

    /* The watcher saw no drift in any of this. */
    usleep(500 * 1000);
    assert_false(nu_net_drifted(pod.net));
    assert_int_equal(nu_net_check(pod.net, &err), NU_OK);
    nu_perm_free(&narrow);
    nu_perm_free(&none);
    pod_close(&pod);
}

/* --- tests: cleanup ---------------------------------------------------- */

/* In a forked child: open a pod with egress without cmocka (a failed
 * assert would return into the child's copy of the test runner), write
 * its host interface name to fd and wait to be killed. */
static void hold_pod(int fd, const char *workspace)
{
    nu_sandbox_opts_t sopts;
    nu_sandbox_t *sb = NULL;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };
    nu_perm_t perm;
    const char *env[] = { "PATH=/usr/bin:/bin", NULL };

    nu_perm_init_top(&perm);
    nu_strset_free(&perm.network.allow);
    nu_strset_init_empty(&perm.network.allow);
    if (nu_strset_add(&perm.network.allow, "10.250.0.2:8080") != NU_OK ||
        nu_net_prepare(&perm, NULL, &net, &err) != NU_OK)
        _exit(1);
    nu_sandbox_opts_init(&sopts);
    sopts.workspace = workspace;
    sopts.env = env;
    if (nu_sandbox_create(&sopts, &sb, &err) != NU_OK ||
        nu_net_attach(net, nu_sandbox_pid(sb), &err) != NU_OK ||
        write(fd, nu_net_host_ifname(net), 15) < 0)
        _exit(1);
    pause();
    _exit(0);
}

static void test_net_sweep_after_sigkill(void **state)
{
    int fds[2];
    char name[16] = "";
    char tag[64];
    char workspace[64] = "/tmp/nu-netpod-XXXXXX";
    pid_t child;
    int status;
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    assert_non_null(mkdtemp(workspace));
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        hold_pod(fds[1], workspace);
    }
    close(fds[1]);
    assert_true(read(fds[0], name, 15) > 0);
    close(fds[0]);
    snprintf(tag, sizeof tag, "nucleus-%d-", (int)child);

    assert_int_equal(sh("ip link show %s >/dev/null 2>&1", name), 0);
    assert_int_equal(sh("iptables-save | grep -q -- %s", tag), 0);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);

    assert_true(nu_net_sweep(&err) >= 2);
    assert_int_not_equal(sh("ip link show %s >/dev/null 2>&1", name), 0);
    assert_int_not_equal(sh("iptables-save | grep -q -- %s", tag), 0);
    assert_int_not_equal(sh("iptables -S NUF%s >/dev/null 2>&1", name + 3), 0);
    sh("rm -rf %s", workspace);
}


/* --- tests: refusal queue (no root needed) ------------------------- */

static void test_net_denials_order(void **state)
{
    nu__denials_t q;
    nu_net_denial_t out[4];
    char long_host[400];

    (void)state;
    nu__denials_init(&q);
    memset(long_host, 'a', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';

    nu__denials_push(&q, "blocked.test", 8080, 403, "not_in_policy",
                     "the destination is not in the pod's network policy");
    nu__denials_push(&q, "", 0, 400, "bad_request", "malformed request line");
    nu__denials_push(&q, long_host, 443, 403, "not_in_policy", "x");

    assert_int_equal(nu__denials_take(&q, out, 2), 2);
    assert_string_equal(out[0].destination, "blocked.test:8080");
    assert_string_equal(out[0].reason, "not_in_policy");
    assert_int_equal(out[0].status, 403);
    assert_non_null(strstr(out[0].detail, "network policy"));
    assert_true(out[0].time_ms > 1700000000000LL);
    assert_int_equal(out[0].dropped_before, 0);
    assert_string_equal(out[1].destination, "?:0");
    assert_int_equal(out[1].status, 400);

    /* A name longer than the field is cut, never overflowed. */
    assert_int_equal(nu__denials_take(&q, out, 4), 1);
    assert_int_equal(strlen(out[0].destination), NU_NET_DENIAL_DEST_MAX - 1);
    assert_int_equal(nu__denials_take(&q, out, 4), 0);
    assert_int_equal(nu__denials_dropped(&q), 0);
    nu__denials_destroy(&q);
}

static void test_net_denials_full(void **state)
{
    static nu__denials_t q;
    static nu_net_denial_t out[NU_NET_DENIALS_MAX + 8];

    (void)state;
    nu__denials_init(&q);
    for (int i = 0; i < NU_NET_DENIALS_MAX + 5; i++)
        nu__denials_push(&q, "h", i, 403, "not_in_policy", "d");
    assert_int_equal(nu__denials_dropped(&q), 5);

    /* The oldest are kept; the newest were dropped. */
    assert_int_equal(nu__denials_take(&q, out, NU_NET_DENIALS_MAX + 8),
                     NU_NET_DENIALS_MAX);
    assert_string_equal(out[0].destination, "h:0");
    assert_int_equal(out[NU_NET_DENIALS_MAX - 1].status, 403);
    for (int i = 0; i < NU_NET_DENIALS_MAX; i++)
        assert_int_equal(out[i].dropped_before, 0);

    /* The next refusal carries the drop count, once. */
    nu__denials_push(&q, "h", 1, 400, "bad_request", "d");
    nu__denials_push(&q, "h", 2, 400, "bad_request", "d");
    assert_int_equal(nu__denials_take(&q, out, 8), 2);
    assert_int_equal(out[0].dropped_before, 5);
    assert_int_equal(out[1].dropped_before, 0);
    assert_int_equal(nu__denials_dropped(&q), 5);
    nu__denials_destroy(&q);
}

#define DENIAL_PRODUCERS 2
#define DENIAL_PUSHES 20000

static void *denial_producer(void *arg)
{
    nu__denials_t *q = arg;

    for (int i = 0; i < DENIAL_PUSHES; i++)
        nu__denials_push(q, "p", i, 403, "not_in_policy", "d");
    return NULL;
}

static void test_net_denials_concurrent(void **state)
{
    static nu__denials_t q;
    static nu_net_denial_t out[64];
    pthread_t threads[DENIAL_PRODUCERS];
    uint64_t taken = 0;
    uint64_t reported = 0;

    (void)state;
    nu__denials_init(&q);
    for (int i = 0; i < DENIAL_PRODUCERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, denial_producer, &q), 0);

    /* Drain while the producers push; afterwards every push is either
     * taken or counted as dropped. */
    for (int round = 0; round < 2000; round++) {
        size_t n = nu__denials_take(&q, out, 64);
        for (size_t i = 0; i < n; i++)
            reported += out[i].dropped_before;
        taken += n;
    }
    for (int i = 0; i < DENIAL_PRODUCERS; i++)
        pthread_join(threads[i], NULL);
    for (size_t n; (n = nu__denials_take(&q, out, 64)) > 0;) {
        for (size_t i = 0; i < n; i++)
            reported += out[i].dropped_before;
        taken += n;
    }

    assert_int_equal(taken + nu__denials_dropped(&q),
                     (uint64_t)DENIAL_PRODUCERS * DENIAL_PUSHES);
    /* Drops after the last queued entry have no entry to ride on. */
    assert_true(reported <= nu__denials_dropped(&q));
    nu__denials_destroy(&q);
}

/* --- tests: options (no root needed up to the privilege check) ------- */

static void test_net_prepare_no_egress(void **state)
{
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };

    (void)state;
    nu_perm_init_bottom(&perm);
    assert_int_equal(nu_net_prepare(&perm, NULL, &net, &err), NU_EINVAL);
    assert_null(net);
    assert_non_null(strstr(err.msg, "allows no destination"));
    nu_perm_free(&perm);
}

static void test_net_prepare_bad_range(void **state)
{
    static const char *const ranges[] = {
        "10.213.0.0", "10.213.0.0/7", "10.213.0.0/29", "10.213.0.1/16",
        "300.1.0.0/16", "10.213.0.0/16x", "fd00::/64", "",
    };
    nu_net_opts_t opts;
    nu_perm_t perm;
    nu_err_t err = { 0 };

    (void)state;
    perm_egress(&perm);
    nu_net_opts_init(&opts);
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        nu_net_t *net = NULL;
        opts.range = ranges[i];
        if (nu_net_prepare(&perm, &opts, &net, &err) != NU_EINVAL)
            fail_msg("range '%s' was accepted", ranges[i]);
        assert_null(net);
        assert_non_null(strstr(err.msg, "invalid range"));
    }
    nu_perm_free(&perm);
}

static void test_net_prepare_route_collision(void **state)
{
    nu_net_opts_t opts;
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    perm_egress(&perm);
    nu_net_opts_init(&opts);
    opts.range = "10.250.0.0/16";   /* contains the test network's route */
    assert_int_equal(nu_net_prepare(&perm, &opts, &net, &err), NU_EEXIST);
    assert_null(net);
    assert_non_null(strstr(err.msg, "10.250.0.0/24"));
    nu_perm_free(&perm);
}

static void test_net_range_from_environment(void **state)
{
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };

    (void)state;
    perm_egress(&perm);
    setenv("NUCLEUS_NET_RANGE", "10.213.0.0/7", 1);
    assert_int_equal(nu_net_prepare(&perm, NULL, &net, &err), NU_EINVAL);
    assert_non_null(strstr(err.msg, "10.213.0.0/7"));
    if (geteuid() == 0 && world.ready) {
        /* Contains the test network's route: the error names the fix. */
        setenv("NUCLEUS_NET_RANGE", "10.250.0.0/16", 1);
        assert_int_equal(nu_net_prepare(&perm, NULL, &net, &err), NU_EEXIST);
        assert_non_null(strstr(err.msg, "NUCLEUS_NET_RANGE"));
    }
    unsetenv("NUCLEUS_NET_RANGE");
    assert_null(net);
    nu_perm_free(&perm);
}

static void test_net_lock_links_skipped(void **state)
{
    char victim[64];
    struct stat st;
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };

    (void)state;
    require_root();
    snprintf(victim, sizeof victim, "/tmp/nu-lock-victim-%d", (int)getpid());
    unlink(victim);
    assert_int_equal(sh("mkdir -p -m 0700 /run/nucleus/net"), 0);

    /* Plant links in the free slots among the first eight.  Slots that
     * have a file, perhaps another owner's, are left alone. */
    bool planted[8] = { false };
    for (int n = 0; n < 8; n++) {
        char path[64];
        snprintf(path, sizeof path, "/run/nucleus/net/nucleus-net-%d.lock", n);
        if (lstat(path, &st) != 0)
            planted[n] = symlink(victim, path) == 0;
    }

    perm_egress(&perm);
    if (nu_net_prepare(&perm, NULL, &net, &err) != NU_OK)
        fail_msg("prepare failed: %s", err.msg);
    if (net->index < 8 && planted[net->index])
        fail_msg("slot %u was taken through a planted link", net->index);
    assert_int_not_equal(stat(victim, &st), 0);
    nu_net_close(net);

    for (int n = 0; n < 8; n++) {
        char path[64];
        snprintf(path, sizeof path, "/run/nucleus/net/nucleus-net-%d.lock", n);
        if (planted[n])
            unlink(path);
    }

    assert_int_equal(lstat("/run/nucleus/net", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 022, 0);
    nu_perm_free(&perm);
}

static void test_net_uplink_forwarding(void **state)
{
    pid_t child;
    int status;

    (void)state;
    require_root();
    /* In a new network namespace: a veth as the uplink, with a default
     * route through it.  Nothing is sent. */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char ifname[32];
        nu_err_t err = { 0 };

        if (unshare(CLONE_NEWNET) != 0)
            _exit(10);
        if (nu_net_uplink_check(ifname, sizeof ifname, &err) != NU_ENOENT)
            _exit(11);
        if (sh("ip link add nutup0 type veth peer name nutup1 && "
               "ip link set nutup1 up && ip link set nutup0 up && "
               "ip addr add 192.0.2.1/24 dev nutup0 && "
               "ip route add default via 192.0.2.2 && "
               "sysctl -qw net.ipv4.conf.nutup0.forwarding=0") != 0)
            _exit(12);
        if (nu_net_uplink_check(ifname, sizeof ifname, &err) != NU_EPOLICY ||
            strcmp(ifname, "nutup0") != 0 ||
            strstr(err.msg, "net.ipv4.conf.nutup0.forwarding=1") == NULL)
            _exit(13);
        if (sh("sysctl -qw net.ipv4.conf.nutup0.forwarding=1") != 0)
            _exit(14);
        if (nu_net_uplink_check(ifname, sizeof ifname, &err) != NU_OK)
            _exit(15);
        _exit(0);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- tests: setup and teardown ---------------------------------------- */

static void test_net_attach_and_close(void **state)
{
    pod_t pod;
    char out[4096];
    char name[IF_NAMESIZE];
    unsigned index;

    (void)state;
    require_root();
    pod_open(&pod, 0);
    index = if_nametoindex(nu_net_host_ifname(pod.net));
    assert_int_not_equal(index, 0);
    assert_int_equal(pod_sh(&pod, out, sizeof out, "cat /proc/net/dev"), 0);
    assert_non_null(strstr(out, "nup"));
    pod_close(&pod);
    /* By index: another process may reuse the name at once. */
    assert_null(if_indextoname(index, name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_denials_order),
        cmocka_unit_test(test_net_denials_full),
        cmocka_unit_test(test_net_denials_concurrent),
        cmocka_unit_test(test_net_prepare_no_egress),
        cmocka_unit_test(test_net_prepare_bad_range),
        cmocka_unit_test(test_net_prepare_route_collision),
        cmocka_unit_test(test_net_range_from_environment),
        cmocka_unit_test(test_net_lock_links_skipped),
        cmocka_unit_test(test_net_uplink_forwarding),
        cmocka_unit_test(test_net_attach_and_close),
        cmocka_unit_test(test_net_allow_everything),
        cmocka_unit_test(test_net_direct_allowed),
        cmocka_unit_test(test_net_direct_other_address),
        cmocka_unit_test(test_net_direct_other_port),
        cmocka_unit_test(test_net_dns_blocked),
        cmocka_unit_test(test_net_icmp_and_raw_blocked),
        cmocka_unit_test(test_net_ipv6_disabled),
        cmocka_unit_test(test_net_host_unreachable),
        cmocka_unit_test(test_net_metadata_rule),
        cmocka_unit_test(test_net_proxy_http_allowed),
        cmocka_unit_test(test_net_proxy_https_allowed),
        cmocka_unit_test(test_net_proxy_name_denied),
        cmocka_unit_test(test_net_proxy_ip_encodings),
        cmocka_unit_test(test_net_proxy_forbidden_addresses),
        cmocka_unit_test(test_net_proxy_host_spoofing),
        cmocka_unit_test(test_net_proxy_sni_mismatch),
        cmocka_unit_test(test_net_proxy_redirect_out),
        cmocka_unit_test(test_net_proxy_private_name),
        cmocka_unit_test(test_net_addr_broad_allow),
        cmocka_unit_test(test_net_proxy_duplicate_host),
        cmocka_unit_test(test_net_proxy_foreign_peer),
        cmocka_unit_test(test_net_proxy_connection_cap),
        cmocka_unit_test(test_net_proxy_counters),
        cmocka_unit_test(test_net_proxy_denied_list),
        cmocka_unit_test(test_net_proxy_denial_events),
        cmocka_unit_test(test_net_fetch_allowed),
        cmocka_unit_test(test_net_fetch_denied_hosts),
        cmocka_unit_test(test_net_fetch_redirects),
        cmocka_unit_test(test_net_fetch_size_cap),
        cmocka_unit_test(test_net_fetch_proxy_errors),
        cmocka_unit_test(test_net_fetch_tls_verified),
        cmocka_unit_test(test_net_check_clean),
        cmocka_unit_test(test_net_drift_pod_rule),
        cmocka_unit_test(test_net_drift_host_rule),
        cmocka_unit_test(test_net_check_failure_not_drift),
        cmocka_unit_test(test_net_restrict_running_pod),
        cmocka_unit_test(test_net_sweep_after_sigkill),
    };

    return cmocka_run_group_tests(tests, world_up, world_teardown);
}
