/*
 * test_lattice.c - lattice laws on seeded random permissions, trifecta
 * normalization, delegation and the canonical JSON form.
 *
 * The generator draws every set-valued field from a small universe of
 * members, so that random pairs overlap often.  Each set is TOP or EMPTY
 * one time in six.  Budgets, windows and ttl come from small value lists
 * that include unlimited and empty values.  Each law runs on
 * NU_LAW_ROUNDS random draws with a fixed seed, so a failure reproduces.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "nucleus/json.h"
#include "nucleus/lattice.h"

#define NU_LAW_ROUNDS 3000

/* --- generator -------------------------------------------------------- */

typedef struct { uint64_t s; } rng_t;

static uint64_t rng_next(rng_t *r)
{
    /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static unsigned rng_below(rng_t *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

/* Universe of members per set field, in nu_perm_t order. */
static const char *const universe[8][5] = {
    { "src/**", "*.pem", "docs/", ".env*", "build/" },               /* paths.allow */
    { "*.pem", ".ssh/", "secrets/", "*.key", "build/" },             /* paths.block */
    { ".git/hooks/", ".bashrc", ".vscode/", "Makefile", "*.sh" },    /* paths.write_block */
    { "git status", "ls", "rm -rf", "git push", "make **" },         /* commands.allow */
    { "sudo", "git push", "rm -rf", "curl", "gh auth **" },          /* commands.block */
    { "10.0.0.0/8", "192.0.2.1:443", "[2001:db8::/32]:443",
      "198.51.100.0/24", "203.0.113.7" },                            /* network.allow */
    { "example.org", "*.example.org", "pypi.org", "github.com",
      "*.npmjs.org" },                                               /* network.domains */
    { "github.com", "10.0.0.0/8", "pypi.org", "*.example.org",
      "203.0.113.7" },                                               /* network.trusted */
};

static nu_strset_t *perm_set(nu_perm_t *p, int i)
{
    nu_strset_t *sets[8] = {
        &p->paths.allow, &p->paths.block, &p->paths.write_block,
        &p->commands.allow, &p->commands.block,
        &p->network.allow, &p->network.domains, &p->network.trusted,
    };
    return sets[i];
}

static void gen_set(rng_t *r, nu_strset_t *s, int field)
{
    unsigned kind = rng_below(r, 6);

    nu_strset_free(s);
    if (kind == 0) {
        nu_strset_init_top(s);
        return;
    }
    nu_strset_init_empty(s);
    if (kind == 1)
        return;
    for (int i = 0; i < 5; i++) {
        if (rng_below(r, 2))
            assert_int_equal(nu_strset_add(s, universe[field][i]), NU_OK);
    }
}

static void gen_perm(rng_t *r, nu_perm_t *p)
{
    static const int64_t counts[] = { 0, 1, 5, 100, NU_UNLIMITED };
    static const double usds[] = { 0, 0.5, 1, 5, INFINITY };
    static const int64_t starts[] = { INT64_MIN, 0, 100, 200 };
    static const int64_t ends[] = { 100, 200, 300, INT64_MAX };
    static const int64_t ttls[] = { 0, 60, 3600, NU_UNLIMITED };
    unsigned shape = rng_below(r, 16);

    /* Whole TOP and BOTTOM elements are part of the draw. */
    if (shape == 0) {
        nu_perm_init_top(p);
        return;
    }
    if (shape == 1) {
        nu_perm_init_bottom(p);
        return;
    }

    nu_perm_init_top(p);
    for (int op = 0; op < NU_OP_COUNT; op++)
        p->caps[op] = (uint8_t)rng_below(r, 3);
    p->obligations = (nu_opset_t)(rng_next(r) & rng_next(r) & NU_OPSET_ALL);

    for (int i = 0; i < 8; i++)
        gen_set(r, perm_set(p, i), i);

    p->budget.usd = usds[rng_below(r, 5)];
    p->budget.input_tokens = counts[rng_below(r, 5)];
    p->budget.output_tokens = counts[rng_below(r, 5)];
    p->budget.tool_calls = counts[rng_below(r, 5)];

    p->time.not_before = starts[rng_below(r, 4)];
    p->time.not_after = ends[rng_below(r, 4)];
    p->time.ttl = ttls[rng_below(r, 4)];
}

/* Assertion helpers that print both permissions on failure. */
static void print_perm(const char *label, const nu_perm_t *p)
{
    json_t *j = nu_perm_to_json(p);
    char *s = j != NULL ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;

    print_error("%s: %s\n", label, s != NULL ? s : "(null)");
    free(s);
    json_decref(j);
}

static void expect_equal(const nu_perm_t *a, const nu_perm_t *b, const char *law)
{
    if (!nu_perm_equal(a, b)) {
        print_perm("left", a);
        print_perm("right", b);
        fail_msg("law '%s' broken", law);
    }
}

static void expect_leq(const nu_perm_t *a, const nu_perm_t *b, const char *law)
{
    if (!nu_perm_leq(a, b)) {
        print_perm("lower", a);
        print_perm("upper", b);
        fail_msg("law '%s' broken", law);
    }
}

static void meet(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b)
{
    assert_int_equal(nu_perm_meet(out, a, b), NU_OK);
}

static void join(nu_perm_t *out, const nu_perm_t *a, const nu_perm_t *b)
{
    assert_int_equal(nu_perm_join(out, a, b), NU_OK);
}

/* --- laws ------------------------------------------------------------- */

static void test_lattice_commutative(void **state)
{
    rng_t r = { 0x1234 };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, x, y;

        gen_perm(&r, &a);
        gen_perm(&r, &b);

        meet(&x, &a, &b);
        meet(&y, &b, &a);
        expect_equal(&x, &y, "a & b == b & a");
        nu_perm_free(&x);
        nu_perm_free(&y);

        join(&x, &a, &b);
        join(&y, &b, &a);
        expect_equal(&x, &y, "a | b == b | a");
        nu_perm_free(&x);
        nu_perm_free(&y);

        nu_perm_free(&a);
        nu_perm_free(&b);
    }
}

static void test_lattice_associative(void **state)
{
    rng_t r = { 0x2345 };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, c, ab, bc, x, y;

        gen_perm(&r, &a);
        gen_perm(&r, &b);
        gen_perm(&r, &c);

        meet(&ab, &a, &b);
        meet(&bc, &b, &c);
        meet(&x, &ab, &c);
        meet(&y, &a, &bc);
        expect_equal(&x, &y, "(a & b) & c == a & (b & c)");
        nu_perm_free(&ab);
        nu_perm_free(&bc);
        nu_perm_free(&x);
        nu_perm_free(&y);

        join(&ab, &a, &b);
        join(&bc, &b, &c);
        join(&x, &ab, &c);
        join(&y, &a, &bc);
        expect_equal(&x, &y, "(a | b) | c == a | (b | c)");
        nu_perm_free(&ab);
        nu_perm_free(&bc);
        nu_perm_free(&x);
        nu_perm_free(&y);

        nu_perm_free(&a);
        nu_perm_free(&b);
        nu_perm_free(&c);
    }
}

