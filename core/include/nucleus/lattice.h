/*
 * lattice.h - the permission lattice.
 *
 * A permission (nu_perm_t) is a product of components; order, meet and join
 * are component-wise.  "a <= b" means a is at most as permissive as b.
 *
 *   component     values                                 meet (a & b)
 *   capabilities  12 operations x never < low_risk < always  per-operation min
 *   obligations   set of operations that need approval   union
 *   paths         allow (TOP or finite glob set),        allow: intersection,
 *                 block, write_block (finite sets)       block sets: union
 *   commands      allow (TOP or finite rule set), block  as paths
 *   budget        max usd, input/output tokens, calls    min of each max
 *   time          [not_before, not_after) plus ttl       intersection, min ttl
 *   network       allow (CIDR:port), domains, trusted,   intersection
 *                 each TOP or finite
 *
 * TOP ("unrestricted") is an explicit flag on a set, never an empty list:
 * the meet of two disjoint finite allow sets is the EMPTY set, which allows
 * nothing.  Set components are ordered by set inclusion on their members
 * (the strings themselves), so the laws hold exactly; two different globs
 * that happen to match the same paths are different members.
 *
 * Normalization (nu_perm_normalize, the trifecta closure): when a
 * permission grants at least low_risk on one operation of each leg --
 * private data (read_files, glob_search, grep_search), untrusted content
 * (web_fetch, web_search) and exfiltration (git_push, create_pr, and
 * run_bash when the network component allows any egress) -- every granted
 * exfiltration operation gets an approval obligation.  It is idempotent
 * and deflationary (nu(x) <= x); it is not monotone.
 */
#ifndef NUCLEUS_LATTICE_H
#define NUCLEUS_LATTICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/error.h"

typedef enum {
    NU_NEVER = 0,
    NU_LOW_RISK = 1,
    NU_ALWAYS = 2
} nu_level_t;

/* Operations: the capability dimensions, in canonical order. */
#define NU_OP_MAP(X)                          \
    X(NU_OP_READ_FILES, "read_files")         \
    X(NU_OP_WRITE_FILES, "write_files")       \
    X(NU_OP_EDIT_FILES, "edit_files")         \
    X(NU_OP_RUN_BASH, "run_bash")             \
    X(NU_OP_GLOB_SEARCH, "glob_search")       \
    X(NU_OP_GREP_SEARCH, "grep_search")       \
    X(NU_OP_WEB_SEARCH, "web_search")         \
    X(NU_OP_WEB_FETCH, "web_fetch")           \
    X(NU_OP_GIT_COMMIT, "git_commit")         \
    X(NU_OP_GIT_PUSH, "git_push")             \
    X(NU_OP_CREATE_PR, "create_pr")           \
    X(NU_OP_MANAGE_PODS, "manage_pods")

typedef enum {
#define NU__OP_ENUM(sym, name) sym,
    NU_OP_MAP(NU__OP_ENUM)
#undef NU__OP_ENUM
    NU_OP_COUNT
} nu_op_t;

/* A set of operations, bit (1u << op). */
typedef uint32_t nu_opset_t;
#define NU_OPSET(op) ((nu_opset_t)1u << (op))
#define NU_OPSET_ALL ((nu_opset_t)((1u << NU_OP_COUNT) - 1))

/* Trifecta legs, as bits of an exposure set. */
typedef enum {
    NU_LEG_PRIVATE = 1,
    NU_LEG_UNTRUSTED = 2,
    NU_LEG_EXFIL = 4
} nu_leg_t;
#define NU_LEGS_ALL 7

const char *nu_op_name(nu_op_t op);
int nu_op_parse(const char *name);           /* -1 when unknown */
const char *nu_level_name(nu_level_t level); /* "never", "low_risk", "always" */
int nu_level_parse(const char *name);        /* -1 when unknown */

/* A sorted set of unique strings, or TOP.  An empty non-TOP set is the
 * EMPTY set.  Members are owned by the set. */
typedef struct nu_strset {
    bool top;
    size_t count;
    char **items;
} nu_strset_t;

