/*
 * lattice_check.c - checking one path, command or network destination
 * against a permission.
 *
 * Every check fails closed: input that is not in the documented form
 * (a path that is not normalized, an empty argv, a port out of range)
 * is denied, and so is a path when a block pattern is invalid.
 *
 * Command rules are written like a command line.  Words are split on
 * blanks; single quotes, double quotes and backslashes group and escape
 * as in a POSIX shell (no expansions).  The first word matches the
 * program: a word with a slash compares the whole argv[0], a word without
 * one compares the base name of argv[0], and "*" or "**" matches any
 * program.  The next words match the next arguments in order: "*" is
 * exactly one argument, "**" any number (also none), any other word an
 * equal argument.  Arguments after the rule's last word still match, so a
 * rule is a prefix of the command lines it covers.
 *
 * Network entries (network.allow, and addresses in network.trusted):
 *   1.2.3.4  1.2.3.0/24  1.2.3.4:443  1.2.3.0/24:443
 *   2001:db8::1  2001:db8::/32  [2001:db8::1]:443  [2001:db8::/32]:443
 * An entry without a port allows every port.  Domain patterns
 * (network.domains, names in network.trusted) are lower-case DNS names;
 * "*.example.org" matches every name below example.org but not
 * example.org itself.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lattice_internal.h"
#include "nucleus/glob.h"

/* The rule reported when a TOP block set denies. */
static const char nu__top_rule[] = "*";

/* --- paths ------------------------------------------------------------ */

/* Is path in the form nu_path_normalize produces? */
static bool nu__path_is_normalized(const char *path)
{
    size_t len = strnlen(path, NU_PATH_MAX + 1);
    size_t segments = 1;
    const char *seg = path;

    if (len > NU_PATH_MAX)
        return false;
    if (len == 0)
        return true;

    for (const char *p = path;; p++) {
        if (*p != '/' && *p != '\0')
            continue;

        size_t n = (size_t)(p - seg);
        if (n == 0 || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (*p == '\0')
            break;
        if (++segments > NU_PATH_MAX_SEGMENTS)
            return false;
        seg = p + 1;
    }
    return true;
}

/* Does a block set cover path?  Sets *rule to the matching pattern. */
static bool nu__path_blocked(const nu_strset_t *block, const char *path,
                             const char **rule)
{
    if (block->top) {
        *rule = nu__top_rule;
        return true;
    }

    for (size_t i = 0; i < block->count; i++) {
        const char *pattern = block->items[i];

        /* An invalid pattern would match nothing; deny instead. */
        if (nu__glob_match_path_checked(pattern, path) != 0) {
            *rule = pattern;
            return true;
        }
    }
    return false;
}

bool nu_perm_check_path(const nu_perm_t *p, const char *path,
                        nu_access_t access, const char **rule)
{
    const char *dummy;

    if (rule == NULL)
        rule = &dummy;
    *rule = NULL;

    if (path == NULL || !nu__path_is_normalized(path))
        return false;

    if (nu__path_blocked(&p->paths.block, path, rule))
        return false;
    if (access == NU_ACCESS_WRITE &&
        nu__path_blocked(&p->paths.write_block, path, rule))
        return false;

    *rule = NULL;
    if (p->paths.allow.top)
        return true;
    for (size_t i = 0; i < p->paths.allow.count; i++) {
        if (nu_glob_match_path(p->paths.allow.items[i], path))
            return true;
    }
    return false;
}

/* --- command rules ---------------------------------------------------- */

#define NU__RULE_MAX_WORDS 256

typedef struct nu_rule_words {
    char *buf;
    size_t count;
    char *words[NU__RULE_MAX_WORDS];
} nu_rule_words_t;

/*
 * Split rule into words in place (in a copy kept in w->buf).  Returns
 * false for unbalanced quotes, a trailing backslash, no words or too many
 * words.
 */
static bool nu__rule_split(const char *rule, nu_rule_words_t *w)
{
    char *out;
    const char *p = rule;

    w->count = 0;
    w->buf = malloc(strlen(rule) + 1);
    if (w->buf == NULL)
        return false;
    out = w->buf;

    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        if (w->count == NU__RULE_MAX_WORDS)
            goto fail;
        w->words[w->count++] = out;

        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\'') {
                const char *end = strchr(p + 1, '\'');
                if (end == NULL)
                    goto fail;
                memcpy(out, p + 1, (size_t)(end - p - 1));
                out += end - p - 1;
                p = end + 1;
            } else if (*p == '"') {
                for (p++; *p != '"'; p++) {
                    if (*p == '\0')
                        goto fail;
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                        p++;
                    *out++ = *p;
                }
                p++;
            } else if (*p == '\\') {
                if (p[1] == '\0')
                    goto fail;
                *out++ = p[1];
                p += 2;
            } else {
                *out++ = *p++;
            }
        }
        *out++ = '\0';
    }

    if (w->count == 0)
        goto fail;
    return true;

