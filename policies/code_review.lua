-- code_review: review the checked-out code and its history.
--
-- File tools plus read-only git and text commands from a finite list.  No
-- writes and no network: the review goes back to the orchestrator as the
-- agent's answer, not through the pod.
return nucleus.profile {
  name = "code_review",
  description = "read code and git history with read-only commands; no writes or network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    run_bash = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = { "*" } },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "wc", "grep", "rg", "diff", "nl", "sort",
      "uniq", "cut", "pwd", "echo", "true",
      "git status", "git diff", "git log", "git show", "git blame",
      "git ls-files", "git rev-parse", "git branch", "git merge-base",
      "git shortlog",
    },
    block = {},
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 5, input_tokens = 2000000, output_tokens = 100000, tool_calls = 500 },
  time = { ttl = 4 * 3600 },
  approvals = {},
}
