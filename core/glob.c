/*
 * glob.c - git wildmatch semantics in linear time.
 *
 * Git's wildmatch() (wildmatch.c in git, after Rich $alz's matcher) is a
 * backtracking matcher with pruning.  This file keeps its semantics but
 * not its algorithm.  The pattern is compiled into a list of tokens, and
 * the text runs through the equivalent non-deterministic automaton with
 * one bit per token position (a bit-parallel NFA simulation).  A match
 * therefore costs O(tokens / 64 * text) word operations for any pattern.
 *
 * Tokens and what they consume, with WM_PATHNAME (NU_GLOB_PATHNAME) set:
 *
 *   LIT c      one byte equal to c (c and the text byte both folded to
 *              lower case under NU_GLOB_CASEFOLD)
 *   LIT_RAW c  "\c": one byte whose folded form equals c.  As in git, c
 *              itself is not folded, so "\A" never matches under CASEFOLD
 *   ANY        "?": one byte other than '/'
 *   CLASS      "[...]": one byte in the bracket expression, never '/'
 *   STAR       a run of '*': any number of bytes other than '/'.  A run of
 *              two or more that is a whole path component (at the start
 *              or after '/', and at the end or before '/' or "\/") may
 *              also consume '/'.  When "**" is followed by '/', the
 *              automaton may also skip that '/', so the pattern
 *              a, slash, two stars, slash, b matches "a/b" (the ZERO_DIR
 *              edge).
 *
 * Without NU_GLOB_PATHNAME every STAR consumes '/', and ANY and CLASS
 * match it.
 *
 * Automaton: state k means "tokens 0..k-1 have matched"; state ntok
 * accepts.  Consuming tokens move k to k+1 on a byte; STAR stays at k on
 * a byte it absorbs and moves to k+1 on no input (to k+2 as well for
 * ZERO_DIR).  Bracket expressions are re-scanned from the pattern text
 * when a byte's transition masks are first needed, and the masks are
 * cached per byte value, so a class is evaluated at most once per
 * distinct byte of the text.
 *
 * A pattern that git's wildmatch can never match (unterminated bracket,
 * unknown class name, trailing lone backslash) is "invalid"; it matches
 * nothing here either, and nu_glob_valid reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lattice_internal.h"
#include "nucleus/glob.h"

/* The literal kinds come first: "kind <= NU__TOK_LIT_RAW" tests for one. */
enum {
    NU__TOK_LIT,
    NU__TOK_LIT_RAW,
    NU__TOK_ANY,
    NU__TOK_CLASS,
    NU__TOK_STAR
};

typedef struct nu_glob_tok {
    uint8_t kind;
    uint8_t ch;       /* LIT, LIT_RAW */
    uint8_t slash_ok; /* STAR: may consume '/' */
    uint8_t zero_dir; /* STAR: may skip the '/' token that follows */
    uint16_t offset;  /* CLASS: offset of '[' in the pattern */
} nu_glob_tok_t;

/* Words of state bits: one bit per token plus the accepting state. */
#define NU__GLOB_WORDS ((NU_GLOB_PATTERN_MAX + 1 + 63) / 64)

typedef struct nu_glob_prog {
    const unsigned char *pattern;
    int flags;
    size_t ntok;
    size_t words;
    size_t lit_prefix; /* leading LIT/LIT_RAW tokens */
    size_t lit_suffix; /* trailing LIT/LIT_RAW tokens, when not all are */
    bool star_chain;   /* a no-input edge lands on another STAR */
    uint64_t star[NU__GLOB_WORDS];
    uint64_t zero_dir[NU__GLOB_WORDS];
    nu_glob_tok_t *toks; /* room for NU_GLOB_PATTERN_MAX while compiling */
} nu_glob_prog_t;

static int nu__ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int nu__fold(int c, int flags)
{
    return (flags & NU_GLOB_CASEFOLD) ? nu__ascii_lower(c) : c;
}

