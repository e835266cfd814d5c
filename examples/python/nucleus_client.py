"""A small client for the nucleus daemon (JSON-RPC 2.0, one message per line).

Standard library only.  Connect over the daemon's unix socket, or over TCP
with mTLS by giving an X.509-SVID (certificate chain and key) and the trust
bundle:

    from nucleus_client import Client, NucleusError

    with Client.unix("/var/lib/nucleus/nucleus.sock") as c:
        pod = c.pod_create(profile="codegen", workspace="/srv/checkout")
        print(c.tool_call(pod["id"], {"tool": "read", "path": "README.md"}))

A denied call raises NucleusError, whose kind, reason and approval_key
come from the pipeline.  The protocol is documented in docs/api.md.
"""

import itertools
import json
import socket
import ssl
import threading

__all__ = ["Client", "NucleusError"]


class NucleusError(Exception):
    """A JSON-RPC error from the daemon.

    code is the JSON-RPC error code; kind, reason and approval_key are the
    pipeline's (kind is None for protocol errors such as parse errors).
    """

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code = code
        self.data = data if isinstance(data, dict) else {}
        self.kind = self.data.get("kind")
        self.reason = self.data.get("reason", message)
        self.approval_key = self.data.get("approval_key")

    def __str__(self):
        if self.kind:
            return "%s: %s" % (self.kind, self.reason)
        return "JSON-RPC error %d: %s" % (self.code, self.args[0])


class Client:
    """One connection to the daemon.  Calls are serialized per client."""

    def __init__(self, sock, timeout=None):
        self._sock = sock
        self._sock.settimeout(timeout)
        self._file = sock.makefile("rwb")
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def unix(cls, path, timeout=None):
        """Connect to the unix socket at path."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return cls(sock, timeout)

    @classmethod
    def mtls(cls, host, port, cert_file, key_file, bundle_file, timeout=None):
        """Connect over TCP, presenting the SVID in cert_file/key_file and
        trusting only the CA certificates in bundle_file.  The server's
        SPIFFE ID is not checked against a host name (SVIDs carry URI SANs,
        not DNS names); check server_spiffe_id() when that matters."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(bundle_file)
        ctx.load_cert_chain(cert_file, key_file)
        raw = socket.create_connection((host, port), timeout=timeout)
        return cls(ctx.wrap_socket(raw), timeout)

    def server_spiffe_id(self):
        """The URI SAN of the server's certificate (TLS connections only)."""
        cert = self._sock.getpeercert()
        for kind, value in (cert or {}).get("subjectAltName", ()):
            if kind == "URI":
                return value
        return None

    def close(self):
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, params=None):
        """Send one request and return its result, or raise NucleusError."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            request["params"] = params
        with self._lock:
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
            line = self._file.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        response = json.loads(line)
        if "error" in response:
            e = response["error"]
            raise NucleusError(e.get("code", 0), e.get("message", ""), e.get("data"))
        return response.get("result")

    # The methods of docs/api.md.

    def health(self):
        return self.call("server.health")

    def pod_create(self, profile, workspace, namespace=None, detached=False,
                   credentials=None, budget=None, timeout=None):
        params = {"profile": profile, "workspace": workspace}
        if namespace:
            params["namespace"] = namespace
        if detached:
            params["detached"] = True
        if credentials:
            params["credentials"] = {"env": dict(credentials)}
        if budget:
            params["budget"] = dict(budget)
        if timeout:
            params["timeout"] = timeout
        return self.call("pod.create", params)

    def pod_list(self):
        return self.call("pod.list")

    def pod_get(self, pod):
        return self.call("pod.get", {"pod": pod})

    def pod_close(self, pod):
        return self.call("pod.close", {"pod": pod})

    def tool_call(self, pod, call):
        return self.call("tool.call", {"pod": pod, "call": call})

    def read(self, pod, path, **opts):
        return self.tool_call(pod, dict(opts, tool="read", path=path))

    def write(self, pod, path, content, **opts):
        return self.tool_call(pod, dict(opts, tool="write", path=path, content=content))

    def edit(self, pod, path, old, new, **opts):
        return self.tool_call(pod, dict(opts, tool="edit", path=path, old=old, new=new))

    def run(self, pod, command, **opts):
        key = "argv" if isinstance(command, (list, tuple)) else "command"
        return self.tool_call(pod, dict(opts, tool="run", **{key: command}))

    def charge(self, pod, usd=0.0, input_tokens=0, output_tokens=0):
        return self.call("pod.charge", {"pod": pod, "usd": usd,
                                        "input_tokens": input_tokens,
                                        "output_tokens": output_tokens})

    def approvals(self, pod):
        return self.call("approval.list", {"pod": pod})

    def approve(self, pod, approval_key, count=1, ttl=None):
        params = {"pod": pod, "approval_key": approval_key, "count": count}
        if ttl:
            params["ttl"] = ttl
        return self.call("approval.grant", params)

    def deny(self, pod, approval_key):
        return self.call("approval.deny", {"pod": pod, "approval_key": approval_key})

    def attenuate(self, pod, permission):
        return self.call("pod.attenuate", {"pod": pod, "permission": permission})

    def spawn(self, pod, permission=None, budget=None, strict=False):
        params = {"pod": pod, "strict": strict}
        if permission is not None:
            params["permission"] = permission
        if budget:
            params["budget"] = dict(budget)
        return self.call("pod.spawn", params)

    def audit_verify(self):
        return self.call("audit.verify")

    def identity_bundle(self):
        return self.call("identity.bundle")