/* Budget maxima.  NU_UNLIMITED (or INFINITY for usd) means no limit. */
#define NU_UNLIMITED INT64_MAX
typedef struct nu_budget {
    double usd;
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t tool_calls;
} nu_budget_t;

/* Validity window in Unix seconds: [not_before, not_after).  INT64_MIN and
 * INT64_MAX mean unbounded.  ttl (seconds, NU_UNLIMITED for none) is the
 * relative limit a profile states; nu_perm_resolve_time turns it into an
 * absolute not_after when a pod starts. */
typedef struct nu_timewin {
    int64_t not_before;
    int64_t not_after;
    int64_t ttl;
} nu_timewin_t;

typedef struct nu_perm {
    uint8_t caps[NU_OP_COUNT];   /* nu_level_t per operation */
    nu_opset_t obligations;
    struct {
        nu_strset_t allow;       /* globs; TOP = every path */
        nu_strset_t block;       /* globs denied for all access */
        nu_strset_t write_block; /* globs denied for write and edit */
    } paths;
    struct {
        nu_strset_t allow;       /* command rules; TOP = every command */
        nu_strset_t block;
    } commands;
    nu_budget_t budget;
    nu_timewin_t time;
    struct {
        nu_strset_t allow;       /* "CIDR:port" / "CIDR" entries */
        nu_strset_t domains;     /* "example.org", "*.example.org" */
        nu_strset_t trusted;     /* destinations the operator vouches for */
    } network;
} nu_perm_t;

/* --- string sets ------------------------------------------------------ */

void nu_strset_init_empty(nu_strset_t *s);
void nu_strset_init_top(nu_strset_t *s);
void nu_strset_free(nu_strset_t *s);
/* Add a copy of item (keeps order, ignores duplicates); NU_ENOMEM. */
int nu_strset_add(nu_strset_t *s, const char *item);
bool nu_strset_contains(const nu_strset_t *s, const char *item);
/* Copy src into dst (initialized by the call); NU_ENOMEM. */
int nu_strset_copy(nu_strset_t *dst, const nu_strset_t *src);
bool nu_strset_equal(const nu_strset_t *a, const nu_strset_t *b);
/* Is a a subset of b?  Every set is a subset of TOP; TOP is a subset only
 * of TOP. */
bool nu_strset_subset(const nu_strset_t *a, const nu_strset_t *b);
/* out = a intersect b (TOP is the identity) or a union b (TOP absorbs).
 * out is initialized by the call and must not alias a or b; NU_ENOMEM. */
int nu_strset_intersect(nu_strset_t *out, const nu_strset_t *a,
                        const nu_strset_t *b);
int nu_strset_union(nu_strset_t *out, const nu_strset_t *a,
                    const nu_strset_t *b);

/* --- lifecycle -------------------------------------------------------- */

/* TOP: every capability always, no obligations, every path, every command,
 * unlimited budget and time, every network destination. */
void nu_perm_init_top(nu_perm_t *p);
/* BOTTOM: everything never, all obligations, EMPTY allow sets, TOP block
 * sets (block everything), zero budget and ttl, empty time window. */
void nu_perm_init_bottom(nu_perm_t *p);
void nu_perm_free(nu_perm_t *p);
int nu_perm_copy(nu_perm_t *dst, const nu_perm_t *src);

/* --- lattice operations (out must not alias a or b; out is initialized
 *     by the call and must be freed with nu_perm_free) ----------------- */

int nu_perm_meet(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b);
int nu_perm_join(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b);
bool nu_perm_leq(const nu_perm_t *a, const nu_perm_t *b);
bool nu_perm_equal(const nu_perm_t *a, const nu_perm_t *b);

/* Apply the trifecta closure in place. */
void nu_perm_normalize(nu_perm_t *p);
bool nu_perm_has_egress(const nu_perm_t *p);

/* Turn ttl into not_after = min(not_after, now + ttl) and clear ttl. */
void nu_perm_resolve_time(nu_perm_t *p, int64_t now);

