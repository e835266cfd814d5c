#!/usr/bin/env python3
"""Pod networking end to end, through real pods and the tool-call pipeline.

The test builds its own "internet": a network namespace ntpnet<pid> joined
to the host by the veth ntpI<pid>, with

    10.252.0.1          host side; a host service on :8081
    10.252.0.2          HTTP on :8080 and :9090, HTTPS (test CA) on :8443,
                        a DNS responder on :53 (UDP and TCP)
    10.252.0.3          HTTP on :8080 (never allowed)
    fd5a:6e74::2        HTTP on :8080 over IPv6

The profile allows the name allowed.test (10.252.0.2) and the address
10.252.0.2:8080.  Pods are driven by `nucleus run pod_network.lua PHASE`
and `nucleus exec`, each in a private mount namespace whose /etc/hosts
maps allowed.test and blocked.test, so no name is ever looked up in DNS.
Only loopback, the host side of the veth and the test namespace are
contacted.  Every blocked case has a control: the same destination is
reachable from the host.

The test namespace has no default route.  Python's http.server calls
socket.getfqdn() on its address before it listens, and with a route to the
host the reverse lookup goes to the resolver of /etc/resolv.conf and waits
out glibc's timeouts (2 x 5 s) before the server accepts anything.
Without the route the lookup fails at once.

Needs root (CAP_NET_ADMIN); skips otherwise.
"""