static void test_lattice_idempotent(void **state)
{
    rng_t r = { 0x3456 };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, x;

        gen_perm(&r, &a);
        meet(&x, &a, &a);
        expect_equal(&x, &a, "a & a == a");
        nu_perm_free(&x);
        join(&x, &a, &a);
        expect_equal(&x, &a, "a | a == a");
        nu_perm_free(&x);
        nu_perm_free(&a);
    }
}

static void test_lattice_absorption(void **state)
{
    rng_t r = { 0x4567 };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, ab, x;

        gen_perm(&r, &a);
        gen_perm(&r, &b);

        join(&ab, &a, &b);
        meet(&x, &a, &ab);
        expect_equal(&x, &a, "a & (a | b) == a");
        nu_perm_free(&ab);
        nu_perm_free(&x);

        meet(&ab, &a, &b);
        join(&x, &a, &ab);
        expect_equal(&x, &a, "a | (a & b) == a");
        nu_perm_free(&ab);
        nu_perm_free(&x);

        nu_perm_free(&a);
        nu_perm_free(&b);
    }
}

static void test_lattice_bounds(void **state)
{
    rng_t r = { 0x5678 };
    nu_perm_t top, bottom;

    (void)state;
    nu_perm_init_top(&top);
    nu_perm_init_bottom(&bottom);
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, x;

        gen_perm(&r, &a);
        gen_perm(&r, &b);

        meet(&x, &a, &b);
        expect_leq(&x, &a, "a & b <= a");
        expect_leq(&x, &b, "a & b <= b");
        nu_perm_free(&x);

        join(&x, &a, &b);
        expect_leq(&a, &x, "a <= a | b");
        expect_leq(&b, &x, "b <= a | b");
        nu_perm_free(&x);

        expect_leq(&bottom, &a, "BOTTOM <= a");
        expect_leq(&a, &top, "a <= TOP");
        meet(&x, &a, &top);
        expect_equal(&x, &a, "a & TOP == a");
        nu_perm_free(&x);
        join(&x, &a, &bottom);
        expect_equal(&x, &a, "a | BOTTOM == a");
        nu_perm_free(&x);

        nu_perm_free(&a);
        nu_perm_free(&b);
    }
    nu_perm_free(&top);
    nu_perm_free(&bottom);
}

