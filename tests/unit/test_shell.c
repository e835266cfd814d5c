/*
 * test_shell.c - the static shell parser: words, quoting, redirections,
 * heredocs, command flags, errors and limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nucleus/classify.h"
#include "nucleus/shell.h"

#define Q NU_SHELL_W_QUOTED
#define D NU_SHELL_W_DYNAMIC
#define G NU_SHELL_W_GLOB

static void parse(const char *src, nu_shell_script_t *s)
{
    assert_int_equal(nu_shell_parse(src, strlen(src), 0, s), NU_OK);
    if (s->flags != 0)
        print_error("%s: %s\n", src, s->error);
}

static void test_shell_word_quoting(void **state)
{
    static const struct {
        const char *src;
        const char *text;
        unsigned flags;
    } words[] = {
        { "'a'\"b\"\\c", "abc", Q },
        { "plain", "plain", 0 },
        { "'it''s'", "its", Q },
        { "\"it's\"", "it's", Q },
        { "'say \"hi\"'", "say \"hi\"", Q },
        { "\"a\\\"b\\\\c\\$d\\`e\\x\"", "a\"b\\c$d`e\\x", Q },
        { "$'\\n\\t\\\\\\'\\x41\\101\\u00e9'", "\n\t\\'AA\xc3\xa9", Q },
        { "$'\\U0001F600\\cA\\e'", "\xf0\x9f\x98\x80\x01\x1b", Q },
        { "$'a\\0b'", "ab", Q },
        { "$\"locale\"", "locale", Q },
        { "$x", "$x", D },
        { "${x:-y}", "${x:-y}", D },
        { "\"$x\"", "$x", Q | D },
        { "'$x'", "$x", Q },
        { "\\$x", "$x", Q },
        { "$", "$", 0 },
        { "a$", "a$", 0 },
        { "$1$@$#$?", "$1$@$#$?", D },
        { "$((1+2))", "$((1+2))", D },
        { "\"$(echo \"a b\")\"", "$(echo \"a b\")", Q | D },
        { "`id`", "`id`", D },
        { "*.py", "*.py", G },
        { "\"*.py\"", "*.py", Q },
        { "a?c", "a?c", G },
        { "[c]url", "[c]url", G },
        { "[", "[", 0 },
        { "{a,b}", "{a,b}", G },
        { "{1..3}", "{1..3}", G },
        { "{}", "{}", 0 },
        { "~/x", "~/x", 0 },
        { "a\\\nb", "ab", 0 },
        { "a#b", "a#b", 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char src[256];
        nu_shell_script_t s;
        snprintf(src, sizeof src, "cmd %s", words[i].src);
        parse(src, &s);
        assert_int_equal(s.flags, 0);
        const nu_shell_cmd_t *c = &s.cmds[s.ncmds - 1];
        assert_int_equal(c->nwords, 2);
        if (strcmp(c->words[1].text, words[i].text) != 0 ||
            c->words[1].flags != words[i].flags)
            print_error("%s: got '%s' flags %#x\n", words[i].src,
                        c->words[1].text, c->words[1].flags);
        assert_string_equal(c->words[1].text, words[i].text);
        assert_int_equal(c->words[1].flags, words[i].flags);
        nu_shell_script_free(&s);
    }
}

static void test_shell_substitution_commands_first(void **state)
{
    nu_shell_script_t s;

    (void)state;
    parse("echo \"$(a \"$(b)\")\" `c \\`d\\``", &s);
    assert_int_equal(s.ncmds, 5);
    assert_string_equal(s.cmds[0].words[0].text, "b");
    assert_string_equal(s.cmds[1].words[0].text, "a");
    assert_string_equal(s.cmds[1].words[1].text, "$(b)");
    assert_string_equal(s.cmds[2].words[0].text, "d");
    assert_string_equal(s.cmds[3].words[0].text, "c");
    assert_string_equal(s.cmds[4].words[0].text, "echo");
    nu_shell_script_free(&s);
}

static void test_shell_assignments(void **state)
{
    nu_shell_script_t s;

    (void)state;
    parse("a=1 b+=2 arr[0]=x \"c\"=3 d=4", &s);
    assert_int_equal(s.ncmds, 1);
    assert_int_equal(s.cmds[0].nassigns, 3);
    assert_string_equal(s.cmds[0].assigns[2].text, "arr[0]=x");
    assert_int_equal(s.cmds[0].nwords, 2);
    assert_string_equal(s.cmds[0].words[0].text, "c=3");
    assert_string_equal(s.cmds[0].words[1].text, "d=4");
    nu_shell_script_free(&s);

    parse("x=(a \"b c\" $(id)) y=2", &s);
    assert_int_equal(s.ncmds, 2);
    assert_string_equal(s.cmds[0].words[0].text, "id");
    assert_int_equal(s.cmds[1].nassigns, 2);
    assert_string_equal(s.cmds[1].assigns[0].text, "x=(a \"b c\" $(id))");
    nu_shell_script_free(&s);
}

static void test_shell_redirect_kinds(void **state)
{
    static const struct {
        int fd;
        nu_shell_redir_kind_t kind;
        const char *target;
    } want[] = {
        { 2, NU_SHELL_R_OUT, "err" },      { -1, NU_SHELL_R_APPEND, "app" },
        { -1, NU_SHELL_R_IN, "in" },       { 3, NU_SHELL_R_INOUT, "rw" },
        { 4, NU_SHELL_R_DUP_OUT, "1" },    { 5, NU_SHELL_R_DUP_IN, "0" },
        { -1, NU_SHELL_R_BOTH, "both" },   { -1, NU_SHELL_R_BOTH_APPEND, "ba" },
        { -1, NU_SHELL_R_CLOBBER, "clob" }, { -1, NU_SHELL_R_HERESTRING, "s t" },
        { 12, NU_SHELL_R_OUT, "f" },
    };
    nu_shell_script_t s;

    (void)state;
    parse("cmd 2>err >>app <in 3<>rw 4>&1 5<&0 &>both &>>ba >|clob <<<'s t' 12>f",
          &s);
    assert_int_equal(s.ncmds, 1);
    assert_int_equal(s.cmds[0].nredirs, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const nu_shell_redir_t *r = &s.cmds[0].redirs[i];
        assert_int_equal(r->fd, want[i].fd);
        assert_int_equal(r->kind, want[i].kind);
        assert_string_equal(r->target.text, want[i].target);
    }
    assert_string_equal(s.cmds[0].redirs[9].body, "s t");
    assert_true(s.cmds[0].redirs[9].body_literal);
    nu_shell_script_free(&s);

    /* A number followed by a space is an argument, not a fd. */
    parse("echo 2 > f", &s);
    assert_int_equal(s.cmds[0].nwords, 2);
    assert_int_equal(s.cmds[0].redirs[0].fd, -1);
    nu_shell_script_free(&s);
}

