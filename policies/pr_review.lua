-- pr_review: review a pull request checked out in the workspace and run
-- its tests.
--
-- The orchestrator checks out the pull request; the agent reads it, runs
-- the project's test suites from a finite list, and returns its
-- review.  The code under review is untrusted and runs here, so the pod
-- has no network and cannot send anything anywhere; it also cannot write
-- through the file tools.
return nucleus.profile {
  name = "pr_review",
  description = "read a checked-out pull request and run its tests; no writes through tools, no network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    run_bash = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "wc", "grep", "rg", "diff", "nl", "pwd", "echo", "true",
      "git status", "git diff", "git log", "git show", "git blame", "git merge-base",
      "make", "ctest", "pytest", "python -m pytest", "python3 -m pytest",
      "tox", "npm test", "npm run test", "yarn test", "go test", "go vet",
      "cargo test", "cargo check", "mvn test", "gradle test",
    },
    block = {},
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 3, input_tokens = 1500000, output_tokens = 100000, tool_calls = 300 },
  time = { ttl = 2 * 3600 },
  approvals = {},
}