/* c <= a and c <= b exactly when c <= a & b; the dual for join.  Half of
 * the draws build c below (or above) both, so both sides of the "iff"
 * are exercised. */
static void test_lattice_greatest_lower_bound(void **state)
{
    rng_t r = { 0x6789 };
    int below_both = 0;

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, c, ab, d;

        gen_perm(&r, &a);
        gen_perm(&r, &b);
        meet(&ab, &a, &b);
        if (i % 2) {
            gen_perm(&r, &c);
        } else {
            gen_perm(&r, &d);
            meet(&c, &ab, &d);
            nu_perm_free(&d);
        }

        bool lower = nu_perm_leq(&c, &a) && nu_perm_leq(&c, &b);
        below_both += lower;
        if (lower != nu_perm_leq(&c, &ab)) {
            print_perm("a", &a);
            print_perm("b", &b);
            print_perm("c", &c);
            fail_msg("c <= a and c <= b must equal c <= a & b");
        }

        nu_perm_free(&a);
        nu_perm_free(&b);
        nu_perm_free(&c);
        nu_perm_free(&ab);
    }
    assert_true(below_both >= NU_LAW_ROUNDS / 2);
}

static void test_lattice_least_upper_bound(void **state)
{
    rng_t r = { 0x789a };
    int above_both = 0;

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, c, ab, d;

        gen_perm(&r, &a);
        gen_perm(&r, &b);
        join(&ab, &a, &b);
        if (i % 2) {
            gen_perm(&r, &c);
        } else {
            gen_perm(&r, &d);
            join(&c, &ab, &d);
            nu_perm_free(&d);
        }

        bool upper = nu_perm_leq(&a, &c) && nu_perm_leq(&b, &c);
        above_both += upper;
        if (upper != nu_perm_leq(&ab, &c)) {
            print_perm("a", &a);
            print_perm("b", &b);
            print_perm("c", &c);
            fail_msg("a <= c and b <= c must equal a | b <= c");
        }

        nu_perm_free(&a);
        nu_perm_free(&b);
        nu_perm_free(&c);
        nu_perm_free(&ab);
    }
    assert_true(above_both >= NU_LAW_ROUNDS / 2);
}

/* leq is a partial order and agrees with meet and join:
 * a <= b iff a & b == a iff a | b == b. */
static void test_lattice_order_is_partial_order(void **state)
{
    rng_t r = { 0x89ab };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, b, c, x, ab, abx;

        gen_perm(&r, &a);
        gen_perm(&r, &b);
        gen_perm(&r, &x);

        expect_leq(&a, &a, "a <= a");

        meet(&ab, &a, &b);
        bool leq = nu_perm_leq(&a, &b);
        assert_int_equal(leq, nu_perm_equal(&ab, &a));
        nu_perm_free(&ab);
        join(&ab, &a, &b);
        assert_int_equal(leq, nu_perm_equal(&ab, &b));

        /* Antisymmetry on the pairs that are comparable both ways. */
        if (leq && nu_perm_leq(&b, &a))
            expect_equal(&a, &b, "a <= b and b <= a imply a == b");
        assert_int_equal(nu_perm_copy(&c, &a), NU_OK);
        assert_true(nu_perm_leq(&c, &a) && nu_perm_leq(&a, &c));
        expect_equal(&c, &a, "copy is equal");
        nu_perm_free(&c);

        /* Transitivity along a <= a | b <= (a | b) | x. */
        join(&abx, &ab, &x);
        expect_leq(&a, &ab, "a <= a | b");
        expect_leq(&ab, &abx, "a | b <= (a | b) | x");
        expect_leq(&a, &abx, "transitivity");

        nu_perm_free(&a);
        nu_perm_free(&b);
        nu_perm_free(&x);
        nu_perm_free(&ab);
        nu_perm_free(&abx);
    }
}

/* Regression: an implementation that encodes "unrestricted" as an empty
 * list turns the meet of two disjoint allow sets into "everything". */
