#!/usr/bin/env python3
"""nucleus audit: proofs, exports, show, key and certificate-chain signers.

Every check that a valid input passes is paired with a damaged input that
must fail, and exports are checked by the C and the Python verifier.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

NU_BIN = os.environ.get("NU_BIN")
SRC = os.environ.get("NU_SOURCE_DIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
PYV = os.path.join(SRC, "tools", "verify_audit.py")

if not NU_BIN or not os.access(NU_BIN, os.X_OK):
    print("skip: NU_BIN is not set to the nucleus binary")
    sys.exit(77)
if shutil.which("openssl") is None:
    print("skip: openssl is not installed")
    sys.exit(77)

results = []


def nu(home, *args, check=False):
    p = subprocess.run([NU_BIN, "audit"] + list(args) + ["--home", home]
                       if "--db" not in args and "--file" not in args and
                       "check-proof" not in args
                       else [NU_BIN, "audit"] + list(args),
                       capture_output=True, text=True,
                       env=dict(os.environ, NUCLEUS_HOME=home))
    if check and p.returncode != 0:
        raise AssertionError("nucleus audit %s: %s" % (" ".join(args),
                                                       p.stderr))
    return p


def py(*args):
    return subprocess.run([sys.executable, PYV] + list(args),
                          capture_output=True, text=True)


def ok(name, cond, detail=""):
    results.append((name, cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), name))
    if not cond and detail:
        print("# " + detail.replace("\n", "\n# ")[:800])


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_ca(work, name):
    key = os.path.join(work, name + ".key")
    pem = os.path.join(work, name + ".pem")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
            key)
    openssl("req", "-x509", "-new", "-key", key, "-subj", "/CN=" + name,
            "-days", "2", "-out", pem)
    return key, pem


def make_leaf(work, ca_key, ca_pem):
    key = os.path.join(work, "node.key")
    csr = os.path.join(work, "node.csr")
    pem = os.path.join(work, "node.pem")
    ext = os.path.join(work, "node.ext")
    write(ext, "subjectAltName=URI:spiffe://nucleus.local/node/test\n"
               "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
            key)
    openssl("req", "-new", "-key", key, "-subj", "/CN=node", "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", pem)
    return key, pem


def test_proofs(work, home):
    proof = os.path.join(work, "inclusion.json")
    p = nu(home, "prove", "150", check=True)
    write(proof, p.stdout)
    c = nu(home, "check-proof", proof, "--key",
           os.path.join(home, "audit", "node.pub"))
    ok("inclusion proof checks", c.returncode == 0 and
       c.stdout.startswith("ok: event 150 is included"), c.stdout + c.stderr)

    doc = json.loads(p.stdout)
    doc["event"]["decision"] = "deny"
    write(proof, json.dumps(doc))
    c = nu(home, "check-proof", proof, "--key",
           os.path.join(home, "audit", "node.pub"))
    ok("inclusion proof with an edited event fails", c.returncode == 1,
       c.stdout)

    doc = json.loads(p.stdout)
    doc["path"][0] = "00" * 32
    write(proof, json.dumps(doc))
    c = nu(home, "check-proof", proof, "--key",
           os.path.join(home, "audit", "node.pub"))
    ok("inclusion proof with a damaged path fails", c.returncode == 1,
       c.stdout)

    other = os.path.join(work, "other.pub")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
            os.path.join(work, "other.key"))
    openssl("ec", "-in", os.path.join(work, "other.key"), "-pubout", "-out",
            other)
    write(proof, p.stdout)
    c = nu(home, "check-proof", proof, "--key", other)
    ok("inclusion proof under another key fails", c.returncode == 1,
       c.stdout)

    p = nu(home, "prove", "--from", "100", check=True)
    write(proof, p.stdout)
    c = nu(home, "check-proof", proof, "--key",
           os.path.join(home, "audit", "node.pub"))
    ok("consistency proof checks", c.returncode == 0 and "extends size 100"
       in c.stdout, c.stdout + c.stderr)
    doc = json.loads(p.stdout)
    doc["old_root"] = "ab" * 32
    doc.pop("old_checkpoint", None)
    write(proof, json.dumps(doc))
    c = nu(home, "check-proof", proof, "--key",
           os.path.join(home, "audit", "node.pub"))
    ok("consistency proof from a forged old root fails", c.returncode == 1,
       c.stdout)

    p = nu(home, "prove", "100000")
    ok("proof beyond the newest checkpoint is refused", p.returncode == 1 and
       "newest checkpoint covers" in p.stderr, p.stderr)


def test_exports(work, home):
    key = os.path.join(home, "audit", "node.pub")
    for name, extra in (("full", []), ("since", ["--since", "150"]),
                        ("pod", ["--pod", "pod-1"])):
        path = os.path.join(work, "export-%s.jsonl" % name)
        nu(home, "export", "-o", path, *extra, check=True)
        c = nu(home, "verify", "--file", path, "--key", key)
        v = py("--file", path, "--key", key)
        ok("%s export verifies in C and Python" % name,
           c.returncode == 0 and v.returncode == 0 and
           c.stdout.split("\n")[0] == v.stdout.split("\n")[0],
           c.stdout + c.stderr + v.stdout + v.stderr)

        with open(path) as f:
            lines = f.read().split("\n")[:-1]
        write(path + ".cut", "\n".join(lines[:-3]) + "\n")
        c = nu(home, "verify", "--file", path + ".cut", "--key", key)
        v = py("--file", path + ".cut", "--key", key)
        ok("truncated %s export fails in C and Python" % name,
           c.returncode == 1 and v.returncode == 1, c.stdout + v.stdout)

        idx = next(i for i, line in enumerate(lines)
                   if '"tool_call"' in line and i > 5)
        event = json.loads(lines[idx])
        event["reason"] = "edited"
        lines[idx] = json.dumps(event, sort_keys=True,
                                separators=(",", ":"))
        write(path + ".edit", "\n".join(lines) + "\n")
        c = nu(home, "verify", "--file", path + ".edit", "--key", key)
        v = py("--file", path + ".edit", "--key", key)
        want = "verification failed at seq %d:" % event["seq"]
        ok("edited %s export fails at the edited seq" % name,
           c.returncode == 1 and v.returncode == 1 and want in c.stdout and
           want in v.stdout, c.stdout + v.stdout)


def test_export_past_end(work, home):
    p = nu(home, "export", check=True)
    last = json.loads(p.stdout.strip().split("\n")[-1])["end"]["last_seq"]

    path = os.path.join(work, "export-empty.jsonl")
    p = nu(home, "export", "--since", str(last + 1), "-o", path)
    with open(path) as f:
        end = json.loads(f.read().strip().split("\n")[-1])
    ok("export from one past the end is empty",
       p.returncode == 0 and end["end"]["events"] == 0, p.stderr)

    # This used to fail with "cannot read tree node", naming no seq.
    p = nu(home, "export", "--since", str(last + 5))
    want = "the log ends at seq %d" % last
    ok("export from beyond the end names the last seq",
       p.returncode == 1 and want in p.stderr and
       "--since %d" % (last + 1) in p.stderr, p.stderr)


def test_export_newer_version(work, home):
    key = os.path.join(home, "audit", "node.pub")
    p = nu(home, "export", check=True)
    lines = p.stdout.split("\n")
    header = json.loads(lines[0])
    header["export"]["version"] = 2
    lines[0] = json.dumps(header, sort_keys=True, separators=(",", ":"))
    path = os.path.join(work, "export-v2.jsonl")
    write(path, "\n".join(lines))
    c = nu(home, "verify", "--file", path, "--key", key)
    out = c.stdout + c.stderr
    ok("export of a newer format version is rejected by version",
       c.returncode == 1 and "format version 2 is newer" in out and
       "nucleus release" in out, out)


def test_show(home):
    p = nu(home, "show", "--tail", "2", check=True)
    lines = p.stdout.strip().split("\n")
    ok("show --tail 2 prints two events", len(lines) == 2, p.stdout)

    nu(home, "append-test", "1", "--reason",
       "ok\u202etxt.exe\u200b\x1b[31m", check=True)
    p = nu(home, "show", "--tail", "1", check=True)
    ok("show escapes bidi, zero-width and control characters",
       "\\u{202e}" in p.stdout and "\\u{200b}" in p.stdout and
       "\\x1b" in p.stdout and "\u202e" not in p.stdout and
       "\x1b" not in p.stdout, repr(p.stdout))


def test_key_and_usage(home):
    p = nu(home, "key", check=True)
    with open(os.path.join(home, "audit", "node.pub")) as f:
        ok("key prints the node public key", p.stdout == f.read(), p.stdout)
    st = os.stat(os.path.join(home, "audit", "node.key"))
    ok("node key is private", st.st_mode & 0o077 == 0, oct(st.st_mode))
    p = subprocess.run([NU_BIN, "audit", "verify", "--home", home, "--db",
                        "x.db"], capture_output=True, text=True)
    ok("--home with --db is a usage error", p.returncode == 2, p.stderr)
    p = subprocess.run([NU_BIN, "audit", "verify", "--home",
                        os.path.join(home, "nonexistent")],
                       capture_output=True, text=True)
    ok("verify of a missing log fails with a hint", p.returncode == 1 and
       "no such file" in p.stderr, p.stderr)


def test_unanchored(home):
    nu(home, "checkpoint", check=True)
    p = nu(home, "verify", check=True)
    ok("no unanchored events right after a checkpoint",
       "unanchored: 0 events" in p.stdout, p.stdout)
    nu(home, "append-test", "5", check=True)
    p = nu(home, "verify", check=True)
    ok("events after the newest checkpoint are counted",
       "unanchored: 5 events after the newest checkpoint" in p.stdout,
       p.stdout)


def test_certificate_chain(work):
    home = os.path.join(work, "svid")
    ca_key, ca_pem = make_ca(work, "ca")
    _, other_pem = make_ca(work, "other-ca")
    leaf_key, leaf_pem = make_leaf(work, ca_key, ca_pem)
    nu(home, "append-test", "50", "--every", "20", "--signer-key", leaf_key,
       "--signer-chain", leaf_pem, check=True)
    db = os.path.join(home, "audit.db")
    c = nu(home, "verify", "--bundle", ca_pem)
    v = py("--db", db, "--bundle", ca_pem)
    ok("checkpoints signed with a certificate chain verify against the "
       "bundle", c.returncode == 0 and v.returncode == 0 and
       c.stdout.split("\n")[0] == v.stdout.split("\n")[0],
       c.stdout + c.stderr + v.stdout + v.stderr)
    c = nu(home, "verify", "--bundle", other_pem)
    v = py("--db", db, "--bundle", other_pem)
    ok("another trust bundle is rejected", c.returncode == 1 and
       v.returncode == 1 and "at seq 21:" in c.stdout and
       "at seq 21:" in v.stdout, c.stdout + v.stdout)


def main():
    work = tempfile.mkdtemp(prefix="nu-audit-cli-")
    home = os.path.join(work, "home")
    try:
        nu(home, "append-test", "75", "--threads", "4", "--every", "100",
           check=True)
        test_proofs(work, home)
        test_exports(work, home)
        test_export_past_end(work, home)
        test_export_newer_version(work, home)
        test_show(home)
        test_key_and_usage(home)
        test_unanchored(home)
        test_certificate_chain(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(cond for _, cond in results) else 1


if __name__ == "__main__":
    sys.exit(main())
