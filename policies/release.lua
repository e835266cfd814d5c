-- release: tag, build and push a release.
--
-- A finite command list for building, tagging and pushing.  Every commit,
-- push and pull request needs approval, whatever the session has seen.
-- The network reaches only the git host; list your own git server in
-- network.domains (and in network.trusted if you run it) instead of
-- github.com.
return nucleus.profile {
  name = "release",
  description = "build, tag and push a release; commits, pushes and pull requests need approval",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    edit_files = "low_risk", run_bash = "always",
    git_commit = "low_risk", git_push = "low_risk", create_pr = "low_risk",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = {
      "cd", "ls", "cat", "head", "tail", "grep", "diff", "pwd", "echo", "true",
      "make", "cmake", "ctest", "ninja",
      "git status", "git diff", "git log", "git show", "git describe",
      "git tag", "git add", "git commit", "git push", "git fetch",
      "gh release create", "gh pr create", "gh pr view",
      "sha256sum", "tar", "gzip", "xz",
    },
    block = { "git push --force", "git push -f", "git tag -d", "git tag --delete" },
  },
  network = { allow = {}, domains = { "github.com", "api.github.com", "uploads.github.com" }, trusted = {} },
  budget = { usd = 5, input_tokens = 500000, output_tokens = 50000, tool_calls = 300 },
  time = { ttl = 2 * 3600 },
  approvals = { "git_commit", "git_push", "create_pr" },
}