static void test_lattice_disjoint_allow_meet_is_empty(void **state)
{
    nu_perm_t a, b, m;
    char *ls[] = { "ls", NULL };
    char *git[] = { "git", "status", NULL };
    const char *rule;

    (void)state;
    nu_perm_init_top(&a);
    nu_perm_init_top(&b);
    nu_strset_free(&a.paths.allow);
    nu_strset_free(&b.paths.allow);
    assert_int_equal(nu_strset_add(&a.paths.allow, "src/**"), NU_OK);
    assert_int_equal(nu_strset_add(&b.paths.allow, "docs/**"), NU_OK);
    nu_strset_free(&a.commands.allow);
    nu_strset_free(&b.commands.allow);
    assert_int_equal(nu_strset_add(&a.commands.allow, "ls"), NU_OK);
    assert_int_equal(nu_strset_add(&b.commands.allow, "git status"), NU_OK);
    nu_strset_free(&a.network.domains);
    nu_strset_free(&b.network.domains);
    assert_int_equal(nu_strset_add(&a.network.domains, "example.org"), NU_OK);
    assert_int_equal(nu_strset_add(&b.network.domains, "pypi.org"), NU_OK);

    meet(&m, &a, &b);

    assert_false(m.paths.allow.top);
    assert_int_equal(m.paths.allow.count, 0);
    assert_false(nu_perm_check_path(&m, "src/main.c", NU_ACCESS_READ, &rule));
    assert_false(nu_perm_check_path(&m, "docs/a.md", NU_ACCESS_READ, &rule));
    assert_false(nu_perm_check_path(&m, "etc/passwd", NU_ACCESS_READ, &rule));

    assert_false(m.commands.allow.top);
    assert_false(nu_perm_check_command(&m, 1, ls, &rule));
    assert_false(nu_perm_check_command(&m, 2, git, &rule));

    assert_false(m.network.domains.top);
    assert_false(nu_perm_check_host(&m, "example.org", 443));
    assert_false(nu_perm_check_host(&m, "pypi.org", 443));
    assert_false(nu_perm_check_host(&m, "evil.test", 443));

    nu_perm_free(&a);
    nu_perm_free(&b);
    nu_perm_free(&m);
}

static void test_lattice_time_window_meet_can_be_empty(void **state)
{
    nu_perm_t a, b, m, j;

    (void)state;
    nu_perm_init_top(&a);
    nu_perm_init_top(&b);
    a.time.not_before = 0;
    a.time.not_after = 100;
    b.time.not_before = 200;
    b.time.not_after = 300;
    a.time.ttl = 60;

    meet(&m, &a, &b);
    assert_int_equal(m.time.not_before, 0);
    assert_int_equal(m.time.not_after, 0);
    assert_int_equal(m.time.ttl, 60);

    /* Every empty window is the same element. */
    b.time.not_before = 50;
    b.time.not_after = 50;
    b.time.ttl = 60;
    assert_true(nu_perm_equal(&m, &b));

    join(&j, &a, &b);
    assert_int_equal(j.time.not_before, 0);
    assert_int_equal(j.time.not_after, 100);

    nu_perm_free(&a);
    nu_perm_free(&b);
    nu_perm_free(&m);
    nu_perm_free(&j);
}

/* --- normalization ---------------------------------------------------- */

static void test_lattice_normalize_idempotent_deflationary(void **state)
{
    rng_t r = { 0x9abc };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, once, twice;

        gen_perm(&r, &a);
        assert_int_equal(nu_perm_copy(&once, &a), NU_OK);
        nu_perm_normalize(&once);
        expect_leq(&once, &a, "nu(a) <= a");

        assert_int_equal(nu_perm_copy(&twice, &once), NU_OK);
        nu_perm_normalize(&twice);
        expect_equal(&twice, &once, "nu(nu(a)) == nu(a)");

        nu_perm_free(&a);
        nu_perm_free(&once);
        nu_perm_free(&twice);
    }
}

/* A counterexample that documents why code must not rely on
 * monotonicity: raising web_fetch adds an obligation, so x <= y but
 * nu(x) is not <= nu(y). */
