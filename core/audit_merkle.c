/*
 * audit_merkle.c - RFC 6962 Merkle tree hashing, proofs and verification.
 *
 * Definitions (RFC 6962 section 2.1, restated in RFC 9162 section 2.1):
 *   MTH({})      = SHA-256()                       (never used: size >= 1)
 *   MTH({d0})    = SHA-256(0x00 || d0)
 *   MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),
 *                  k = the largest power of two smaller than n
 * A perfect subtree covers 2^level aligned leaves: [index << level,
 * (index + 1) << level).  Every subtree that the recursion above visits
 * splits into perfect left parts, so MTH of any range the proofs need is a
 * combination of at most log2(n) perfect nodes fetched from a node source
 * (the SQLite tree table, or an array in tests).  That keeps proofs at
 * O(log^2 n) lookups without rehashing the log.
 */
#include <string.h>

#include <mbedtls/sha256.h>

#include "nucleus/audit.h"

void nu_merkle_leaf_hash(const void *data, size_t len,
                         uint8_t out[NU_SHA256_LEN])
{
    static const uint8_t prefix = 0x00;
    mbedtls_sha256_context c;

    mbedtls_sha256_init(&c);
    (void)mbedtls_sha256_starts_ret(&c, 0);
    (void)mbedtls_sha256_update_ret(&c, &prefix, 1);
    (void)mbedtls_sha256_update_ret(&c, data, len);
    (void)mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
}

void nu_merkle_node_hash(const uint8_t left[NU_SHA256_LEN],
                         const uint8_t right[NU_SHA256_LEN],
                         uint8_t out[NU_SHA256_LEN])
{
    uint8_t buf[1 + 2 * NU_SHA256_LEN];

    buf[0] = 0x01;
    memcpy(buf + 1, left, NU_SHA256_LEN);
    memcpy(buf + 1 + NU_SHA256_LEN, right, NU_SHA256_LEN);
    nu_sha256(buf, sizeof buf, out);
}

/* The largest power of two strictly smaller than n (n >= 2). */
static uint64_t nu__split(uint64_t n)
{
    uint64_t k = 1;

    while (k << 1 < n)
        k <<= 1;
    return k;
}

