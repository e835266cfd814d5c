/*
 * lattice.c - the permission lattice: order, meet, join, normalization
 * and delegation.
 *
 * A permission is a product of component lattices, and every operation
 * here is component-wise:
 *
 *   component          order a <= b               meet          join
 *   capabilities[op]   never < low_risk < always  min           max
 *   obligations        a superset of b            union         intersection
 *   allow-like sets    a subset of b (TOP top)    intersection  union
 *   block-like sets    a superset of b (TOP bot.) union         intersection
 *   budget maxima      a <= b (unlimited top)     min           max
 *   time window        a inside b                 intersection  smallest
 *                                                               enclosing
 *   time ttl           a <= b                     min           max
 *
 * Allow-like sets are paths.allow, commands.allow and the three network
 * sets; block-like sets are paths.block, paths.write_block and
 * commands.block.  TOP is a flag on a set, never an empty list, so two
 * disjoint finite allow sets meet to EMPTY, which allows nothing.  A
 * block set may be TOP too ("block everything"); BOTTOM uses it so that
 * BOTTOM is below every permission.
 *
 * The time window [not_before, not_after) may be empty ("never valid").
 * Every empty window is stored as [0, 0), so equality compares fields.
 * The join of two windows is the smallest window that contains both,
 * which is their least upper bound among windows.
 *
 * Normalization (the trifecta closure) only adds obligations, so it is
 * deflationary (nu(x) <= x), and applying it twice adds nothing new, so
 * it is idempotent.  It is not monotone: raising web_fetch can add an
 * obligation and so lower the result.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lattice_internal.h"

const nu_perm_set_field_t nu__perm_set_fields[NU__PERM_SET_COUNT] = {
    { "paths", "allow", offsetof(nu_perm_t, paths.allow), false },
    { "paths", "block", offsetof(nu_perm_t, paths.block), true },
    { "paths", "write_block", offsetof(nu_perm_t, paths.write_block), true },
    { "commands", "allow", offsetof(nu_perm_t, commands.allow), false },
    { "commands", "block", offsetof(nu_perm_t, commands.block), true },
    { "network", "allow", offsetof(nu_perm_t, network.allow), false },
    { "network", "domains", offsetof(nu_perm_t, network.domains), false },
    { "network", "trusted", offsetof(nu_perm_t, network.trusted), false },
};

static const char *const nu__op_names[NU_OP_COUNT] = {
#define NU__OP_NAME(sym, name) name,
    NU_OP_MAP(NU__OP_NAME)
#undef NU__OP_NAME
};

static const char *const nu__level_names[] = { "never", "low_risk", "always" };

/* Trifecta legs. */
#define NU__PRIVATE_OPS \
    (NU_OPSET(NU_OP_READ_FILES) | NU_OPSET(NU_OP_GLOB_SEARCH) | \
     NU_OPSET(NU_OP_GREP_SEARCH))
#define NU__UNTRUSTED_OPS (NU_OPSET(NU_OP_WEB_FETCH) | NU_OPSET(NU_OP_WEB_SEARCH))
#define NU__EXFIL_OPS (NU_OPSET(NU_OP_GIT_PUSH) | NU_OPSET(NU_OP_CREATE_PR))

const char *nu_op_name(nu_op_t op)
{
    if ((int)op < 0 || op >= NU_OP_COUNT)
        return NULL;
    return nu__op_names[op];
}

int nu_op_parse(const char *name)
{
    for (int op = 0; op < NU_OP_COUNT; op++) {
        if (strcmp(nu__op_names[op], name) == 0)
            return op;
    }
    return -1;
}

const char *nu_level_name(nu_level_t level)
{
    if ((int)level < 0 || level > NU_ALWAYS)
        return NULL;
    return nu__level_names[level];
}

int nu_level_parse(const char *name)
{
    for (int level = NU_NEVER; level <= NU_ALWAYS; level++) {
        if (strcmp(nu__level_names[level], name) == 0)
            return level;
    }
    return -1;
}

/* --- lifecycle -------------------------------------------------------- */

void nu__time_canonicalize(nu_timewin_t *t)
{
    if (nu__time_empty(t)) {
        t->not_before = 0;
        t->not_after = 0;
    }
}

