-- local_dev: a coding agent on a developer's machine.
--
-- Everything a coding agent does locally runs without asking: file tools,
-- any command that is not on the block list (inline code included, since
-- run_bash is "always"), test runners, builds and commits.  No network,
-- so nothing leaves the pod; pushing and publishing are blocked by
-- command rule as well, so adding egress later does not open them.
return nucleus.profile {
  name = "local_dev",
  description = "full local coding (files, any unblocked command, commits); no network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "always", edit_files = "always",
    run_bash = "always", git_commit = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = nucleus.ALL,
    block = {
      "sudo", "su", "doas", "pkexec",
      "git push", "git remote add", "git remote set-url", "git config",
      "gh", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "socat", "telnet",
      "npm publish", "twine upload", "cargo publish", "docker push",
      "crontab", "systemctl", "mkfs", "shutdown", "reboot",
    },
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 20, input_tokens = 5000000, output_tokens = 500000, tool_calls = 3000 },
  time = { ttl = 12 * 3600 },
  approvals = {},
}