static void test_lattice_normalize_is_not_monotone(void **state)
{
    nu_perm_t x, y;

    (void)state;
    nu_perm_init_top(&x);
    memset(x.caps, NU_NEVER, sizeof x.caps);
    x.caps[NU_OP_READ_FILES] = NU_ALWAYS;
    x.caps[NU_OP_GIT_PUSH] = NU_ALWAYS;
    assert_int_equal(nu_perm_copy(&y, &x), NU_OK);
    y.caps[NU_OP_WEB_FETCH] = NU_ALWAYS;
    assert_true(nu_perm_leq(&x, &y));

    nu_perm_normalize(&x);
    nu_perm_normalize(&y);
    assert_false(nu_perm_leq(&x, &y));

    nu_perm_free(&x);
    nu_perm_free(&y);
}

/* Every combination of legs, with and without network egress. */
static void test_lattice_trifecta_every_leg_combination(void **state)
{
    (void)state;
    for (int legs = 0; legs < 8; legs++) {
        for (int egress = 0; egress < 2; egress++) {
            for (int bash_only = 0; bash_only < 2; bash_only++) {
                nu_perm_t p;
                nu_opset_t want = 0;

                nu_perm_init_top(&p);
                memset(p.caps, NU_NEVER, sizeof p.caps);
                if (!egress) {
                    nu_strset_free(&p.network.allow);
                    nu_strset_free(&p.network.domains);
                }
                if (legs & NU_LEG_PRIVATE)
                    p.caps[NU_OP_GREP_SEARCH] = NU_LOW_RISK;
                if (legs & NU_LEG_UNTRUSTED)
                    p.caps[NU_OP_WEB_SEARCH] = NU_ALWAYS;
                if (legs & NU_LEG_EXFIL) {
                    p.caps[NU_OP_RUN_BASH] = NU_ALWAYS;
                    if (!bash_only)
                        p.caps[NU_OP_CREATE_PR] = NU_LOW_RISK;
                }

                bool exfil = (legs & NU_LEG_EXFIL) && (egress || !bash_only);
                if ((legs & NU_LEG_PRIVATE) && (legs & NU_LEG_UNTRUSTED) && exfil) {
                    if (!bash_only)
                        want |= NU_OPSET(NU_OP_CREATE_PR);
                    if (egress)
                        want |= NU_OPSET(NU_OP_RUN_BASH);
                }

                assert_int_equal(nu_perm_has_egress(&p), egress);
                nu_perm_normalize(&p);
                if (p.obligations != want)
                    fail_msg("legs %d egress %d bash_only %d: obligations 0x%x, "
                             "expected 0x%x", legs, egress, bash_only,
                             p.obligations, want);
                nu_perm_free(&p);
            }
        }
    }
}

static void test_lattice_trifecta_skips_ungranted_exfil(void **state)
{
    nu_perm_t p;

    (void)state;
    nu_perm_init_top(&p);
    memset(p.caps, NU_NEVER, sizeof p.caps);
    p.caps[NU_OP_READ_FILES] = NU_ALWAYS;
    p.caps[NU_OP_WEB_FETCH] = NU_LOW_RISK;
    p.caps[NU_OP_GIT_PUSH] = NU_ALWAYS;

    nu_perm_normalize(&p);
    assert_int_equal(p.obligations, NU_OPSET(NU_OP_GIT_PUSH));
    nu_perm_free(&p);
}

/* --- delegation ------------------------------------------------------- */

static void test_lattice_delegation_stays_below_parent(void **state)
{
    rng_t r = { 0xabcd };
    int rejected = 0;

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t parent, req, clamped, strict;
        nu_budget_t remaining;
        nu_err_t err;

        gen_perm(&r, &parent);
        gen_perm(&r, &req);
        remaining = parent.budget;
        if (rng_below(&r, 2))
            remaining.tool_calls = 3;

        assert_int_equal(nu_perm_delegate(&clamped, &parent, &req, &remaining,
                                          false, &err), NU_OK);
        expect_leq(&clamped, &parent, "delegate(parent, req) <= parent");
        expect_leq(&clamped, &req, "delegate(parent, req) <= req");
        assert_true(clamped.budget.tool_calls <= remaining.tool_calls);

        bool fits = nu_perm_leq(&req, &parent) &&
                    req.budget.usd <= remaining.usd &&
                    req.budget.input_tokens <= remaining.input_tokens &&
                    req.budget.output_tokens <= remaining.output_tokens &&
                    req.budget.tool_calls <= remaining.tool_calls;
        int rc = nu_perm_delegate(&strict, &parent, &req, &remaining, true, &err);
        if (fits) {
            assert_int_equal(rc, NU_OK);
            expect_equal(&strict, &clamped, "strict == clamp when it fits");
        } else {
            assert_int_equal(rc, NU_EDENIED);
            assert_non_null(strstr(err.msg, "cannot delegate"));
            rejected++;
        }

        nu_perm_free(&parent);
        nu_perm_free(&req);
        nu_perm_free(&clamped);
        nu_perm_free(&strict);
    }
    assert_true(rejected > 0 && rejected < NU_LAW_ROUNDS);
}

