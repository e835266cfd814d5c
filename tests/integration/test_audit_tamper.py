#!/usr/bin/env python3
"""Tamper corpus for the audit log.

A log of 10,000+ events with checkpoints is written by `nucleus audit
append-test`.  Each case copies it and damages the copy, mostly with the
sqlite3 command-line tool as an intruder with file access would.  Both
the C verifier and the independent Python verifier (tools/verify_audit.py)
must then fail at the expected first bad sequence number.
"Rechained" cases model a smarter intruder who recomputes every
hash after the edit, so only the tree roots and signatures can catch
them.
"""

import hashlib
import importlib.util
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout

NU_BIN = os.environ.get("NU_BIN")
SRC = os.environ.get("NU_SOURCE_DIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))

if not NU_BIN or not os.access(NU_BIN, os.X_OK):
    print("skip: NU_BIN is not set to the nucleus binary")
    sys.exit(77)
if shutil.which("sqlite3") is None:
    print("skip: the sqlite3 command-line tool is not installed")
    sys.exit(77)

spec = importlib.util.spec_from_file_location(
    "verify_audit", os.path.join(SRC, "tools", "verify_audit.py"))
pyv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pyv)

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

DROP_TRIGGERS = ("DROP TRIGGER IF EXISTS events_append_only_update; "
                 "DROP TRIGGER IF EXISTS events_append_only_delete; ")

failures = []
count = 0


def run_c(home, key):
    p = subprocess.run([NU_BIN, "audit", "verify", "--home", home, "--key",
                        key], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def run_py(home, key):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = pyv.main(["--db", os.path.join(home, "audit.db"), "--key", key])
    return rc, out.getvalue()


def bad_seq(output):
    marker = "verification failed at seq "
    if marker not in output:
        return None
    return int(output.split(marker, 1)[1].split(":", 1)[0])


def check(name, home, key, expect_seq):
    """Both verifiers must fail at expect_seq."""
    global count
    count += 1
    for label, runner in (("C", run_c), ("Python", run_py)):
        rc, out = runner(home, key)
        got = bad_seq(out)
        if rc != 1 or got != expect_seq:
            failures.append("%s: %s verifier: expected failure at seq %s, "
                            "got rc %d: %s" % (name, label, expect_seq, rc,
                                               out.strip()[:300]))
            print("not ok %d - %s (%s)" % (count, name, label))
            return
    print("ok %d - %s fails at seq %d" % (count, name, expect_seq))


def sql(home, statements):
    subprocess.run(["sqlite3", os.path.join(home, "audit.db"),
                    DROP_TRIGGERS + statements], check=True,
                   capture_output=True)


def fresh(base, work):
    home = os.path.join(work, "case")
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base, home)
    return home


# ---- a smarter intruder: recompute hashes after an edit ---------------------

def rechain(home, from_seq=1):
    conn = sqlite3.connect(os.path.join(home, "audit.db"))
    conn.executescript(DROP_TRIGGERS)
    rows = conn.execute("SELECT %s FROM events WHERE seq >= ? ORDER BY seq"
                        % ", ".join(pyv.COLUMNS), (from_seq,)).fetchall()
    prev = conn.execute("SELECT hash FROM events WHERE seq = ?",
                        (from_seq - 1,)).fetchone()
    prev = prev[0] if prev else "0" * 64
    for row in rows:
        ev = dict(zip(pyv.COLUMNS, row))
        ev["prev_hash"] = prev
        fields = {k: v for k, v in ev.items() if k != "hash" and v is not None}
        if "args" in fields:
            fields["args"] = json.loads(fields["args"])
        pre = pyv.canonical(fields).encode()
        prev = hashlib.sha256(bytes.fromhex(ev["prev_hash"]) + pre).hexdigest()
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
                     (ev["prev_hash"], prev, ev["seq"]))
    conn.commit()
    conn.close()


def checkpoint_seqs(home):
    conn = sqlite3.connect(os.path.join(home, "audit.db"))
    seqs = [r[0] for r in conn.execute(
        "SELECT seq FROM events WHERE type = 'checkpoint' ORDER BY seq")]
    conn.close()
    return seqs


def edit_checkpoint(home, seq, change):
    conn = sqlite3.connect(os.path.join(home, "audit.db"))
    conn.executescript(DROP_TRIGGERS)
    args = json.loads(conn.execute("SELECT args FROM events WHERE seq = ?",
                                   (seq,)).fetchone()[0])
    change(args)
    conn.execute("UPDATE events SET args = ? WHERE seq = ?",
                 (pyv.canonical(args), seq))
    conn.commit()
    conn.close()


