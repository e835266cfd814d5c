#!/usr/bin/env python3
"""The nucleus daemon end to end: protocol conformance, multi-party
approvals, disconnects, SIGTERM and SIGHUP, unix peer checks, mTLS
authorization by SPIFFE ID, and a load of 64 concurrent clients.

Everything runs against a daemon this test starts on a temporary state
directory, over its unix socket and over TCP on 127.0.0.1 only.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("NU_SOURCE_DIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "examples", "python"))
from nucleus_client import Client, NucleusError  # noqa: E402

BIN = os.path.abspath(os.environ.get("NU_BIN", "build/dev/nucleus"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A nucleus serve process on its own state directory."""

    def __init__(self, root, *extra):
        self.home = os.path.join(root, "home")
        os.makedirs(self.home, exist_ok=True)
        self.sock = os.path.join(self.home, "nucleus.sock")
        self.log = open(os.path.join(root, "daemon.log"), "ab")
        self.proc = subprocess.Popen([BIN, "serve", "--home", self.home] + list(extra),
                                     stdout=self.log, stderr=self.log)
        for _ in range(100):
            if os.path.exists(self.sock):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("daemon did not start: " + open(self.log.name).read())

    def client(self):
        return Client.unix(self.sock, timeout=60)

    def raw(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.settimeout(30)
        return s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def raw_exchange(sock, data):
    """Send bytes, return the parsed response line."""
    sock.sendall(data)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf)


