-- default: the profile a pod gets when none is named.
--
-- Local coding with a human nearby: read, search, write and edit the
-- workspace and run commands, with no network.  Credentials are never
-- readable and files that other tools run on their own (git hooks, CI
-- and shell start-up files) are never writable.  run_bash is low_risk,
-- so commands that run inline code (python -c), use options that start
-- other programs (find -exec, xargs) or set loader variables (LD_PRELOAD)
-- need approval; ordinary commands, pipes, heredocs and test runners run
-- without asking.
return nucleus.profile {
  name = "default",
  description = "local coding without network; risky shell constructs and commits need approval",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "always", edit_files = "always",
    run_bash = "low_risk", git_commit = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = nucleus.ALL,
    block = {
      "sudo", "su", "doas", "pkexec",
      "git push", "git remote add", "git remote set-url", "git config",
      "gh auth", "gh repo delete", "gh secret",
      "ssh", "scp", "sftp", "rsync", "nc", "ncat", "socat", "telnet",
      "npm publish", "twine upload", "cargo publish", "docker push",
      "crontab", "systemctl", "mkfs", "shutdown", "reboot",
    },
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 10, input_tokens = 2000000, output_tokens = 200000, tool_calls = 1000 },
  time = { ttl = 8 * 3600 },
  approvals = { "git_commit" },
}