static void test_lattice_strict_delegation_names_component(void **state)
{
    nu_perm_t parent, req, out;
    nu_err_t err;

    (void)state;
    nu_perm_init_top(&parent);
    parent.caps[NU_OP_GIT_PUSH] = NU_LOW_RISK;
    assert_int_equal(nu_perm_copy(&req, &parent), NU_OK);
    req.caps[NU_OP_GIT_PUSH] = NU_ALWAYS;

    assert_int_equal(nu_perm_delegate(&out, &parent, &req, NULL, true, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "capabilities.git_push"));
    nu_perm_free(&out);

    /* Clamp mode keeps the parent's level. */
    assert_int_equal(nu_perm_delegate(&out, &parent, &req, NULL, false, &err), NU_OK);
    assert_int_equal(out.caps[NU_OP_GIT_PUSH], NU_LOW_RISK);
    nu_perm_free(&out);

    /* The budget is carved from what the parent has left. */
    nu_budget_t remaining = { 2.5, 1000, 100, 10 };
    req.caps[NU_OP_GIT_PUSH] = NU_LOW_RISK;
    req.budget.usd = 4;
    assert_int_equal(nu_perm_delegate(&out, &parent, &req, &remaining, true, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "budget.usd"));
    nu_perm_free(&out);
    assert_int_equal(nu_perm_delegate(&out, &parent, &req, &remaining, false, &err),
                     NU_OK);
    assert_true(out.budget.usd == 2.5);
    assert_int_equal(out.budget.tool_calls, 10);
    nu_perm_free(&out);

    nu_perm_free(&parent);
    nu_perm_free(&req);
}

static void test_lattice_resolve_time(void **state)
{
    nu_perm_t p;

    (void)state;
    nu_perm_init_top(&p);
    p.time.ttl = 3600;
    nu_perm_resolve_time(&p, 1000);
    assert_int_equal(p.time.not_after, 4600);
    assert_int_equal(p.time.ttl, NU_UNLIMITED);

    /* ttl 0 expires at once: now is outside [not_before, now). */
    p.time.ttl = 0;
    nu_perm_resolve_time(&p, 1000);
    assert_int_equal(p.time.not_after, 1000);

    /* An earlier not_after stays. */
    p.time.ttl = 5000;
    nu_perm_resolve_time(&p, 0);
    assert_int_equal(p.time.not_after, 1000);
    nu_perm_free(&p);

    nu_perm_init_top(&p);
    p.time.ttl = 10;
    nu_perm_resolve_time(&p, INT64_MAX - 5);
    assert_int_equal(p.time.not_after, INT64_MAX);
    nu_perm_free(&p);
}

/* --- JSON ------------------------------------------------------------- */

/* Serialize p to canonical bytes (caller frees). */
static char *canonical(const nu_perm_t *p)
{
    nu_err_t err;
    json_t *j = nu_perm_to_json(p);
    char *s;

    assert_non_null(j);
    s = nu_json_canonical(j, NULL, &err);
    if (s == NULL)
        fail_msg("canonical: %s", err.msg);
    json_decref(j);
    return s;
}

static int parse_text(nu_perm_t *out, const char *text, nu_err_t *err)
{
    json_t *j = nu_json_parse(text, strlen(text), err);
    int rc;

    if (j == NULL)
        return NU_EPARSE;
    rc = nu_perm_from_json(out, j, err);
    json_decref(j);
    return rc;
}

static void test_lattice_json_round_trip(void **state)
{
    rng_t r = { 0xbcde };

    (void)state;
    for (int i = 0; i < NU_LAW_ROUNDS; i++) {
        nu_perm_t a, back, normal;
        nu_err_t err;

        gen_perm(&r, &a);
        char *bytes = canonical(&a);
        if (parse_text(&back, bytes, &err) != NU_OK)
            fail_msg("from_json(%s): %s", bytes, err.msg);

        assert_int_equal(nu_perm_copy(&normal, &a), NU_OK);
        nu_perm_normalize(&normal);
        expect_equal(&back, &normal, "from_json(to_json(x)) == nu(x)");

        char *again = canonical(&back);
        char *want = canonical(&normal);
        assert_string_equal(again, want);

        free(bytes);
        free(again);
        free(want);
        nu_perm_free(&a);
        nu_perm_free(&back);
        nu_perm_free(&normal);
    }
}