fail:
    free(w->buf);
    w->buf = NULL;
    return false;
}

bool nu__cmdrule_valid(const char *rule)
{
    nu_rule_words_t w;

    if (!nu__rule_split(rule, &w))
        return false;
    free(w.buf);
    return true;
}

static const char *nu__base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash == NULL ? path : slash + 1;
}

/*
 * Does the rule's program word match argv0?  With strict_relative, a
 * relative program path with a slash ("./git") matches only a rule word
 * that names it exactly: an allow rule "git" must not let the agent run
 * a binary of its own called git.
 */
static bool nu__program_match(const char *word, const char *argv0,
                              bool strict_relative)
{
    if (strcmp(word, "*") == 0 || strcmp(word, "**") == 0)
        return true;
    if (strchr(word, '/') != NULL)
        return strcmp(word, argv0) == 0;
    if (strict_relative && argv0[0] != '/' && strchr(argv0, '/') != NULL)
        return false;
    return strcmp(word, nu__base_name(argv0)) == 0;
}

/* Match the argument words of a rule as a prefix of argv[1..]. */
static bool nu__rule_args_match(char *const *words, size_t nwords, int argc,
                                char *const argv[])
{
    bool state[NU__RULE_MAX_WORDS + 1];
    bool next[NU__RULE_MAX_WORDS + 1];

    memset(state, 0, sizeof state);
    state[0] = true;

    for (int arg = 1;; arg++) {
        /* "**" may match no argument. */
        for (size_t k = 0; k < nwords; k++) {
            if (state[k] && strcmp(words[k], "**") == 0)
                state[k + 1] = true;
        }
        if (state[nwords])
            return true;
        if (arg >= argc)
            return false;

        bool alive = false;
        memset(next, 0, sizeof next);
        for (size_t k = 0; k < nwords; k++) {
            if (!state[k])
                continue;
            if (strcmp(words[k], "**") == 0)
                next[k] = true;
            else if (strcmp(words[k], "*") == 0 || strcmp(words[k], argv[arg]) == 0)
                next[k + 1] = true;
        }
        for (size_t k = 0; k <= nwords; k++) {
            state[k] = next[k];
            alive = alive || next[k];
        }
        if (!alive)
            return false;
    }
}

static bool nu__cmdrule_match_mode(const char *rule, int argc,
                                   char *const argv[], bool strict_relative)
{
    nu_rule_words_t w;
    bool match;

    if (rule == NULL || argc < 1 || argv == NULL || argv[0] == NULL)
        return false;
    for (int i = 1; i < argc; i++) {
        if (argv[i] == NULL)
            return false;
    }
    if (!nu__rule_split(rule, &w))
        return false;

    match = nu__program_match(w.words[0], argv[0], strict_relative) &&
            nu__rule_args_match(w.words + 1, w.count - 1, argc, argv);
    free(w.buf);
    return match;
}

bool nu_cmdrule_match(const char *rule, int argc, char *const argv[])
{
    return nu__cmdrule_match_mode(rule, argc, argv, false);
}

bool nu_perm_check_command(const nu_perm_t *p, int argc, char *const argv[],
                           const char **rule)
{
    const char *dummy;

    if (rule == NULL)
        rule = &dummy;
    *rule = NULL;

    if (argc < 1 || argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return false;

    if (p->commands.block.top) {
        *rule = nu__top_rule;
        return false;
    }
    for (size_t i = 0; i < p->commands.block.count; i++) {
        const char *r = p->commands.block.items[i];

        /* A rule that cannot be parsed would match nothing; deny. */
        if (!nu__cmdrule_valid(r) || nu__cmdrule_match_mode(r, argc, argv, false)) {
            *rule = r;
            return false;
        }
    }

    if (p->commands.allow.top)
        return true;
    for (size_t i = 0; i < p->commands.allow.count; i++) {
        if (nu__cmdrule_match_mode(p->commands.allow.items[i], argc, argv, true))
            return true;
    }
    return false;
}

/* --- network ---------------------------------------------------------- */

typedef struct nu_net_entry {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;       /* bits */
    int port;         /* 0 = every port */
} nu_net_entry_t;

/* Parse a decimal number in [min, max] from s[0..len). */
static bool nu__parse_uint(const char *s, size_t len, int min, int max,
                           int *out)
{
    long v = 0;

    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* Parse "addr" or "addr/prefix" from s[0..len). */
static bool nu__parse_cidr(const char *s, size_t len, nu_net_entry_t *e)
{
    char buf[64];
    const char *slash = memchr(s, '/', len);
    size_t addr_len = slash != NULL ? (size_t)(slash - s) : len;

    if (addr_len == 0 || addr_len >= sizeof buf)
        return false;
    memcpy(buf, s, addr_len);
    buf[addr_len] = '\0';

    if (inet_pton(AF_INET, buf, e->addr) == 1)
        e->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, e->addr) == 1)
        e->family = AF_INET6;
    else
        return false;

    int bits = e->family == AF_INET ? 32 : 128;
    e->prefix = bits;
    if (slash != NULL)
        return nu__parse_uint(slash + 1, len - addr_len - 1, 0, bits, &e->prefix);
    return true;
}

