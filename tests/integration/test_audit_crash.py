#!/usr/bin/env python3
"""Crash safety of audit appends.

A writer (`nucleus audit append-test --print-seq`, four threads) prints
each sequence number after its append returned.  It is killed with
SIGKILL at a random moment, 60 times, against the same database.  After
every kill every printed seq must be in the log and the log must verify.
A fifth of the runs use power mode.  The Python verifier checks the final
log too.
"""

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

NU_BIN = os.environ.get("NU_BIN")
SRC = os.environ.get("NU_SOURCE_DIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
KILLS = 60

if not NU_BIN or not os.access(NU_BIN, os.X_OK):
    print("skip: NU_BIN is not set to the nucleus binary")
    sys.exit(77)


def verify(home):
    p = subprocess.run([NU_BIN, "audit", "verify", "--home", home],
                       capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def log_state(home, printed):
    """Return (newest seq, printed seqs not in the log), or (None, [])
    while the database or the node key does not exist yet."""
    db = os.path.join(home, "audit.db")
    if not os.path.exists(db) or \
            not os.path.exists(os.path.join(home, "audit", "node.pub")):
        return None, []
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        size = conn.execute("SELECT coalesce(max(seq), 0) FROM events"
                            ).fetchone()[0]
    except sqlite3.OperationalError:
        conn.close()
        return None, []
    missing = [s for s in printed if conn.execute(
        "SELECT 1 FROM events WHERE seq = ?", (s,)).fetchone() is None]
    conn.close()
    return size, missing


def main():
    home = tempfile.mkdtemp(prefix="nu-audit-crash-")
    env = dict(os.environ, NUCLEUS_HOME=home)
    rng = random.Random(int(os.environ.get("NU_SEED", "9")))
    failures = 0
    returned_max = 0
    try:
        for i in range(1, KILLS + 1):
            argv = [NU_BIN, "audit", "append-test", "1000000", "--threads",
                    "4", "--every", "300", "--print-seq"]
            if i % 5 == 0:
                argv.append("--power")
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.02, 0.12))
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate()

            # Only complete lines: the last one may be cut by the kill.
            lines = out.decode().split("\n")[:-1]
            printed = [int(x) for x in lines if x.strip()]
            size, missing = log_state(home, printed)
            if size is None:
                # Killed before the first run created the schema or the
                # key: nothing was logged, so nothing can be lost.
                ok = not printed
                rc, msg, size = 0, "no log yet", 0
            else:
                rc, msg = verify(home)
                ok = rc == 0 and not missing and (not printed or
                                                  max(printed) <= size)
            returned_max = max([returned_max] + printed)
            print("%s %d - kill %d: %d appends returned, log has %d events"
                  % ("ok" if ok else "not ok", i, i, len(printed), size))
            if not ok:
                failures += 1
                print("# verify rc %d: %s; missing %s; stderr %s" %
                      (rc, msg, missing[:5], err.decode()[-200:]))

        p = subprocess.run([sys.executable,
                            os.path.join(SRC, "tools", "verify_audit.py"),
                            "--db", os.path.join(home, "audit.db")],
                           capture_output=True, text=True)
        ok = p.returncode == 0 and returned_max > 0
        print("%s %d - Python verifier accepts the log after %d kills: %s"
              % ("ok" if ok else "not ok", KILLS + 1, KILLS,
                 p.stdout.strip().split("\n")[0]))
        if not ok:
            failures += 1
            print("# " + p.stdout + p.stderr)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print("1..%d" % (KILLS + 1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
