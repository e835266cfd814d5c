#!/usr/bin/env python3
"""An orchestrator loop over the nucleus daemon.

A stand-in "model" proposes tool calls one at a time; each goes through
the daemon, whose answer is fed back as the next observation.  Denials
come back as observations too; a call that needs approval is shown to a
human approver (here: a second connection, as a separate approver tool
would be) who grants or refuses it.

    nucleus serve &                 # in another terminal
    examples/python/orchestrator.py --workspace /path/to/repo
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nucleus_client import Client, NucleusError  # noqa: E402

# What a model might ask for while fixing a bug.  A real orchestrator
# replaces this list with calls parsed from the model's replies.
PLAN = [
    {"tool": "glob", "pattern": "**/*.md"},
    {"tool": "grep", "pattern": "TODO", "max": 5},
    {"tool": "read", "path": "README.md", "limit": 200},
    {"tool": "read", "path": ".env"},
    {"tool": "run", "command": "ls -la | head -5"},
    {"tool": "run", "command": "python3 -c 'print(40 + 2)'"},
    {"tool": "run", "command": "git push origin HEAD"},
]


def default_socket():
    home = os.environ.get("NUCLEUS_HOME")
    if not home:
        state = os.environ.get("XDG_STATE_HOME")
        if state:
            home = os.path.join(state, "nucleus")
        elif os.geteuid() == 0:
            home = "/var/lib/nucleus"
        else:
            home = os.path.expanduser("~/.local/state/nucleus")
    return os.path.join(home, "nucleus.sock")


def ask_human(call, error):
    """The approver's decision.  Non-interactive runs refuse."""
    if not sys.stdin.isatty():
        return False
    print("  approval needed: %s\n  call: %r" % (error.reason, call))
    return input("  approve? [y/N] ").strip().lower() in ("y", "yes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=default_socket())
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--profile", default="codegen")
    args = ap.parse_args()

    with Client.unix(args.socket) as agent, Client.unix(args.socket) as approver:
        pod = agent.pod_create(args.profile, os.path.abspath(args.workspace))
        print("pod %s (%s)" % (pod["id"], pod["spiffe_id"]))
        for call in PLAN:
            try:
                result = agent.tool_call(pod["id"], call)
                observation = "ok: " + str(result)[:100]
            except NucleusError as e:
                if e.kind == "approval_required" and ask_human(call, e):
                    approver.approve(pod["id"], e.approval_key)
                    result = agent.tool_call(pod["id"], call)
                    observation = "approved, ok: " + str(result)[:100]
                else:
                    observation = "%s: %s" % (e.kind, e.reason)
            print("%-45s -> %s" % (str(call)[:45], observation))
        agent.charge(pod["id"], usd=0.01, input_tokens=4000, output_tokens=600)
        info = agent.pod_get(pod["id"])
        print("budget spent: %s" % info["budget"]["spent"])
        agent.pod_close(pod["id"])


if __name__ == "__main__":
    main()