static bool nu__net_entry_parse(const char *entry, nu_net_entry_t *e)
{
    size_t len = strlen(entry);
    const char *colon;

    memset(e, 0, sizeof *e);

    if (entry[0] == '[') {
        /* [v6], [v6/n], [v6]:port, [v6/n]:port */
        const char *close = strchr(entry, ']');
        if (close == NULL || !nu__parse_cidr(entry + 1, (size_t)(close - entry - 1), e) ||
            e->family != AF_INET6)
            return false;
        if (close[1] == '\0')
            return true;
        return close[1] == ':' &&
               nu__parse_uint(close + 2, strlen(close + 2), 1, 65535, &e->port);
    }

    colon = strchr(entry, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return nu__parse_cidr(entry, len, e) && e->family == AF_INET6;

    if (colon == NULL)
        return nu__parse_cidr(entry, len, e) && e->family == AF_INET;
    return nu__parse_cidr(entry, (size_t)(colon - entry), e) &&
           e->family == AF_INET &&
           nu__parse_uint(colon + 1, strlen(colon + 1), 1, 65535, &e->port);
}

bool nu__net_entry_valid(const char *entry)
{
    nu_net_entry_t e;
    return nu__net_entry_parse(entry, &e);
}

static bool nu__prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
    int bytes = bits / 8;
    int rest = bits % 8;

    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool nu__entry_covers(const nu_net_entry_t *e, int family,
                             const uint8_t *addr, int port)
{
    if (e->family != family)
        return false;
    if (e->port != 0 && port != 0 && e->port != port)
        return false;
    return nu__prefix_match(e->addr, addr, e->prefix);
}

bool nu__domain_pattern_valid(const char *pattern)
{
    const char *p = pattern;
    size_t label = 0;

    if (strncmp(p, "*.", 2) == 0)
        p += 2;
    if (*p == '\0' || strlen(p) > 253)
        return false;

    for (; *p != '\0'; p++) {
        char c = *p;

        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

/* Does the domain pattern cover host (lower case, no trailing dot)? */
static bool nu__domain_match(const char *pattern, const char *host)
{
    if (strncmp(pattern, "*.", 2) != 0)
        return strcmp(pattern, host) == 0;

    size_t suffix = strlen(pattern + 1);  /* ".example.org" */
    size_t len = strlen(host);
    return len > suffix && strcmp(host + len - suffix, pattern + 1) == 0;
}

typedef struct nu_host {
    char name[256];
    int family;       /* 0 for a DNS name */
    uint8_t addr[16];
} nu_host_t;

/* Canonicalize host: strip brackets and one trailing dot, lower-case it,
 * and parse IP literals (an IPv4-mapped IPv6 address becomes IPv4). */
static bool nu__host_parse(const char *host, nu_host_t *h)
{
    size_t len;

    if (host == NULL)
        return false;
    len = strnlen(host, sizeof h->name);
    if (len >= sizeof h->name)
        return false;
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0)
        return false;

    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        h->name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    h->name[len] = '\0';

    h->family = 0;
    if (inet_pton(AF_INET, h->name, h->addr) == 1) {
        h->family = AF_INET;
    } else if (inet_pton(AF_INET6, h->name, h->addr) == 1) {
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        h->family = AF_INET6;
        if (memcmp(h->addr, mapped, sizeof mapped) == 0) {
            memmove(h->addr, h->addr + 12, 4);
            h->family = AF_INET;
        }
    }
    return true;
}

/* Does set (entries or domain patterns) cover host on port (0: any)? */
static bool nu__set_covers_host(const nu_strset_t *set, const nu_host_t *h,
                                int port)
{
    if (set->top)
        return true;

    for (size_t i = 0; i < set->count; i++) {
        nu_net_entry_t e;

        if (h->family != 0) {
            if (nu__net_entry_parse(set->items[i], &e) &&
                nu__entry_covers(&e, h->family, h->addr, port))
                return true;
        } else if (nu__domain_match(set->items[i], h->name)) {
            return true;
        }
    }
    return false;
}

bool nu_perm_check_host(const nu_perm_t *p, const char *host, int port)
{
    nu_host_t h;

    if (port < 1 || port > 65535 || !nu__host_parse(host, &h))
        return false;
    if (h.family != 0)
        return nu__set_covers_host(&p->network.allow, &h, port);
    return nu__set_covers_host(&p->network.domains, &h, port);
}

bool nu_perm_host_trusted(const nu_perm_t *p, const char *host)
{
    nu_host_t h;

    if (!nu__host_parse(host, &h))
        return false;
    return nu__set_covers_host(&p->network.trusted, &h, 0);
}
