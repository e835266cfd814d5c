/*
 * test_audit_merkle.c - RFC 6962 tree hashing and proofs against a direct
 * transcription of the RFC's recursive definitions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nucleus/audit.h"

typedef uint8_t hash_t[NU_SHA256_LEN];

/* Every perfect node, per level, as a store would keep them. */
typedef struct mem_tree {
    hash_t *level[48];
    uint64_t count[48];
    uint64_t cap[48];
} mem_tree_t;

static int mem_emit(void *ctx, unsigned level, uint64_t index,
                    const uint8_t hash[NU_SHA256_LEN])
{
    mem_tree_t *t = ctx;

    assert_int_equal(index, t->count[level]);
    if (t->count[level] == t->cap[level]) {
        t->cap[level] = t->cap[level] ? 2 * t->cap[level] : 64;
        t->level[level] = realloc(t->level[level],
                                  t->cap[level] * sizeof(hash_t));
    }
    memcpy(t->level[level][t->count[level]++], hash, NU_SHA256_LEN);
    return NU_OK;
}

static int mem_node(void *ctx, unsigned level, uint64_t index,
                    uint8_t out[NU_SHA256_LEN], nu_err_t *err)
{
    mem_tree_t *t = ctx;

    if (level >= 48 || index >= t->count[level])
        return nu_err_set(err, NU_ENOENT, "no node");
    memcpy(out, t->level[level][index], NU_SHA256_LEN);
    return NU_OK;
}

static void mem_free(mem_tree_t *t)
{
    for (int i = 0; i < 48; i++)
        free(t->level[i]);
}

/* Leaves are the preimages "leaf-<i>". */
static hash_t *make_leaves(uint64_t n, mem_tree_t *t)
{
    hash_t *leaves = malloc(n * sizeof(hash_t));
    nu_merkle_frontier_t *f = calloc(1, sizeof *f);
    char data[32];

    for (uint64_t i = 0; i < n; i++) {
        int len = snprintf(data, sizeof data, "leaf-%llu",
                           (unsigned long long)i);
        nu_merkle_leaf_hash(data, (size_t)len, leaves[i]);
        if (t != NULL)
            assert_int_equal(nu_merkle_frontier_add(f, leaves[i], mem_emit, t),
                             NU_OK);
    }
    free(f);
    return leaves;
}

/* ---- the reference: RFC 6962 section 2.1 as written -------------------- */

static uint64_t ref_k(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void ref_mth(hash_t *d, uint64_t n, uint8_t out[NU_SHA256_LEN])
{
    hash_t l, r;
    uint64_t k;

    if (n == 1) {
        memcpy(out, d[0], NU_SHA256_LEN);
        return;
    }
    k = ref_k(n);
    ref_mth(d, k, l);
    ref_mth(d + k, n - k, r);
    nu_merkle_node_hash(l, r, out);
}

static void ref_path(uint64_t m, hash_t *d, uint64_t n, hash_t *out,
                     size_t *len)
{
    uint64_t k;

    if (n == 1)
        return;
    k = ref_k(n);
    if (m < k) {
        ref_path(m, d, k, out, len);
        ref_mth(d + k, n - k, out[(*len)++]);
    } else {
        ref_path(m - k, d + k, n - k, out, len);
        ref_mth(d, k, out[(*len)++]);
    }
}

static void ref_subproof(uint64_t m, hash_t *d, uint64_t n, int b,
                         hash_t *out, size_t *len)
{
    uint64_t k;

    if (m == n) {
        if (!b)
            ref_mth(d, n, out[(*len)++]);
        return;
    }
    k = ref_k(n);
    if (m <= k) {
        ref_subproof(m, d, k, b, out, len);
        ref_mth(d + k, n - k, out[(*len)++]);
    } else {
        ref_subproof(m - k, d + k, n - k, 0, out, len);
        ref_mth(d, k, out[(*len)++]);
    }
}

/* ---- checks --------------------------------------------------------------- */

static void check_inclusion(mem_tree_t *t, hash_t *leaves, uint64_t i,
                            uint64_t n)
{
    hash_t got[NU_MERKLE_MAX_PATH], want[NU_MERKLE_MAX_PATH], root;
    size_t glen = 0, wlen = 0;

    ref_mth(leaves, n, root);
    ref_path(i, leaves, n, want, &wlen);
    assert_int_equal(nu_merkle_inclusion(mem_node, t, i, n, got, &glen, NULL),
                     NU_OK);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen * sizeof(hash_t));
    assert_true(nu_merkle_verify_inclusion(leaves[i], i, n,
                                           (const uint8_t (*)[32])got, glen,
                                           root));

    /* Must fail: another leaf, another index, a damaged path. */
    if (n > 1) {
        assert_false(nu_merkle_verify_inclusion(leaves[(i + 1) % n], i, n,
                                                (const uint8_t (*)[32])got,
                                                glen, root));
        assert_false(nu_merkle_verify_inclusion(leaves[i], (i + 1) % n, n,
                                                (const uint8_t (*)[32])got,
                                                glen, root));
        got[glen - 1][0] ^= 1;
        assert_false(nu_merkle_verify_inclusion(leaves[i], i, n,
                                                (const uint8_t (*)[32])got,
                                                glen, root));
    }
}