class DaemonTest(unittest.TestCase):
    extra_args = ()

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="nu-daemon-test.")
        self.ws = os.path.join(self.root, "ws")
        os.makedirs(os.path.join(self.ws, "inbox"))
        with open(os.path.join(self.ws, "notes.txt"), "w") as f:
            f.write("notes\n")
        with open(os.path.join(self.ws, ".env"), "w") as f:
            f.write("SECRET=1\n")
        self.daemon = Daemon(self.root, *self.extra_args)

    def tearDown(self):
        self.daemon.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ConformanceTest(DaemonTest):
    extra_args = ("--max-message", "4096", "--no-audit")

    def check_error(self, payload, code):
        with self.daemon.raw() as s:
            r = raw_exchange(s, payload)
            self.assertEqual(r["error"]["code"], code, r)
            # The connection keeps serving after the error.
            r = raw_exchange(s, b'{"jsonrpc":"2.0","id":9,"method":"server.health"}\n')
            self.assertEqual(r["result"]["status"], "ok")

    def test_malformed_json(self):
        self.check_error(b'{"jsonrpc": "2.0", "id": 1, \n', -32700)

    def test_wrong_version(self):
        self.check_error(b'{"jsonrpc":"1.0","id":1,"method":"server.health"}\n', -32600)

    def test_unknown_method(self):
        self.check_error(b'{"jsonrpc":"2.0","id":1,"method":"pod.explode"}\n', -32601)

    def test_invalid_params(self):
        self.check_error(b'{"jsonrpc":"2.0","id":1,"method":"tool.call","params":{"pod":5}}\n', -32602)
        self.check_error(b'{"jsonrpc":"2.0","id":1,"method":"pod.create","params":{}}\n', -32602)

    def test_params_not_structured(self):
        self.check_error(b'{"jsonrpc":"2.0","id":1,"method":"pod.get","params":"x"}\n', -32600)

    def test_empty_batch(self):
        self.check_error(b'[]\n', -32600)

    def test_batch(self):
        with self.daemon.raw() as s:
            r = raw_exchange(s, b'[{"jsonrpc":"2.0","id":1,"method":"server.health"},'
                                b'{"jsonrpc":"2.0","method":"server.health"},'
                                b'{"jsonrpc":"2.0","id":3,"method":"nope"}, 5]\n')
            self.assertEqual(len(r), 3)
            self.assertEqual(r[0]["id"], 1)
            self.assertEqual(r[1]["error"]["code"], -32601)
            self.assertEqual(r[2]["error"]["code"], -32600)

    def test_oversized_message(self):
        big = b'{"jsonrpc":"2.0","id":1,"method":"server.health","params":{"x":"' + \
              b"a" * 10000 + b'"}}\n'
        self.check_error(big, -32600)

    def test_notification_gets_no_reply(self):
        with self.daemon.raw() as s:
            r = raw_exchange(s, b'{"jsonrpc":"2.0","method":"server.health"}\n'
                                b'{"jsonrpc":"2.0","id":2,"method":"server.health"}\n')
            self.assertEqual(r["id"], 2)

    def test_denial_carries_kind_and_reason(self):
        with self.daemon.client() as c:
            pod = c.pod_create("codegen", self.ws)
            with self.assertRaises(NucleusError) as cm:
                c.read(pod["id"], ".env")
            self.assertEqual(cm.exception.code, -32001)
            self.assertEqual(cm.exception.kind, "path_denied")
            self.assertIn(".env", cm.exception.reason)

    def test_unknown_pod(self):
        with self.daemon.client() as c:
            with self.assertRaises(NucleusError) as cm:
                c.read("pod-0000000000000000", "notes.txt")
            self.assertEqual(cm.exception.kind, "not_found")


    def test_param_types_named(self):
        # A number for "pod" used to be reported as a missing pod id.
        with self.daemon.client() as c:
            with self.assertRaises(NucleusError) as cm:
                c.call("pod.get", {"pod": 123})
            self.assertEqual(cm.exception.code, -32602)
            self.assertEqual(cm.exception.reason, "invalid params: pod must "
                             "be a string pod id, not a number")
            with self.assertRaises(NucleusError) as cm:
                c.call("pod.get", {})
            self.assertIn('missing "pod"', cm.exception.reason)
            # A non-string tier used to fall back to the default tier.
            with self.assertRaises(NucleusError) as cm:
                c.call("pod.create", {"profile": "codegen", "workspace": self.ws,
                                      "isolation": ["vm"]})
            self.assertEqual(cm.exception.code, -32602)
            self.assertIn("isolation must be a string", cm.exception.reason)
            with self.assertRaises(NucleusError) as cm:
                c.call("pod.create", {"profile": "codegen", "workspace": self.ws,
                                      "namespace": 5})
            self.assertIn("namespace must be a string", cm.exception.reason)

    def test_isolation_param(self):
        # "ns" is accepted, and an unknown tier fails with kind
        # sandbox_error and a message naming it, as docs/api.md documents.
        with self.daemon.client() as c:
            pod = c.call("pod.create", {"profile": "codegen", "workspace": self.ws,
                                        "isolation": "ns"})["id"]
            self.assertEqual(c.call("pod.close", {"pod": pod})["closed"], True)
            with self.assertRaises(NucleusError) as cm:
                c.call("pod.create", {"profile": "codegen", "workspace": self.ws,
                                      "isolation": "nosuchtier"})
            self.assertEqual(cm.exception.code, -32602)
            self.assertEqual(cm.exception.kind, "sandbox_error")
            self.assertIn("unknown isolation 'nosuchtier'", cm.exception.reason)

    def test_malformed_call_names_operation(self):
        with self.daemon.client() as c:
            pod = c.pod_create("codegen", self.ws)["id"]
            with self.assertRaises(NucleusError) as cm:
                c.tool_call(pod, {"tool": "teleport", "path": "x"})
            self.assertEqual(cm.exception.kind, "invalid_request")
            self.assertEqual(cm.exception.data["operation"], "invalid")
            with self.assertRaises(NucleusError) as cm:
                c.tool_call(pod, {"tool": "write", "path": 7, "content": "x"})
            self.assertEqual(cm.exception.data["operation"], "write_files")