/* ASCII-only character classes, as git's sane_ctype defines them. */
static int nu__class_name_match(const unsigned char *name, size_t len, int t,
                                int flags)
{
    static const char *const names[] = {
        "alnum", "alpha", "blank", "cntrl", "digit", "graph",
        "lower", "print", "punct", "space", "upper", "xdigit",
    };
    bool upper = t >= 'A' && t <= 'Z';
    bool lower = t >= 'a' && t <= 'z';
    bool digit = t >= '0' && t <= '9';
    bool print = t >= 0x20 && t < 0x7f;
    bool space = t == ' ' || (t >= '\t' && t <= '\r');
    bool hits[] = {
        upper || lower || digit,
        upper || lower,
        t == ' ' || t == '\t',
        (t >= 0 && t < 0x20) || t == 0x7f,
        digit,
        print && t != ' ',
        lower,
        print,
        print && t != ' ' && !(upper || lower || digit),
        space,
        upper || ((flags & NU_GLOB_CASEFOLD) && lower),
        digit || (t >= 'a' && t <= 'f') || (t >= 'A' && t <= 'F'),
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return hits[i];
    }
    return -1;
}

/*
 * Scan the bracket expression that starts at p ('[') against the folded
 * text byte t (-1 to validate only).  Returns the closing ']' and sets
 * *hit to whether t is in the set (after negation), or returns NULL when
 * the expression is invalid.  The rules are git's: '!' or '^' negates,
 * a leading ']' is literal, "a-z" is a range unless '-' comes first or
 * last, "[:name:]" is a class, and "[:" without ":]" is a literal '['.
 */
static const unsigned char *nu__class_scan(const unsigned char *p, int t,
                                           int flags, bool *hit)
{
    bool matched = false;
    bool negated;
    int prev_ch = 0;
    int p_ch = *++p;

    if (p_ch == '^')
        p_ch = '!';
    negated = p_ch == '!';
    if (negated)
        p_ch = *++p;

    do {
        if (p_ch == 0)
            return NULL;

        if (p_ch == '\\') {
            p_ch = *++p;
            if (p_ch == 0)
                return NULL;
            if (t == p_ch)
                matched = true;
        } else if (p_ch == '-' && prev_ch != 0 && p[1] != 0 && p[1] != ']') {
            p_ch = *++p;
            if (p_ch == '\\') {
                p_ch = *++p;
                if (p_ch == 0)
                    return NULL;
            }
            if (t <= p_ch && t >= prev_ch) {
                matched = true;
            } else if ((flags & NU_GLOB_CASEFOLD) && t >= 'a' && t <= 'z') {
                int upper = t - ('a' - 'A');
                if (upper <= p_ch && upper >= prev_ch)
                    matched = true;
            }
            p_ch = 0;
        } else if (p_ch == '[' && p[1] == ':') {
            const unsigned char *name = p + 2;

            for (p = name; (p_ch = *p) != 0 && p_ch != ']'; p++) {
            }
            if (p_ch == 0)
                return NULL;

            if (p - name < 1 || p[-1] != ':') {
                /* No ":]": the '[' is a literal member. */
                p = name - 2;
                p_ch = '[';
                if (t == p_ch)
                    matched = true;
                continue;
            }

            int r = nu__class_name_match(name, (size_t)(p - name - 1), t, flags);
            if (r < 0)
                return NULL;
            if (r > 0)
                matched = true;
            p_ch = 0;
        } else if (t == p_ch) {
            matched = true;
        }
    } while (prev_ch = p_ch, (p_ch = *++p) != ']');

    *hit = matched != negated;
    return p;
}

static void nu__bit_set(uint64_t *bits, size_t k)
{
    bits[k / 64] |= (uint64_t)1 << (k % 64);
}

static bool nu__bit_get(const uint64_t *bits, size_t k)
{
    return (bits[k / 64] >> (k % 64)) & 1;
}

/* Is the '*' run [start, end) a whole path component, git's condition
 * for "**" to cross directories? */
static bool nu__star_is_component(const unsigned char *pat, size_t start,
                                  size_t end)
{
    if (end - start < 2)
        return false;
    if (start > 0 && pat[start - 1] != '/')
        return false;
    return pat[end] == 0 || pat[end] == '/' ||
           (pat[end] == '\\' && pat[end + 1] == '/');
}

