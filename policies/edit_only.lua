-- edit_only: change files with the file tools, no shell.
--
-- For agents whose edits a separate step builds and tests.  Without
-- run_bash nothing can execute what the agent writes, and AUTORUN files
-- stay unwritable so nothing runs it later either.
return nucleus.profile {
  name = "edit_only",
  description = "read, search, write and edit files; no commands or network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "always", edit_files = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = { allow = {}, block = {} },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 10, input_tokens = 2000000, output_tokens = 300000, tool_calls = 1000 },
  time = { ttl = 8 * 3600 },
  approvals = {},
}
