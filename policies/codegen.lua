-- codegen: generate code in a workspace, as in the design document.
--
-- Reads are free; writes, edits and commands are low_risk, so flagged
-- shell constructs (inline code, -exec, loader variables) need approval
-- while ordinary commands run.  Commits need approval; pushing and
-- changing gh credentials are blocked.  No network.
return nucleus.profile {
  name = "codegen",
  description = "write code and run ordinary commands; flagged commands and commits need approval",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "low_risk", edit_files = "low_risk",
    run_bash = "low_risk", git_commit = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = { allow = nucleus.ALL, block = { "sudo", "git push", "gh auth **" } },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 5, input_tokens = 100000, output_tokens = 10000, tool_calls = 500 },
  time = { ttl = 3600 },
  approvals = { "git_commit" },
}
