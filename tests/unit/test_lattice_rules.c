/*
 * test_lattice_rules.c - path, command and network checks, and the
 * built-in SENSITIVE and AUTORUN pattern sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nucleus/glob.h"
#include "nucleus/lattice.h"

static void set_from_list(nu_strset_t *s, const char *const *items)
{
    nu_strset_free(s);
    for (size_t i = 0; items[i] != NULL; i++)
        assert_int_equal(nu_strset_add(s, items[i]), NU_OK);
}

/* A TOP permission whose paths block SENSITIVE and write-block AUTORUN. */
static void codegen_perm(nu_perm_t *p)
{
    nu_perm_init_top(p);
    set_from_list(&p->paths.block, nu_sensitive_patterns);
    set_from_list(&p->paths.write_block, nu_autorun_patterns);
}

/* --- paths ------------------------------------------------------------ */

static void test_lattice_sensitive_blocks_credentials(void **state)
{
    static const char *const secret[] = {
        ".env", ".env.local", "app/.env.production", "server.pem",
        "certs/server.pem", "deploy/tls/private.key", "id_rsa", "id_rsa.pub",
        "home/.ssh/id_ed25519", ".ssh/config", ".ssh", ".aws/credentials",
        ".gnupg/private-keys-v1.d/x.key", ".netrc", ".npmrc", ".pypirc",
        ".git-credentials", ".git/config", "vendor/lib/.git/config",
        ".docker/config.json", "home/.kube/config", "credentials.json",
        "config/credentials.json", "store.p12", "client.pfx", "secrets.yml",
        "secrets.yaml", "k8s/secrets.yaml", "release.keystore", ".htpasswd",
        "service-account.json", "gcp/service-account-prod.json",
        "client_secret_123.json", "infra/terraform.tfstate", ".config/gcloud/x",
        ".pgpass",
    };
    nu_perm_t p;
    const char *rule;

    (void)state;
    codegen_perm(&p);
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
        rule = NULL;
        if (nu_perm_check_path(&p, secret[i], NU_ACCESS_READ, &rule))
            fail_msg("SENSITIVE does not block '%s'", secret[i]);
        assert_non_null(rule);
    }
    nu_perm_free(&p);
}

static void test_lattice_sensitive_does_not_overblock(void **state)
{
    static const char *const ordinary[] = {
        "tokenizer.c", "keys.py", "src/key_value.rs", "environment.ts",
        "secretary.md", "src/env.rs", "docs/credentials.md", "keyboard.c",
        "pem_reader.go", "README.md", "src/secrets_manager.py", "envoy.yaml",
        "id.txt", "src/ssh/client.c", "config/settings.json", "git/config.c",
    };
    nu_perm_t p;
    const char *rule;

    (void)state;
    codegen_perm(&p);
    for (size_t i = 0; i < sizeof ordinary / sizeof ordinary[0]; i++) {
        if (!nu_perm_check_path(&p, ordinary[i], NU_ACCESS_READ, &rule))
            fail_msg("SENSITIVE blocks '%s' by rule '%s'", ordinary[i],
                     rule != NULL ? rule : "(none)");
    }
    nu_perm_free(&p);
}