static void test_shell_heredocs(void **state)
{
    static const struct {
        const char *src;
        const char *body;
        int literal;
    } docs[] = {
        { "cat <<EOF\na $x\nEOF\n", "a $x\n", 0 },
        { "cat <<'EOF'\na $x\nEOF", "a $x\n", 1 },
        { "cat <<\"EOF\"\na\nEOF", "a\n", 1 },
        { "cat <<\\EOF\na\nEOF", "a\n", 1 },
        { "cat <<E\"O\"F\na\nEOF", "a\n", 1 },
        { "cat <<-EOF\n\t\ta\n\tEOF", "a\n", 0 },
        { "cat <<EOF\nno end", "no end\n", 0 },
        { "cat <<EOF\nEOFX\nEOF", "EOFX\n", 0 },
        { "cat <<EOF\n\nEOF", "\n", 0 },
        { "cat <<EOF\nEOF", "", 0 },
    };
    nu_shell_script_t s;

    (void)state;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        parse(docs[i].src, &s);
        assert_int_equal(s.flags, 0);
        assert_int_equal(s.ncmds, 1);
        assert_int_equal(s.cmds[0].redirs[0].kind, NU_SHELL_R_HEREDOC);
        assert_string_equal(s.cmds[0].redirs[0].body, docs[i].body);
        assert_int_equal(s.cmds[0].redirs[0].body_literal, docs[i].literal);
        nu_shell_script_free(&s);
    }

    /* Two bodies in order, then the next command. */
    parse("cat <<A - <<'B' | sort\n1\nA\n2 $(x)\nB\nls", &s);
    assert_int_equal(s.ncmds, 3);
    assert_string_equal(s.cmds[0].redirs[0].body, "1\n");
    assert_string_equal(s.cmds[0].redirs[1].body, "2 $(x)\n");
    assert_true(s.cmds[1].flags & NU_SHELL_C_PIPE_IN);
    assert_string_equal(s.cmds[2].words[0].text, "ls");
    nu_shell_script_free(&s);

    /* An unquoted body's substitutions are commands. */
    parse("cat <<EOF\n$(id) `date` \\$(no)\nEOF", &s);
    assert_int_equal(s.ncmds, 3);
    assert_string_equal(s.cmds[0].words[0].text, "id");
    assert_string_equal(s.cmds[1].words[0].text, "date");
    nu_shell_script_free(&s);

    /* A heredoc inside a command substitution. */
    parse("x=$(cat <<EOF\nbody\nEOF\n)", &s);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.ncmds, 2);
    assert_string_equal(s.cmds[0].redirs[0].body, "body\n");
    nu_shell_script_free(&s);
}

