#!/usr/bin/env python3
"""Verify a Nucleus audit log without any Nucleus code.

This is an independent implementation of docs/audit-format.md, written
from that document with only the Python standard library and
python3-cryptography.  It reads the SQLite database (or a JSON Lines
export) and prints the same result lines as `nucleus audit verify`:

    ok: N events, M checkpoints, root <hex>
    unanchored: K events after the newest checkpoint

or, on the first problem, `audit: verification failed at seq N: <reason>`
with exit status 1.  Exit status 2 means the input could not be read.

Usage:
    verify_audit.py --db audit.db [--key node.pub | --bundle ca.pem]
                    [--checkpoint checkpoint.json]
    verify_audit.py --file export.jsonl [--key node.pub | --bundle ca.pem]
"""

import argparse
import hashlib
import json
import math
import os
import re
import sqlite3
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ZERO_HASH = "0" * 64
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
LOWER_HEX64 = re.compile(r"^[0-9a-f]{64}$")
COLUMNS = ("seq", "time", "pod", "spiffe_id", "type", "tool", "operation",
           "args", "decision", "kind", "reason", "result_digest",
           "profile_digest", "prev_hash", "hash")
CHECKPOINT_MEMBERS = {"origin", "size", "root_hash", "time", "signature",
                      "key_id"}


class Failure(Exception):
    """The first bad sequence number and why."""

    def __init__(self, seq, reason):
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


# ---- RFC 8785 canonical JSON ------------------------------------------------

