/*
 * patterns.c - the built-in path pattern sets nucleus.SENSITIVE and
 * nucleus.AUTORUN.
 *
 * Both use the path-rule syntax of nu_glob_match_path.  A pattern without
 * a slash matches a file or directory name at any depth, and a trailing
 * slash names a directory, so everything below it matches.  A pattern
 * with an inner slash is anchored at the workspace root, so such patterns
 * here begin with a "**" component to apply at any depth.  The patterns
 * match whether or not the file exists, so an agent cannot create one
 * either.
 *
 * SENSITIVE is meant for paths.block (denied for every access): files
 * that hold credentials, keys or tokens.  Names are chosen narrowly so
 * that ordinary source files stay readable: "*.key" blocks "server.key"
 * but not "keys.py", ".env*" blocks ".env.local" but not "environment.ts".
 *
 * AUTORUN is meant for paths.write_block: files that another program runs
 * or loads without being asked, so that a write to them executes code
 * later, outside the pod's checks (git hooks and config, shell start-up
 * files, editor, CI and agent configuration).
 */
#include <stddef.h>

#include "nucleus/lattice.h"

const char *const nu_sensitive_patterns[] = {
    /* Environment files with secrets (.env, .env.local, .env.production). */
    ".env*",

    /* Private keys, certificates and key stores. */
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",

    /* Credential directories of common tools. */
    ".ssh/",
    ".gnupg/",
    ".aws/",
    ".azure/",
    "**/.config/gcloud/",
    "**/.config/gh/",
    "**/.docker/config.json",
    "**/.kube/config",

    /* Credential files. */
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".my.cnf",
    ".htpasswd",
    ".git-credentials",
    ".vault-token",
    "**/.git/config",
    "credentials",
    "credentials.json",
    "client_secret*.json",
    "service-account*.json",
    "secrets.y*ml",
    "secrets.json",
    "*.tfstate",
    "*.tfstate.backup",
    NULL,
};

const char *const nu_autorun_patterns[] = {
    /* Git runs hooks and reads config, filters and submodule URLs. */
    "**/.git/hooks/",
    "**/.git/config",
    "**/.git/config.worktree",
    "**/.git/info/attributes",
    /* commondir and worktree links make git read its config (and so
     * core.fsmonitor, core.hooksPath) from another directory; alternates
     * pull in objects from elsewhere. */
    "**/.git/commondir",
    "**/.git/worktrees/",
    "**/.git/objects/info/alternates",
    ".gitmodules",
    ".gitattributes",

    /* Shell start-up files and direnv. */
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".envrc",

    /* Editor and dev-container configuration that can run tasks. */
    ".vscode/",
    ".idea/",
    ".devcontainer/",

    /* Agent configuration and instructions loaded at start-up. */
    ".mcp.json",
    ".claude/",
    ".cursor/",
    ".cursorrules",
    ".windsurfrules",
    ".aider.conf.yml",

    /* CI definitions and hook managers. */
    "**/.github/workflows/",
    ".gitlab-ci.yml",
    ".pre-commit-config.yaml",
    ".husky/",
    NULL,
};