def resign_all(home, key):
    """Replace every checkpoint signature with one by another key."""
    pub = key.public_key()
    kid = pyv.key_id(pub)
    for seq in checkpoint_seqs(home):
        def change(args):
            args["key_id"] = kid
            args["signature"] = key.sign(pyv.checkpoint_body(args),
                                         ec.ECDSA(hashes.SHA256())).hex()
        edit_checkpoint(home, seq, change)
    rechain(home)
    with open(os.path.join(home, "audit", "node.pub"), "wb") as f:
        f.write(pub.public_bytes(serialization.Encoding.PEM,
                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def main():
    global count
    work = tempfile.mkdtemp(prefix="nu-audit-tamper-")
    base = os.path.join(work, "base")
    try:
        env = dict(os.environ, NUCLEUS_HOME=base)
        subprocess.run([NU_BIN, "audit", "append-test", "2500", "--threads",
                        "4", "--every", "1000"], env=env, check=True)
        subprocess.run([NU_BIN, "audit", "append-test", "7"], env=env,
                       check=True)
        key = os.path.join(work, "trusted.pub")
        shutil.copy(os.path.join(base, "audit", "node.pub"), key)

        cps = checkpoint_seqs(base)
        size = sqlite3.connect(os.path.join(base, "audit.db")).execute(
            "SELECT max(seq) FROM events").fetchone()[0]
        assert size >= 10000, size
        assert len(cps) >= 10, cps
        last_cp = cps[-1]

        # The untouched log verifies with both verifiers, and they agree.
        crc, cout = run_c(base, key)
        prc, pout = run_py(base, key)
        print("# C: %s" % cout.strip().replace("\n", " / "))
        if crc != 0 or prc != 0 or cout.split("\n")[0] != \
                pout.split("\n")[0]:
            failures.append("valid log: C %d %r, Python %d %r" %
                            (crc, cout, prc, pout))
        if "unanchored: 7 events" not in cout:
            failures.append("valid log: expected 7 unanchored events: %r"
                            % cout)

        # 1. Changing any field of an event (sqlite3 tool).
        target = 4321
        edits = {
            "time": "time = '2020-01-01T00:00:00.000000000Z'",
            "pod": "pod = 'pod-evil'",
            "spiffe_id": "spiffe_id = 'spiffe://evil/ns/x/pod/y'",
            "type": "type = 'decision'",
            "tool": "tool = 'write'",
            "operation": "operation = 'git_push'",
            "args": "args = replace(args, 'src/', 'etc/')",
            "args spacing": "args = replace(args, ',', ', ')",
            "decision": "decision = 'deny'",
            "kind": "kind = 'path_denied'",
            "reason": "reason = reason || ' (edited)'",
            "result_digest": "result_digest = '%s'" % ("ab" * 32),
            "profile_digest": "profile_digest = '%s'" % ("cd" * 32),
            "prev_hash": "prev_hash = '%s'" % ("00" * 32),
            "hash": "hash = '%s'" % ("ee" * 32),
            "null field": "decision = NULL",
            "integer field": "pod = 7",
            "uppercase hash": "hash = upper(hash)",
        }
        for name, assignment in edits.items():
            home = fresh(base, work)
            sql(home, "UPDATE events SET %s WHERE seq = %d" %
                (assignment, target))
            check("change %s of an event" % name, home, key, target)

        home = fresh(base, work)
        sql(home, "UPDATE events SET seq = 99999999 WHERE seq = %d" % target)
        check("change seq of an event", home, key, target)

        home = fresh(base, work)
        sql(home, "UPDATE events SET reason = 'x' WHERE seq = %d" % cps[3])
        check("change a field of a checkpoint event", home, key, cps[3])

        # 2. Deleting an event.
        home = fresh(base, work)
        sql(home, "DELETE FROM events WHERE seq = 777")
        check("delete an event", home, key, 777)

        home = fresh(base, work)
        sql(home, "DELETE FROM events WHERE seq = 1")
        check("delete the first event", home, key, 1)

        # 3. Deleting the last events after a checkpoint: the saved anchor
        # checkpoint still covers them.
        home = fresh(base, work)
        sql(home, "DELETE FROM events WHERE seq >= %d" % (last_cp - 4))
        check("delete the last events and checkpoint", home, key,
              last_cp - 4)

        # 4. Inserting an event (renumbering the rest).
        home = fresh(base, work)
        sql(home, "UPDATE events SET seq = -seq WHERE seq >= 5000; "
                  "UPDATE events SET seq = 1 - seq WHERE seq < 0; "
                  "INSERT INTO events SELECT 5000, time, pod, spiffe_id, "
                  "type, tool, operation, args, 'allow', kind, "
                  "'inserted', result_digest, profile_digest, prev_hash, "
                  "hash FROM events WHERE seq = 4999")
        check("insert an event", home, key, 5000)

        home = fresh(base, work)
        sql(home, "INSERT INTO events(seq, time, type, prev_hash, hash) "
                  "SELECT seq + 1, time, 'tool_call', hash, hash FROM events "
                  "WHERE seq = %d" % size)
        check("append a forged event", home, key, size + 1)

        # 5. Swapping two events.
        home = fresh(base, work)
        sql(home, "UPDATE events SET seq = -1 WHERE seq = 3000; "
                  "UPDATE events SET seq = 3000 WHERE seq = 6000; "
                  "UPDATE events SET seq = 6000 WHERE seq = -1")
        check("swap two events", home, key, 3000)

        # 6. Truncating: rows, and the database file itself.
        home = fresh(base, work)
        sql(home, "DELETE FROM events WHERE seq > 2500")
        check("truncate the log to an earlier prefix", home, key, 2501)

        home = fresh(base, work)
        db = os.path.join(home, "audit.db")
        with open(db, "r+b") as f:
            f.truncate(os.path.getsize(db) // 2)
        crc, cout = run_c(home, key)
        prc, pout = run_py(home, key)
        count_ok = crc == 1 and prc == 1 and bad_seq(cout) is not None and \
            bad_seq(cout) == bad_seq(pout)
        count += 1
        print("%s %d - truncate the database file (C %s, Python %s)" %
              ("ok" if count_ok else "not ok", count, bad_seq(cout),
               bad_seq(pout)))
        if not count_ok:
            failures.append("truncate file: C %d %r / Python %d %r" %
                            (crc, cout, prc, pout))

        # 7. Checkpoint root, size and signature (rechained, so only the
        # checkpoint checks can catch them).
        cp = cps[4]
        home = fresh(base, work)
        edit_checkpoint(home, cp, lambda a: a.update(root_hash="11" * 32))
        rechain(home, cp)
        check("change a checkpoint root", home, key, cp)

        home = fresh(base, work)
        edit_checkpoint(home, cp, lambda a: a.update(size=a["size"] - 1))
        rechain(home, cp)
        check("change a checkpoint size", home, key, cp)

        home = fresh(base, work)
        edit_checkpoint(home, cp, lambda a: a.update(
            signature=a["signature"][:-4] + ("0000" if not
                                             a["signature"].endswith("0000")
                                             else "1111")))
        rechain(home, cp)
        check("change a checkpoint signature", home, key, cp)

        home = fresh(base, work)
        sql(home, "UPDATE events SET args = replace(args, 'root_hash\":\"', "
                  "'root_hash\":\"f') WHERE seq = %d" % cp)
        check("change a checkpoint root with sqlite3", home, key, cp)

        # 8. Replacing the signing key: every checkpoint re-signed and the
        # node.pub file replaced; the operator's saved key catches it.
        home = fresh(base, work)
        resign_all(home, ec.generate_private_key(ec.SECP256R1()))
        check("replace the signing key", home, key, cps[0])

        # 9. Replaying an old checkpoint in place of a newer one, and
        # appended at the end.
        home = fresh(base, work)
        conn = sqlite3.connect(os.path.join(home, "audit.db"))
        old = conn.execute("SELECT args FROM events WHERE seq = ?",
                           (cps[1],)).fetchone()[0]
        conn.close()
        edit_checkpoint(home, cps[6], lambda a: (a.clear(),
                                                 a.update(json.loads(old))))
        rechain(home, cps[6])
        check("replay an old checkpoint in place", home, key, cps[6])

        home = fresh(base, work)
        sql(home, "INSERT INTO events(seq, time, type, args, prev_hash, hash) "
                  "SELECT %d, time, type, args, prev_hash, hash FROM events "
                  "WHERE seq = %d" % (size + 1, cps[1]))
        rechain(home, size + 1)
        check("replay an old checkpoint at the end", home, key, size + 1)

        # 10. A rechained edit of an ordinary event is caught by the next
        # checkpoint's root.
        home = fresh(base, work)
        sql(home, "UPDATE events SET decision = 'deny' WHERE seq = 1500")
        rechain(home, 1500)
        nxt = min(s for s in cps if s > 1500)
        check("rechained event edit", home, key, nxt)

        # 11. Replacing the anchor file with a forged checkpoint.
        home = fresh(base, work)
        with open(os.path.join(home, "audit", "checkpoint.json")) as f:
            anchor = json.load(f)
        anchor["size"] += 5
        with open(os.path.join(home, "audit", "checkpoint.json"), "w") as f:
            f.write(pyv.canonical(anchor))
        check("forge the saved checkpoint", home, key, anchor["size"] + 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("1..%d" % count)
    for f in failures:
        print("# FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