/* Delegation: out = parent & requested, normalized.  When requested is not
 * <= parent, strict mode fails with NU_EDENIED (err names the first
 * component that exceeds the parent); clamp mode (strict == false) keeps
 * the meet.  The child's budget is also capped by parent_remaining (the
 * parent's unspent budget), which the caller then deducts from the
 * parent. */
int nu_perm_delegate(nu_perm_t *out, const nu_perm_t *parent,
                     const nu_perm_t *requested,
                     const nu_budget_t *parent_remaining, bool strict,
                     nu_err_t *err);

/* --- serialization ---------------------------------------------------- */

/* Canonical JSON object of p: sorted keys, TOP sets as "*", unlimited
 * numbers as "*", obligations sorted by name.  New reference. */
json_t *nu_perm_to_json(const nu_perm_t *p);

/* Parse the canonical JSON form (as written by nu_perm_to_json) into out
 * and normalize it.  Rejects unknown keys, unknown operations and levels,
 * and wrong types with a message naming the key. */
int nu_perm_from_json(nu_perm_t *out, const json_t *json, nu_err_t *err);

/* --- rule checks ------------------------------------------------------ */

/* Access modes for path checks. */
typedef enum { NU_ACCESS_READ = 0, NU_ACCESS_WRITE = 1 } nu_access_t;

/* Check a normalized workspace-relative path ("src/main.c", no leading
 * slash, no "." or ".." segments; see nu_path_normalize).  Returns true when
 * allowed.  When denied and rule is not NULL, *rule points at the matching
 * block pattern ("*" for a TOP block set) or is NULL when no allow pattern
 * matched.  Fails closed: a path that is not normalized is denied, and an
 * invalid block pattern (see nu_glob_valid) denies every path. */
bool nu_perm_check_path(const nu_perm_t *p, const char *path,
                        nu_access_t access, const char **rule);

/* Check one simple command (argv[0] is the program as written).  Block
 * rules win over allow rules.  When denied and rule is not NULL, *rule
 * points at the matching block rule ("*" for a TOP block set) or is NULL
 * when no allow rule matched.  An empty argv is denied, and so is every
 * command when a block rule cannot be parsed.  Allow rules match a
 * relative program path with a slash ("./git") only when they name that
 * exact path. */
bool nu_perm_check_command(const nu_perm_t *p, int argc, char *const argv[],
                           const char **rule);

/* Does one command rule ("git push", "gh auth **", "rm -rf") match argv?
 * The first word matches the program (also by base name when the rule's
 * program has no slash: "rm" matches "/bin/rm"); "*" matches exactly one
 * argument, "**" any number; arguments after the rule's last word match. */
bool nu_cmdrule_match(const char *rule, int argc, char *const argv[]);

/* Is host (a lowercase DNS name or IP literal) on port allowed by the
 * network component?  Domain patterns "*.example.org" match subdomains
 * only; "example.org" matches exactly. */
bool nu_perm_check_host(const nu_perm_t *p, const char *host, int port);

/* Is host a destination of network.trusted? */
bool nu_perm_host_trusted(const nu_perm_t *p, const char *host);

/* --- path helpers ----------------------------------------------------- */

/* Normalize path lexically against the workspace: a relative path, or an
 * absolute path under /workspace, becomes a relative path with ".",
 * ".." and repeated slashes resolved; "" is the workspace root.  Returns
 * NU_OK, NU_EPERM when the path leaves the workspace, NU_ELIMIT when it
 * exceeds NU_PATH_MAX bytes or NU_PATH_MAX_SEGMENTS segments, NU_EINVAL
 * for NUL or empty input, NU_ERANGE when out (size bytes) is too small;
 * strlen(path) + 1 bytes always suffice. */
#define NU_PATH_MAX 4096
#define NU_PATH_MAX_SEGMENTS 256
int nu_path_normalize(const char *path, char *out, size_t size);

/* Built-in pattern sets, NULL-terminated: nucleus.SENSITIVE (credentials
 * and secrets, denied for all access) and nucleus.AUTORUN (files other
 * tools execute or load automatically, denied for writes). */
extern const char *const nu_sensitive_patterns[];
extern const char *const nu_autorun_patterns[];

#endif
