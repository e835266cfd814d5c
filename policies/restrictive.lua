-- restrictive: a person approves every change.
--
-- Reads and searches run freely; every write, edit and commit needs
-- approval.  Commands come from a short list of read-only tools, and any
-- flagged construct (inline code, -exec, eval) is denied because the
-- list is finite.  No network, a small budget and a one-hour lifetime.
return nucleus.profile {
  name = "restrictive",
  description = "reads run freely; every write, edit and commit needs approval; short command list",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "low_risk", edit_files = "low_risk",
    run_bash = "low_risk", git_commit = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "wc", "grep", "rg", "diff", "file", "stat",
      "pwd", "echo", "true",
      "git status", "git diff", "git log", "git show", "git commit",
    },
    block = {},
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 2, input_tokens = 300000, output_tokens = 30000, tool_calls = 200 },
  time = { ttl = 3600 },
  approvals = { "write_files", "edit_files", "git_commit" },
}