class ServeOptionsTest(unittest.TestCase):
    """Option values that used to wrap around and be accepted."""

    def serve(self, *args):
        home = tempfile.mkdtemp(prefix="nu-daemon-opts.")
        try:
            return subprocess.run([BIN, "serve", "--home", home] + list(args),
                                  capture_output=True, text=True, timeout=30)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def test_out_of_range_values_rejected(self):
        cases = [
            (("--workers", "4294967297"), "invalid --workers '4294967297' (expected 1 to 1024)"),
            (("--workers", "-1"), "invalid --workers '-1'"),
            (("--allow-uid", "4294967296"), "invalid --allow-uid '4294967296' (expected 0 to "),
            (("--max-message", "99999999999999999999"),
             "invalid --max-message '99999999999999999999' (expected 1024 to 16777216)"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = self.serve(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message, p.stderr)

    def test_listen_port_checked(self):
        p = self.serve("--listen", "127.0.0.1:99999", "--svid", "/nonexistent",
                       "--authz", "/nonexistent")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("invalid --listen port '99999' (expected 0 to 65535)", p.stderr)


class BusyWorkersTest(DaemonTest):
    extra_args = ("--workers", "2", "--no-audit")

    def test_health_answers_while_workers_busy(self):
        clients = [self.daemon.client() for _ in range(2)]
        pods = [c.pod_create("codegen", self.ws)["id"] for c in clients]
        threads = [threading.Thread(target=c.run, args=(p, "sleep 2"))
                   for c, p in zip(clients, pods)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            with self.daemon.raw() as s:
                start = time.monotonic()
                r = raw_exchange(s, b'{"jsonrpc":"2.0","id":1,"method":"server.health"}\n')
                elapsed = time.monotonic() - start
            self.assertEqual(r["result"]["status"], "ok")
            # Both workers are still in their sleep 2: health must not queue.
            self.assertTrue(all(t.is_alive() for t in threads))
            self.assertLess(elapsed, 0.1)
        finally:
            for t in threads:
                t.join(30)
            for c in clients:
                c.close()


class SessionTest(DaemonTest):

    def test_multi_party_approval(self):
        with self.daemon.client() as agent, self.daemon.client() as approver:
            pod = agent.pod_create("codegen", self.ws)["id"]
            call = {"tool": "run", "command": "python3 -c 'print(6 * 7)'"}
            with self.assertRaises(NucleusError) as cm:
                agent.tool_call(pod, call)
            self.assertEqual(cm.exception.kind, "approval_required")
            key = cm.exception.approval_key
            pending = approver.approvals(pod)
            self.assertEqual([p["approval_key"] for p in pending], [key])
            approver.approve(pod, key)
            r = agent.tool_call(pod, call)
            self.assertEqual(r["stdout"], "42\n")
            # One use only: the same call is gated again.
            with self.assertRaises(NucleusError):
                agent.tool_call(pod, call)

    def test_disconnect_mid_call(self):
        with self.daemon.client() as watcher:
            s = self.daemon.raw()
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"pod.create","params":'
                      b'{"profile":"codegen","workspace":"' + self.ws.encode() + b'"}}\n')
            pod = json.loads(s.makefile().readline())["result"]["id"]
            s.sendall(b'{"jsonrpc":"2.0","id":2,"method":"tool.call","params":{"pod":"' +
                      pod.encode() + b'","call":{"tool":"run","command":"sleep 1; echo done"}}}\n')
            time.sleep(0.2)
            s.close()
            # The server stays up, finishes the call, then closes the pod.
            self.assertEqual(watcher.health()["status"], "ok")
            for _ in range(100):
                if not any(p["id"] == pod for p in watcher.pod_list()):
                    break
                time.sleep(0.1)
            self.assertFalse(any(p["id"] == pod for p in watcher.pod_list()))
            report = watcher.audit_verify()
            self.assertTrue(report["ok"], report)
        # The interrupted call is in the log, complete.
        out = subprocess.run([BIN, "audit", "export", "--home", self.daemon.home],
                             capture_output=True, text=True, check=True).stdout
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        calls = [e for e in events if e.get("type") == "tool_call" and e.get("pod") == pod]
        self.assertEqual(len(calls), 1, calls)

    def test_detached_pod_survives_disconnect(self):
        with self.daemon.client() as c:
            pod = c.pod_create("codegen", self.ws, detached=True)["id"]
        with self.daemon.client() as c:
            self.assertEqual(c.read(pod, "notes.txt")["content"], "notes\n")
            c.pod_close(pod)

    def test_sigterm_drains(self):
        c = self.daemon.client()
        pod = c.pod_create("codegen", self.ws)["id"]
        result = {}

        def slow():
            result["r"] = c.run(pod, "sleep 1; echo finished")

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        self.daemon.proc.send_signal(signal.SIGTERM)
        t.join(30)
        self.assertEqual(result["r"]["stdout"], "finished\n")
        self.assertEqual(self.daemon.proc.wait(30), 0)
        self.assertFalse(os.path.exists(self.daemon.sock))
        c.close()
        ok = subprocess.run([BIN, "audit", "verify", "--home", self.daemon.home],
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)

    def test_unix_peer_rejected(self):
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and setpriv to connect as another uid")
        # An interpreter the other uid may execute (not one under /root).
        python = "/usr/bin/python3"
        if not os.access(python, os.X_OK):
            self.skipTest("needs /usr/bin/python3 to run the probe as another uid")
        os.chmod(self.daemon.sock, 0o666)
        os.chmod(self.daemon.home, 0o755)
        os.chmod(self.root, 0o755)
        probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
                 "s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.health\"}\\n');"
                 "print(s.makefile().readline())")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              python, "-c", probe, self.daemon.sock],
                             capture_output=True, text=True, timeout=30)
        reply = json.loads(out.stdout)
        self.assertEqual(reply["error"]["code"], -32003, out.stdout + out.stderr)

    def test_logs_never_contain_credentials(self):
        with self.daemon.client() as c:
            pod = c.pod_create("codegen", self.ws, credentials={"API_KEY": "sk-test-7f3e9a2b"})["id"]
            r = c.run(pod, "echo $API_KEY")
            self.assertEqual(r["stdout"], "[REDACTED:API_KEY]\n")
        self.daemon.stop()
        with open(os.path.join(self.root, "daemon.log")) as f:
            self.assertNotIn("sk-test-7f3e9a2b", f.read())

    def test_closing_parent_drops_grandchildren(self):
        profile = os.path.join(self.root, "manager.lua")
        with open(profile, "w") as f:
            f.write("return nucleus.profile { name = 'manager',\n"
                    "  capabilities = { read_files = 'always', manage_pods = 'low_risk' },\n"
                    "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE } }\n")
        with self.daemon.client() as c:
            parent = c.pod_create(profile, self.ws)["id"]
            child = c.spawn(parent)["id"]
            grandchild = c.spawn(child)["id"]
            self.assertEqual(c.read(grandchild, "notes.txt")["content"], "notes\n")
            c.pod_close(parent)
            for pod in (child, grandchild):
                with self.assertRaises(NucleusError) as cm:
                    c.pod_get(pod)
                self.assertEqual(cm.exception.kind, "not_found")
            self.assertEqual(c.health()["status"], "ok")

    def test_range_checks(self):
        with self.daemon.client() as c:
            with self.assertRaises(NucleusError):
                c.pod_create("codegen", self.ws, namespace="a/../b")
            with self.assertRaises(NucleusError):
                c.pod_create("codegen", self.ws, budget={"usd": -1})
            pod = c.pod_create("codegen", self.ws)["id"]
            with self.assertRaises(NucleusError) as cm:
                c.approve(pod, "run_bash:" + "0" * 64, count=4294967297)
            self.assertEqual(cm.exception.code, -32602)

    def test_load_64_clients(self):
        for i in range(16):
            with open(os.path.join(self.ws, "f%d.txt" % i), "w") as f:
                f.write("x" * 100)
        # Reads only, and no budget limit: every one of the 64,000 may run.
        profile = os.path.join(self.root, "reader.lua")
        with open(profile, "w") as f:
            f.write("return nucleus.profile { name = 'reader',\n"
                    "  capabilities = { read_files = 'always' },\n"
                    "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE } }\n")
        with self.daemon.client() as c:
            pod = c.pod_create(profile, self.ws, detached=True)["id"]
            first = c.audit_verify()
        clients, per = 64, 1000
        errors = []
        rss = []

        def worker(n):
            try:
                with self.daemon.client() as c:
                    for i in range(per):
                        r = c.read(pod, "f%d.txt" % ((n + i) % 16))
                        if r["content"] != "x" * 100:
                            errors.append("bad content")
                        if n == 0 and i in (100, per - 1):
                            rss.append(self.daemon.rss_kib())
            except Exception as e:  # noqa: BLE001 - report every failure
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - start
        self.assertEqual(errors, [])
        with self.daemon.client() as c:
            report = c.audit_verify()
        self.assertTrue(report["ok"], report)
        # Each read is a decision event and a tool_call event; checkpoints
        # come on top.
        added = (report["events"] - first["events"]) - \
                (report["checkpoints"] - first["checkpoints"])
        self.assertEqual(added, clients * per * 2)
        print("\n# %d reads by %d clients in %.1f s (%.0f calls/s); daemon RSS %s KiB"
              % (clients * per, clients, elapsed, clients * per / elapsed, rss))
        if len(rss) == 2:
            self.assertLess(rss[1] - rss[0], 64 * 1024, "RSS grew by more than 64 MiB")


