-- demo-session: the profile of examples/demo.lua.
--
-- A coding agent that may read, search, edit, build and test the
-- workspace and push its branch.  Files under issues/ hold text pasted
-- from a bug tracker, so reading them makes the session "untrusted";
-- once it has also read private code, a push (an exfiltration vector)
-- needs approval: the dynamic trifecta gate.
return nucleus.profile {
  name = "demo-session",
  description = "coding agent for the demo: edits, builds and tests; pushes are gated by the trifecta",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "low_risk", edit_files = "low_risk", run_bash = "low_risk",
    git_commit = "low_risk", git_push = "low_risk",
  },
  paths = {
    allow = nucleus.ALL,
    block = nucleus.SENSITIVE,
    write_block = nucleus.AUTORUN,
    untrusted = { "issues/**" },
  },
  commands = { allow = nucleus.ALL, block = { "sudo", "rm -rf /", "gh auth **" } },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 2, input_tokens = 200000, output_tokens = 20000, tool_calls = 200 },
  time = { ttl = 1800 },
}