static void check_consistency(mem_tree_t *t, hash_t *leaves, uint64_t m,
                              uint64_t n)
{
    hash_t got[NU_MERKLE_MAX_PATH], want[NU_MERKLE_MAX_PATH];
    hash_t old_root, new_root, sub;
    size_t glen = 0, wlen = 0;

    ref_mth(leaves, m, old_root);
    ref_mth(leaves, n, new_root);
    ref_subproof(m, leaves, n, 1, want, &wlen);
    assert_int_equal(nu_merkle_consistency(mem_node, t, m, n, got, &glen,
                                           NULL), NU_OK);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen * sizeof(hash_t));
    assert_true(nu_merkle_verify_consistency(m, n, old_root, new_root,
                                             (const uint8_t (*)[32])got,
                                             glen));

    assert_int_equal(nu_merkle_subtree(mem_node, t, 0, m, sub, NULL), NU_OK);
    assert_memory_equal(sub, old_root, NU_SHA256_LEN);

    if (m < n) {
        old_root[0] ^= 1;
        assert_false(nu_merkle_verify_consistency(m, n, old_root, new_root,
                                                  (const uint8_t (*)[32])got,
                                                  glen));
        old_root[0] ^= 1;
        got[0][5] ^= 1;
        assert_false(nu_merkle_verify_consistency(m, n, old_root, new_root,
                                                  (const uint8_t (*)[32])got,
                                                  glen));
    }
}

static void test_audit_merkle_small_trees_exhaustive(void **state)
{
    mem_tree_t t = { 0 };
    hash_t *leaves = make_leaves(70, &t);

    (void)state;
    for (uint64_t n = 1; n <= 70; n++)
        for (uint64_t i = 0; i < n; i++) {
            check_inclusion(&t, leaves, i, n);
            check_consistency(&t, leaves, i + 1, n);
        }
    free(leaves);
    mem_free(&t);
}

static void test_audit_merkle_random_large_sizes(void **state)
{
    const uint64_t max = 100000;
    mem_tree_t t = { 0 };
    hash_t *leaves = make_leaves(max, &t);
    uint64_t sizes[] = { max, 65536, 65537, 0, 0, 0, 0 };

    (void)state;
    srand(6962);
    for (size_t s = 3; s < sizeof sizes / sizeof sizes[0]; s++)
        sizes[s] = 1 + (uint64_t)rand() % max;

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint64_t n = sizes[s];

        for (int j = 0; j < 2; j++) {
            check_inclusion(&t, leaves, (uint64_t)rand() % n, n);
            check_consistency(&t, leaves, 1 + (uint64_t)rand() % n, n);
        }
        check_inclusion(&t, leaves, n - 1, n);
    }
    free(leaves);
    mem_free(&t);
}

static void test_audit_merkle_frontier_root_matches(void **state)
{
    nu_merkle_frontier_t *f = calloc(1, sizeof *f);
    hash_t *leaves = make_leaves(1000, NULL), root, want;

    (void)state;
    for (uint64_t n = 1; n <= 1000; n++) {
        nu_merkle_frontier_add(f, leaves[n - 1], NULL, NULL);
        nu_merkle_frontier_root(f, root);
        ref_mth(leaves, n, want);
        assert_memory_equal(root, want, NU_SHA256_LEN);
    }
    free(f);
    free(leaves);
}

static void test_audit_merkle_rejects_bad_ranges(void **state)
{
    mem_tree_t t = { 0 };
    hash_t *leaves = make_leaves(8, &t), path[NU_MERKLE_MAX_PATH];
    size_t len;

    (void)state;
    assert_int_equal(nu_merkle_inclusion(mem_node, &t, 8, 8, path, &len, NULL),
                     NU_ERANGE);
    assert_int_equal(nu_merkle_consistency(mem_node, &t, 0, 8, path, &len,
                                           NULL), NU_ERANGE);
    assert_int_equal(nu_merkle_consistency(mem_node, &t, 9, 8, path, &len,
                                           NULL), NU_ERANGE);
    assert_false(nu_merkle_verify_inclusion(leaves[0], 8, 8, NULL, 0,
                                            leaves[0]));
    free(leaves);
    mem_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_merkle_small_trees_exhaustive),
        cmocka_unit_test(test_audit_merkle_random_large_sizes),
        cmocka_unit_test(test_audit_merkle_frontier_root_matches),
        cmocka_unit_test(test_audit_merkle_rejects_bad_ranges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