static void test_lattice_json_top_and_bottom_bytes(void **state)
{
    static const char top_json[] =
        "{\"budget\":{\"input_tokens\":\"*\",\"output_tokens\":\"*\","
        "\"tool_calls\":\"*\",\"usd\":\"*\"},"
        "\"capabilities\":{\"create_pr\":\"always\",\"edit_files\":\"always\","
        "\"git_commit\":\"always\",\"git_push\":\"always\",\"glob_search\":\"always\","
        "\"grep_search\":\"always\",\"manage_pods\":\"always\",\"read_files\":\"always\","
        "\"run_bash\":\"always\",\"web_fetch\":\"always\",\"web_search\":\"always\","
        "\"write_files\":\"always\"},"
        "\"commands\":{\"allow\":\"*\",\"block\":[]},"
        "\"network\":{\"allow\":\"*\",\"domains\":\"*\",\"trusted\":\"*\"},"
        "\"obligations\":[],"
        "\"paths\":{\"allow\":\"*\",\"block\":[],\"write_block\":[]},"
        "\"time\":{\"not_after\":\"*\",\"not_before\":\"*\",\"ttl\":\"*\"}}";
    nu_perm_t top, bottom, parsed;
    nu_err_t err;

    (void)state;
    nu_perm_init_top(&top);
    char *s = canonical(&top);
    assert_string_equal(s, top_json);
    free(s);

    /* BOTTOM lists every obligation, sorted by name. */
    nu_perm_init_bottom(&bottom);
    s = canonical(&bottom);
    assert_non_null(strstr(s, "\"obligations\":[\"create_pr\",\"edit_files\","
                              "\"git_commit\",\"git_push\","));
    assert_non_null(strstr(s, "\"paths\":{\"allow\":[],\"block\":\"*\","
                              "\"write_block\":\"*\"}"));
    assert_non_null(strstr(s, "\"time\":{\"not_after\":0,\"not_before\":0,\"ttl\":0}"));
    free(s);

    /* The empty object is BOTTOM: every missing component is BOTTOM. */
    assert_int_equal(parse_text(&parsed, "{}", &err), NU_OK);
    assert_true(nu_perm_equal(&parsed, &bottom));
    nu_perm_free(&parsed);

    nu_perm_free(&top);
    nu_perm_free(&bottom);
}

static void test_lattice_json_cannot_switch_off_normalization(void **state)
{
    nu_perm_t p;
    nu_err_t err;

    (void)state;
    assert_int_equal(parse_text(&p,
        "{\"capabilities\":{\"read_files\":\"always\",\"web_fetch\":\"always\","
        "\"git_push\":\"always\"},\"obligations\":[]}", &err), NU_OK);
    assert_int_equal(p.obligations, NU_OPSET(NU_OP_GIT_PUSH));
    nu_perm_free(&p);
}