/* Compile pattern into g; false for an invalid pattern. */
static bool nu__glob_compile(nu_glob_prog_t *g, const char *pattern, int flags)
{
    const unsigned char *pat = (const unsigned char *)pattern;
    size_t len = strnlen(pattern, NU_GLOB_PATTERN_MAX + 1);
    size_t i = 0;

    if (len > NU_GLOB_PATTERN_MAX)
        return false;

    g->pattern = pat;
    g->flags = flags;
    g->ntok = 0;

    while (i < len) {
        nu_glob_tok_t *t = &g->toks[g->ntok++];
        const unsigned char *end;
        bool unused;

        memset(t, 0, sizeof *t);
        switch (pat[i]) {
        case '\\':
            if (i + 1 == len)
                return false;
            t->kind = NU__TOK_LIT_RAW;
            t->ch = pat[i + 1];
            i += 2;
            break;

        case '?':
            t->kind = NU__TOK_ANY;
            i++;
            break;

        case '[':
            end = nu__class_scan(pat + i, -1, flags, &unused);
            if (end == NULL)
                return false;
            t->kind = NU__TOK_CLASS;
            t->offset = (uint16_t)i;
            i = (size_t)(end - pat) + 1;
            break;

        case '*': {
            size_t start = i;

            while (pat[i] == '*')
                i++;
            t->kind = NU__TOK_STAR;
            if (!(flags & NU_GLOB_PATHNAME)) {
                t->slash_ok = 1;
            } else if (nu__star_is_component(pat, start, i)) {
                t->slash_ok = 1;
                t->zero_dir = pat[i] == '/';
            }
            break;
        }

        default:
            t->kind = NU__TOK_LIT;
            t->ch = (uint8_t)nu__fold(pat[i], flags);
            i++;
            break;
        }
    }

    g->lit_prefix = 0;
    while (g->lit_prefix < g->ntok && g->toks[g->lit_prefix].kind <= NU__TOK_LIT_RAW)
        g->lit_prefix++;
    g->lit_suffix = 0;
    if (g->lit_prefix < g->ntok) {
        /* Stop before a '/' that a ZERO_DIR star may skip. */
        for (size_t k = g->ntok - 1; g->toks[k].kind <= NU__TOK_LIT_RAW; k--) {
            if (g->toks[k - 1].zero_dir)
                break;
            g->lit_suffix++;
        }
    }

    g->words = (g->ntok + 1 + 63) / 64;
    memset(g->star, 0, sizeof g->star);
    memset(g->zero_dir, 0, sizeof g->zero_dir);
    g->star_chain = false;
    for (size_t k = 0; k < g->ntok; k++) {
        if (g->toks[k].kind != NU__TOK_STAR)
            continue;
        nu__bit_set(g->star, k);
        if (k + 1 < g->ntok && g->toks[k + 1].kind == NU__TOK_STAR)
            g->star_chain = true;
        if (g->toks[k].zero_dir) {
            nu__bit_set(g->zero_dir, k);
            if (k + 2 < g->ntok && g->toks[k + 2].kind == NU__TOK_STAR)
                g->star_chain = true;
        }
    }
    return true;
}

/* Fill the transition masks of byte c: consume (token k matches c and
 * moves to k+1) and absorb (STAR token k stays at k on c). */
static void nu__glob_masks(const nu_glob_prog_t *g, unsigned char c,
                           uint64_t *consume, uint64_t *absorb)
{
    int t = nu__fold(c, g->flags);
    bool slash_blocked = (g->flags & NU_GLOB_PATHNAME) && c == '/';

    memset(consume, 0, g->words * sizeof *consume);
    memset(absorb, 0, g->words * sizeof *absorb);

    for (size_t k = 0; k < g->ntok; k++) {
        const nu_glob_tok_t *tok = &g->toks[k];
        bool hit = false;

        switch (tok->kind) {
        case NU__TOK_LIT:
        case NU__TOK_LIT_RAW:
            hit = t == tok->ch;
            break;
        case NU__TOK_ANY:
            hit = !slash_blocked;
            break;
        case NU__TOK_CLASS:
            nu__class_scan(g->pattern + tok->offset, t, g->flags, &hit);
            hit = hit && !slash_blocked;
            break;
        case NU__TOK_STAR:
            if (tok->slash_ok || c != '/')
                nu__bit_set(absorb, k);
            continue;
        }
        if (hit)
            nu__bit_set(consume, k);
    }
}

