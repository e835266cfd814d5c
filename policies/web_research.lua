-- web_research: read the web, write findings into notes/.
--
-- The agent fetches pages and writes or edits files under notes/ and
-- research/ only.  It cannot read the workspace (no read_files, glob or
-- grep), so the session never reads private data and fetches are never
-- gated by the trifecta.  Write and edit return counts, not file
-- contents, so they add no exposure.
return nucleus.profile {
  name = "web_research",
  description = "fetch the web and write notes under notes/ and research/; no reads of the workspace",
  capabilities = {
    web_fetch = "always", web_search = "always",
    write_files = "always", edit_files = "always",
  },
  paths = { allow = { "notes/", "research/" }, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = { allow = {}, block = {} },
  network = { allow = {}, domains = nucleus.ALL, trusted = {} },
  budget = { usd = 5, input_tokens = 2000000, output_tokens = 200000, tool_calls = 500 },
  time = { ttl = 4 * 3600 },
  approvals = {},
}