import errno
import fcntl
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("NU_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("NU_BIN", "build/dev/nucleus"))
PID = os.getpid()
NS = "ntpnet%d" % PID
VETH = "ntpI%d" % PID
SUBNET = "10.252.0.0/24"
HOST_ADDR, ALLOWED_ADDR, BLOCKED_ADDR = "10.252.0.1", "10.252.0.2", "10.252.0.3"
V6_PREFIX = "fd5a:6e74::"
HELLO = "hello from 10.252.0.2:8080 host=allowed.test:8080\n"
# The pods' drift check period (nu_net_opts_t.check_interval_ms default).
CHECK_INTERVAL_S = 1.0
# Time a drift kill may take beyond the interval: one read-back of the
# rules (iptables-save of two namespaces) on a loaded 2-core machine.
DRIFT_SLACK_S = 1.5
LOCK = "/run/lock/nucleus-test-net.lock"

PROFILE = """\
-- Egress to allowed.test by name and to 10.252.0.2:8080 directly.  The
-- address is private, so the proxy reaches allowed.test:8443 only because
-- network.allow names it too.  Runs are approved by the hook, which leaves
-- web_fetch approvals pending.
return nucleus.profile {
  name = "pod-network-test",
  capabilities = {
    read_files = "always", web_fetch = "always", run_bash = "always",
  },
  paths = { allow = nucleus.ALL },
  commands = { allow = nucleus.ALL },
  network = {
    allow = { "10.252.0.2:8080", "10.252.0.2:8443" },
    domains = { "allowed.test" }, trusted = {},
  },
  approve = function(request, ctx)
    if request.call.tool == "run" then return "approve" end
    return "ask"
  end,
}
"""

# The pod-side probe: exit 0 "connected"/"answered", 1 "refused" (a reset
# or ICMP error came back, so the packet got out), 3 "blocked" (dropped:
# a timeout, EPERM from the filter, or no route), 2 anything else.
PROBE = r'''
import errno, os, socket, struct, sys

BLOCKED = (errno.EPERM, errno.EACCES, errno.ENETUNREACH, errno.EHOSTUNREACH,
           errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)

def query():
    return struct.pack(">HHHHHH", 0x4e55, 0x0100, 1, 0, 0, 0) + \
        b"\x07allowed\x04test\x00" + struct.pack(">HH", 1, 1)

def attempt(fn):
    try:
        fn()
    except socket.timeout:
        print("blocked: timed out"); sys.exit(3)
    except ConnectionRefusedError as e:
        print("refused: %s" % e); sys.exit(1)
    except OSError as e:
        if e.errno in BLOCKED:
            print("blocked: %s" % e); sys.exit(3)
        print("error: %s" % e); sys.exit(2)

def tcp(family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((host, int(port)))
    print("connected")

def dns_udp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, 53))
    s.send(query())
    s.recv(512)
    print("answered")

def dns_tcp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((host, 53))
    q = query()
    s.sendall(struct.pack(">H", len(q)) + q)
    s.recv(512)
    print("answered")

def proxy_get(url):
    # A GET through $HTTP_PROXY, written by hand so that the pipeline's
    # command check (which reads curl's URL) does not see the target.
    proxy = os.environ["HTTP_PROXY"].split("//", 1)[1].rstrip("/")
    host, port = proxy.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    target = url.split("//", 1)[1].split("/", 1)[0]
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (url, target)).encode())
    print(s.recv(4096).decode("latin-1").split("\r\n", 1)[0])

def proxy_raw(text):
    # Send text to $HTTP_PROXY as is and print the status line back.
    proxy = os.environ["HTTP_PROXY"].split("//", 1)[1].rstrip("/")
    host, port = proxy.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(text.encode().decode("unicode_escape").encode("latin-1"))
    print(s.recv(4096).decode("latin-1").split("\r\n", 1)[0])

def v6_addrs():
    # /proc/net/if_inet6: address ifindex prefix scope flags name; scope
    # 00 is global.
    if not os.path.exists("/proc/net/if_inet6"):
        return
    for line in open("/proc/net/if_inet6"):
        f = line.split()
        if f[3] == "00":
            print(f[0], f[5])

mode, args = sys.argv[1], sys.argv[2:]
if mode == "tcp":
    attempt(lambda: tcp(socket.AF_INET, *args))
elif mode == "tcp6":
    attempt(lambda: tcp(socket.AF_INET6, *args))
elif mode == "dns-udp":
    attempt(lambda: dns_udp(*args))
elif mode == "dns-tcp":
    attempt(lambda: dns_tcp(*args))
elif mode == "proxy-get":
    proxy_get(*args)
elif mode == "proxy-raw":
    proxy_raw(*args)
elif mode == "v6-addrs":
    v6_addrs()
else:
    sys.exit(2)
'''


# --- servers, run as `test_pod_network.py --serve KIND ...` ---------------

def serve(kind, addr, port, log, *tls):
    """Run one test server in the foreground (inside the test namespace)."""
    import http.server
    import socketserver

    logf = open(log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            logf.write("%s %s %s\n" % (self.command, self.path,
                                       self.headers.get("Host")))
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.split("=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = ("hello from %s:%d host=%s\n" % (
                addr, int(port), self.headers.get("Host"))).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

        def server_bind(self):
            # HTTPServer.server_bind would call socket.getfqdn (a reverse
            # DNS lookup) before listen().
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = addr, int(port)

    if kind == "dns":
        serve_dns(addr, logf)
        return
    server = Server((addr, int(port)), Handler)
    if kind == "https":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def serve_dns(addr, logf):
    """Answer every DNS query on addr:53 (UDP and TCP) with one A record."""

    def answer(q):
        header = q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
        record = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + \
            socket.inet_aton(ALLOWED_ADDR)
        return header + q[12:] + record

    def tcp_loop():
        t = socket.socket()
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((addr, 53))
        t.listen(8)
        while True:
            c, _ = t.accept()
            c.settimeout(2)
            try:
                n = struct.unpack(">H", c.recv(2))[0]
                a = answer(c.recv(n))
                logf.write("tcp query\n")
                c.sendall(struct.pack(">H", len(a)) + a)
            except (OSError, struct.error):
                pass
            c.close()

    threading.Thread(target=tcp_loop, daemon=True).start()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((addr, 53))
    while True:
        q, peer = u.recvfrom(512)
        logf.write("udp query\n")
        u.sendto(answer(q), peer)


# --- helpers ---------------------------------------------------------------

failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok - %s" % name, flush=True)
    else:
        failures += 1
        print("not ok - %s: %s" % (name, detail), flush=True)
    return cond


def sh(cmd, check_rc=True, **kw):
    """Run a command line (a list) and return its stdout."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if check_rc and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                   p.stderr.strip()))
    return p.stdout


def wait_until(fn, timeout, step=0.02):
    """Poll fn until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def tcp_open(family, addr, port, timeout=1.0):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((addr, port))
        return True
    except OSError:
        return False


def host_get(url, *curl_args):
    """GET url from the host, bypassing any proxy; returns (rc, body)."""
    p = subprocess.run(["curl", "-sS", "-m", "5", "--noproxy", "*"] +
                       list(curl_args) + [url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout


def dns_answered(addr, use_tcp):
    q = struct.pack(">HHHHHH", 0x4e55, 0x0100, 1, 0, 0, 0) + \
        b"\x07allowed\x04test\x00" + struct.pack(">HH", 1, 1)
    try:
        if use_tcp:
            with socket.create_connection((addr, 53), timeout=2) as s:
                s.sendall(struct.pack(">H", len(q)) + q)
                return len(s.recv(512)) > 2
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(q, (addr, 53))
            return len(s.recv(512)) > 12
    except OSError:
        return False


# --- the test internet -----------------------------------------------------

class World:
    def __init__(self, root):
        self.root = root
        self.servers = []
        self.logs = {}

    def up(self):
        sh(["ip", "netns", "add", NS])
        sh(["ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0",
            "netns", NS])
        sh(["ip", "addr", "add", HOST_ADDR + "/24", "dev", VETH])
        sh(["ip", "-6", "addr", "add", V6_PREFIX + "1/64", "dev", VETH, "nodad"])
        sh(["ip", "link", "set", VETH, "up"])
        # Replies to the pods' masqueraded traffic arrive here and are
        # forwarded to the pod's veth.
        with open("/proc/sys/net/ipv4/conf/%s/forwarding" % VETH, "w") as f:
            f.write("1")
        for a in (ALLOWED_ADDR, BLOCKED_ADDR):
            sh(["ip", "-n", NS, "addr", "add", a + "/24", "dev", "eth0"])
        sh(["ip", "-n", NS, "-6", "addr", "add", V6_PREFIX + "2/64", "dev",
            "eth0", "nodad"])
        sh(["ip", "-n", NS, "link", "set", "eth0", "up"])
        sh(["ip", "-n", NS, "link", "set", "lo", "up"])

        self.make_ca()
        cert = (os.path.join(self.root, "srv.pem"), os.path.join(self.root, "srv.key"))
        self.start("allowed", "http", ALLOWED_ADDR, 8080)
        self.start("allowed9090", "http", ALLOWED_ADDR, 9090)
        self.start("blocked", "http", BLOCKED_ADDR, 8080)
        self.start("tls", "https", ALLOWED_ADDR, 8443, *cert)
        self.start("v6", "http", V6_PREFIX + "2", 8080)
        self.start("dns", "dns", ALLOWED_ADDR, 53)
        self.start("hostsvc", "http", HOST_ADDR, 8081, in_host=True)

        ready = [
            (socket.AF_INET, ALLOWED_ADDR, 8080), (socket.AF_INET, ALLOWED_ADDR, 9090),
            (socket.AF_INET, BLOCKED_ADDR, 8080), (socket.AF_INET, ALLOWED_ADDR, 8443),
            (socket.AF_INET6, V6_PREFIX + "2", 8080), (socket.AF_INET, ALLOWED_ADDR, 53),
            (socket.AF_INET, HOST_ADDR, 8081),
        ]
        for family, addr, port in ready:
            # Poll: the servers need a few hundred ms to start, more under load.
            if not wait_until(lambda: tcp_open(family, addr, port), 20, 0.05):
                raise RuntimeError("test server %s:%d did not start" % (addr, port))

    def make_ca(self):
        r = self.root
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", r + "/ca.key",
            "-out", r + "/ca.pem", "-days", "1", "-subj", "/CN=nucleus-pod-network-test-ca"])
        sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", r + "/srv.key", "-out", r + "/srv.csr", "-subj",
            "/CN=allowed.test"])
        with open(r + "/ext", "w") as f:
            f.write("subjectAltName=DNS:allowed.test\n")
        sh(["openssl", "x509", "-req", "-in", r + "/srv.csr", "-CA", r + "/ca.pem",
            "-CAkey", r + "/ca.key", "-CAcreateserial", "-out", r + "/srv.pem",
            "-days", "1", "-extfile", r + "/ext"])

    def start(self, name, kind, addr, port, *tls, in_host=False):
        log = os.path.join(self.root, name + ".log")
        open(log, "w").close()
        self.logs[name] = log
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind, addr,
               str(port), log] + list(tls)
        if not in_host:
            cmd = ["ip", "netns", "exec", NS] + cmd
        self.servers.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL))

    def requests(self, name):
        with open(self.logs[name]) as f:
            return f.read().splitlines()

    def down(self):
        for p in self.servers:
            if p.poll() is None:
                p.kill()
            p.wait()
        subprocess.run(["ip", "link", "del", VETH], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)


