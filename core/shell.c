/*
 * shell.c - static parser for the POSIX sh subset (contract in shell.h).
 *
 * How it works
 *
 * A recursive-descent parser with one token of lookahead walks the input
 * once.  The lexer (nu__lex) produces operators, newlines, IO numbers and
 * words.  A word is scanned by nu__scan_word, which performs quote removal
 * and keeps every expansion as written.  Command substitution is parsed in
 * place: "$(" makes the lexer call back into nu__parse_list on the same
 * state, exactly as bash does, so the commands inside are reported before
 * the command whose word contains them.  Backquotes are unescaped into a
 * new buffer first and parsed as a separate source with the same output.
 *
 * Heredocs: a "<<" operator registers a pending body.  When the lexer
 * produces the next newline token, it reads the pending bodies line by line
 * until each delimiter, in order.  Bodies live in a table owned by the
 * parse (the command that owns the redirection may still be under
 * construction) and are moved into their redirections when the parse ends.
 * An unquoted body is scanned for $(..) and `..`, whose commands are
 * reported.  A body that reaches the end of input without its delimiter is
 * accepted, as bash accepts it with a warning.
 *
 * Reserved words (if, then, {, }, ...) are recognized only as unquoted
 * words in command position.  Failure is sticky: the first error or limit
 * is recorded in the root and every function returns -1 until the top.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/classify.h"
#include "nucleus/error.h"
#include "nucleus/shell.h"

enum { NU__FAIL_NONE, NU__FAIL_PARSE, NU__FAIL_LIMIT, NU__FAIL_NOMEM };

typedef enum {
    NU__T_EOF, NU__T_WORD, NU__T_NEWLINE, NU__T_IONUM,
    NU__T_SEMI, NU__T_DSEMI, NU__T_SEMI_AMP, NU__T_DSEMI_AMP,
    NU__T_AMP, NU__T_AND, NU__T_OR, NU__T_PIPE, NU__T_PIPE_AMP,
    NU__T_LPAREN, NU__T_RPAREN,
    NU__T_LESS, NU__T_GREAT, NU__T_DGREAT, NU__T_CLOBBER, NU__T_LESSGREAT,
    NU__T_LESSAND, NU__T_GREATAND, NU__T_ANDGREAT, NU__T_ANDDGREAT,
    NU__T_DLESS, NU__T_DLESSDASH, NU__T_TLESS
} nu__tok_kind_t;

static const char *const nu__tok_text[] = {
    "end of input", "word", "newline", "fd number",
    ";", ";;", ";&", ";;&", "&", "&&", "||", "|", "|&", "(", ")",
    "<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<", "<<-", "<<<",
};

typedef struct nu__buf {
    char *p;
    size_t len;
    size_t cap;
} nu__buf_t;

typedef struct nu__tok {
    nu__tok_kind_t kind;
    nu_shell_word_t word;   /* NU__T_WORD only; owned until taken */
    int assign;             /* word starts with NAME= (or NAME+=, NAME[..]=) */
    int ionum;
    size_t offset;
} nu__tok_t;

typedef struct nu__body {
    char *body;
    int literal;
} nu__body_t;

typedef struct nu__pending {
    size_t slot;            /* index into the root's body table */
    char *delim;
    int strip_tabs;
    int literal;
} nu__pending_t;

typedef struct nu__root {
    nu_shell_script_t *out;
    int fail;
    nu__body_t *bodies;
    size_t nbodies;
    size_t capbodies;
} nu__root_t;

typedef struct nu__st {
    nu__root_t *root;
    const char *src;
    size_t len;
    size_t pos;
    size_t base;            /* offset of src in the top-level input */
    unsigned depth;
    nu__tok_t tok;
    int have_tok;
    nu__pending_t *pending;
    size_t npending;
    size_t cappending;
} nu__st_t;

/* A word under construction. */
typedef struct nu__wb {
    nu__buf_t buf;
    unsigned flags;
    int plain;              /* nothing quoted or expanded so far */
    long eq;                /* index of the first '=' while plain, or -1 */
    int brace_open;
    int brace_sep;
    int bracket_open;
} nu__wb_t;

static int nu__parse_list(nu__st_t *st);
static int nu__parse_command(nu__st_t *st);
static int nu__scan_dollar(nu__st_t *st, nu__buf_t *b, unsigned *flags,
                           int in_dq);
static int nu__scan_backquote(nu__st_t *st, nu__buf_t *b, unsigned *flags,
                              int in_dq);
static int nu__scan_dq(nu__st_t *st, nu__buf_t *b, unsigned *flags);

/* --- failures and buffers ------------------------------------------- */