/* out = in << shift (shift is 1 or 2) across words. */
static void nu__bits_shl_or(uint64_t *out, const uint64_t *in, size_t words,
                            unsigned shift)
{
    uint64_t carry = 0;

    for (size_t w = 0; w < words; w++) {
        uint64_t v = in[w];
        out[w] |= (v << shift) | carry;
        carry = v >> (64 - shift);
    }
}

/* Follow the no-input edges of STAR tokens until nothing changes. */
static void nu__glob_closure(const nu_glob_prog_t *g, uint64_t *s)
{
    uint64_t before[NU__GLOB_WORDS];
    uint64_t tmp[NU__GLOB_WORDS];

    do {
        memcpy(before, s, g->words * sizeof *s);

        for (size_t w = 0; w < g->words; w++)
            tmp[w] = s[w] & g->star[w];
        nu__bits_shl_or(s, tmp, g->words, 1);

        for (size_t w = 0; w < g->words; w++)
            tmp[w] = s[w] & g->zero_dir[w];
        nu__bits_shl_or(s, tmp, g->words, 2);
    } while (memcmp(before, s, g->words * sizeof *s) != 0);
}

/* Advance state over byte c; returns false when no state is left. */
static bool nu__glob_step(const nu_glob_prog_t *g, uint64_t *state,
                          const uint64_t *consume, const uint64_t *absorb)
{
    uint64_t moved[NU__GLOB_WORDS];
    uint64_t next[NU__GLOB_WORDS] = { 0 };
    bool alive = false;

    for (size_t w = 0; w < g->words; w++) {
        moved[w] = state[w] & consume[w];
        next[w] = state[w] & absorb[w];
    }
    nu__bits_shl_or(next, moved, g->words, 1);
    nu__glob_closure(g, next);

    for (size_t w = 0; w < g->words; w++) {
        state[w] = next[w];
        alive = alive || next[w] != 0;
    }
    return alive;
}

/* nu__glob_closure for automata that fit one word. */
static uint64_t nu__glob_closure1(const nu_glob_prog_t *g, uint64_t s)
{
    uint64_t before;

    /* Without chains, one pass reaches every target. */
    if (!g->star_chain) {
        s |= (s & g->star[0]) << 1;
        return s | (s & g->zero_dir[0]) << 2;
    }

    do {
        before = s;
        s |= (s & g->star[0]) << 1;
        s |= (s & g->zero_dir[0]) << 2;
    } while (s != before);
    return s;
}

/* nu__glob_run for automata that fit one word: patterns of up to 63
 * tokens, which is every pattern a policy is likely to contain. */
static bool nu__glob_run1(const nu_glob_prog_t *g, const char *text,
                          size_t len, bool accept_at_slash)
{
    uint64_t consume[256];
    uint64_t absorb[256];
    uint8_t cached[256] = { 0 };
    uint64_t accept = (uint64_t)1 << g->ntok;
    uint64_t star = g->star[0];
    uint64_t zero_dir = g->zero_dir[0];
    uint64_t state = nu__glob_closure1(g, 1);

    for (size_t pos = 0; pos < len; pos++) {
        unsigned char c = (unsigned char)text[pos];

        if (accept_at_slash && c == '/' && (state & accept))
            return true;

        if (!cached[c]) {
            nu__glob_masks(g, c, &consume[c], &absorb[c]);
            cached[c] = 1;
        }

        state = ((state & consume[c]) << 1) | (state & absorb[c]);
        if (g->star_chain) {
            state = nu__glob_closure1(g, state);
        } else {
            state |= (state & star) << 1;
            state |= (state & zero_dir) << 2;
        }
        if (state == 0)
            return false;
    }
    return (state & accept) != 0;
}

/* Does literal token k match byte c? */
static bool nu__lit_match(const nu_glob_prog_t *g, size_t k, unsigned char c)
{
    return nu__fold(c, g->flags) == g->toks[k].ch;
}

/* Do the trailing literal tokens match the text just before end? */
static bool nu__suffix_at(const nu_glob_prog_t *g, const unsigned char *t,
                          size_t end)
{
    if (end < g->lit_prefix + g->lit_suffix)
        return false;
    for (size_t k = 0; k < g->lit_suffix; k++) {
        if (!nu__lit_match(g, g->ntok - 1 - k, t[end - 1 - k]))
            return false;
    }
    return true;
}