static void test_lattice_autorun_blocks_writes_only(void **state)
{
    static const char *const autorun[] = {
        ".git/hooks/pre-commit", "sub/module/.git/hooks/post-checkout",
        ".git/config", ".gitmodules", ".gitattributes", ".bashrc",
        "home/user/.bash_profile", ".profile", ".zshrc", ".zprofile", ".envrc",
        ".vscode/tasks.json", "pkg/.vscode/settings.json", ".idea/workspace.xml",
        ".mcp.json", ".claude/settings.json", ".cursor/mcp.json",
        ".github/workflows/ci.yml", "tools/.github/workflows/x.yml",
        ".devcontainer/devcontainer.json", ".husky/pre-push",
        ".pre-commit-config.yaml",
    };
    static const char *const ordinary[] = {
        "src/main.c", ".github/CODEOWNERS", "docs/bashrc.md", "hooks/pre-commit",
        "git/hooks.c", "vscode.md", "Makefile",
    };
    nu_perm_t p;
    const char *rule;

    (void)state;
    nu_perm_init_top(&p);
    set_from_list(&p.paths.write_block, nu_autorun_patterns);

    for (size_t i = 0; i < sizeof autorun / sizeof autorun[0]; i++) {
        if (nu_perm_check_path(&p, autorun[i], NU_ACCESS_WRITE, &rule))
            fail_msg("AUTORUN does not block writing '%s'", autorun[i]);
        if (!nu_perm_check_path(&p, autorun[i], NU_ACCESS_READ, &rule))
            fail_msg("AUTORUN blocks reading '%s'", autorun[i]);
    }
    for (size_t i = 0; i < sizeof ordinary / sizeof ordinary[0]; i++) {
        if (!nu_perm_check_path(&p, ordinary[i], NU_ACCESS_WRITE, &rule))
            fail_msg("AUTORUN blocks writing '%s' by rule '%s'", ordinary[i],
                     rule != NULL ? rule : "(none)");
    }
    nu_perm_free(&p);
}

static void test_lattice_builtin_patterns_are_valid(void **state)
{
    (void)state;
    for (size_t i = 0; nu_sensitive_patterns[i] != NULL; i++)
        assert_true(nu_glob_valid(nu_sensitive_patterns[i]));
    for (size_t i = 0; nu_autorun_patterns[i] != NULL; i++)
        assert_true(nu_glob_valid(nu_autorun_patterns[i]));
}

static void test_lattice_path_block_wins_over_allow(void **state)
{
    static const char *const allow[] = { "src/**", "certs/", NULL };
    static const char *const block[] = { "*.pem", "src/vendor/", NULL };
    nu_perm_t p;
    const char *rule;

    (void)state;
    nu_perm_init_top(&p);
    set_from_list(&p.paths.allow, allow);
    set_from_list(&p.paths.block, block);

    assert_true(nu_perm_check_path(&p, "src/main.c", NU_ACCESS_WRITE, &rule));
    assert_null(rule);
    assert_true(nu_perm_check_path(&p, "certs/README", NU_ACCESS_READ, &rule));

    assert_false(nu_perm_check_path(&p, "certs/server.pem", NU_ACCESS_READ, &rule));
    assert_string_equal(rule, "*.pem");
    assert_false(nu_perm_check_path(&p, "src/vendor/lib.c", NU_ACCESS_READ, &rule));
    assert_string_equal(rule, "src/vendor/");

    /* Not allowed: no rule to report. */
    assert_false(nu_perm_check_path(&p, "docs/a.md", NU_ACCESS_READ, &rule));
    assert_null(rule);
    nu_perm_free(&p);
}

static void test_lattice_path_rejects_unnormalized(void **state)
{
    static const char *const bad[] = {
        "/etc/passwd", "../x", "a/../b", "./a", "a//b", "a/", "a/.", "..",
    };
    nu_perm_t p;
    const char *rule;

    (void)state;
    nu_perm_init_top(&p);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (nu_perm_check_path(&p, bad[i], NU_ACCESS_READ, &rule))
            fail_msg("accepted unnormalized path '%s'", bad[i]);
    }
    assert_true(nu_perm_check_path(&p, "", NU_ACCESS_READ, &rule));
    assert_true(nu_perm_check_path(&p, "a/.b/..c", NU_ACCESS_READ, &rule));
    nu_perm_free(&p);
}