void nu__perm_init_sets_empty(nu_perm_t *p)
{
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++)
        nu_strset_init_empty(nu__perm_set(p, i));
}

void nu_perm_init_top(nu_perm_t *p)
{
    nu__perm_init_sets_empty(p);

    for (int op = 0; op < NU_OP_COUNT; op++)
        p->caps[op] = NU_ALWAYS;
    p->obligations = 0;

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        if (!nu__perm_set_fields[i].is_block)
            nu_strset_init_top(nu__perm_set(p, i));
    }

    p->budget.usd = INFINITY;
    p->budget.input_tokens = NU_UNLIMITED;
    p->budget.output_tokens = NU_UNLIMITED;
    p->budget.tool_calls = NU_UNLIMITED;

    p->time.not_before = INT64_MIN;
    p->time.not_after = INT64_MAX;
    p->time.ttl = NU_UNLIMITED;
}

void nu_perm_init_bottom(nu_perm_t *p)
{
    nu__perm_init_sets_empty(p);

    for (int op = 0; op < NU_OP_COUNT; op++)
        p->caps[op] = NU_NEVER;
    p->obligations = NU_OPSET_ALL;

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        if (nu__perm_set_fields[i].is_block)
            nu_strset_init_top(nu__perm_set(p, i));
    }

    p->budget.usd = 0;
    p->time.not_before = 0;
    p->time.not_after = 0;
    p->time.ttl = 0;
}

void nu_perm_free(nu_perm_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++)
        nu_strset_free(nu__perm_set(p, i));
}

int nu_perm_copy(nu_perm_t *dst, const nu_perm_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++)
        nu_strset_init_empty(nu__perm_set(dst, i));

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        if (nu_strset_copy(nu__perm_set(dst, i), nu__perm_set_const(src, i)) != NU_OK) {
            nu_perm_free(dst);
            return NU_ENOMEM;
        }
    }
    return NU_OK;
}

/* --- lattice operations ----------------------------------------------- */

static int64_t nu__min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t nu__max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void nu__budget_meet(nu_budget_t *out, const nu_budget_t *a,
                            const nu_budget_t *b)
{
    out->usd = fmin(a->usd, b->usd);
    out->input_tokens = nu__min64(a->input_tokens, b->input_tokens);
    out->output_tokens = nu__min64(a->output_tokens, b->output_tokens);
    out->tool_calls = nu__min64(a->tool_calls, b->tool_calls);
}

static void nu__budget_join(nu_budget_t *out, const nu_budget_t *a,
                            const nu_budget_t *b)
{
    out->usd = fmax(a->usd, b->usd);
    out->input_tokens = nu__max64(a->input_tokens, b->input_tokens);
    out->output_tokens = nu__max64(a->output_tokens, b->output_tokens);
    out->tool_calls = nu__max64(a->tool_calls, b->tool_calls);
}

static bool nu__budget_leq(const nu_budget_t *a, const nu_budget_t *b)
{
    return a->usd <= b->usd && a->input_tokens <= b->input_tokens &&
           a->output_tokens <= b->output_tokens &&
           a->tool_calls <= b->tool_calls;
}

static void nu__time_meet(nu_timewin_t *out, const nu_timewin_t *a,
                          const nu_timewin_t *b)
{
    out->not_before = nu__max64(a->not_before, b->not_before);
    out->not_after = nu__min64(a->not_after, b->not_after);
    out->ttl = nu__min64(a->ttl, b->ttl);
    nu__time_canonicalize(out);
}

static void nu__time_join(nu_timewin_t *out, const nu_timewin_t *a,
                          const nu_timewin_t *b)
{
    if (nu__time_empty(a)) {
        out->not_before = b->not_before;
        out->not_after = b->not_after;
    } else if (nu__time_empty(b)) {
        out->not_before = a->not_before;
        out->not_after = a->not_after;
    } else {
        out->not_before = nu__min64(a->not_before, b->not_before);
        out->not_after = nu__max64(a->not_after, b->not_after);
    }
    out->ttl = nu__max64(a->ttl, b->ttl);
    nu__time_canonicalize(out);
}