def _es_number(x):
    """Format a number as ECMAScript's Number.prototype.toString does."""
    if isinstance(x, bool):
        raise ValueError("boolean is not a number")
    if isinstance(x, int):
        if abs(x) > 2 ** 53:
            raise ValueError("integer outside +-2^53")
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _es_number(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    if k == 1:
        return "%se%s%d" % (digits, sign, abs(e))
    return "%s.%se%s%d" % (digits[0], digits[1:], sign, abs(e))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
            "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _es_string(s):
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError("lone surrogate")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(v):
    """Return the RFC 8785 canonical form of v as a str."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _es_number(v)
    if isinstance(v, str):
        return _es_string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(_es_string(k) + ":" + canonical(v[k])
                              for k in keys) + "}"
    raise ValueError("unsupported JSON value %r" % (v,))


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError("duplicate key %r" % key)
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def _parse_int(text):
    # RFC 8785 numbers are doubles: 1e20 prints as a 21-digit integer.
    value = int(text)
    return value if abs(value) <= 2 ** 53 else float(text)


def parse_json(text):
    return json.loads(text, object_pairs_hook=_no_duplicates,
                      parse_constant=_reject_constant, parse_int=_parse_int)


# ---- hashing and the Merkle tree ---------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(preimage):
    return sha256(b"\x00" + preimage)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


class Frontier:
    """Maximal perfect subtrees over the leaves so far, largest first."""

    def __init__(self, size=0, hashes=()):
        self.size = size
        self.hashes = list(hashes)

    def add(self, leaf):
        index, cur = self.size, leaf
        while index & 1:
            cur = node_hash(self.hashes.pop(), cur)
            index >>= 1
        self.hashes.append(cur)
        self.size += 1

    def root(self):
        if not self.hashes:
            return sha256(b"")
        cur = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            cur = node_hash(h, cur)
        return cur


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# ---- keys and checkpoints ----------------------------------------------------

def key_id(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


class Trust:
    def __init__(self, key_pem=None, bundle_pem=None):
        self.key = None
        self.bundle = []
        if key_pem is not None:
            self.key = serialization.load_pem_public_key(key_pem)
        if bundle_pem is not None:
            self.bundle = _load_certs(bundle_pem)

    def signing_key(self, cp):
        """Return the public key that must have signed cp."""
        if not self.bundle:
            if self.key is None:
                raise ValueError("no trusted key (pass --key or --bundle)")
            return self.key
        chain = _load_certs(cp.get("cert_chain", "").encode())
        if not chain:
            raise ValueError("checkpoint carries no certificate chain")
        for cert, issuer in zip(chain, chain[1:]):
            _check_issued(cert, issuer)
        last = chain[-1]
        if not any(_issued_by(last, ca) for ca in self.bundle):
            raise ValueError("certificate chain does not lead to the bundle")
        leaf = chain[0]
        when = cp["time"][:19]
        # not_valid_before_utc replaced not_valid_before in cryptography 42.
        start = getattr(leaf, "not_valid_before_utc", None) or \
            leaf.not_valid_before
        end = getattr(leaf, "not_valid_after_utc", None) or \
            leaf.not_valid_after
        start = start.strftime("%Y-%m-%dT%H:%M:%S")
        end = end.strftime("%Y-%m-%dT%H:%M:%S")
        if not start <= when <= end:
            raise ValueError("checkpoint time is outside the certificate's "
                             "validity")
        return leaf.public_key()


def _load_certs(pem):
    certs = []
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.*?"
                            rb"-----END CERTIFICATE-----", pem, re.S):
        certs.append(x509.load_pem_x509_certificate(block))
    return certs


def _issued_by(cert, issuer):
    if cert == issuer:
        return True
    try:
        _check_issued(cert, issuer)
        return True
    except (ValueError, InvalidSignature):
        return False


# NOTE: chain checks cover issuer names and signatures only, not key
# usage, basic constraints or the SPIFFE ID; the C verifier uses mbedTLS's
# full path validation.
def _check_issued(cert, issuer):
    if cert.issuer != issuer.subject:
        raise ValueError("certificate chain is out of order")
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               ec.ECDSA(cert.signature_hash_algorithm))


def checkpoint_body(cp):
    body = {"origin": cp["origin"], "root_hash": cp["root_hash"],
            "size": cp["size"], "time": cp["time"]}
    return canonical(body).encode()


def check_checkpoint(cp, trust):
    """Validate cp's shape and signature; raise ValueError if bad."""
    if not isinstance(cp, dict):
        raise ValueError("checkpoint is not an object")
    members = set(cp)
    if not CHECKPOINT_MEMBERS <= members:
        raise ValueError("checkpoint is missing members")
    if members - CHECKPOINT_MEMBERS - {"cert_chain"}:
        raise ValueError("checkpoint has unknown members")
    for name in ("origin", "root_hash", "time", "signature", "key_id"):
        if not isinstance(cp[name], str):
            raise ValueError("checkpoint %s is not a string" % name)
    if not isinstance(cp["size"], int) or cp["size"] < 1:
        raise ValueError("checkpoint size is not a positive integer")
    if not HEX64.match(cp["root_hash"]) or not HEX64.match(cp["key_id"]):
        raise ValueError("checkpoint root_hash or key_id is not 64 hex "
                         "digits")
    sig = cp["signature"]
    if not sig or len(sig) % 2 or not re.match(r"^[0-9a-fA-F]+$", sig):
        raise ValueError("checkpoint signature is not hex DER")
    public_key = trust.signing_key(cp)
    if key_id(public_key) != cp["key_id"]:
        raise ValueError("checkpoint signed by another key than the trusted "
                         "one")
    try:
        public_key.verify(bytes.fromhex(sig), checkpoint_body(cp),
                          ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("checkpoint signature is invalid") from None


# ---- the chain ----------------------------------------------------------------

class Verifier:
    def __init__(self, trust, origin):
        self.trust = trust
        self.origin = origin
        self.next_seq = 1
        self.prev = bytes(32)
        self.frontier = Frontier()
        self.checkpoints = 0
        self.last_cp_seq = 0
        self.expect = None          # (size, root) from a saved checkpoint

    def resume(self, first_seq, prev_hex, frontier_hex):
        if first_seq < 1 or not HEX64.match(prev_hex) or \
                len(frontier_hex) != bin(first_seq - 1).count("1"):
            raise ValueError("export header does not describe the prefix")
        self.next_seq = first_seq
        self.prev = bytes.fromhex(prev_hex)
        self.frontier = Frontier(first_seq - 1,
                                 [bytes.fromhex(h) for h in frontier_hex])

    def add(self, event):
        seq = event.get("seq")
        if seq > self.next_seq:
            raise Failure(self.next_seq, "event %d is missing" % self.next_seq)
        if seq < self.next_seq:
            raise Failure(seq, "event %d appears twice or out of order" % seq)
        prev = event.get("prev_hash")
        if not isinstance(prev, str) or not LOWER_HEX64.match(prev) or \
                bytes.fromhex(prev) != self.prev:
            raise Failure(seq, "prev_hash does not match the previous hash")
        if event.get("type") is None or event.get("time") is None:
            raise Failure(seq, "event has no type or time")

        fields = {k: v for k, v in event.items()
                  if k != "hash" and v is not None}
        if "args" in fields:
            try:
                args = parse_json(fields["args"])
                ok = canonical(args) == fields["args"]
            except ValueError:
                ok = False
            if not ok:
                raise Failure(seq, "args is not canonical JSON")
            fields["args"] = args
        try:
            preimage = canonical(fields).encode("utf-8")
        except (ValueError, UnicodeEncodeError):
            raise Failure(seq, "event fields are not valid UTF-8") from None

        digest = sha256(self.prev + preimage)
        stored = event.get("hash")
        if not isinstance(stored, str) or not LOWER_HEX64.match(stored) or \
                bytes.fromhex(stored) != digest:
            raise Failure(seq, "hash does not match the event's contents")

        if event["type"] == "checkpoint":
            self._checkpoint(seq, event, fields.get("args"))

        self.frontier.add(leaf_hash(preimage))
        self.prev = digest
        self.next_seq += 1
        if self.expect and self.frontier.size == self.expect[0] and \
                self.frontier.root() != self.expect[1]:
            raise Failure(seq, "the tree does not match the saved checkpoint")

    def _checkpoint(self, seq, event, cp):
        try:
            if not isinstance(cp, dict):
                raise ValueError("checkpoint has no args")
            if not CHECKPOINT_MEMBERS <= set(cp):
                raise ValueError("checkpoint is missing members")
            if cp["size"] != seq - 1:
                raise ValueError("checkpoint covers %s events but sits at "
                                 "seq %d" % (cp["size"], seq))
            if self.origin and cp["origin"] != self.origin:
                raise ValueError("checkpoint origin is not the log's origin")
            if cp["time"] != event["time"]:
                raise ValueError("checkpoint time differs from its event")
            if not HEX64.match(str(cp["root_hash"])) or \
                    bytes.fromhex(cp["root_hash"]) != self.frontier.root():
                raise ValueError("checkpoint root does not match the tree")
            check_checkpoint(cp, self.trust)
        except (ValueError, TypeError, KeyError) as e:
            raise Failure(seq, str(e)) from None
        self.origin = self.origin or cp["origin"]
        self.checkpoints += 1
        self.last_cp_seq = seq

    def expect_checkpoint(self, cp):
        try:
            check_checkpoint(cp, self.trust)
            if self.origin and cp["origin"] != self.origin:
                raise ValueError("saved checkpoint belongs to another log")
        except ValueError as e:
            size = cp.get("size") if isinstance(cp, dict) else 0
            raise Failure((size if isinstance(size, int) else 0) + 1,
                          "saved checkpoint is invalid: %s" % e) from None
        self.expect = (cp["size"], bytes.fromhex(cp["root_hash"]))

    def finish(self):
        events = self.next_seq - 1
        if self.expect and self.frontier.size < self.expect[0]:
            raise Failure(self.next_seq, "log ends before the saved "
                          "checkpoint's %d events" % self.expect[0])
        return events


def report(v):
    events = v.finish()
    print("ok: %d events, %d checkpoints, root %s" %
          (events, v.checkpoints, v.frontier.root().hex()))
    print("unanchored: %d events after the newest checkpoint" %
          (events - v.last_cp_seq))


# ---- sources ------------------------------------------------------------------

def verify_db(path, trust, anchor_path):
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        origin = conn.execute("SELECT value FROM meta WHERE key = 'origin'")
        origin = origin.fetchone()
    except sqlite3.DatabaseError as e:
        raise Failure(1, "cannot read the database: %s" % e) from None
    v = Verifier(trust, origin[0] if origin else None)

    if anchor_path is None:
        default = os.path.join(os.path.dirname(os.path.abspath(path)),
                               "audit", "checkpoint.json")
        anchor_path = default if os.path.exists(default) else None
    if anchor_path is not None:
        with open(anchor_path, "rb") as f:
            v.expect_checkpoint(parse_json(f.read()))

    try:
        cursor = conn.execute("SELECT %s FROM events ORDER BY seq" %
                              ", ".join(COLUMNS))
    except sqlite3.DatabaseError as e:
        raise Failure(1, "cannot read the events table: %s" % e) from None
    while True:
        try:
            row = cursor.fetchone()
        except sqlite3.DatabaseError as e:
            raise Failure(v.next_seq, "database is damaged: %s" % e) from None
        if row is None:
            break
        v.add(dict(zip(COLUMNS, row)))
    return v


def verify_export(path, trust):
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ValueError("the export is empty")
    header = parse_json(lines[0]).get("export")
    if not isinstance(header, dict) or \
            header.get("format") != "nucleus-audit-export" or \
            header.get("version") != 1:
        raise ValueError("the first line is not a version 1 export header")
    v = Verifier(trust, header["origin"])
    pod_mode = "pod" in header
    if not pod_mode:
        v.resume(header["first_seq"], header["prev_hash"], header["frontier"])

    cp, ended, count, last_seq = None, False, 0, 0
    pending = None           # pod mode: (seq, leaf) awaiting its proof
    unanchored = 0
    for raw in lines[1:]:
        try:
            obj = parse_json(raw)
        except ValueError:
            raise Failure(last_seq + 1, "line is not valid JSON") from None
        if ended:
            raise Failure(last_seq + 1, "lines after the end line")
        if pending and "inclusion" not in obj:
            raise Failure(pending[0], "inclusion proof missing")
        if "checkpoint" in obj:
            if cp is not None or count:
                raise Failure(last_seq + 1, "checkpoint line out of place")
            cp = obj["checkpoint"]
            try:
                check_checkpoint(cp, trust)
            except (ValueError, TypeError, KeyError) as e:
                raise Failure(cp.get("size", 0) + 1, str(e)) from None
        elif "inclusion" in obj:
            inc = obj["inclusion"]
            if not pending or inc.get("seq") != pending[0] or not \
                    verify_inclusion(pending[1], pending[0] - 1, cp["size"],
                                     [bytes.fromhex(h) for h in inc["path"]],
                                     bytes.fromhex(cp["root_hash"])):
                raise Failure(last_seq, "inclusion proof does not lead to "
                              "the checkpoint root")
            pending = None
        elif "end" in obj:
            end = obj["end"]
            if end.get("events") != count or end.get("last_seq") != last_seq:
                raise Failure(last_seq + 1, "end line does not match")
            ended = True
        else:
            event = dict(obj)
            if "args" in event:
                event["args"] = canonical(event["args"])
            if not isinstance(event.get("seq"), int):
                raise Failure(last_seq + 1, "event has no seq")
            if pod_mode:
                leaf = _pod_event(event, last_seq)
                if cp is not None and event["seq"] <= cp["size"]:
                    pending = (event["seq"], leaf)
                else:
                    unanchored += 1
            else:
                v.add(event)
            count += 1
            last_seq = event["seq"]
    if not ended:
        raise Failure(last_seq + 1, "export is truncated (no end line)")
    if pending:
        raise Failure(pending[0], "inclusion proof missing")
    if pod_mode:
        root = bytes.fromhex(cp["root_hash"]) if cp else bytes(32)
        print("ok: %d events, %d checkpoints, root %s" %
              (count, 1 if cp else 0, root.hex()))
        print("unanchored: %d events after the newest checkpoint" % unanchored)
        return None
    if cp is not None and cp["size"] + 1 >= header["first_seq"] and \
            v.last_cp_seq - 1 < cp["size"]:
        raise Failure(v.next_seq, "export ends before the checkpoint")
    return v


def _pod_event(event, last_seq):
    seq = event["seq"]
    if seq <= last_seq:
        raise Failure(seq, "event out of order")
    fields = {k: v for k, v in event.items() if k != "hash"}
    if "args" in fields:
        fields["args"] = parse_json(fields["args"])
    preimage = canonical(fields).encode("utf-8")
    prev = event.get("prev_hash", "")
    if not HEX64.match(prev) or not HEX64.match(event.get("hash", "")) or \
            sha256(bytes.fromhex(prev) + preimage).hex() != \
            event["hash"].lower():
        raise Failure(seq, "hash does not match the event's contents")
    return leaf_hash(preimage)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="the audit database (audit.db)")
    src.add_argument("--file", help="a JSON Lines export")
    trust_opts = ap.add_mutually_exclusive_group()
    trust_opts.add_argument("--key", help="trusted public key (PEM); default "
                            "audit/node.pub next to the database")
    trust_opts.add_argument("--bundle", help="trust bundle (PEM)")
    ap.add_argument("--checkpoint", help="saved checkpoint the log must "
                    "extend; default audit/checkpoint.json next to the "
                    "database")
    args = ap.parse_args(argv)

    try:
        key_pem = bundle_pem = None
        if args.bundle:
            with open(args.bundle, "rb") as f:
                bundle_pem = f.read()
        elif args.file and not args.key:
            raise ValueError("pass --key PEM or --bundle PEM with --file")
        elif args.key or args.db:
            path = args.key or os.path.join(
                os.path.dirname(os.path.abspath(args.db)), "audit", "node.pub")
            with open(path, "rb") as f:
                key_pem = f.read()
        trust = Trust(key_pem, bundle_pem)
        if args.db:
            report(verify_db(args.db, trust, args.checkpoint))
        else:
            v = verify_export(args.file, trust)
            if v is not None:
                report(v)
    except Failure as e:
        print("audit: verification failed at seq %d: %s" % (e.seq, e.reason))
        return 1
    except (OSError, ValueError, KeyError, TypeError, sqlite3.Error) as e:
        print("verify_audit: cannot verify: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