# --- nucleus processes -----------------------------------------------------

class Nucleus:
    """One nucleus process in a private mount namespace with the test's
    /etc/hosts.  unshare and sh exec, so self.proc.pid is nucleus's pid."""

    def __init__(self, env, hosts, args):
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$0" /etc/hosts && exec "$@"', hosts, BIN] + args,
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout=60):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read()[-2000:]

    def finish(self, timeout=60):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class Test:
    def __init__(self, root, world):
        self.root = root
        self.world = world
        self.home = os.path.join(root, "home")
        self.workspace = os.path.join(root, "ws")
        self.profile = os.path.join(root, "profile.lua")
        self.hosts = os.path.join(root, "hosts")
        os.makedirs(self.home)
        os.makedirs(self.workspace)
        with open(self.profile, "w") as f:
            f.write(PROFILE)
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost\n%s allowed.test\n%s blocked.test\n"
                    % (ALLOWED_ADDR, BLOCKED_ADDR))
        with open(os.path.join(self.workspace, "notes.txt"), "w") as f:
            f.write("private notes\n")
        with open(os.path.join(self.workspace, "probe.py"), "w") as f:
            f.write(PROBE)
        shutil.copy(os.path.join(root, "ca.pem"), self.workspace)
        self.env = dict(os.environ, NUCLEUS_HOME=self.home)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "all_proxy", "ALL_PROXY"):
            self.env.pop(k, None)

    def nucleus(self, *args):
        return Nucleus(self.env, self.hosts, list(args))

    def phase(self, name, on_wait=None, expect_rc=0):
        """Run pod_network.lua PHASE; relay its checks; return its info."""
        n = self.nucleus("run", os.path.join(HERE, "pod_network.lua"), name,
                         self.profile, self.workspace)
        info = {"proc": n}
        done = False
        failed_before = failures
        while True:
            line = n.next_line()
            if line is None:
                break
            if line.startswith("ok - ") or line.startswith("not ok - "):
                check("%s: %s" % (name, line.split(" - ", 1)[1].split(": ")[0]),
                      line.startswith("ok - "), line.split(": ", 1)[-1])
            elif line.startswith("info "):
                _, key, value = line.split(" ", 2)
                info[key] = value
            elif line.startswith("wait "):
                if on_wait is not None:
                    on_wait(info)
                if n.proc.poll() is None:
                    n.proc.stdin.write("go\n")
                    n.proc.stdin.flush()
            elif line == "done":
                done = True
        rc = n.finish()
        if failures > failed_before:
            for line in n.stderr_text().splitlines()[-15:]:
                print("#   " + line)
        if expect_rc is not None:
            check("%s: phase completes" % name, done and rc == expect_rc,
                  "exit %s, stderr: %s" % (rc, n.stderr_text()))
        info["rc"] = rc
        return info

    def audit_show(self, pod_id):
        return sh([BIN, "audit", "show", "--pod", pod_id], env=self.env)