static void test_lattice_json_rejects_bad_input(void **state)
{
    static const struct { const char *json; const char *names; } cases[] = {
        { "[]", "expected a JSON object" },
        { "{\"capabilites\":{}}", "'capabilites'" },
        { "{\"capabilities\":{\"read_file\":\"always\"}}", "'capabilities.read_file'" },
        { "{\"capabilities\":{\"read_files\":\"sometimes\"}}", "'capabilities.read_files'" },
        { "{\"capabilities\":{\"read_files\":2}}", "'capabilities.read_files'" },
        { "{\"capabilities\":[]}", "'capabilities'" },
        { "{\"obligations\":[\"push\"]}", "'obligations[0]'" },
        { "{\"obligations\":\"git_push\"}", "'obligations'" },
        { "{\"paths\":{\"allow\":\"*\",\"block\":[]}}", "'paths.write_block'" },
        { "{\"paths\":{\"allow\":\"*\",\"block\":[],\"write_block\":[],\"deny\":[]}}",
          "'paths.deny'" },
        { "{\"paths\":{\"allow\":[],\"block\":\"all\",\"write_block\":[]}}", "'paths.block'" },
        { "{\"paths\":{\"allow\":[\"src/[a\"],\"block\":[],\"write_block\":[]}}",
          "'paths.allow[0]'" },
        { "{\"paths\":{\"allow\":[\"\"],\"block\":[],\"write_block\":[]}}",
          "'paths.allow[0]'" },
        { "{\"paths\":{\"allow\":[1],\"block\":[],\"write_block\":[]}}",
          "'paths.allow[0]'" },
        { "{\"commands\":{\"allow\":[\"git 'push\"],\"block\":[]}}", "'commands.allow[0]'" },
        { "{\"network\":{\"allow\":[\"10.0.0.0/33\"],\"domains\":[],\"trusted\":[]}}",
          "'network.allow[0]'" },
        { "{\"network\":{\"allow\":[\"10.0.0.1:0\"],\"domains\":[],\"trusted\":[]}}",
          "'network.allow[0]'" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"Example.org\"],\"trusted\":[]}}",
          "'network.domains[0]'" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"a..b\"],\"trusted\":[]}}",
          "'network.domains[0]'" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"10.251.0.3\"],\"trusted\":[]}}",
          "put IP addresses in network.allow" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"10.0.0.0/8\"],\"trusted\":[]}}",
          "put IP addresses in network.allow" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"fd51::2\"],\"trusted\":[]}}",
          "put IP addresses in network.allow" },
        { "{\"network\":{\"allow\":[],\"domains\":[\"a.test:443\"],\"trusted\":[]}}",
          "without a port" },
        { "{\"budget\":{\"usd\":-1,\"input_tokens\":1,\"output_tokens\":1,\"tool_calls\":1}}",
          "'budget.usd'" },
        { "{\"budget\":{\"usd\":1,\"input_tokens\":1.5,\"output_tokens\":1,\"tool_calls\":1}}",
          "'budget.input_tokens'" },
        { "{\"budget\":{\"usd\":1,\"input_tokens\":1,\"output_tokens\":-1,\"tool_calls\":1}}",
          "'budget.output_tokens'" },
        { "{\"budget\":{\"usd\":1,\"input_tokens\":1,\"output_tokens\":1}}",
          "'budget.tool_calls'" },
        { "{\"time\":{\"not_before\":0,\"not_after\":\"never\",\"ttl\":1}}",
          "'time.not_after'" },
        { "{\"time\":{\"not_before\":0,\"not_after\":10,\"ttl\":-1}}", "'time.ttl'" },
        { "{\"time\":{\"not_before\":0,\"not_after\":10000000000000000,\"ttl\":1}}",
          "'time.not_after'" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nu_perm_t p;
        nu_err_t err;

        memset(&err, 0, sizeof err);
        int rc = parse_text(&p, cases[i].json, &err);
        if (rc == NU_OK)
            fail_msg("accepted %s", cases[i].json);
        if (strstr(err.msg, cases[i].names) == NULL)
            fail_msg("%s: message '%s' does not name %s", cases[i].json, err.msg,
                     cases[i].names);
        /* A failed parse leaves BOTTOM, which is safe to use and free. */
        nu_perm_t bottom;
        nu_perm_init_bottom(&bottom);
        assert_true(nu_perm_equal(&p, &bottom));
        nu_perm_free(&bottom);
        nu_perm_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lattice_commutative),
        cmocka_unit_test(test_lattice_associative),
        cmocka_unit_test(test_lattice_idempotent),
        cmocka_unit_test(test_lattice_absorption),
        cmocka_unit_test(test_lattice_bounds),
        cmocka_unit_test(test_lattice_greatest_lower_bound),
        cmocka_unit_test(test_lattice_least_upper_bound),
        cmocka_unit_test(test_lattice_order_is_partial_order),
        cmocka_unit_test(test_lattice_disjoint_allow_meet_is_empty),
        cmocka_unit_test(test_lattice_time_window_meet_can_be_empty),
        cmocka_unit_test(test_lattice_normalize_idempotent_deflationary),
        cmocka_unit_test(test_lattice_normalize_is_not_monotone),
        cmocka_unit_test(test_lattice_trifecta_every_leg_combination),
        cmocka_unit_test(test_lattice_trifecta_skips_ungranted_exfil),
        cmocka_unit_test(test_lattice_delegation_stays_below_parent),
        cmocka_unit_test(test_lattice_strict_delegation_names_component),
        cmocka_unit_test(test_lattice_resolve_time),
        cmocka_unit_test(test_lattice_json_round_trip),
        cmocka_unit_test(test_lattice_json_top_and_bottom_bytes),
        cmocka_unit_test(test_lattice_json_cannot_switch_off_normalization),
        cmocka_unit_test(test_lattice_json_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