static bool nu__window_leq(const nu_timewin_t *a, const nu_timewin_t *b)
{
    if (nu__time_empty(a))
        return true;
    if (nu__time_empty(b))
        return false;
    return b->not_before <= a->not_before && a->not_after <= b->not_after;
}

/* Meet (meet == true) or join of a and b into out. */
static int nu__perm_combine(nu_perm_t *out, const nu_perm_t *a,
                            const nu_perm_t *b, bool meet)
{
    nu__perm_init_sets_empty(out);

    for (int op = 0; op < NU_OP_COUNT; op++) {
        uint8_t low = a->caps[op] < b->caps[op] ? a->caps[op] : b->caps[op];
        uint8_t high = a->caps[op] < b->caps[op] ? b->caps[op] : a->caps[op];

        out->caps[op] = meet ? low : high;
    }
    out->obligations = meet ? (a->obligations | b->obligations)
                            : (a->obligations & b->obligations);

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        const nu_strset_t *x = nu__perm_set_const(a, i);
        const nu_strset_t *y = nu__perm_set_const(b, i);
        bool intersect = meet != nu__perm_set_fields[i].is_block;
        int rc = intersect ? nu_strset_intersect(nu__perm_set(out, i), x, y)
                           : nu_strset_union(nu__perm_set(out, i), x, y);
        if (rc != NU_OK) {
            nu_perm_free(out);
            return rc;
        }
    }

    if (meet) {
        nu__budget_meet(&out->budget, &a->budget, &b->budget);
        nu__time_meet(&out->time, &a->time, &b->time);
    } else {
        nu__budget_join(&out->budget, &a->budget, &b->budget);
        nu__time_join(&out->time, &a->time, &b->time);
    }
    return NU_OK;
}

int nu_perm_meet(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b)
{
    return nu__perm_combine(out, a, b, true);
}

int nu_perm_join(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b)
{
    return nu__perm_combine(out, a, b, false);
}

/*
 * Find the first component in which a is not <= b.  Returns NULL when
 * a <= b; otherwise describes the component in buf.
 */
static const char *nu__perm_first_excess(const nu_perm_t *a,
                                         const nu_perm_t *b, char *buf,
                                         size_t size)
{
    for (int op = 0; op < NU_OP_COUNT; op++) {
        if (a->caps[op] > b->caps[op]) {
            snprintf(buf, size, "capabilities.%s is '%s' above '%s'",
                     nu__op_names[op], nu__level_names[a->caps[op]],
                     nu__level_names[b->caps[op]]);
            return buf;
        }
    }

    nu_opset_t dropped = b->obligations & ~a->obligations;
    if (dropped != 0) {
        int op = __builtin_ctz(dropped);
        snprintf(buf, size, "obligations lack approval of '%s'",
                 nu__op_names[op]);
        return buf;
    }

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        const nu_perm_set_field_t *f = &nu__perm_set_fields[i];
        const nu_strset_t *x = nu__perm_set_const(a, i);
        const nu_strset_t *y = nu__perm_set_const(b, i);
        bool ok = f->is_block ? nu_strset_subset(y, x) : nu_strset_subset(x, y);

        if (!ok) {
            snprintf(buf, size, "%s.%s %s", f->component, f->key,
                     f->is_block ? "blocks less" : "allows more");
            return buf;
        }
    }

    if (!nu__budget_leq(&a->budget, &b->budget)) {
        snprintf(buf, size, "budget is larger");
        return buf;
    }
    if (!nu__window_leq(&a->time, &b->time)) {
        snprintf(buf, size, "time window is wider");
        return buf;
    }
    if (a->time.ttl > b->time.ttl) {
        snprintf(buf, size, "time.ttl is longer");
        return buf;
    }
    return NULL;
}

bool nu_perm_leq(const nu_perm_t *a, const nu_perm_t *b)
{
    char buf[128];
    return nu__perm_first_excess(a, b, buf, sizeof buf) == NULL;
}

