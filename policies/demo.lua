-- demo: show every kind of decision in a few calls.
--
-- Reading is allowed, writing needs approval, reading .env is denied
-- (path_denied), "rm" is denied (command_denied, not on the list) and
-- any fetch is denied (no network).  Small budget, fifteen minutes.
return nucleus.profile {
  name = "demo",
  description = "a small sandbox for demonstrations: reads allowed, writes gated, little else",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "low_risk", edit_files = "low_risk", run_bash = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = { "cd", "ls", "cat", "echo", "wc", "grep", "head", "tail", "date", "uname", "true" },
    block = {},
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 1, input_tokens = 100000, output_tokens = 10000, tool_calls = 100 },
  time = { ttl = 900 },
  approvals = { "write_files", "edit_files" },
}
