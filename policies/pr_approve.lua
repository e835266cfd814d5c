-- pr_approve: read a pull request on GitHub and post an approval.
--
-- The agent may talk to GitHub through gh.  In a pod with egress to hosts
-- the operator does not vouch for, every command touches all three
-- trifecta legs, so each command needs approval: a person confirms before
-- a review is posted.  Reads through the file tools run freely.
return nucleus.profile {
  name = "pr_approve",
  description = "read a pull request and post a review with gh; every networked command needs approval",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    run_bash = "low_risk", create_pr = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = { "*" } },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "grep", "diff", "pwd", "echo",
      "git status", "git diff", "git log", "git show",
      "gh pr view", "gh pr diff", "gh pr checks", "gh pr review",
    },
    block = { "gh pr review --request-changes", "gh pr merge" },
  },
  network = { allow = {}, domains = { "github.com", "api.github.com" }, trusted = {} },
  budget = { usd = 2, input_tokens = 500000, output_tokens = 30000, tool_calls = 100 },
  time = { ttl = 3600 },
  approvals = { "create_pr" },
}