/*
 * Quick necessary conditions from the literal tokens at both ends of the
 * pattern: most path checks fail here without running the automaton.
 * With accept_at_slash the match may end before any '/', so the suffix
 * must match at one of those places or at the end.
 */
static bool nu__glob_precheck(const nu_glob_prog_t *g, const char *text,
                              size_t len, bool accept_at_slash)
{
    const unsigned char *t = (const unsigned char *)text;

    if (g->lit_prefix == g->ntok && !accept_at_slash && len != g->ntok)
        return false;
    if (len < g->lit_prefix)
        return false;
    for (size_t k = 0; k < g->lit_prefix; k++) {
        if (!nu__lit_match(g, k, t[k]))
            return false;
    }

    if (g->lit_suffix == 0 || nu__suffix_at(g, t, len))
        return true;
    if (!accept_at_slash)
        return false;
    for (size_t end = g->lit_prefix; end < len; end++) {
        if (t[end] == '/' && nu__suffix_at(g, t, end))
            return true;
    }
    return false;
}

/* nu__glob_run for automata of any size, NU__GLOB_WORDS words at most;
 * false also when out of memory. */
static bool nu__glob_run_wide(const nu_glob_prog_t *g, const char *text,
                              size_t len, bool accept_at_slash)
{
    uint64_t state[NU__GLOB_WORDS] = { 0 };
    uint8_t cached[256] = { 0 };
    bool result = false;
    uint64_t *cache = malloc(2 * 256 * g->words * sizeof *cache);

    if (cache == NULL)
        return false;

    nu__bit_set(state, 0);
    nu__glob_closure(g, state);

    for (size_t pos = 0; pos < len; pos++) {
        unsigned char c = (unsigned char)text[pos];
        uint64_t *consume = cache + (size_t)c * 2 * g->words;
        uint64_t *absorb = consume + g->words;

        if (accept_at_slash && c == '/' && nu__bit_get(state, g->ntok)) {
            result = true;
            goto out;
        }

        if (!cached[c]) {
            nu__glob_masks(g, c, consume, absorb);
            cached[c] = 1;
        }

        if (!nu__glob_step(g, state, consume, absorb))
            goto out;
    }
    result = nu__bit_get(state, g->ntok);

out:
    free(cache);
    return result;
}

/*
 * Run the automaton over text[0..len).  Returns true when the whole text
 * matches, or, with accept_at_slash, when the text before some '/'
 * matches (the pattern names a parent directory of the path).
 */
static bool nu__glob_run(const nu_glob_prog_t *g, const char *text, size_t len,
                         bool accept_at_slash)
{
    if (!(g->flags & NU__GLOB_NO_PRECHECK) &&
        !nu__glob_precheck(g, text, len, accept_at_slash))
        return false;
    if (g->words == 1 && !(g->flags & NU__GLOB_WIDE))
        return nu__glob_run1(g, text, len, accept_at_slash);
    return nu__glob_run_wide(g, text, len, accept_at_slash);
}

/* Count '/'-separated segments of text[0..len) up to limit + 1. */
static size_t nu__segments(const char *text, size_t len)
{
    size_t n = 1;

    for (size_t i = 0; i < len && n <= NU_PATH_MAX_SEGMENTS; i++) {
        if (text[i] == '/')
            n++;
    }
    return n;
}

static bool nu__text_ok(const char *text, size_t *len_out)
{
    size_t len = strnlen(text, NU_PATH_MAX + 1);

    if (len > NU_PATH_MAX)
        return false;
    /* A text of n bytes has at most n + 1 segments. */
    if (len >= NU_PATH_MAX_SEGMENTS &&
        nu__segments(text, len) > NU_PATH_MAX_SEGMENTS)
        return false;
    *len_out = len;
    return true;
}

bool nu_glob_valid(const char *pattern)
{
    nu_glob_tok_t toks[NU_GLOB_PATTERN_MAX];
    nu_glob_prog_t g = { .toks = toks };

    return pattern != NULL && nu__glob_compile(&g, pattern, NU_GLOB_PATHNAME);
}

