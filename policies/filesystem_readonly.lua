-- filesystem_readonly: explore the workspace with the file tools and with
-- commands that only read.
--
-- The command list is finite, so inline code, -exec options and eval are
-- denied outright.  The write_block pattern "*" matches every workspace
-- path, so a redirection such as "ls > out.txt" is denied too (only /tmp
-- and /dev/null stay writable).
-- NOTE: "git diff" and "git log" accept --output=FILE, which no command
-- rule can tell apart; only a read-only workspace mount stops that write.
return nucleus.profile {
  name = "filesystem_readonly",
  description = "file tools plus read-only commands (ls, cat, grep, git log); no writes or network",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    run_bash = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = { "*" } },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "wc", "grep", "rg", "diff", "file", "stat",
      "du", "tree", "pwd", "echo", "sort", "uniq", "cut", "tr", "nl",
      "sha256sum", "md5sum", "true",
      "git status", "git diff", "git log", "git show", "git blame",
      "git ls-files", "git rev-parse", "git branch",
    },
    block = {},
  },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 5, input_tokens = 1000000, output_tokens = 100000, tool_calls = 1000 },
  time = { ttl = 8 * 3600 },
  approvals = {},
}