static int nu__fail(nu__st_t *st, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int nu__fail(nu__st_t *st, int kind, const char *fmt, ...)
{
    nu__root_t *root = st->root;

    if (root->fail != NU__FAIL_NONE)
        return -1;
    root->fail = kind;
    if (kind == NU__FAIL_NOMEM)
        return -1;

    char detail[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(root->out->error, sizeof root->out->error, "%s at byte %zu",
             detail, st->base + (st->pos < st->len ? st->pos : st->len));
    return -1;
}

static int nu__nomem(nu__st_t *st)
{
    return nu__fail(st, NU__FAIL_NOMEM, "out of memory");
}

static int nu__buf_put(nu__st_t *st, nu__buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return nu__nomem(st);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int nu__buf_putc(nu__st_t *st, nu__buf_t *b, char c)
{
    return nu__buf_put(st, b, &c, 1);
}

/* Take the buffer's string (an empty string when nothing was added). */
static char *nu__buf_take(nu__st_t *st, nu__buf_t *b)
{
    char *p = b->p;

    if (p == NULL) {
        p = strdup("");
        if (p == NULL)
            nu__nomem(st);
    }
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

static int nu__enter(nu__st_t *st)
{
    if (st->root->fail != NU__FAIL_NONE)
        return -1;
    if (st->depth >= NU_SHELL_MAX_DEPTH)
        return nu__fail(st, NU__FAIL_LIMIT, "nesting deeper than %d",
                        NU_SHELL_MAX_DEPTH);
    st->depth++;
    return 0;
}

static int nu__leave(nu__st_t *st, int rc)
{
    st->depth--;
    return rc;
}

/* --- commands ---------------------------------------------------------- */

static void nu__word_free(nu_shell_word_t *w)
{
    free(w->text);
    w->text = NULL;
}

static void nu__cmd_free(nu_shell_cmd_t *c)
{
    for (size_t i = 0; i < c->nwords; i++)
        nu__word_free(&c->words[i]);
    for (size_t i = 0; i < c->nassigns; i++)
        nu__word_free(&c->assigns[i]);
    for (size_t i = 0; i < c->nredirs; i++) {
        nu__word_free(&c->redirs[i].target);
        free(c->redirs[i].body);
    }
    free(c->words);
    free(c->assigns);
    free(c->redirs);
    memset(c, 0, sizeof *c);
}

static int nu__grow(nu__st_t *st, void **arr, size_t n, size_t *cap,
                    size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*arr, ncap * size);
    if (p == NULL)
        return nu__nomem(st);
    *arr = p;
    *cap = ncap;
    return 0;
}

/* Arrays in nu_shell_cmd_t have no capacity field: their capacity is the
 * smallest power of two from 4 that fits n elements, as nu__grow makes it. */
static size_t nu__cap_of(size_t n)
{
    size_t cap = 0;

    if (n > 0) {
        cap = 4;
        while (cap < n)
            cap *= 2;
    }
    return cap;
}

/* Add a word to a word list, counting it against the per-command limit. */
static int nu__push_word(nu__st_t *st, nu_shell_cmd_t *c, nu_shell_word_t **arr,
                         size_t *n, nu_shell_word_t *w)
{
    size_t cap = nu__cap_of(*n);

    if (c->nwords + c->nassigns + c->nredirs >= NU_SHELL_MAX_WORDS)
        return nu__fail(st, NU__FAIL_LIMIT, "more than %d words in a command",
                        NU_SHELL_MAX_WORDS);
    if (nu__grow(st, (void **)arr, *n, &cap, sizeof **arr) != 0)
        return -1;
    (*arr)[(*n)++] = *w;
    w->text = NULL;
    return 0;
}

static int nu__push_redir(nu__st_t *st, nu_shell_cmd_t *c, nu_shell_redir_t *r)
{
    size_t cap = nu__cap_of(c->nredirs);

    if (c->nwords + c->nassigns + c->nredirs >= NU_SHELL_MAX_WORDS)
        return nu__fail(st, NU__FAIL_LIMIT, "more than %d words in a command",
                        NU_SHELL_MAX_WORDS);
    if (nu__grow(st, (void **)&c->redirs, c->nredirs, &cap, sizeof *r) != 0)
        return -1;
    c->redirs[c->nredirs++] = *r;
    memset(r, 0, sizeof *r);
    return 0;
}

/* Move c into the output; c is empty afterwards either way. */
static int nu__emit(nu__st_t *st, nu_shell_cmd_t *c)
{
    nu_shell_script_t *out = st->root->out;

    if (out->ncmds >= NU_SHELL_MAX_COMMANDS) {
        nu__cmd_free(c);
        return nu__fail(st, NU__FAIL_LIMIT, "more than %d commands",
                        NU_SHELL_MAX_COMMANDS);
    }
    if (nu__grow(st, (void **)&out->cmds, out->ncmds, &out->cap,
                 sizeof *c) != 0) {
        nu__cmd_free(c);
        return -1;
    }
    out->cmds[out->ncmds++] = *c;
    memset(c, 0, sizeof *c);
    return 0;
}

static void nu__mark(nu__st_t *st, size_t from, unsigned flag)
{
    nu_shell_script_t *out = st->root->out;

    for (size_t i = from; i < out->ncmds; i++)
        out->cmds[i].flags |= flag;
}

/* Drop the commands emitted since n (used when a guess is retracted). */
static void nu__truncate(nu__st_t *st, size_t n)
{
    nu_shell_script_t *out = st->root->out;

    while (out->ncmds > n)
        nu__cmd_free(&out->cmds[--out->ncmds]);
}

/* --- sub-parsers over other buffers ------------------------------------ */

static void nu__st_init(nu__st_t *st, nu__root_t *root, const char *src,
                        size_t len, size_t base, unsigned depth)
{
    memset(st, 0, sizeof *st);
    st->root = root;
    st->src = src;
    st->len = len;
    st->base = base;
    st->depth = depth;
}

static void nu__st_release(nu__st_t *st)
{
    if (st->have_tok)
        nu__word_free(&st->tok.word);
    st->have_tok = 0;
    for (size_t i = 0; i < st->npending; i++)
        free(st->pending[i].delim);
    free(st->pending);
    st->pending = NULL;
    st->npending = st->cappending = 0;
}

static int nu__peek(nu__st_t *st);

/* Parse a whole program: a list followed by the end of input. */
static int nu__parse_program(nu__st_t *st)
{
    if (nu__parse_list(st) != 0)
        return -1;

    int k = nu__peek(st);
    if (k < 0)
        return -1;
    if (k != NU__T_EOF) {
        if (k == NU__T_WORD)
            return nu__fail(st, NU__FAIL_PARSE, "unexpected '%.40s'",
                            st->tok.word.text);
        return nu__fail(st, NU__FAIL_PARSE, "unexpected '%s'",
                        nu__tok_text[k]);
    }
    return 0;
}

/* Parse text (backquote contents) as a nested program. */
static int nu__parse_nested(nu__st_t *st, const char *text, size_t len,
                            size_t base)
{
    nu__st_t sub;
    int rc;

    if (st->depth >= NU_SHELL_MAX_DEPTH)
        return nu__fail(st, NU__FAIL_LIMIT, "nesting deeper than %d",
                        NU_SHELL_MAX_DEPTH);
    nu__st_init(&sub, st->root, text, len, base, st->depth + 1);
    rc = nu__parse_program(&sub);
    nu__st_release(&sub);
    return rc;
}

/* --- word scanning ------------------------------------------------------ */

static int nu__is_meta(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' ||
           c == '|' || c == '(' || c == ')' || c == '<' || c == '>';
}

static int nu__is_name_start(char c)
{
    return c == '_' || isalpha((unsigned char)c);
}

static int nu__is_name_char(char c)
{
    return c == '_' || isalnum((unsigned char)c);
}

static int nu__at(const nu__st_t *st, size_t off)
{
    return st->pos + off < st->len ? (unsigned char)st->src[st->pos + off] : -1;
}

static int nu__put_utf8(nu__st_t *st, nu__buf_t *b, unsigned long cp)
{
    char u[4];
    size_t n;

    if (cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return nu__buf_put(st, b, u, n);
}

/* Read up to max digits of base at pos; returns how many were read. */
static int nu__read_digits(nu__st_t *st, int base, int max, unsigned long *v)
{
    int n = 0;

    *v = 0;
    while (n < max) {
        int c = nu__at(st, 0);
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (d >= base)
            break;
        *v = *v * (unsigned long)base + (unsigned long)d;
        st->pos++;
        n++;
    }
    return n;
}

/* Decode one backslash escape of $'..' at pos (just after the backslash).
 * A decoded NUL ends the string in bash; it is dropped here. */
static int nu__ansi_escape(nu__st_t *st, nu__buf_t *b)
{
    static const char from[] = "ntrabefvE\\'\"?";
    static const char to[] = "\n\t\r\a\b\033\f\v\033\\'\"?";
    int c = nu__at(st, 0);
    unsigned long v;
    const char *hit;

    if (c < 0)
        return nu__buf_putc(st, b, '\\');
    hit = strchr(from, c);
    if (hit != NULL && c != 0) {
        st->pos++;
        return nu__buf_putc(st, b, to[hit - from]);
    }
    if (c >= '0' && c <= '7') {
        nu__read_digits(st, 8, 3, &v);
        return v == 0 ? 0 : nu__buf_putc(st, b, (char)(v & 0xFF));
    }
    if (c == 'x' || c == 'u' || c == 'U') {
        st->pos++;
        int max = 8;
        if (c == 'x')
            max = 2;
        else if (c == 'u')
            max = 4;
        int n = nu__read_digits(st, 16, max, &v);
        if (n == 0) {
            char raw[2] = { '\\', (char)c };
            return nu__buf_put(st, b, raw, 2);
        }
        if (v == 0)
            return 0;
        if (c == 'x')
            return nu__buf_putc(st, b, (char)v);
        return nu__put_utf8(st, b, v);
    }
    if (c == 'c' && nu__at(st, 1) >= 0) {
        char ctl = (char)(nu__at(st, 1) & 0x1F);
        st->pos += 2;
        return ctl == 0 ? 0 : nu__buf_putc(st, b, ctl);
    }
    char raw[2] = { '\\', (char)c };
    st->pos++;
    return nu__buf_put(st, b, raw, 2);
}

/* $'...' at pos (on the '$'). */
static int nu__scan_ansi(nu__st_t *st, nu__buf_t *b, unsigned *flags)
{
    st->pos += 2;
    *flags |= NU_SHELL_W_QUOTED;
    for (;;) {
        int c = nu__at(st, 0);
        if (c < 0)
            return nu__fail(st, NU__FAIL_PARSE, "unterminated $'...' string");
        st->pos++;
        if (c == '\'')
            return 0;
        int rc = c == '\\' ? nu__ansi_escape(st, b)
                           : nu__buf_putc(st, b, (char)c);
        if (rc != 0)
            return -1;
    }
}

/* '...' at pos. */
static int nu__scan_squote(nu__st_t *st, nu__buf_t *b, unsigned *flags)
{
    const char *start = st->src + st->pos + 1;
    const char *end = memchr(start, '\'', st->len - st->pos - 1);

    if (end == NULL)
        return nu__fail(st, NU__FAIL_PARSE, "unterminated single quote");
    *flags |= NU_SHELL_W_QUOTED;
    st->pos += (size_t)(end - start) + 2;
    return nu__buf_put(st, b, start, (size_t)(end - start));
}

/* $( ... ) with pos on the '('. */
static int nu__scan_cmdsubst(nu__st_t *st)
{
    st->pos++;
    if (nu__parse_list(st) != 0)
        return -1;

    int k = nu__peek(st);
    if (k < 0)
        return -1;
    if (k != NU__T_RPAREN)
        return nu__fail(st, NU__FAIL_PARSE, "missing ')' to close '$('");
    st->have_tok = 0;
    return 0;
}

/* Arithmetic text after "((" up to the closing "))".  Returns 0 when found,
 * 1 when a lone ')' closes it first (so it was a nested subshell), -1 on
 * failure.  Substitutions inside are parsed and reported. */
static int nu__scan_arith(nu__st_t *st)
{
    nu__buf_t scratch = { 0 };
    unsigned flags = 0;
    int depth = 0;
    int rc = 0;

    if (nu__enter(st) != 0)
        return -1;
    for (;;) {
        int c = nu__at(st, 0);
        if (c < 0) {
            rc = nu__fail(st, NU__FAIL_PARSE, "unterminated '(('");
            break;
        }
        if (c == '(') {
            depth++;
            st->pos++;
        } else if (c == ')') {
            if (depth == 0) {
                if (nu__at(st, 1) == ')') {
                    st->pos += 2;
                    rc = 0;
                } else {
                    rc = 1;
                }
                break;
            }
            depth--;
            st->pos++;
        } else if (c == '$') {
            rc = nu__scan_dollar(st, &scratch, &flags, 1);
        } else if (c == '`') {
            rc = nu__scan_backquote(st, &scratch, &flags, 1);
        } else if (c == '"') {
            rc = nu__scan_dq(st, &scratch, &flags);
        } else if (c == '\'') {
            rc = nu__scan_squote(st, &scratch, &flags);
        } else if (c == '\\') {
            st->pos += nu__at(st, 1) >= 0 ? 2 : 1;
        } else {
            st->pos++;
        }
        if (rc != 0)
            break;
    }
    free(scratch.p);
    return nu__leave(st, rc);
}

/* ${ ... } with pos on the '$'. */
static int nu__scan_braces(nu__st_t *st, int in_dq)
{
    nu__buf_t scratch = { 0 };
    unsigned flags = 0;
    int depth = 1;
    int rc = 0;

    if (nu__enter(st) != 0)
        return -1;
    st->pos += 2;
    while (depth > 0 && rc == 0) {
        int c = nu__at(st, 0);
        if (c < 0) {
            rc = nu__fail(st, NU__FAIL_PARSE, "unterminated '${'");
        } else if (c == '}') {
            depth--;
            st->pos++;
        } else if (c == '{') {
            depth++;
            st->pos++;
        } else if (c == '\\') {
            st->pos += nu__at(st, 1) >= 0 ? 2 : 1;
        } else if (c == '\'' && !in_dq) {
            rc = nu__scan_squote(st, &scratch, &flags);
        } else if (c == '"') {
            rc = nu__scan_dq(st, &scratch, &flags);
        } else if (c == '$') {
            rc = nu__scan_dollar(st, &scratch, &flags, in_dq);
        } else if (c == '`') {
            rc = nu__scan_backquote(st, &scratch, &flags, in_dq);
        } else {
            st->pos++;
        }
    }
    free(scratch.p);
    return nu__leave(st, rc);
}

/* Any $ form at pos.  Expansions are appended to b as written and set
 * NU_SHELL_W_DYNAMIC; $'..' and $".." are quoting and are decoded. */
static int nu__scan_dollar(nu__st_t *st, nu__buf_t *b, unsigned *flags,
                           int in_dq)
{
    size_t start = st->pos;
    int c1 = nu__at(st, 1);
    int rc = 0;

    if (c1 == '\'' && !in_dq)
        return nu__scan_ansi(st, b, flags);
    if (c1 == '"' && !in_dq) {
        st->pos++;
        return nu__scan_dq(st, b, flags);
    }

    if (c1 == '(' && nu__at(st, 2) == '(') {
        size_t ncmds = st->root->out->ncmds;
        st->pos += 3;
        rc = nu__scan_arith(st);
        if (rc == 1) {
            /* "$( (" : a subshell inside a command substitution. */
            nu__truncate(st, ncmds);
            st->pos = start + 1;
            rc = nu__scan_cmdsubst(st);
        }
    } else if (c1 == '(') {
        st->pos++;
        rc = nu__scan_cmdsubst(st);
    } else if (c1 == '{') {
        rc = nu__scan_braces(st, in_dq);
    } else if (c1 >= 0 && nu__is_name_start((char)c1)) {
        st->pos += 2;
        while (nu__at(st, 0) >= 0 && nu__is_name_char((char)nu__at(st, 0)))
            st->pos++;
    } else if (c1 >= 0 && (isdigit(c1) || strchr("@*#?$!-", c1) != NULL)) {
        st->pos += 2;
    } else {
        st->pos++;
        return nu__buf_putc(st, b, '$');
    }
    if (rc != 0)
        return -1;

    *flags |= NU_SHELL_W_DYNAMIC;
    return nu__buf_put(st, b, st->src + start, st->pos - start);
}

/* `...` at pos: unescape the contents and parse them as a program. */
static int nu__scan_backquote(nu__st_t *st, nu__buf_t *b, unsigned *flags,
                              int in_dq)
{
    size_t start = st->pos;
    nu__buf_t inner = { 0 };
    int rc = 0;

    st->pos++;
    for (;;) {
        int c = nu__at(st, 0);
        if (c < 0) {
            free(inner.p);
            return nu__fail(st, NU__FAIL_PARSE, "unterminated backquote");
        }
        if (c == '`') {
            st->pos++;
            break;
        }
        int c1 = nu__at(st, 1);
        if (c == '\\' && c1 >= 0 &&
            (c1 == '$' || c1 == '`' || c1 == '\\' || (in_dq && c1 == '"'))) {
            rc = nu__buf_putc(st, &inner, (char)c1);
            st->pos += 2;
        } else {
            rc = nu__buf_putc(st, &inner, (char)c);
            st->pos++;
        }
        if (rc != 0) {
            free(inner.p);
            return -1;
        }
    }

    rc = nu__parse_nested(st, inner.p ? inner.p : "", inner.len,
                          st->base + start + 1);
    free(inner.p);
    if (rc != 0)
        return -1;
    *flags |= NU_SHELL_W_DYNAMIC;
    return nu__buf_put(st, b, st->src + start, st->pos - start);
}

/* "..." at pos. */
static int nu__scan_dq(nu__st_t *st, nu__buf_t *b, unsigned *flags)
{
    int rc = 0;

    if (nu__enter(st) != 0)
        return -1;
    *flags |= NU_SHELL_W_QUOTED;
    st->pos++;
    for (;;) {
        int c = nu__at(st, 0);
        if (c < 0) {
            rc = nu__fail(st, NU__FAIL_PARSE, "unterminated double quote");
            break;
        }
        if (c == '"') {
            st->pos++;
            break;
        }
        int c1 = nu__at(st, 1);
        if (c == '\\' && c1 == '\n') {
            st->pos += 2;
        } else if (c == '\\' && c1 >= 0 && strchr("$`\"\\", c1) != NULL) {
            rc = nu__buf_putc(st, b, (char)c1);
            st->pos += 2;
        } else if (c == '$') {
            rc = nu__scan_dollar(st, b, flags, 1);
        } else if (c == '`') {
            rc = nu__scan_backquote(st, b, flags, 1);
        } else {
            rc = nu__buf_putc(st, b, (char)c);
            st->pos++;
        }
        if (rc != 0)
            break;
    }
    return nu__leave(st, rc);
}

/* <( ... ) or >( ... ) at pos. */
static int nu__scan_procsubst(nu__st_t *st, nu__wb_t *w)
{
    size_t start = st->pos;

    st->pos++;
    if (nu__scan_cmdsubst(st) != 0)
        return -1;
    w->flags |= NU_SHELL_W_DYNAMIC;
    w->plain = 0;
    return nu__buf_put(st, &w->buf, st->src + start, st->pos - start);
}

/* NAME=( ... ) with pos on the '(': bash array assignment. */
static int nu__scan_array(nu__st_t *st, nu__wb_t *w);

static int nu__scan_word(nu__st_t *st, nu__wb_t *w)
{
    size_t start = st->pos;

    for (;;) {
        int c = nu__at(st, 0);
        int rc = 0;

        if (c < 0)
            break;
        if (c == 0)
            return nu__fail(st, NU__FAIL_PARSE, "NUL byte in input");
        if ((c == '<' || c == '>') && st->pos == start && nu__at(st, 1) == '(') {
            rc = nu__scan_procsubst(st, w);
        } else if (c == '(' && w->eq >= 0 && w->plain &&
                   (size_t)w->eq + 1 == w->buf.len) {
            rc = nu__scan_array(st, w);
        } else if (nu__is_meta((char)c)) {
            break;
        } else if (c == '\\') {
            int c1 = nu__at(st, 1);
            if (c1 == '\n') {
                st->pos += 2;
                continue;
            }
            w->flags |= NU_SHELL_W_QUOTED;
            w->plain = 0;
            if (c1 < 0) {
                st->pos++;
                rc = nu__buf_putc(st, &w->buf, '\\');
            } else {
                st->pos += 2;
                rc = nu__buf_putc(st, &w->buf, (char)c1);
            }
        } else if (c == '\'') {
            w->plain = 0;
            rc = nu__scan_squote(st, &w->buf, &w->flags);
        } else if (c == '"') {
            w->plain = 0;
            rc = nu__scan_dq(st, &w->buf, &w->flags);
        } else if (c == '$') {
            w->plain = 0;
            rc = nu__scan_dollar(st, &w->buf, &w->flags, 0);
        } else if (c == '`') {
            w->plain = 0;
            rc = nu__scan_backquote(st, &w->buf, &w->flags, 0);
        } else {
            if (c == '*' || c == '?')
                w->flags |= NU_SHELL_W_GLOB;
            else if (c == '[')
                w->bracket_open = 1;
            else if (c == ']' && w->bracket_open)
                w->flags |= NU_SHELL_W_GLOB;
            else if (c == '{')
                w->brace_open = 1;
            else if (c == ',' && w->brace_open)
                w->brace_sep = 1;
            else if (c == '.' && w->brace_open && nu__at(st, 1) == '.')
                w->brace_sep = 1;
            else if (c == '}' && w->brace_sep)
                w->flags |= NU_SHELL_W_GLOB;
            else if (c == '=' && w->plain && w->eq < 0)
                w->eq = (long)w->buf.len;
            st->pos++;
            rc = nu__buf_putc(st, &w->buf, (char)c);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int nu__scan_array(nu__st_t *st, nu__wb_t *w)
{
    size_t start = st->pos;
    int rc = 0;

    if (nu__enter(st) != 0)
        return -1;
    st->pos++;
    for (;;) {
        int c = nu__at(st, 0);
        if (c < 0) {
            rc = nu__fail(st, NU__FAIL_PARSE, "unterminated array assignment");
            break;
        }
        if (c == ' ' || c == '\t' || c == '\n') {
            st->pos++;
            continue;
        }
        if (c == ')') {
            st->pos++;
            break;
        }
        nu__wb_t elem = { .eq = -1 };
        size_t before = st->pos;
        rc = nu__scan_word(st, &elem);
        w->flags |= elem.flags & NU_SHELL_W_DYNAMIC;
        free(elem.buf.p);
        if (rc == 0 && st->pos == before)
            rc = nu__fail(st, NU__FAIL_PARSE, "unexpected '%c' in an array",
                          (char)c);
        if (rc != 0)
            break;
    }
    if (rc == 0)
        rc = nu__buf_put(st, &w->buf, st->src + start, st->pos - start);
    return nu__leave(st, rc);
}

/* Is the word NAME=, NAME+= or NAME[...]= up to its first plain '='? */
static int nu__is_assignment(const nu__wb_t *w)
{
    const char *s = w->buf.p;
    long eq = w->eq;
    long i = 0;

    if (eq <= 0 || !nu__is_name_start(s[0]))
        return 0;
    while (i < eq && nu__is_name_char(s[i]))
        i++;
    if (i < eq && s[i] == '[') {
        const char *close = memchr(s + i, ']', (size_t)(eq - i));
        if (close == NULL)
            return 0;
        i = close - s + 1;
    }
    if (i < eq && s[i] == '+')
        i++;
    return i == eq;
}

/* --- heredocs ------------------------------------------------------------ */

/* Report the command substitutions inside an unquoted heredoc body. */
static int nu__scan_body(nu__st_t *st, const char *body, size_t len,
                         size_t base)
{
    nu__st_t sub;
    nu__buf_t scratch = { 0 };
    unsigned flags = 0;
    int rc = 0;

    if (st->depth >= NU_SHELL_MAX_DEPTH)
        return nu__fail(st, NU__FAIL_LIMIT, "nesting deeper than %d",
                        NU_SHELL_MAX_DEPTH);
    nu__st_init(&sub, st->root, body, len, base, st->depth + 1);
    while (rc == 0 && sub.pos < sub.len) {
        char c = body[sub.pos];
        if (c == '\\')
            sub.pos += sub.pos + 1 < sub.len ? 2 : 1;
        else if (c == '$')
            rc = nu__scan_dollar(&sub, &scratch, &flags, 1);
        else if (c == '`')
            rc = nu__scan_backquote(&sub, &scratch, &flags, 1);
        else
            sub.pos++;
    }
    free(scratch.p);
    nu__st_release(&sub);
    return rc;
}

/* Read one pending body starting at pos, up to its delimiter line. */
static int nu__read_body(nu__st_t *st, const nu__pending_t *p)
{
    nu__buf_t body = { 0 };
    size_t dlen = strlen(p->delim);

    while (st->pos < st->len) {
        const char *line = st->src + st->pos;
        const char *nl = memchr(line, '\n', st->len - st->pos);
        size_t n = nl ? (size_t)(nl - line) : st->len - st->pos;

        st->pos += n + (nl ? 1 : 0);
        if (p->strip_tabs) {
            while (n > 0 && *line == '\t') {
                line++;
                n--;
            }
        }
        if (n == dlen && memcmp(line, p->delim, n) == 0)
            break;
        if (nu__buf_put(st, &body, line, n) != 0 ||
            nu__buf_putc(st, &body, '\n') != 0) {
            free(body.p);
            return -1;
        }
    }

    nu__body_t *b = &st->root->bodies[p->slot];
    b->literal = p->literal;
    b->body = nu__buf_take(st, &body);
    return b->body == NULL ? -1 : 0;
}

/* Read every pending body (the lexer just passed a newline token). */
static int nu__read_bodies(nu__st_t *st)
{
    int rc = 0;

    for (size_t i = 0; i < st->npending && rc == 0; i++) {
        size_t base = st->base + st->pos;
        rc = nu__read_body(st, &st->pending[i]);
        if (rc == 0 && !st->pending[i].literal) {
            const char *b = st->root->bodies[st->pending[i].slot].body;
            rc = nu__scan_body(st, b, strlen(b), base);
        }
    }
    for (size_t i = 0; i < st->npending; i++)
        free(st->pending[i].delim);
    st->npending = 0;
    return rc;
}

/* --- lexer -------------------------------------------------------------- */

static int nu__op(nu__st_t *st, nu__tok_kind_t kind, size_t n)
{
    st->tok.kind = kind;
    st->pos += n;
    return kind;
}

static int nu__lex_op(nu__st_t *st, int c)
{
    int c1 = nu__at(st, 1);
    int c2 = nu__at(st, 2);

    switch (c) {
    case ';':
        if (c1 == ';' && c2 == '&')
            return nu__op(st, NU__T_DSEMI_AMP, 3);
        if (c1 == ';')
            return nu__op(st, NU__T_DSEMI, 2);
        if (c1 == '&')
            return nu__op(st, NU__T_SEMI_AMP, 2);
        return nu__op(st, NU__T_SEMI, 1);
    case '&':
        if (c1 == '&')
            return nu__op(st, NU__T_AND, 2);
        if (c1 == '>' && c2 == '>')
            return nu__op(st, NU__T_ANDDGREAT, 3);
        if (c1 == '>')
            return nu__op(st, NU__T_ANDGREAT, 2);
        return nu__op(st, NU__T_AMP, 1);
    case '|':
        if (c1 == '|')
            return nu__op(st, NU__T_OR, 2);
        if (c1 == '&')
            return nu__op(st, NU__T_PIPE_AMP, 2);
        return nu__op(st, NU__T_PIPE, 1);
    case '(':
        return nu__op(st, NU__T_LPAREN, 1);
    case ')':
        return nu__op(st, NU__T_RPAREN, 1);
    case '<':
        if (c1 == '<' && c2 == '<')
            return nu__op(st, NU__T_TLESS, 3);
        if (c1 == '<' && c2 == '-')
            return nu__op(st, NU__T_DLESSDASH, 3);
        if (c1 == '<')
            return nu__op(st, NU__T_DLESS, 2);
        if (c1 == '&')
            return nu__op(st, NU__T_LESSAND, 2);
        if (c1 == '>')
            return nu__op(st, NU__T_LESSGREAT, 2);
        return nu__op(st, NU__T_LESS, 1);
    default: /* '>' */
        if (c1 == '>')
            return nu__op(st, NU__T_DGREAT, 2);
        if (c1 == '|')
            return nu__op(st, NU__T_CLOBBER, 2);
        if (c1 == '&')
            return nu__op(st, NU__T_GREATAND, 2);
        return nu__op(st, NU__T_GREAT, 1);
    }
}

static void nu__skip_blanks(nu__st_t *st)
{
    for (;;) {
        int c = nu__at(st, 0);
        if (c == ' ' || c == '\t') {
            st->pos++;
        } else if (c == '\\' && nu__at(st, 1) == '\n') {
            st->pos += 2;
        } else if (c == '#') {
            while (nu__at(st, 0) >= 0 && nu__at(st, 0) != '\n')
                st->pos++;
        } else {
            return;
        }
    }
}

static int nu__lex_word(nu__st_t *st)
{
    nu__wb_t w = { .eq = -1, .plain = 1 };

    if (nu__scan_word(st, &w) != 0) {
        free(w.buf.p);
        return -1;
    }
    st->tok.kind = NU__T_WORD;
    st->tok.assign = nu__is_assignment(&w);
    st->tok.word.flags = w.flags;
    st->tok.word.text = nu__buf_take(st, &w.buf);
    return st->tok.word.text == NULL ? -1 : NU__T_WORD;
}

/* Lex the next token into st->tok; returns its kind or -1. */
static int nu__lex(nu__st_t *st)
{
    memset(&st->tok, 0, sizeof st->tok);
    nu__skip_blanks(st);
    st->tok.offset = st->pos;

    int c = nu__at(st, 0);
    if (c < 0) {
        st->tok.kind = NU__T_EOF;
        return NU__T_EOF;
    }
    if (c == '\n') {
        st->pos++;
        st->tok.kind = NU__T_NEWLINE;
        return nu__read_bodies(st) == 0 ? NU__T_NEWLINE : -1;
    }
    if ((c == '<' || c == '>') && nu__at(st, 1) == '(')
        return nu__lex_word(st);
    if (strchr(";&|()<>", c) != NULL)
        return nu__lex_op(st, c);
    if (isdigit(c)) {
        size_t i = 0;
        unsigned long v = 0;
        while (nu__at(st, i) >= 0 && isdigit(nu__at(st, i)) && i < 9)
            v = v * 10 + (unsigned long)(nu__at(st, i++) - '0');
        int next = nu__at(st, i);
        if ((next == '<' || next == '>') && nu__at(st, i + 1) != '(') {
            st->pos += i;
            st->tok.kind = NU__T_IONUM;
            st->tok.ionum = (int)v;
            return NU__T_IONUM;
        }
    }
    return nu__lex_word(st);
}

static int nu__peek(nu__st_t *st)
{
    if (st->root->fail != NU__FAIL_NONE)
        return -1;
    if (!st->have_tok) {
        if (nu__lex(st) < 0)
            return -1;
        st->have_tok = 1;
    }
    return (int)st->tok.kind;
}

static void nu__consume(nu__st_t *st)
{
    nu__word_free(&st->tok.word);
    st->have_tok = 0;
}

/* Is the lookahead the unquoted reserved word kw?  "[[" and "]]" carry
 * the glob flag, which does not make them less reserved. */
static int nu__is_kw(nu__st_t *st, const char *kw)
{
    if (nu__peek(st) != NU__T_WORD)
        return 0;
    return (st->tok.word.flags & ~NU_SHELL_W_GLOB) == 0 &&
           strcmp(st->tok.word.text, kw) == 0;
}

static int nu__expect_kw(nu__st_t *st, const char *kw, const char *context)
{
    int k = nu__peek(st);

    if (k < 0)
        return -1;
    if (!nu__is_kw(st, kw)) {
        if (k == NU__T_WORD)
            return nu__fail(st, NU__FAIL_PARSE, "expected '%s' %s, found '%.40s'",
                            kw, context, st->tok.word.text);
        return nu__fail(st, NU__FAIL_PARSE, "expected '%s' %s, found '%s'", kw,
                        context, nu__tok_text[k]);
    }
    nu__consume(st);
    return 0;
}

static int nu__expect(nu__st_t *st, nu__tok_kind_t kind, const char *context)
{
    int k = nu__peek(st);

    if (k < 0)
        return -1;
    if (k != (int)kind)
        return nu__fail(st, NU__FAIL_PARSE, "expected '%s' %s, found '%s'",
                        nu__tok_text[kind], context,
                        k == NU__T_WORD ? st->tok.word.text : nu__tok_text[k]);
    nu__consume(st);
    return 0;
}

static int nu__skip_newlines(nu__st_t *st)
{
    int k;

    while ((k = nu__peek(st)) == NU__T_NEWLINE)
        nu__consume(st);
    return k < 0 ? -1 : 0;
}

static int nu__is_redir_op(int k)
{
    return k >= NU__T_LESS && k <= NU__T_TLESS;
}

/* --- redirections ------------------------------------------------------- */

static nu_shell_redir_kind_t nu__redir_kind(int k)
{
    switch (k) {
    case NU__T_LESS: return NU_SHELL_R_IN;
    case NU__T_GREAT: return NU_SHELL_R_OUT;
    case NU__T_DGREAT: return NU_SHELL_R_APPEND;
    case NU__T_CLOBBER: return NU_SHELL_R_CLOBBER;
    case NU__T_LESSGREAT: return NU_SHELL_R_INOUT;
    case NU__T_LESSAND: return NU_SHELL_R_DUP_IN;
    case NU__T_GREATAND: return NU_SHELL_R_DUP_OUT;
    case NU__T_ANDGREAT: return NU_SHELL_R_BOTH;
    case NU__T_ANDDGREAT: return NU_SHELL_R_BOTH_APPEND;
    case NU__T_TLESS: return NU_SHELL_R_HERESTRING;
    default: return NU_SHELL_R_HEREDOC;
    }
}

static int nu__add_pending(nu__st_t *st, const nu_shell_word_t *delim,
                           int strip_tabs, size_t *slot)
{
    nu__root_t *root = st->root;

    if (nu__grow(st, (void **)&root->bodies, root->nbodies, &root->capbodies,
                 sizeof *root->bodies) != 0 ||
        nu__grow(st, (void **)&st->pending, st->npending, &st->cappending,
                 sizeof *st->pending) != 0)
        return -1;

    char *d = strdup(delim->text);
    if (d == NULL)
        return nu__nomem(st);
    *slot = root->nbodies;
    root->bodies[root->nbodies++] = (nu__body_t){ NULL, 0 };
    st->pending[st->npending++] = (nu__pending_t){
        .slot = *slot,
        .delim = d,
        .strip_tabs = strip_tabs,
        .literal = (delim->flags & NU_SHELL_W_QUOTED) != 0,
    };
    return 0;
}

static int nu__parse_redirect(nu__st_t *st, nu_shell_cmd_t *c)
{
    nu_shell_redir_t r = { .fd = -1 };
    int k = nu__peek(st);

    if (k == NU__T_IONUM) {
        r.fd = st->tok.ionum;
        nu__consume(st);
        k = nu__peek(st);
        if (k >= 0 && !nu__is_redir_op(k))
            return nu__fail(st, NU__FAIL_PARSE,
                            "expected a redirection after fd %d", r.fd);
    }
    if (k < 0)
        return -1;
    r.kind = nu__redir_kind(k);
    int strip_tabs = k == NU__T_DLESSDASH;
    nu__consume(st);

    k = nu__peek(st);
    if (k < 0)
        return -1;
    if (k != NU__T_WORD)
        return nu__fail(st, NU__FAIL_PARSE, "missing the word after a redirection");
    r.target = st->tok.word;
    st->tok.word.text = NULL;
    nu__consume(st);

    if (r.kind == NU_SHELL_R_HEREDOC) {
        size_t slot = 0;
        if (nu__add_pending(st, &r.target, strip_tabs, &slot) != 0) {
            nu__word_free(&r.target);
            return -1;
        }
        r.body_slot = slot + 1;
    } else if (r.kind == NU_SHELL_R_HERESTRING) {
        r.body = strdup(r.target.text);
        r.body_literal = (r.target.flags & NU_SHELL_W_DYNAMIC) == 0;
        if (r.body == NULL) {
            nu__word_free(&r.target);
            return nu__nomem(st);
        }
    }
    if (nu__push_redir(st, c, &r) != 0) {
        nu__word_free(&r.target);
        free(r.body);
        return -1;
    }
    return 0;
}

/* Redirections after a compound command go on an empty command. */
static int nu__parse_trailing_redirects(nu__st_t *st)
{
    nu_shell_cmd_t c = { 0 };
    int k;

    while ((k = nu__peek(st)) == NU__T_IONUM || nu__is_redir_op(k)) {
        if (nu__parse_redirect(st, &c) != 0) {
            nu__cmd_free(&c);
            return -1;
        }
    }
    if (k < 0) {
        nu__cmd_free(&c);
        return -1;
    }
    return c.nredirs > 0 ? nu__emit(st, &c) : 0;
}

/* --- commands ----------------------------------------------------------- */

static int nu__take_word(nu__st_t *st, nu_shell_cmd_t *c, int assign)
{
    nu_shell_word_t w = st->tok.word;
    int rc;

    st->tok.word.text = NULL;
    nu__consume(st);
    if (assign)
        rc = nu__push_word(st, c, &c->assigns, &c->nassigns, &w);
    else
        rc = nu__push_word(st, c, &c->words, &c->nwords, &w);
    nu__word_free(&w);
    return rc;
}

static int nu__parse_simple(nu__st_t *st)
{
    nu_shell_cmd_t c = { 0 };
    int k;

    for (;;) {
        k = nu__peek(st);
        if (k == NU__T_IONUM || nu__is_redir_op(k)) {
            if (nu__parse_redirect(st, &c) != 0)
                goto fail;
        } else if (k == NU__T_WORD) {
            int assign = c.nwords == 0 && st->tok.assign;
            if (nu__take_word(st, &c, assign) != 0)
                goto fail;
            if (c.nwords == 1 && c.nassigns == 0 && c.nredirs == 0 &&
                nu__peek(st) == NU__T_LPAREN) {
                /* name() compound-command: a function definition. */
                nu__cmd_free(&c);
                nu__consume(st);
                if (nu__expect(st, NU__T_RPAREN, "after a function name") != 0 ||
                    nu__skip_newlines(st) != 0)
                    return -1;
                return nu__parse_command(st);
            }
        } else {
            break;
        }
    }
    if (k < 0)
        goto fail;
    if (c.nwords == 0 && c.nassigns == 0 && c.nredirs == 0)
        return nu__fail(st, NU__FAIL_PARSE, "unexpected '%s'", nu__tok_text[k]);
    return nu__emit(st, &c);

fail:
    nu__cmd_free(&c);
    return -1;
}

/* Add a copy of text as a word of c (an operator inside [[ ]]). */
static int nu__push_text(nu__st_t *st, nu_shell_cmd_t *c, const char *text)
{
    nu_shell_word_t w = { strdup(text), 0 };
    int rc;

    if (w.text == NULL)
        return nu__nomem(st);
    rc = nu__push_word(st, c, &c->words, &c->nwords, &w);
    nu__word_free(&w);
    return rc;
}

/* [[ ... ]]: operators inside are words of the test, up to "]]". */
static int nu__parse_cond(nu__st_t *st)
{
    nu_shell_cmd_t c = { 0 };
    char num[16];
    int rc = 0;

    while (rc == 0) {
        int k = nu__peek(st);
        if (k < 0) {
            rc = -1;
        } else if (k == NU__T_EOF) {
            rc = nu__fail(st, NU__FAIL_PARSE, "missing ']]'");
        } else if (k == NU__T_NEWLINE) {
            nu__consume(st);
        } else if (k == NU__T_WORD) {
            int last = c.nwords > 0 && nu__is_kw(st, "]]");
            rc = nu__take_word(st, &c, 0);
            if (rc == 0 && last)
                break;
        } else {
            snprintf(num, sizeof num, "%d", st->tok.ionum);
            rc = nu__push_text(st, &c, k == NU__T_IONUM ? num : nu__tok_text[k]);
            nu__consume(st);
        }
    }
    if (rc != 0) {
        nu__cmd_free(&c);
        return -1;
    }
    return nu__emit(st, &c);
}

static int nu__parse_if(nu__st_t *st)
{
    nu__consume(st);
    if (nu__parse_list(st) != 0 || nu__expect_kw(st, "then", "after 'if'") != 0 ||
        nu__parse_list(st) != 0)
        return -1;
    for (;;) {
        if (nu__is_kw(st, "elif")) {
            nu__consume(st);
            if (nu__parse_list(st) != 0 ||
                nu__expect_kw(st, "then", "after 'elif'") != 0 ||
                nu__parse_list(st) != 0)
                return -1;
        } else if (nu__is_kw(st, "else")) {
            nu__consume(st);
            if (nu__parse_list(st) != 0)
                return -1;
        } else {
            return nu__expect_kw(st, "fi", "to close 'if'");
        }
    }
}

/* "do list done" or a brace group, after a loop header. */
static int nu__parse_loop_body(nu__st_t *st, const char *loop)
{
    if (nu__skip_newlines(st) != 0)
        return -1;
    if (nu__is_kw(st, "{"))
        return nu__parse_command(st);
    if (nu__expect_kw(st, "do", loop) != 0 || nu__parse_list(st) != 0)
        return -1;
    return nu__expect_kw(st, "done", "to close 'do'");
}

static int nu__parse_while(nu__st_t *st)
{
    nu__consume(st);
    if (nu__parse_list(st) != 0)
        return -1;
    return nu__parse_loop_body(st, "after 'while' or 'until'");
}

/* The separator after a loop header: ';' or newlines. */
static int nu__skip_separator(nu__st_t *st)
{
    int k = nu__peek(st);

    if (k == NU__T_SEMI || k == NU__T_NEWLINE)
        nu__consume(st);
    return k < 0 ? -1 : 0;
}

static int nu__parse_for(nu__st_t *st)
{
    nu__consume(st);

    int k = nu__peek(st);
    if (k == NU__T_LPAREN && nu__at(st, 0) == '(') {
        /* for (( init; test; step )) */
        nu__consume(st);
        st->pos++;
        int rc = nu__scan_arith(st);
        if (rc != 0)
            return rc < 0 ? -1 : nu__fail(st, NU__FAIL_PARSE, "missing '))'");
        if (nu__skip_separator(st) != 0)
            return -1;
        return nu__parse_loop_body(st, "after 'for (('");
    }
    if (k < 0)
        return -1;
    if (k != NU__T_WORD)
        return nu__fail(st, NU__FAIL_PARSE, "expected a name after 'for'");
    nu__consume(st);
    if (nu__skip_newlines(st) != 0)
        return -1;
    if (nu__is_kw(st, "in")) {
        nu__consume(st);
        while ((k = nu__peek(st)) == NU__T_WORD)
            nu__consume(st);
        if (k < 0)
            return -1;
    }
    if (nu__skip_separator(st) != 0)
        return -1;
    return nu__parse_loop_body(st, "after 'for'");
}

static int nu__parse_case(nu__st_t *st)
{
    nu__consume(st);
    if (nu__peek(st) != NU__T_WORD)
        return nu__fail(st, NU__FAIL_PARSE, "expected a word after 'case'");
    nu__consume(st);
    if (nu__skip_newlines(st) != 0 || nu__expect_kw(st, "in", "after 'case'") != 0)
        return -1;

    for (;;) {
        if (nu__skip_newlines(st) != 0)
            return -1;
        if (nu__is_kw(st, "esac")) {
            nu__consume(st);
            return 0;
        }
        if (nu__peek(st) == NU__T_LPAREN)
            nu__consume(st);
        for (;;) {
            int k = nu__peek(st);
            if (k < 0)
                return -1;
            if (k != NU__T_WORD)
                return nu__fail(st, NU__FAIL_PARSE, "expected a case pattern");
            nu__consume(st);
            if (nu__peek(st) != NU__T_PIPE)
                break;
            nu__consume(st);
        }
        if (nu__expect(st, NU__T_RPAREN, "after a case pattern") != 0 ||
            nu__parse_list(st) != 0)
            return -1;

        int k = nu__peek(st);
        if (k == NU__T_DSEMI || k == NU__T_SEMI_AMP || k == NU__T_DSEMI_AMP)
            nu__consume(st);
        else if (!nu__is_kw(st, "esac"))
            return k < 0 ? -1
                         : nu__fail(st, NU__FAIL_PARSE, "expected ';;' or 'esac'");
    }
}

static int nu__parse_function(nu__st_t *st)
{
    nu__consume(st);
    if (nu__peek(st) != NU__T_WORD)
        return nu__fail(st, NU__FAIL_PARSE, "expected a name after 'function'");
    nu__consume(st);
    if (nu__peek(st) == NU__T_LPAREN) {
        nu__consume(st);
        if (nu__expect(st, NU__T_RPAREN, "after a function name") != 0)
            return -1;
    }
    if (nu__skip_newlines(st) != 0)
        return -1;
    return nu__parse_command(st);
}

static int nu__parse_group(nu__st_t *st, int paren)
{
    nu__consume(st);
    if (nu__parse_list(st) != 0)
        return -1;
    if (paren)
        return nu__expect(st, NU__T_RPAREN, "to close '('");
    return nu__expect_kw(st, "}", "to close '{'");
}

/* "((" at command start: arithmetic, unless it turns out to be "( (". */
static int nu__parse_paren(nu__st_t *st)
{
    if (nu__at(st, 0) == '(') {
        size_t save = st->pos;
        size_t ncmds = st->root->out->ncmds;
        nu__consume(st);
        st->pos++;
        int rc = nu__scan_arith(st);
        if (rc <= 0)
            return rc;
        nu__truncate(st, ncmds);
        st->pos = save;
        st->have_tok = 1;
        st->tok.kind = NU__T_LPAREN;
    }
    return nu__parse_group(st, 1);
}

static int nu__parse_compound(nu__st_t *st, int *compound)
{
    static const char *const stray[] = { "then", "else", "elif", "fi", "do",
                                         "done", "esac", "}", "in", NULL };
    int k = nu__peek(st);

    *compound = 1;
    if (k == NU__T_LPAREN)
        return nu__parse_paren(st);
    if (k < 0)
        return -1;
    if (k != NU__T_WORD || (st->tok.word.flags & ~NU_SHELL_W_GLOB) != 0) {
        *compound = 0;
        return 1;
    }

    const char *w = st->tok.word.text;
    if (strcmp(w, "{") == 0)
        return nu__parse_group(st, 0);
    if (strcmp(w, "if") == 0)
        return nu__parse_if(st);
    if (strcmp(w, "while") == 0 || strcmp(w, "until") == 0)
        return nu__parse_while(st);
    if (strcmp(w, "for") == 0 || strcmp(w, "select") == 0)
        return nu__parse_for(st);
    if (strcmp(w, "case") == 0)
        return nu__parse_case(st);
    if (strcmp(w, "function") == 0)
        return nu__parse_function(st);
    if (strcmp(w, "[[") == 0) {
        *compound = 0;
        return nu__parse_cond(st);
    }
    for (size_t i = 0; stray[i] != NULL; i++) {
        if (strcmp(w, stray[i]) == 0)
            return nu__fail(st, NU__FAIL_PARSE, "unexpected '%s'", w);
    }
    *compound = 0;
    return 1;
}

static int nu__parse_command(nu__st_t *st)
{
    int compound;
    int rc;

    if (nu__enter(st) != 0)
        return -1;
    rc = nu__parse_compound(st, &compound);
    if (rc == 1)
        rc = nu__parse_simple(st);
    else if (rc == 0 && compound)
        rc = nu__parse_trailing_redirects(st);
    return nu__leave(st, rc);
}

static int nu__parse_pipeline(nu__st_t *st)
{
    int piped = 0;

    if (nu__is_kw(st, "!"))
        nu__consume(st);
    for (;;) {
        size_t start = st->root->out->ncmds;
        int k = nu__peek(st);
        if (k < 0)
            return -1;
        if (k != NU__T_WORD && k != NU__T_LPAREN && k != NU__T_IONUM &&
            !nu__is_redir_op(k))
            return nu__fail(st, NU__FAIL_PARSE, "unexpected '%s'",
                            nu__tok_text[k]);
        if (nu__parse_command(st) != 0)
            return -1;
        if (piped)
            nu__mark(st, start, NU_SHELL_C_PIPE_IN);

        k = nu__peek(st);
        if (k != NU__T_PIPE && k != NU__T_PIPE_AMP)
            return k < 0 ? -1 : 0;
        nu__consume(st);
        if (nu__skip_newlines(st) != 0)
            return -1;
        piped = 1;
    }
}

static int nu__parse_and_or(nu__st_t *st)
{
    if (nu__parse_pipeline(st) != 0)
        return -1;
    for (;;) {
        int k = nu__peek(st);
        if (k != NU__T_AND && k != NU__T_OR)
            return k < 0 ? -1 : 0;
        nu__consume(st);
        if (nu__skip_newlines(st) != 0 || nu__parse_pipeline(st) != 0)
            return -1;
    }
}

static int nu__ends_list(nu__st_t *st, int k)
{
    static const char *const words[] = { "then", "else", "elif", "fi", "do",
                                         "done", "esac", "}", NULL };

    if (k == NU__T_EOF || k == NU__T_RPAREN || k == NU__T_DSEMI ||
        k == NU__T_SEMI_AMP || k == NU__T_DSEMI_AMP)
        return 1;
    for (size_t i = 0; words[i] != NULL; i++) {
        if (nu__is_kw(st, words[i]))
            return 1;
    }
    return 0;
}

static int nu__parse_list(nu__st_t *st)
{
    int rc = 0;

    if (nu__enter(st) != 0)
        return -1;
    for (;;) {
        if (nu__skip_newlines(st) != 0) {
            rc = -1;
            break;
        }
        int k = nu__peek(st);
        if (k < 0) {
            rc = -1;
            break;
        }
        if (nu__ends_list(st, k))
            break;

        size_t start = st->root->out->ncmds;
        if (nu__parse_and_or(st) != 0) {
            rc = -1;
            break;
        }
        k = nu__peek(st);
        if (k == NU__T_SEMI || k == NU__T_NEWLINE) {
            nu__consume(st);
        } else if (k == NU__T_AMP) {
            nu__consume(st);
            nu__mark(st, start, NU_SHELL_C_BACKGROUND);
        } else {
            rc = k < 0 ? -1 : 0;
            break;
        }
    }
    return nu__leave(st, rc);
}

/* --- entry points ----------------------------------------------------- */

/* Move heredoc bodies from the table into their redirections. */
static void nu__attach_bodies(nu__root_t *root)
{
    nu_shell_script_t *out = root->out;

    for (size_t i = 0; i < out->ncmds; i++) {
        nu_shell_cmd_t *c = &out->cmds[i];
        for (size_t j = 0; j < c->nredirs; j++) {
            nu_shell_redir_t *r = &c->redirs[j];
            if (r->body_slot == 0 || r->body_slot > root->nbodies)
                continue;
            nu__body_t *b = &root->bodies[r->body_slot - 1];
            r->body = b->body;
            r->body_literal = (r->target.flags & NU_SHELL_W_QUOTED) != 0;
            b->body = NULL;
            r->body_slot = 0;
        }
    }
    for (size_t i = 0; i < root->nbodies; i++)
        free(root->bodies[i].body);
    free(root->bodies);
}

int nu_shell_parse(const char *src, size_t len, unsigned depth,
                   nu_shell_script_t *out)
{
    nu__root_t root = { .out = out };
    nu__st_t st;

    memset(out, 0, sizeof *out);
    nu__st_init(&st, &root, src, len, 0, depth);
    if (len > NU_SHELL_MAX_INPUT) {
        nu__fail(&st, NU__FAIL_LIMIT, "input longer than %d bytes",
                 NU_SHELL_MAX_INPUT);
    } else if (depth >= NU_SHELL_MAX_DEPTH) {
        nu__fail(&st, NU__FAIL_LIMIT, "nesting deeper than %d",
                 NU_SHELL_MAX_DEPTH);
    } else {
        nu__parse_program(&st);
    }
    nu__st_release(&st);
    nu__attach_bodies(&root);

    switch (root.fail) {
    case NU__FAIL_NOMEM:
        nu_shell_script_free(out);
        return NU_ENOMEM;
    case NU__FAIL_PARSE:
        out->flags |= NU_CMDF_PARSE_ERROR;
        break;
    case NU__FAIL_LIMIT:
        out->flags |= NU_CMDF_TOO_COMPLEX;
        break;
    default:
        break;
    }
    return NU_OK;
}

void nu_shell_script_free(nu_shell_script_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ncmds; i++)
        nu__cmd_free(&s->cmds[i]);
    free(s->cmds);
    s->cmds = NULL;
    s->ncmds = s->cap = 0;
}