bool nu_glob_match(const char *pattern, const char *text, int flags)
{
    nu_glob_tok_t toks[NU_GLOB_PATTERN_MAX];
    nu_glob_prog_t g = { .toks = toks };
    size_t len;

    if (pattern == NULL || text == NULL || !nu__text_ok(text, &len))
        return false;
    if (!nu__glob_compile(&g, pattern, flags))
        return false;
    return nu__glob_run(&g, text, len, false);
}

/*
 * Strip the gitignore decorations from pattern into buf: a leading '/'
 * (anchors the pattern) and a trailing unescaped '/' (names a directory).
 * Returns false when the pattern is too long.
 */
static bool nu__path_pattern(const char *pattern, char *buf, size_t size,
                             bool *anchored)
{
    size_t len = strnlen(pattern, NU_GLOB_PATTERN_MAX + 1);

    if (len > NU_GLOB_PATTERN_MAX || len >= size)
        return false;

    *anchored = false;
    if (pattern[0] == '/') {
        *anchored = true;
        pattern++;
        len--;
    }
    memcpy(buf, pattern, len);
    buf[len] = '\0';

    if (len > 0 && buf[len - 1] == '/' && (len < 2 || buf[len - 2] != '\\'))
        buf[--len] = '\0';

    if (strchr(buf, '/') != NULL)
        *anchored = true;
    return true;
}

/* Path-rule matching for a pattern without special characters: a plain
 * comparison with every name (or every leading directory, if anchored). */
static int nu__literal_match_path(const char *lit, bool anchored,
                                  const char *path, size_t len)
{
    size_t lit_len = strlen(lit);

    if (anchored)
        return len >= lit_len && memcmp(path, lit, lit_len) == 0 &&
               (len == lit_len || path[lit_len] == '/');

    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (i - start == lit_len && memcmp(path + start, lit, lit_len) == 0)
            return 1;
        start = i + 1;
    }
    return 0;
}

/* A path rule, ready to match: a plain name, a compiled glob, or invalid. */
enum { NU__RULE_INVALID = -1, NU__RULE_LITERAL = 0, NU__RULE_GLOB = 1 };

typedef struct nu_glob_rule {
    int kind;
    bool anchored;
    const char *text;     /* the pattern without gitignore decorations */
    nu_glob_prog_t prog;  /* NU__RULE_GLOB only */
} nu_glob_rule_t;

/* Prepare rule r for pattern, with text stored in buf (NU_GLOB_PATTERN_MAX
 * + 1 bytes) and tokens in toks (NU_GLOB_PATTERN_MAX entries). */
static void nu__rule_build(nu_glob_rule_t *r, const char *pattern, char *buf,
                           nu_glob_tok_t *toks)
{
    r->text = buf;
    r->prog.toks = toks;
    r->kind = NU__RULE_INVALID;

    if (!nu__path_pattern(pattern, buf, NU_GLOB_PATTERN_MAX + 1, &r->anchored))
        return;

    /* Most rules are plain names (".netrc", ".ssh/"): skip the compiler. */
    if (strpbrk(buf, "*?[\\") == NULL)
        r->kind = NU__RULE_LITERAL;
    else if (nu__glob_compile(&r->prog, buf, NU_GLOB_PATHNAME))
        r->kind = NU__RULE_GLOB;
}

/* Match path against rule r: 1 match, 0 no match, -1 invalid rule. */
static int nu__rule_match(const nu_glob_rule_t *r, const char *path)
{
    size_t len;

    if (r->kind == NU__RULE_INVALID)
        return -1;
    if (path == NULL || !nu__text_ok(path, &len))
        return 0;
    if (r->kind == NU__RULE_LITERAL)
        return nu__literal_match_path(r->text, r->anchored, path, len);

    if (r->anchored)
        return nu__glob_run(&r->prog, path, len, true);

    /* No slash: match the name of the path or of any parent directory. */
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (nu__glob_run(&r->prog, path + start, i - start, false))
            return 1;
        start = i + 1;
    }
    return 0;
}

/*
 * Per-thread cache of prepared path rules, so that checking a path
 * against a policy's block lists does not compile every pattern on every
 * call.  A hash of the pattern picks a group of NU__RULE_CACHE_WAYS
 * slots.  A slot stores a copy of its pattern and is used only when that
 * copy equals the requested pattern, so a hit is always the rule for
 * exactly that text.
 * NOTE: entries of a thread that exits are not freed (at most
 * NU__RULE_CACHE_SLOTS rules per thread).
 */
