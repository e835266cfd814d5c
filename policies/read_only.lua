-- read_only: read and search the workspace through the file tools only.
--
-- No shell, no writes, no network.  With nothing to send data out, the
-- trifecta cannot complete, so nothing ever needs approval.
return nucleus.profile {
  name = "read_only",
  description = "read, glob and grep the workspace; no commands, writes or network",
  capabilities = { read_files = "always", glob_search = "always", grep_search = "always" },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = { allow = {}, block = {} },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 5, input_tokens = 1000000, output_tokens = 100000, tool_calls = 1000 },
  time = { ttl = 8 * 3600 },
  approvals = {},
}