class MtlsTest(unittest.TestCase):
    """TCP with mTLS: SVIDs from the local CA, authorization by SPIFFE ID."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="nu-mtls-test.")
        self.home = os.path.join(self.root, "home")

        def nucleus(*args, home=None):
            subprocess.run([BIN] + list(args) + ["--home", home or self.home],
                           check=True, capture_output=True)

        nucleus("ca", "init", "--trust-domain", "nucleus.local")
        self.svids = {}
        for name, sid in (("server", "spiffe://nucleus.local/node/daemon"),
                          ("ci", "spiffe://nucleus.local/ns/ci/orchestrator"),
                          ("ci-pod", "spiffe://nucleus.local/ns/ci/pod/runner"),
                          ("stranger", "spiffe://nucleus.local/ns/other/pod/x")):
            out = os.path.join(self.root, name)
            nucleus("svid", "issue", "--id", sid, "--out", out)
            self.svids[name] = out
        # A second trust domain whose SVIDs must not be accepted.
        other = os.path.join(self.root, "other-home")
        nucleus("ca", "init", "--trust-domain", "evil.local", home=other)
        out = os.path.join(self.root, "evil")
        nucleus("svid", "issue", "--id", "spiffe://evil.local/ns/ci/pod/runner",
                "--out", out, home=other)
        self.svids["evil"] = out

        self.authz = os.path.join(self.root, "authz.json")
        self.write_authz(["server.health"])
        self.port = free_port()
        self.workspaces = os.path.join(self.root, "workspaces")
        os.makedirs(os.path.join(self.workspaces, "one"))
        self.daemon = Daemon(self.root, "--listen", "127.0.0.1:%d" % self.port,
                             "--svid", self.svids["server"], "--authz", self.authz,
                             "--workspace-root", self.workspaces)
        # The unix socket appears before the TCP listener: wait for both.
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def tearDown(self):
        self.daemon.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def write_authz(self, methods):
        with open(self.authz, "w") as f:
            json.dump([{"id": "spiffe://nucleus.local/ns/ci/*", "methods": methods,
                        "namespaces": ["ci"]}], f)

    def connect(self, name):
        d = self.svids[name]
        return Client.mtls("127.0.0.1", self.port, os.path.join(d, "svid.pem"),
                           os.path.join(d, "svid.key"),
                           os.path.join(self.svids["server"], "bundle.pem"), timeout=30)

    def test_allowed_identity(self):
        with self.connect("ci") as c:
            self.assertEqual(c.health()["status"], "ok")
            self.assertEqual(c.server_spiffe_id(), "spiffe://nucleus.local/node/daemon")

    def test_method_not_allowed_then_sighup(self):
        with self.connect("ci") as c:
            with self.assertRaises(NucleusError) as cm:
                c.pod_list()
            self.assertEqual(cm.exception.code, -32003)
        self.write_authz(["server.health", "pod.list"])
        self.daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with self.connect("ci") as c:
            self.assertEqual(c.pod_list(), [])

    def test_pod_identity_gets_nothing(self):
        # The map's glob matches it, but a pod's agent holds this SVID.
        self.write_authz(["server.health", "approval.grant"])
        self.daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with self.connect("ci-pod") as c:
            with self.assertRaises((NucleusError, ConnectionError, OSError)):
                c.health()

    def test_remote_workspace_confined(self):
        self.write_authz(["server.health", "pod.*"])
        self.daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with self.connect("ci") as c:
            with self.assertRaises(NucleusError) as cm:
                c.pod_create("read_only", "/etc", namespace="ci")
            self.assertEqual(cm.exception.code, -32003)
            with self.assertRaises(NucleusError) as cm:
                c.pod_create("/etc/shadow", os.path.join(self.workspaces, "one"),
                             namespace="ci")
            self.assertEqual(cm.exception.code, -32003)
            pod = c.pod_create("read_only", os.path.join(self.workspaces, "one"),
                               namespace="ci")
            c.pod_close(pod["id"])

    def test_unknown_identity_gets_nothing(self):
        with self.connect("stranger") as c:
            with self.assertRaises((NucleusError, ConnectionError, OSError)):
                c.health()

    def test_other_trust_domain_refused(self):
        with self.assertRaises((OSError, ConnectionError, NucleusError)):
            with self.connect("evil") as c:
                c.health()

    def test_plain_tcp_refused(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"server.health"}\n')
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertNotIn(b'"result"', data)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print("%d passed, %d failed, %d skipped" % (passed, failed, len(result.skipped)))
    sys.exit(1 if failed else 0)