#define NU__RULE_CACHE_SLOTS 1024
#define NU__RULE_CACHE_WAYS 4

typedef struct nu_rule_slot {
    char *pattern;
    nu_glob_rule_t *rule;
} nu_rule_slot_t;

static _Thread_local nu_rule_slot_t nu__rule_cache[NU__RULE_CACHE_SLOTS];
static _Thread_local unsigned nu__rule_cache_victim;

static uint32_t nu__hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void nu__rule_slot_clear(nu_rule_slot_t *slot)
{
    if (slot->rule != NULL) {
        free((char *)slot->rule->text);
        free(slot->rule->prog.toks);
        free(slot->rule);
    }
    free(slot->pattern);
    slot->pattern = NULL;
    slot->rule = NULL;
}

/* Copy the stack-built rule r into heap storage owned by slot. */
static bool nu__rule_slot_fill(nu_rule_slot_t *slot, const char *pattern,
                               const nu_glob_rule_t *r)
{
    size_t ntok = r->kind == NU__RULE_GLOB ? r->prog.ntok : 0;

    slot->pattern = strdup(pattern);
    slot->rule = malloc(sizeof *slot->rule);
    if (slot->pattern == NULL || slot->rule == NULL)
        goto fail;

    *slot->rule = *r;
    slot->rule->prog.toks = NULL;
    slot->rule->text = strdup(r->text);
    if (slot->rule->text == NULL)
        goto fail;

    slot->rule->prog.toks = malloc((ntok > 0 ? ntok : 1) * sizeof *r->prog.toks);
    if (slot->rule->prog.toks == NULL)
        goto fail;
    memcpy(slot->rule->prog.toks, r->prog.toks, ntok * sizeof *r->prog.toks);
    slot->rule->prog.pattern = (const unsigned char *)slot->rule->text;
    return true;

fail:
    nu__rule_slot_clear(slot);
    return false;
}

/* Build the rule for pattern into slot, evicting what it held. */
static const nu_glob_rule_t *nu__rule_fill_slot(nu_rule_slot_t *slot,
                                                const char *pattern)
{
    char buf[NU_GLOB_PATTERN_MAX + 1];
    nu_glob_tok_t toks[NU_GLOB_PATTERN_MAX];
    nu_glob_rule_t r;

    nu__rule_slot_clear(slot);
    nu__rule_build(&r, pattern, buf, toks);
    return nu__rule_slot_fill(slot, pattern, &r) ? slot->rule : NULL;
}

/* The prepared rule for pattern, from the cache; NULL when out of memory. */
static const nu_glob_rule_t *nu__rule_cached(const char *pattern)
{
    size_t group = nu__hash(pattern) % (NU__RULE_CACHE_SLOTS / NU__RULE_CACHE_WAYS);
    nu_rule_slot_t *slots = &nu__rule_cache[group * NU__RULE_CACHE_WAYS];
    nu_rule_slot_t *slot = NULL;

    for (size_t way = 0; way < NU__RULE_CACHE_WAYS; way++) {
        if (slots[way].pattern == NULL) {
            if (slot == NULL)
                slot = &slots[way];
        } else if (strcmp(slots[way].pattern, pattern) == 0) {
            return slots[way].rule;
        }
    }
    if (slot == NULL)
        slot = &slots[nu__rule_cache_victim++ % NU__RULE_CACHE_WAYS];

    return nu__rule_fill_slot(slot, pattern);
}

int nu__glob_match_path_checked(const char *pattern, const char *path)
{
    char buf[NU_GLOB_PATTERN_MAX + 1];
    nu_glob_tok_t toks[NU_GLOB_PATTERN_MAX];
    const nu_glob_rule_t *cached;
    nu_glob_rule_t r;

    if (pattern == NULL)
        return -1;

    cached = nu__rule_cached(pattern);
    if (cached != NULL)
        return nu__rule_match(cached, path);

    nu__rule_build(&r, pattern, buf, toks);
    return nu__rule_match(&r, path);
}

bool nu_glob_match_path(const char *pattern, const char *path)
{
    return nu__glob_match_path_checked(pattern, path) == 1;
}