static void test_lattice_path_invalid_block_fails_closed(void **state)
{
    nu_perm_t p;
    const char *rule;

    (void)state;
    nu_perm_init_top(&p);
    assert_int_equal(nu_strset_add(&p.paths.block, "secrets/[a"), NU_OK);
    assert_false(nu_perm_check_path(&p, "src/main.c", NU_ACCESS_READ, &rule));
    assert_string_equal(rule, "secrets/[a");
    nu_perm_free(&p);

    /* BOTTOM blocks everything. */
    nu_perm_init_bottom(&p);
    assert_false(nu_perm_check_path(&p, "src/main.c", NU_ACCESS_READ, &rule));
    assert_string_equal(rule, "*");
    nu_perm_free(&p);
}

/* --- commands --------------------------------------------------------- */

typedef struct {
    const char *rule;
    const char *argv[6];
    bool match;
} cmd_case_t;

static int argv_count(const char *const *argv)
{
    int n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

static void test_lattice_cmdrule_match(void **state)
{
    static const cmd_case_t cases[] = {
        { "git status", { "git", "status", NULL }, true },
        { "git status", { "git", "status", "--short", NULL }, true },
        { "git status", { "git", "push", NULL }, false },
        { "git status", { "git", NULL }, false },
        { "rm -rf", { "rm", "-rf", "/", NULL }, true },
        { "rm -rf", { "/bin/rm", "-rf", "/", NULL }, true },
        { "rm -rf", { "rm", "-r", "-f", NULL }, false },
        { "/usr/bin/git", { "git", NULL }, false },
        { "/usr/bin/git", { "/usr/bin/git", "log", NULL }, true },
        { "git * main", { "git", "push", "main", NULL }, true },
        { "git * main", { "git", "main", NULL }, false },
        { "gh ** token", { "gh", "auth", "token", NULL }, true },
        { "gh ** token", { "gh", "token", NULL }, true },
        { "gh ** token", { "gh", "a", "b", "c", "token", NULL }, true },
        { "gh ** token", { "gh", "a", "b", NULL }, false },
        { "gh auth **", { "gh", "auth", NULL }, true },
        { "sudo", { "sudo", "-u", "root", "id", NULL }, true },
        { "*", { "anything", NULL }, true },
        { "'my tool' x", { "my tool", "x", NULL }, true },
        { "echo \"a b\"", { "echo", "a b", NULL }, true },
        { "echo a\\ b", { "echo", "a b", NULL }, true },
        { "git 'push", { "git", "push", NULL }, false },
        { "", { "git", NULL }, false },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int argc = argv_count(cases[i].argv);
        bool got = nu_cmdrule_match(cases[i].rule, argc, (char *const *)cases[i].argv);
        if (got != cases[i].match)
            fail_msg("rule '%s' on '%s'...: expected %d", cases[i].rule,
                     cases[i].argv[0], cases[i].match);
    }
}

static void test_lattice_command_block_wins(void **state)
{
    static const char *const allow[] = { "git", "ls", "make **", NULL };
    static const char *const block[] = { "git push", "gh auth **", "sudo", NULL };
    char *push[] = { "git", "push", "--force", NULL };
    char *status[] = { "/usr/bin/git", "status", NULL };
    char *local_git[] = { "./git", "status", NULL };
    char *curl[] = { "curl", "x", NULL };
    char *empty[] = { "", NULL };
    nu_perm_t p;
    const char *rule;

    (void)state;
    nu_perm_init_top(&p);
    set_from_list(&p.commands.allow, allow);
    set_from_list(&p.commands.block, block);

    assert_false(nu_perm_check_command(&p, 3, push, &rule));
    assert_string_equal(rule, "git push");
    assert_true(nu_perm_check_command(&p, 2, status, &rule));
    assert_null(rule);
    assert_false(nu_perm_check_command(&p, 2, curl, &rule));
    assert_null(rule);

    /* An allow rule by base name does not cover a relative binary. */
    assert_false(nu_perm_check_command(&p, 2, local_git, &rule));
    assert_false(nu_perm_check_command(&p, 0, empty, &rule));
    assert_false(nu_perm_check_command(&p, 1, empty, &rule));

    /* Blocks match by base name even for relative paths. */
    char *local_sudo[] = { "./bin/sudo", "id", NULL };
    nu_strset_free(&p.commands.allow);
    nu_strset_init_top(&p.commands.allow);
    assert_false(nu_perm_check_command(&p, 2, local_sudo, &rule));
    assert_string_equal(rule, "sudo");
    nu_perm_free(&p);
}

/* --- network ---------------------------------------------------------- */

static void test_lattice_check_host(void **state)
{
    static const char *const allow[] = {
        "10.0.0.0/8:443", "192.0.2.7", "[2001:db8::/32]:443", "fd00::1", NULL,
    };
    static const char *const domains[] = { "example.org", "*.pypi.org", NULL };
    static const char *const trusted[] = { "git.internal.test", "10.1.0.0/16", NULL };
    nu_perm_t p;

    (void)state;
    nu_perm_init_top(&p);
    set_from_list(&p.network.allow, allow);
    set_from_list(&p.network.domains, domains);
    set_from_list(&p.network.trusted, trusted);

    assert_true(nu_perm_check_host(&p, "10.2.3.4", 443));
    assert_false(nu_perm_check_host(&p, "10.2.3.4", 80));
    assert_false(nu_perm_check_host(&p, "11.2.3.4", 443));
    assert_true(nu_perm_check_host(&p, "192.0.2.7", 22));
    assert_false(nu_perm_check_host(&p, "192.0.2.8", 22));
    assert_true(nu_perm_check_host(&p, "2001:db8::5", 443));
    assert_true(nu_perm_check_host(&p, "[2001:DB8::5]", 443));
    assert_false(nu_perm_check_host(&p, "2001:db9::5", 443));
    assert_true(nu_perm_check_host(&p, "fd00::1", 8080));
    assert_true(nu_perm_check_host(&p, "::ffff:10.0.0.1", 443));

    assert_true(nu_perm_check_host(&p, "example.org", 443));
    assert_true(nu_perm_check_host(&p, "EXAMPLE.org.", 443));
    assert_false(nu_perm_check_host(&p, "www.example.org", 443));
    assert_true(nu_perm_check_host(&p, "files.pypi.org", 443));
    assert_true(nu_perm_check_host(&p, "a.b.pypi.org", 443));
    assert_false(nu_perm_check_host(&p, "pypi.org", 443));
    assert_false(nu_perm_check_host(&p, "evilpypi.org", 443));

    assert_false(nu_perm_check_host(&p, "example.org", 0));
    assert_false(nu_perm_check_host(&p, "example.org", 70000));
    assert_false(nu_perm_check_host(&p, "", 443));
    assert_false(nu_perm_check_host(&p, NULL, 443));

    assert_true(nu_perm_host_trusted(&p, "git.internal.test"));
    assert_true(nu_perm_host_trusted(&p, "10.1.2.3"));
    assert_false(nu_perm_host_trusted(&p, "10.2.2.3"));
    assert_false(nu_perm_host_trusted(&p, "example.org"));

    /* TOP sets allow everything of their kind. */
    nu_strset_free(&p.network.domains);
    nu_strset_init_top(&p.network.domains);
    assert_true(nu_perm_check_host(&p, "anything.test", 443));
    assert_false(nu_perm_check_host(&p, "11.2.3.4", 443));
    nu_perm_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lattice_sensitive_blocks_credentials),
        cmocka_unit_test(test_lattice_sensitive_does_not_overblock),
        cmocka_unit_test(test_lattice_autorun_blocks_writes_only),
        cmocka_unit_test(test_lattice_builtin_patterns_are_valid),
        cmocka_unit_test(test_lattice_path_block_wins_over_allow),
        cmocka_unit_test(test_lattice_path_rejects_unnormalized),
        cmocka_unit_test(test_lattice_path_invalid_block_fails_closed),
        cmocka_unit_test(test_lattice_cmdrule_match),
        cmocka_unit_test(test_lattice_command_block_wins),
        cmocka_unit_test(test_lattice_check_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