bool nu_perm_equal(const nu_perm_t *a, const nu_perm_t *b)
{
    if (memcmp(a->caps, b->caps, sizeof a->caps) != 0)
        return false;
    if (a->obligations != b->obligations)
        return false;

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        if (!nu_strset_equal(nu__perm_set_const(a, i), nu__perm_set_const(b, i)))
            return false;
    }

    if (a->budget.usd != b->budget.usd ||
        a->budget.input_tokens != b->budget.input_tokens ||
        a->budget.output_tokens != b->budget.output_tokens ||
        a->budget.tool_calls != b->budget.tool_calls)
        return false;

    if (a->time.ttl != b->time.ttl)
        return false;
    if (nu__time_empty(&a->time) || nu__time_empty(&b->time))
        return nu__time_empty(&a->time) && nu__time_empty(&b->time);
    return a->time.not_before == b->time.not_before &&
           a->time.not_after == b->time.not_after;
}

/* --- normalization ---------------------------------------------------- */

bool nu_perm_has_egress(const nu_perm_t *p)
{
    /* NOTE: egress that reaches only network.trusted destinations still
     * counts here, so run_bash gets an obligation.  The dynamic trifecta
     * gate is where trusted destinations are distinguished. */
    return p->network.allow.top || p->network.allow.count > 0 ||
           p->network.domains.top || p->network.domains.count > 0;
}

/* Operations of p granted at least low_risk. */
static nu_opset_t nu__granted(const nu_perm_t *p)
{
    nu_opset_t set = 0;

    for (int op = 0; op < NU_OP_COUNT; op++) {
        if (p->caps[op] >= NU_LOW_RISK)
            set |= NU_OPSET(op);
    }
    return set;
}

void nu_perm_normalize(nu_perm_t *p)
{
    nu_opset_t granted = nu__granted(p);
    nu_opset_t exfil = granted & NU__EXFIL_OPS;

    if (nu_perm_has_egress(p))
        exfil |= granted & NU_OPSET(NU_OP_RUN_BASH);

    if ((granted & NU__PRIVATE_OPS) && (granted & NU__UNTRUSTED_OPS) && exfil)
        p->obligations |= exfil;

    nu__time_canonicalize(&p->time);
}

void nu_perm_resolve_time(nu_perm_t *p, int64_t now)
{
    if (p->time.ttl == NU_UNLIMITED)
        return;

    int64_t ttl = p->time.ttl < 0 ? 0 : p->time.ttl;
    int64_t end = now > INT64_MAX - ttl ? INT64_MAX : now + ttl;

    p->time.not_after = nu__min64(p->time.not_after, end);
    p->time.ttl = NU_UNLIMITED;
    nu__time_canonicalize(&p->time);
}

/* --- delegation ------------------------------------------------------- */

/* Name the first budget field of want above have, or return NULL. */
static const char *nu__budget_excess(const nu_budget_t *want,
                                     const nu_budget_t *have)
{
    if (want->usd > have->usd)
        return "usd";
    if (want->input_tokens > have->input_tokens)
        return "input_tokens";
    if (want->output_tokens > have->output_tokens)
        return "output_tokens";
    if (want->tool_calls > have->tool_calls)
        return "tool_calls";
    return NULL;
}

int nu_perm_delegate(nu_perm_t *out, const nu_perm_t *parent,
                     const nu_perm_t *requested,
                     const nu_budget_t *parent_remaining, bool strict,
                     nu_err_t *err)
{
    char detail[160];
    int rc;

    nu__perm_init_sets_empty(out);

    if (strict) {
        const char *excess = nu__perm_first_excess(requested, parent, detail,
                                                   sizeof detail);
        if (excess != NULL)
            return nu_err_set(err, NU_EDENIED,
                              "lattice: cannot delegate permission: the request "
                              "exceeds the parent: %s (drop it or delegate "
                              "without strict mode to clamp)", excess);

        const char *field = parent_remaining == NULL ? NULL
            : nu__budget_excess(&requested->budget, parent_remaining);
        if (field != NULL)
            return nu_err_set(err, NU_EDENIED,
                              "lattice: cannot delegate permission: budget.%s "
                              "exceeds the parent's remaining budget", field);
    }

    rc = nu_perm_meet(out, parent, requested);
    if (rc != NU_OK)
        return nu_err_set(err, rc, "lattice: cannot delegate permission: %s",
                          nu_strerror(rc));

    if (parent_remaining != NULL)
        nu__budget_meet(&out->budget, &out->budget, parent_remaining);

    nu_perm_normalize(out);
    return NU_OK;
}