static void test_shell_command_flags(void **state)
{
    nu_shell_script_t s;

    (void)state;
    parse("a | b |& c; d & e && f &", &s);
    assert_int_equal(s.ncmds, 6);
    assert_int_equal(s.cmds[0].flags, 0);
    assert_int_equal(s.cmds[1].flags, NU_SHELL_C_PIPE_IN);
    assert_int_equal(s.cmds[2].flags, NU_SHELL_C_PIPE_IN);
    assert_int_equal(s.cmds[3].flags, NU_SHELL_C_BACKGROUND);
    assert_int_equal(s.cmds[4].flags, NU_SHELL_C_BACKGROUND);
    assert_int_equal(s.cmds[5].flags, NU_SHELL_C_BACKGROUND);
    nu_shell_script_free(&s);

    /* Every command of a compound on the right of a pipe reads the pipe. */
    parse("curl x | { read a; sh; }", &s);
    assert_int_equal(s.ncmds, 3);
    assert_true(s.cmds[2].flags & NU_SHELL_C_PIPE_IN);
    nu_shell_script_free(&s);
}

static void test_shell_compounds(void **state)
{
    static const struct {
        const char *src;
        size_t ncmds;
    } compounds[] = {
        { "if a; then b; elif c; then d; else e; fi", 5 },
        { "if a\nthen\n  b\nfi", 2 },
        { "while a; do b; done", 2 },
        { "until a; do b; done", 2 },
        { "for x in 1 2 3; do a; done", 1 },
        { "for x\ndo a\ndone", 1 },
        { "for x in $(ls); do a; done", 2 },
        { "for ((i = 0; i < 3; i++)); do a; done", 1 },
        { "for x in a; { b; }", 1 },
        { "select x in a b; do break; done", 1 },
        { "case $x in\n  a|b) one;;\n  (c) two;&\n  *) three;;&\nesac", 3 },
        { "case x in esac", 0 },
        { "f() { a; }", 1 },
        { "f () ( a )", 1 },
        { "function f { a; b; }", 2 },
        { "function f() { a; }", 1 },
        { "{ a; b; } > out", 3 },
        { "( a; b ) 2>&1", 3 },
        { "[[ -n $x && $y < 3 ]]", 1 },
        { "[[ $x =~ ^(a|b)$ ]]", 1 },
        { "(( x++ ))", 0 },
        { "(( $(a) + 1 ))", 1 },
        { "! a | b", 2 },
        { "echo if then else fi do done case esac { } in", 1 },
        { "time a", 1 },
    };
    nu_shell_script_t s;

    (void)state;
    for (size_t i = 0; i < sizeof compounds / sizeof compounds[0]; i++) {
        parse(compounds[i].src, &s);
        assert_int_equal(s.flags, 0);
        if (s.ncmds != compounds[i].ncmds)
            print_error("%s: %zu commands\n", compounds[i].src, s.ncmds);
        assert_int_equal(s.ncmds, compounds[i].ncmds);
        nu_shell_script_free(&s);
    }
}