# --- what a pod owner leaves on the host ------------------------------------

def iptables_lines():
    return sh(["iptables-save"]).splitlines()


def owned_objects(owner):
    """Return the host objects tagged with owner's pid, as lists: rules,
    the chains they jump to, and links (veths)."""
    tag = "nucleus-%d-" % owner
    rules = [l for l in iptables_lines() if tag in l]
    chains = sorted(set(re.findall(r"-j (NU[FI]\d+)", "\n".join(rules))))
    links = []
    for line in sh(["ip", "-o", "-d", "link", "show"]).splitlines():
        if ("alias " + tag) in line:
            links.append(line.split(":")[1].strip().split("@")[0])
    return {"rules": rules, "chains": chains, "links": links}


def routes_of(links):
    out = []
    for link in links:
        for line in sh(["ip", "-o", "route", "show", "dev", link],
                       check_rc=False).splitlines():
            out.append((line.split()[0], link))
    return out


def link_alias(name):
    """The alias of link name, "" when it has none, None when it is gone."""
    p = subprocess.run(["ip", "-o", "-d", "link", "show", "dev", name],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0:
        return None
    m = re.search(r" alias (\S+)", p.stdout)
    return m.group(1) if m else ""


def leftovers(owner, seen):
    """What remains of owner's objects; seen is a snapshot taken while its
    pod was alive.  Once the owner is gone, another owner on this machine
    may reuse the same index (chain and link names), so a name counts only
    when no other owner's tag claims it."""
    tag = "nucleus-%d-" % owner
    now = owned_objects(owner)
    rest = now["rules"] + ["link " + l for l in now["links"]]
    saved = iptables_lines()
    for chain in seen["chains"]:
        declared = any(l.startswith(":" + chain + " ") for l in saved)
        claimed = any(("-j " + chain) in l and "--comment nucleus-" in l
                      and tag not in l for l in saved)
        if declared and not claimed:
            rest.append("chain " + chain)
    routes = sh(["ip", "-o", "route", "show"]).splitlines()
    for prefix, link in seen.get("routes", []):
        alias = link_alias(link)
        if alias is not None and (alias == "" or alias.startswith(tag)) and \
                any(r.split()[0] == prefix for r in routes):
            rest.append("route %s dev %s" % (prefix, link))
    return rest


def snapshot(owner):
    seen = owned_objects(owner)
    seen["routes"] = routes_of(seen["links"])
    return seen


def pod_init(owner):
    """The topmost descendant of owner in another network namespace."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    own_ns = os.readlink("/proc/%d/ns/net" % owner)
    todo = list(children.get(owner, []))
    while todo:
        p = todo.pop(0)
        try:
            if os.readlink("/proc/%d/ns/net" % p) != own_ns:
                return p
        except OSError:
            continue
        todo += children.get(p, [])
    return None


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# --- the cases ---------------------------------------------------------------

def test_controls(world):
    """Everything the pods must not reach is reachable from the host."""
    check("control: allowed server", host_get("http://%s:8080/" % ALLOWED_ADDR)[0] == 0)
    check("control: blocked server", host_get("http://%s:8080/" % BLOCKED_ADDR)[0] == 0)
    check("control: allowed address other port",
          host_get("http://%s:9090/" % ALLOWED_ADDR)[0] == 0)
    check("control: host service", host_get("http://%s:8081/" % HOST_ADDR)[0] == 0)
    check("control: IPv6 server", host_get("http://[%s2]:8080/" % V6_PREFIX, "-g")[0] == 0)
    check("control: DNS over UDP answered", dns_answered(ALLOWED_ADDR, False))
    check("control: DNS over TCP answered", dns_answered(ALLOWED_ADDR, True))
    rc, body = host_get("https://allowed.test:8443/", "--cacert",
                        os.path.join(world.root, "ca.pem"), "--resolve",
                        "allowed.test:8443:" + ALLOWED_ADDR)
    check("control: HTTPS server", rc == 0 and "8443" in body, body)


def test_fetch(t):
    before = {n: len(t.world.requests(n)) for n in ("blocked", "allowed9090")}
    info = t.phase("fetch")
    check("fetch: no request reached the blocked server",
          len(t.world.requests("blocked")) == before["blocked"],
          t.world.requests("blocked"))
    check("fetch: no request reached the allowed address's other port",
          len(t.world.requests("allowed9090")) == before["allowed9090"])
    check("fetch: redirect target fetched once",
          t.world.requests("allowed").count("GET /after allowed.test:8080") == 1,
          t.world.requests("allowed"))
    if "pid" in info:
        check("fetch: nothing left after close",
              leftovers(int(info["pid"]), {"chains": [], "links": []}) == [])


def test_run(t):
    before = len(t.world.requests("blocked")) + len(t.world.requests("hostsvc"))
    info = t.phase("run")
    after = len(t.world.requests("blocked")) + len(t.world.requests("hostsvc"))
    check("run: blocked server and host service saw no request", after == before)
    if "pid" in info:
        check("run: nothing left after close",
              leftovers(int(info["pid"]), {"chains": [], "links": []}) == [])
    test_run_audit(t, info)


def export_events(t, pod_id):
    out = sh([BIN, "audit", "export", "--pod", pod_id], env=t.env)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    for e in events:
        if isinstance(e.get("args"), str):
            e["args"] = json.loads(e["args"])
    return events


def test_run_audit(t, info):
    """Each proxy refusal of the run phase is its own network_denied event,
    after the call that caused it, and the chain still verifies."""
    pod_id = info.get("pod", "?")
    events = export_events(t, pod_id)
    denied = [e for e in events if e.get("type") == "network_denied"]
    by_dest = {}
    for e in denied:
        args = e.get("args") or {}
        by_dest.setdefault(args.get("destination"), []).append(args)
    for dest, reason, status in (("blocked.test:8080", "not_in_policy", 403),
                                 ("10.252.0.3:8080", "not_in_policy", 403),
                                 ("10.252.0.1:8081", None, 403),
                                 ("?:0", "bad_request", 400)):
        found = [a for a in by_dest.get(dest, [])
                 if a.get("status") == status
                 and (reason is None or a.get("reason") == reason)]
        check("run audit: network_denied for %s" % dest, len(found) == 1,
              json.dumps(denied)[-1500:])
    check("run audit: every refusal has a time",
          denied and all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                                  (e.get("args") or {}).get("time", ""))
                         for e in denied), json.dumps(denied)[-800:])
    check("run audit: refusals are decided deny, kind network_denied",
          denied and all(e.get("decision") == "deny"
                         and e.get("kind") == "network_denied"
                         and e.get("reason") for e in denied),
          json.dumps(denied)[-800:])

    # The refusal follows the run call that caused it.
    seq_call = [e.get("seq") for e in events if e.get("type") == "tool_call"
                and "proxy-get http://blocked.test" in json.dumps(e.get("args"))]
    seq_denied = [e.get("seq") for e in denied
                  if (e.get("args") or {}).get("destination") == "blocked.test:8080"]
    check("run audit: refusal recorded after its call",
          len(seq_call) == 1 and len(seq_denied) == 1
          and seq_denied[0] > seq_call[0], "%s %s" % (seq_call, seq_denied))

    shown = t.audit_show(pod_id)
    check("run audit: shown by audit show",
          shown.count("network_denied") >= len(denied) >= 4, shown[-800:])
    close = [e for e in events if e.get("type") == "pod_close"]
    net = ((close[-1].get("args") or {}).get("network") or {}) if close else {}
    check("run audit: pod_close reports no dropped refusals",
          net.get("denied_events_dropped") == 0, json.dumps(close)[-500:])
    rc = subprocess.run([BIN, "audit", "verify"], env=t.env,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True)
    check("run audit: chain verifies", rc.returncode == 0, rc.stdout[-500:])


def test_attenuate(t):
    before = len(t.world.requests("allowed"))
    info = t.phase("attenuate")
    after = t.world.requests("allowed")[before:]
    check("attenuate: one direct connection, no request after",
          not any("GET" in line for line in after), after)
    audit = t.audit_show(info.get("pod", "?"))
    close = [l for l in audit.splitlines() if "pod_close" in l]
    check("attenuate: pod_close lists the refused destination",
          close and "10.252.0.3:8080" in close[-1]
          and "denied_destinations" in close[-1], audit[-800:])


def test_exec(t):
    n = t.nucleus("exec", "--profile", t.profile, "--workspace", t.workspace,
                  "--timeout", "20", "--", "curl", "-sS", "-m", "5",
                  "http://allowed.test:8080/")
    out = []
    while (line := n.next_line()) is not None:
        out.append(line + "\n")
    rc = n.finish()
    check("exec: curl via proxy", rc == 0 and "".join(out) == HELLO,
          "exit %s, output %r, stderr %s" % (rc, out, n.stderr_text()))
    check("exec: nothing left after exit",
          leftovers(n.proc.pid, {"chains": [], "links": []}) == [])

    n = t.nucleus("exec", "--profile", t.profile, "--workspace", t.workspace,
                  "--timeout", "20", "--", "curl", "-sS", "-m", "3", "--noproxy", "*",
                  "http://%s:8080/" % BLOCKED_ADDR)
    while n.next_line() is not None:
        pass
    rc = n.finish()
    # The pipeline reads curl's URL and denies the call (exit 126).
    check("exec: curl to non-allowed address denied", rc == 126,
          "exit %s, stderr %s" % (rc, n.stderr_text()))

    # The probe's target is invisible to the pipeline, so the filter has to
    # stop it: exit 3 means the connection was dropped.
    n = t.nucleus("exec", "--profile", t.profile, "--workspace", t.workspace,
                  "--timeout", "20", "--", "/usr/bin/python3", "/workspace/probe.py",
                  "tcp", BLOCKED_ADDR, "8080")
    out = []
    while (line := n.next_line()) is not None:
        out.append(line)
    rc = n.finish()
    check("exec: direct connect to non-allowed address blocked", rc == 3,
          "exit %s, output %r, stderr %s" % (rc, out, n.stderr_text()))


def start_time(pid):
    """Return field 22 of /proc/PID/stat, the start time in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def inject_host_drift(info, state):
    """Delete the pod's FORWARD jump in the host's filter table."""
    owner = int(info["pid"])
    state["seen"] = snapshot(owner)
    state["init"] = pod_init(owner)
    # Sweeps by other processes remove rules whose tag does not match a
    # live process's start time, so the tag must carry exactly that.
    tags = set(re.findall(r"nucleus-%d-(\d+)" % owner, "\n".join(state["seen"]["rules"])))
    state["tags"] = (tags, start_time(owner))
    jumps = [l for l in sh(["iptables", "-S", "FORWARD"]).splitlines()
             if ("nucleus-%d-" % owner) in l]
    if not jumps:
        state["error"] = "no tagged FORWARD rule of owner %d" % owner
        return
    args = shlex.split(jumps[0])
    args[0] = "-D"
    state["t0"] = time.monotonic()
    sh(["iptables"] + args)
    wait_for_kill(state)


def inject_pod_drift(info, state):
    """Insert an ACCEPT for the blocked server into the pod's OUTPUT."""
    owner = int(info["pid"])
    state["seen"] = snapshot(owner)
    state["init"] = pod_init(owner)
    if state["init"] is None:
        state["error"] = "pod init of owner %d not found" % owner
        return
    state["t0"] = time.monotonic()
    sh(["nsenter", "--net=/proc/%d/ns/net" % state["init"], "iptables", "-I",
        "OUTPUT", "1", "-d", BLOCKED_ADDR + "/32", "-j", "ACCEPT"])
    wait_for_kill(state)


def wait_for_kill(state):
    init = state["init"]
    if init is None:
        state["error"] = "pod init not found"
        return
    if wait_until(lambda: gone(init), CHECK_INTERVAL_S + DRIFT_SLACK_S + 3):
        state["elapsed"] = time.monotonic() - state["t0"]


def test_drift(t, phase, inject, where):
    state = {}
    info = t.phase(phase, on_wait=lambda i: inject(i, state))
    if "error" in state:
        check("%s: drift injected" % phase, False, state["error"])
        return
    if "tags" in state:
        tags, expected = state["tags"]
        check("%s: owner tag carries the start time" % phase, tags == {expected},
              "tags %s, start time %s" % (tags, expected))
    elapsed = state.get("elapsed")
    print("# %s: pod killed %s after the %s rule change" % (
        phase, "%.0f ms" % (elapsed * 1000) if elapsed else "never", where))
    check("%s: pod killed within the check interval" % phase,
          elapsed is not None and elapsed <= CHECK_INTERVAL_S + DRIFT_SLACK_S,
          "elapsed %s s" % elapsed)
    audit = t.audit_show(info.get("pod", "?"))
    check("%s: drift audited" % phase, "network_drift" in audit, audit[-500:])
    check("%s: nothing left after close" % phase,
          leftovers(int(info["pid"]), state["seen"]) == [],
          leftovers(int(info["pid"]), state["seen"]))


def test_sigkill(t):
    state = {}

    def kill_owner(info):
        owner = int(info["pid"])
        state["owner"] = owner
        state["seen"] = snapshot(owner)
        state["init"] = pod_init(owner)
        os.kill(owner, signal.SIGKILL)

    t.phase("hold", on_wait=kill_owner, expect_rc=None)
    owner, seen = state.get("owner"), state.get("seen")
    if owner is None:
        check("sigkill: owner started", False, "no pid from the hold phase")
        return
    check("sigkill: owner had a veth, rules and a route",
          seen["links"] and seen["rules"] and seen["routes"], seen)
    check("sigkill: pod init dies with its owner",
          state["init"] is not None and wait_until(lambda: gone(state["init"]), 5))
    check("sigkill: veth goes with the pod's namespace",
          wait_until(lambda: not owned_objects(owner)["links"], 5),
          owned_objects(owner)["links"])

    # The next owner's first nu_net_prepare sweeps what the dead one left.
    info = t.phase("once")
    check("sigkill: sweep leaves nothing of the killed owner",
          leftovers(owner, seen) == [], leftovers(owner, seen))
    if "pid" in info:
        check("sigkill: sweeping owner leaves nothing",
              leftovers(int(info["pid"]), {"chains": [], "links": []}) == [])


def test_daemon(t):
    """web_fetch through `nucleus serve`, the JSON-RPC daemon."""
    sys.path.insert(0, os.path.join(SOURCE, "examples", "python"))
    from nucleus_client import Client, NucleusError

    home = os.path.join(t.root, "daemon-home")
    os.makedirs(home)
    sock = os.path.join(home, "nucleus.sock")
    n = t.nucleus("serve", "--home", home)
    if not wait_until(lambda: os.path.exists(sock) or n.proc.poll() is not None, 20):
        check("daemon: starts", False, n.stderr_text())
    if not os.path.exists(sock):
        n.finish(timeout=1)
        return

    with Client.unix(sock, timeout=60) as c:
        pod = c.pod_create(t.profile, t.workspace)["id"]
        result = c.tool_call(pod, {"tool": "web_fetch",
                                   "url": "http://allowed.test:8080/"})
        check("daemon: fetch allowed name",
              result.get("status") == 200 and result.get("body") == HELLO, result)
        seen = snapshot(n.proc.pid)
        check("daemon: pod has host rules", seen["rules"] and seen["links"], seen)
        try:
            result = c.tool_call(pod, {"tool": "web_fetch",
                                       "url": "http://blocked.test:8080/"})
            check("daemon: fetch non-allowed name denied", False, result)
        except NucleusError as e:
            check("daemon: fetch non-allowed name denied",
                  e.code == -32001 and (e.data or {}).get("kind") == "network_denied",
                  "%s %s" % (e.code, e.data))
        c.pod_close(pod)
        check("daemon: nothing left after pod close",
              leftovers(n.proc.pid, seen) == [], leftovers(n.proc.pid, seen))

    n.proc.send_signal(signal.SIGTERM)
    check("daemon: stops on SIGTERM", n.finish(timeout=20) == 0, n.stderr_text())


def preflight():
    if os.geteuid() != 0:
        print("skipped: needs root (CAP_NET_ADMIN) for network namespaces")
        sys.exit(77)
    if not os.access(BIN, os.X_OK):
        print("test_pod_network: missing %s (set NU_BIN or build first)" % BIN,
              file=sys.stderr)
        sys.exit(1)
    for tool in ("ip", "iptables", "iptables-save", "nsenter", "unshare", "mount",
                 "curl", "openssl"):
        if shutil.which(tool) is None:
            print("test_pod_network: missing the %s command" % tool, file=sys.stderr)
            sys.exit(1)
    routes = sh(["ip", "-o", "route", "show"]) + sh(["ip", "-o", "-6", "route", "show"])
    if "10.252.0." in routes or V6_PREFIX in routes:
        print("test_pod_network: %s or %s/64 is already routed on this host; "
              "the test needs both for its own namespace" % (SUBNET, V6_PREFIX),
              file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:])
        return 0
    preflight()
    # Runs from several build trees take turns with each other and with
    # the net unit test, which holds the same lock.
    lock = open(LOCK, "a")
    waited = time.monotonic()
    fcntl.flock(lock, fcntl.LOCK_EX)
    waited = time.monotonic() - waited
    if waited > 1:
        print("# waited %.0f s for %s" % (waited, LOCK))

    start = time.monotonic()
    root = tempfile.mkdtemp(prefix="nu-podnet-")
    world = World(root)
    try:
        world.up()
        t = Test(root, world)
        test_controls(world)
        test_fetch(t)
        test_run(t)
        test_attenuate(t)
        test_exec(t)
        test_drift(t, "drift", inject_host_drift, "host FORWARD")
        test_drift(t, "drift_close", inject_pod_drift, "pod OUTPUT")
        test_sigkill(t)
        test_daemon(t)
    finally:
        world.down()
        shutil.rmtree(root, ignore_errors=True)
    print("# %.1f s, %d failed" % (time.monotonic() - start, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
