-- fix_issue: an autonomous agent fixing one issue, SWE-bench style.
--
-- The orchestrator puts the repository and the issue text in the
-- workspace; the agent reproduces the bug, edits, runs the tests and
-- leaves a diff.  Commands run freely apart from the block list; the
-- budget and lifetime fit one issue.  Committing needs approval so a
-- person sees the change before it enters history; pushing and opening
-- pull requests are left to the orchestrator.
return nucleus.profile {
  name = "fix_issue",
  description = "reproduce, fix and test one issue locally; commits need approval; no network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "always", edit_files = "always",
    run_bash = "always", git_commit = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = nucleus.ALL,
    block = {
      "sudo", "su", "doas", "pkexec",
      "git push", "git remote", "git config", "git reset --hard", "git clean",
      "gh", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "socat", "telnet",
      "npm publish", "twine upload", "cargo publish", "docker",
      "crontab", "systemctl", "mkfs", "shutdown", "reboot",
    },
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 3, input_tokens = 1500000, output_tokens = 150000, tool_calls = 300 },
  time = { ttl = 2 * 3600 },
  approvals = { "git_commit" },
}