static int nu__is_pow2(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

static unsigned nu__log2(uint64_t n)
{
    unsigned level = 0;

    while ((UINT64_C(1) << level) < n)
        level++;
    return level;
}

int nu_merkle_subtree(nu_merkle_node_fn get, void *ctx, uint64_t begin,
                      uint64_t end, uint8_t out[NU_SHA256_LEN], nu_err_t *err)
{
    uint64_t n = end - begin;
    uint8_t left[NU_SHA256_LEN], right[NU_SHA256_LEN];
    uint64_t k;
    int rc;

    if (end <= begin)
        return nu_err_set(err, NU_EINVAL, "merkle: cannot hash empty range "
                          "[%llu, %llu)", (unsigned long long)begin,
                          (unsigned long long)end);

    if (nu__is_pow2(n) && begin % n == 0) {
        unsigned level = nu__log2(n);
        return get(ctx, level, begin >> level, out, err);
    }

    k = nu__split(n);
    rc = nu_merkle_subtree(get, ctx, begin, begin + k, left, err);
    if (rc != NU_OK)
        return rc;
    rc = nu_merkle_subtree(get, ctx, begin + k, end, right, err);
    if (rc != NU_OK)
        return rc;
    nu_merkle_node_hash(left, right, out);
    return NU_OK;
}

typedef struct nu__path {
    uint8_t (*hash)[NU_SHA256_LEN];
    size_t len;
} nu__path_t;

static int nu__path_push(nu__path_t *p, nu_merkle_node_fn get, void *ctx,
                         uint64_t begin, uint64_t end, nu_err_t *err)
{
    if (p->len >= NU_MERKLE_MAX_PATH)
        return nu_err_set(err, NU_ERANGE, "merkle: proof longer than %d "
                          "hashes", NU_MERKLE_MAX_PATH);
    return nu_merkle_subtree(get, ctx, begin, end, p->hash[p->len++], err);
}

/* PATH(m, D[begin:end]), RFC 6962 section 2.1.1; hashes are appended
 * leaf-side first. */
static int nu__inclusion(nu__path_t *p, nu_merkle_node_fn get, void *ctx,
                         uint64_t m, uint64_t begin, uint64_t end,
                         nu_err_t *err)
{
    uint64_t n = end - begin, k;
    int rc;

    if (n <= 1)
        return NU_OK;
    k = nu__split(n);
    if (m < k) {
        rc = nu__inclusion(p, get, ctx, m, begin, begin + k, err);
        if (rc != NU_OK)
            return rc;
        return nu__path_push(p, get, ctx, begin + k, end, err);
    }
    rc = nu__inclusion(p, get, ctx, m - k, begin + k, end, err);
    if (rc != NU_OK)
        return rc;
    return nu__path_push(p, get, ctx, begin, begin + k, err);
}

int nu_merkle_inclusion(nu_merkle_node_fn get, void *ctx, uint64_t index,
                        uint64_t size, uint8_t (*path)[NU_SHA256_LEN],
                        size_t *len, nu_err_t *err)
{
    nu__path_t p = { path, 0 };
    int rc;

    if (index >= size)
        return nu_err_set(err, NU_ERANGE, "merkle: cannot prove leaf %llu "
                          "in a tree of size %llu", (unsigned long long)index,
                          (unsigned long long)size);
    rc = nu__inclusion(&p, get, ctx, index, 0, size, err);
    *len = p.len;
    return rc;
}

/* SUBPROOF(m, D[begin:end], complete), RFC 6962 section 2.1.2. */
static int nu__consistency(nu__path_t *p, nu_merkle_node_fn get, void *ctx,
                           uint64_t m, uint64_t begin, uint64_t end,
                           int complete, nu_err_t *err)
{
    uint64_t n = end - begin, k;
    int rc;

    if (m == n) {
        if (complete)
            return NU_OK;
        return nu__path_push(p, get, ctx, begin, end, err);
    }
    k = nu__split(n);
    if (m <= k) {
        rc = nu__consistency(p, get, ctx, m, begin, begin + k, complete, err);
        if (rc != NU_OK)
            return rc;
        return nu__path_push(p, get, ctx, begin + k, end, err);
    }
    rc = nu__consistency(p, get, ctx, m - k, begin + k, end, 0, err);
    if (rc != NU_OK)
        return rc;
    return nu__path_push(p, get, ctx, begin, begin + k, err);
}

int nu_merkle_consistency(nu_merkle_node_fn get, void *ctx, uint64_t m,
                          uint64_t n, uint8_t (*path)[NU_SHA256_LEN],
                          size_t *len, nu_err_t *err)
{
    nu__path_t p = { path, 0 };
    int rc;

    if (m == 0 || m > n)
        return nu_err_set(err, NU_ERANGE, "merkle: cannot prove consistency "
                          "from size %llu to size %llu (need 1 <= from <= "
                          "to)", (unsigned long long)m, (unsigned long long)n);
    rc = nu__consistency(&p, get, ctx, m, 0, n, 1, err);
    *len = p.len;
    return rc;
}

int nu_merkle_verify_inclusion(const uint8_t leaf[NU_SHA256_LEN],
                               uint64_t index, uint64_t size,
                               const uint8_t (*path)[NU_SHA256_LEN],
                               size_t len, const uint8_t root[NU_SHA256_LEN])
{
    uint64_t fn = index, sn;
    uint8_t r[NU_SHA256_LEN];

    if (index >= size)
        return 0;
    sn = size - 1;
    memcpy(r, leaf, NU_SHA256_LEN);

    for (size_t i = 0; i < len; i++) {
        if (sn == 0)
            return 0;
        if ((fn & 1) || fn == sn) {
            nu_merkle_node_hash(path[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            nu_merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, NU_SHA256_LEN) == 0;
}

int nu_merkle_verify_consistency(uint64_t m, uint64_t n,
                                 const uint8_t old_root[NU_SHA256_LEN],
                                 const uint8_t new_root[NU_SHA256_LEN],
                                 const uint8_t (*path)[NU_SHA256_LEN],
                                 size_t len)
{
    uint8_t fr[NU_SHA256_LEN], sr[NU_SHA256_LEN];
    uint64_t fn, sn;
    size_t i = 0;

    if (m == 0 || m > n)
        return 0;
    if (m == n)
        return len == 0 && memcmp(old_root, new_root, NU_SHA256_LEN) == 0;
    if (len == 0)
        return 0;

    /* When m is a power of two the old root is the first node of the
     * proof and the proof omits it. */
    if (nu__is_pow2(m)) {
        memcpy(fr, old_root, NU_SHA256_LEN);
    } else {
        memcpy(fr, path[0], NU_SHA256_LEN);
        i = 1;
    }
    memcpy(sr, fr, NU_SHA256_LEN);

    fn = m - 1;
    sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }

    for (; i < len; i++) {
        if (sn == 0)
            return 0;
        if ((fn & 1) || fn == sn) {
            nu_merkle_node_hash(path[i], fr, fr);
            nu_merkle_node_hash(path[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            nu_merkle_node_hash(sr, path[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(fr, old_root, NU_SHA256_LEN) == 0 &&
           memcmp(sr, new_root, NU_SHA256_LEN) == 0;
}

int nu_merkle_frontier_add(nu_merkle_frontier_t *f,
                           const uint8_t leaf[NU_SHA256_LEN],
                           nu_merkle_emit_fn emit, void *ctx)
{
    uint8_t cur[NU_SHA256_LEN];
    uint64_t index = f->size;
    unsigned level = 0;
    int rc;

    memcpy(cur, leaf, NU_SHA256_LEN);
    if (emit != NULL && (rc = emit(ctx, 0, index, cur)) != NU_OK)
        return rc;

    /* Each trailing one bit of the old size is a perfect subtree on the
     * right edge that the new leaf completes into a larger one. */
    while (index & 1) {
        nu_merkle_node_hash(f->hash[--f->count], cur, cur);
        index >>= 1;
        level++;
        if (emit != NULL && (rc = emit(ctx, level, index, cur)) != NU_OK)
            return rc;
    }
    memcpy(f->hash[f->count++], cur, NU_SHA256_LEN);
    f->size++;
    return NU_OK;
}

void nu_merkle_frontier_root(const nu_merkle_frontier_t *f,
                             uint8_t out[NU_SHA256_LEN])
{
    uint8_t cur[NU_SHA256_LEN];

    if (f->count == 0) {
        nu_sha256("", 0, out);
        return;
    }
    memcpy(cur, f->hash[f->count - 1], NU_SHA256_LEN);
    for (unsigned i = f->count - 1; i-- > 0;)
        nu_merkle_node_hash(f->hash[i], cur, cur);
    memcpy(out, cur, NU_SHA256_LEN);
}