static void test_shell_comments_and_blanks(void **state)
{
    nu_shell_script_t s;

    (void)state;
    parse("# only a comment\n\n  \t\n a # trailing ) ; `\n b\\\n c\r\n", &s);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.ncmds, 2);
    assert_string_equal(s.cmds[1].words[0].text, "b");
    /* bash keeps a carriage return in the word, as here. */
    assert_string_equal(s.cmds[1].words[1].text, "c\r");
    nu_shell_script_free(&s);

    parse("", &s);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.ncmds, 0);
    nu_shell_script_free(&s);
}

static void test_shell_errors_name_offset(void **state)
{
    static const struct {
        const char *src;
        const char *error;
    } errors[] = {
        { "echo 'abc", "unterminated single quote at byte 5" },
        { "echo \"abc", "unterminated double quote at byte 9" },
        { "echo `abc", "unterminated backquote at byte 9" },
        { "echo $'a", "unterminated $'...' string at byte 8" },
        { "echo ${a", "unterminated '${' at byte 8" },
        { "echo $(a", "missing ')' to close '$(' at byte 8" },
        { "if a; then b", "expected 'fi' to close 'if', found 'end of input' at byte 12" },
        { "a | | b", "unexpected '|' at byte 5" },
        { "a >", "missing the word after a redirection at byte 3" },
        { "fi", "unexpected 'fi' at byte 2" },
        { "a; ;", "unexpected ';' at byte 4" },
        { "a )", "unexpected ')' at byte 3" },
    };
    nu_shell_script_t s;

    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        assert_int_equal(nu_shell_parse(errors[i].src, strlen(errors[i].src), 0, &s),
                         NU_OK);
        assert_int_equal(s.flags, NU_CMDF_PARSE_ERROR);
        if (strcmp(s.error, errors[i].error) != 0)
            print_error("%s: %s\n", errors[i].src, s.error);
        assert_string_equal(s.error, errors[i].error);
        nu_shell_script_free(&s);
    }

    /* A NUL byte inside the given length is invalid. */
    assert_int_equal(nu_shell_parse("ls\0rm", 5, 0, &s), NU_OK);
    assert_int_equal(s.flags, NU_CMDF_PARSE_ERROR);
    nu_shell_script_free(&s);
}

static void test_shell_limits(void **state)
{
    nu_shell_script_t s;

    (void)state;
    assert_int_equal(nu_shell_parse("ls", 2, NU_SHELL_MAX_DEPTH, &s), NU_OK);
    assert_int_equal(s.flags, NU_CMDF_TOO_COMPLEX);
    nu_shell_script_free(&s);

    assert_int_equal(nu_shell_parse("ls", NU_SHELL_MAX_INPUT + 1, 0, &s), NU_OK);
    assert_int_equal(s.flags, NU_CMDF_TOO_COMPLEX);
    assert_int_equal(s.ncmds, 0);
    nu_shell_script_free(&s);

    char deep[512];
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        len += (size_t)sprintf(deep + len, "${");
    assert_int_equal(nu_shell_parse(deep, len, 0, &s), NU_OK);
    assert_int_equal(s.flags, NU_CMDF_TOO_COMPLEX);
    assert_non_null(strstr(s.error, "nesting deeper than"));
    nu_shell_script_free(&s);

    /* Redirections count against the per-command word limit. */
    char *many = malloc(NU_SHELL_MAX_WORDS * 4 + 16);
    assert_non_null(many);
    len = (size_t)sprintf(many, "a");
    for (int i = 0; i <= NU_SHELL_MAX_WORDS; i++)
        len += (size_t)sprintf(many + len, " <x");
    assert_int_equal(nu_shell_parse(many, len, 0, &s), NU_OK);
    assert_int_equal(s.flags, NU_CMDF_TOO_COMPLEX);
    nu_shell_script_free(&s);
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shell_word_quoting),
        cmocka_unit_test(test_shell_substitution_commands_first),
        cmocka_unit_test(test_shell_assignments),
        cmocka_unit_test(test_shell_redirect_kinds),
        cmocka_unit_test(test_shell_heredocs),
        cmocka_unit_test(test_shell_command_flags),
        cmocka_unit_test(test_shell_compounds),
        cmocka_unit_test(test_shell_comments_and_blanks),
        cmocka_unit_test(test_shell_errors_name_offset),
        cmocka_unit_test(test_shell_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
