-- permissive: trusted automation on a disposable workspace.
--
-- Every capability and every network destination.  Credentials stay
-- unreadable and sudo-like commands stay blocked.  Normalization (the
-- trifecta closure) still attaches approval obligations to git_push,
-- create_pr and run_bash, because this profile grants private reads,
-- untrusted content and exfiltration at once; only use it where a person
-- answers those approvals or the workspace holds nothing secret.
return nucleus.profile {
  name = "permissive",
  description = "everything granted, including network; exfiltration still needs approval",
  capabilities = {
    read_files = "always", write_files = "always", edit_files = "always",
    run_bash = "always", glob_search = "always", grep_search = "always",
    web_search = "always", web_fetch = "always", git_commit = "always",
    git_push = "always", create_pr = "always", manage_pods = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = {} },
  commands = { allow = nucleus.ALL, block = { "sudo", "su", "doas", "pkexec" } },
  network = { allow = nucleus.ALL, domains = nucleus.ALL, trusted = {} },
  budget = { usd = 50, input_tokens = 10000000, output_tokens = 1000000, tool_calls = 10000 },
  time = { ttl = 24 * 3600 },
  approvals = {},
}
