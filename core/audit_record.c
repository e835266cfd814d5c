/*
 * audit_record.c - the event preimage, the one byte form that is hashed.
 *
 * The preimage of an event is the RFC 8785 canonical JSON of the object
 * holding every present field except "hash".  All member names are ASCII,
 * so code-unit order is byte order and the order is fixed:
 *
 *   args decision kind operation pod prev_hash profile_digest reason
 *   result_digest seq spiffe_id time tool type
 *
 * "seq" is an integer (1, 2, ...); "args" is a JSON value stored as its
 * canonical text; every other member is a string.  Absent fields (SQL NULL)
 * are omitted, never written as null.  Strings are escaped as RFC 8785
 * rule 3 requires: '"' and '\\' with a backslash, \b \f \n \r \t, other
 * control characters as \u00xx (lowercase hex), everything else as UTF-8.
 *
 * The writer builds the preimage here directly instead of through jansson
 * because verification runs it once per event; a unit test checks it
 * against nu_json_canonical on random events.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_private.h"
#include "nucleus/json.h"

typedef struct nu__sb {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} nu__sb_t;

static void nu__sb_put(nu__sb_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        char *data;

        while (cap < b->len + n + 1)
            cap *= 2;
        data = realloc(b->data, cap);
        if (data == NULL) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is invalid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t nu__utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0;
        if (c == 0xed && s[1] >= 0xa0)
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
            (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0;
        if (c == 0xf4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

int nu__audit_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;

    while (i < n) {
        size_t len = nu__utf8_len(p + i, n - i);

        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* Append s as a canonical JSON string; returns -1 on invalid UTF-8. */
static int nu__sb_string(nu__sb_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), start = 0, i = 0;
    char esc[8];

    nu__sb_put(b, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        const char *rep = NULL;
        size_t len;

        if (c >= 0x20 && c != '"' && c != '\\') {
            len = c < 0x80 ? 1 : nu__utf8_len(p + i, n - i);
            if (len == 0)
                return -1;
            i += len;
            continue;
        }
        switch (c) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            rep = esc;
        }
        nu__sb_put(b, s + start, i - start);
        nu__sb_put(b, rep, strlen(rep));
        i++;
        start = i;
    }
    nu__sb_put(b, s + start, i - start);
    nu__sb_put(b, "\"", 1);
    return 0;
}

typedef struct nu__field {
    const char *name;
    const char *key;      /* "\"name\":" as it appears in the preimage */
    size_t key_len;
    size_t offset;        /* of the char * in nu_audit_record_t */
} nu__field_t;

#define NU__F(name) \
    { #name, "\"" #name "\":", sizeof "\"" #name "\":" - 1, \
      offsetof(nu_audit_record_t, name) }

/* Preimage members in canonical order; "args" and "seq" are special. */
static const nu__field_t nu__fields[] = {
    NU__F(args), NU__F(decision), NU__F(kind), NU__F(operation), NU__F(pod),
    NU__F(prev_hash), NU__F(profile_digest), NU__F(reason),
    NU__F(result_digest), { "seq", "\"seq\":", 6, 0 }, NU__F(spiffe_id),
    NU__F(time), NU__F(tool), NU__F(type),
};

#define NU__ARGS_FIELD 0
#define NU__SEQ_FIELD 9

static const char *nu__field_value(const nu_audit_record_t *r,
                                   const nu__field_t *f)
{
    return *(char *const *)((const char *)r + f->offset);
}

char *nu_audit_preimage(const nu_audit_record_t *r, size_t *len,
                        nu_err_t *err)
{
    nu__sb_t b = { 0 };
    char sep = '{';
    char num[32];

    for (size_t i = 0; i < sizeof nu__fields / sizeof nu__fields[0]; i++) {
        const nu__field_t *f = &nu__fields[i];
        const char *v;

        if (i == NU__SEQ_FIELD) {
            int n = snprintf(num, sizeof num, "%c\"seq\":%" PRId64, sep,
                             r->seq);
            nu__sb_put(&b, num, (size_t)n);
            sep = ',';
            continue;
        }
        v = nu__field_value(r, f);
        if (v == NULL)
            continue;

        nu__sb_put(&b, &sep, 1);
        nu__sb_put(&b, f->key, f->key_len);
        sep = ',';
        if (i == NU__ARGS_FIELD) {
            nu__sb_put(&b, v, strlen(v));
            continue;
        }
        if (nu__sb_string(&b, v) != 0) {
            free(b.data);
            nu_err_set(err, NU_EINVAL, "audit: cannot encode field '%s' of "
                       "event %" PRId64 ": invalid UTF-8", f->name, r->seq);
            return NULL;
        }
    }
    nu__sb_put(&b, "}", 1);

    if (b.failed) {
        free(b.data);
        nu_err_set(err, NU_ENOMEM, "audit: cannot build preimage of event "
                   "%" PRId64 ": out of memory", r->seq);
        return NULL;
    }
    if (len != NULL)
        *len = b.len;
    return b.data;
}

void nu_audit_record_clear(nu_audit_record_t *r)
{
    for (size_t i = 0; i < sizeof nu__fields / sizeof nu__fields[0]; i++)
        if (i != NU__SEQ_FIELD)
            free(*(char **)((char *)r + nu__fields[i].offset));
    free(r->hash);
    memset(r, 0, sizeof *r);
}

static char **nu__field_slot(nu_audit_record_t *r, const char *key)
{
    if (strcmp(key, "hash") == 0)
        return &r->hash;
    for (size_t i = 0; i < sizeof nu__fields / sizeof nu__fields[0]; i++)
        if (strcmp(nu__fields[i].name, key) == 0 &&
            strcmp(key, "seq") != 0)
            return (char **)((char *)r + nu__fields[i].offset);
    return NULL;
}

int nu_audit_record_from_json(const json_t *obj, nu_audit_record_t *r,
                              nu_err_t *err)
{
    const char *key;
    json_t *value;
    int rc = NU_OK;

    memset(r, 0, sizeof *r);
    if (!json_is_object(obj))
        return nu_err_set(err, NU_EPARSE, "audit: cannot read event: not a "
                          "JSON object");

    json_object_foreach((json_t *)obj, key, value) {
        char **slot;

        if (strcmp(key, "seq") == 0) {
            /* A line read with numbers as doubles carries seq as a real. */
            double d = json_is_real(value) ? json_real_value(value) : 0;
            json_int_t seq = json_is_integer(value) ? json_integer_value(value)
                                                    : (json_int_t)d;

            if ((!json_is_integer(value) &&
                 (!json_is_real(value) || d > 9007199254740992.0 ||
                  d != (double)seq)) || seq < 1) {
                rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: "
                                "'seq' is not a positive integer");
                goto cleanup;
            }
            r->seq = seq;
            continue;
        }
        slot = nu__field_slot(r, key);
        if (slot == NULL) {
            rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: "
                            "unknown field '%s'", key);
            goto cleanup;
        }
        if (slot == &r->args) {
            *slot = nu_json_canonical(value, NULL, err);
        } else if (json_is_string(value)) {
            *slot = strdup(json_string_value(value));
        } else {
            rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: "
                            "field '%s' is not a string", key);
            goto cleanup;
        }
        if (*slot == NULL) {
            rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: "
                            "field '%s' cannot be stored", key);
            goto cleanup;
        }
    }
    if (r->seq == 0 || r->hash == NULL || r->prev_hash == NULL ||
        r->type == NULL)
        rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: missing "
                        "'seq', 'type', 'prev_hash' or 'hash'");

cleanup:
    if (rc != NU_OK)
        nu_audit_record_clear(r);
    return rc;
}

/* Parse stored args.  RFC 8785 numbers are doubles, and a large one such
 * as 1e20 is stored as the literal 100000000000000000000, which only a
 * parse that reads numbers as doubles accepts. */
static json_t *nu__parse_args(const char *text, nu_err_t *err)
{
    json_t *v = nu_json_parse(text, strlen(text), err);

    if (v == NULL)
        v = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES |
                       JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, NULL);
    return v;
}

json_t *nu_audit_record_to_json(const nu_audit_record_t *r, nu_err_t *err)
{
    json_t *obj = json_object();

    if (obj == NULL)
        goto nomem;
    for (size_t i = 0; i < sizeof nu__fields / sizeof nu__fields[0]; i++) {
        const nu__field_t *f = &nu__fields[i];
        const char *v;
        json_t *jv;

        if (strcmp(f->name, "seq") == 0) {
            jv = json_integer(r->seq);
        } else {
            v = nu__field_value(r, f);
            if (v == NULL)
                continue;
            if (f->offset == offsetof(nu_audit_record_t, args))
                jv = nu__parse_args(v, err);
            else
                jv = json_string(v);
        }
        if (jv == NULL || json_object_set_new(obj, f->name, jv) != 0) {
            json_decref(obj);
            nu_err_set(err, NU_EPARSE, "audit: cannot convert event %" PRId64
                       ": field '%s' is invalid", r->seq, f->name);
            return NULL;
        }
    }
    if (r->hash != NULL &&
        json_object_set_new(obj, "hash", json_string(r->hash)) != 0) {
        json_decref(obj);
        goto nomem;
    }
    return obj;

nomem:
    nu_err_set(err, NU_ENOMEM, "audit: cannot convert event: out of memory");
    return NULL;
}

/* ---- canonical form check without parsing into jansson ----------------- */

/*
 * Verification checks that every stored args text is exactly canonical.
 * Parsing with jansson and re-serializing costs about a third of the
 * verification time, so this scanner decides the common case directly.
 * It accepts the RFC 8785 output for objects, arrays, strings, literals
 * and integers.  For any number with a fraction or exponent it returns -1
 * (undecided), because only a full formatter can judge those digits.
 */
typedef struct nu__scan {
    const unsigned char *p;
    const unsigned char *end;
    int depth;
} nu__scan_t;

static int nu__scan_value(nu__scan_t *sc);

/* Decode the next code point of a canonical string body into *cp; returns
 * 0, or -1 when the text is not canonical there. */
static int nu__scan_char(nu__scan_t *sc, uint32_t *cp)
{
    const unsigned char *p = sc->p;
    size_t len;

    if (p >= sc->end)
        return -1;
    if (*p == '\\') {
        static const char shorts[] = "\"\\bfnrt";
        static const char values[] = "\"\\\b\f\n\r\t";
        const char *hit;

        if (p + 1 >= sc->end)
            return -1;
        if (p[1] == 'u') {
            unsigned v = 0;

            if (sc->end - p < 6 || p[2] != '0' || p[3] != '0' ||
                !((p[4] == '0' || p[4] == '1')) ||
                !((p[5] >= '0' && p[5] <= '9') || (p[5] >= 'a' && p[5] <= 'f')))
                return -1;
            v = (unsigned)(p[4] - '0') << 4 |
                (unsigned)(p[5] <= '9' ? p[5] - '0' : p[5] - 'a' + 10);
            if (v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
                return -1;
            *cp = v;
            sc->p = p + 6;
            return 0;
        }
        hit = strchr(shorts, p[1]);
        if (hit == NULL || p[1] == '\0')
            return -1;
        *cp = (unsigned char)values[hit - shorts];
        sc->p = p + 2;
        return 0;
    }
    if (*p < 0x20 || *p == '"')
        return -1;
    len = nu__utf8_len(p, (size_t)(sc->end - p));
    if (len == 0)
        return -1;
    *cp = len == 1 ? p[0]
        : len == 2 ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
        : len == 3 ? (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 |
                     (p[2] & 0x3f)
                   : (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
                     (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
    sc->p = p + len;
    return 0;
}

/* Scan a string; when key is not NULL, return its span for ordering. */
static int nu__scan_string(nu__scan_t *sc, const unsigned char **begin,
                           const unsigned char **end)
{
    uint32_t cp;

    if (sc->p >= sc->end || *sc->p != '"')
        return -1;
    sc->p++;
    if (begin != NULL)
        *begin = sc->p;
    while (sc->p < sc->end && *sc->p != '"')
        if (nu__scan_char(sc, &cp) != 0)
            return -1;
    if (sc->p >= sc->end)
        return -1;
    if (end != NULL)
        *end = sc->p;
    sc->p++;
    return 0;
}

/* UTF-16 code unit of cp at position 0 or 1 (high or low surrogate). */
static uint32_t nu__utf16_unit(uint32_t cp, int second)
{
    if (cp < 0x10000)
        return cp;
    cp -= 0x10000;
    return second ? 0xdc00 + (cp & 0x3ff) : 0xd800 + (cp >> 10);
}

/* Compare two canonical string bodies as RFC 8785 orders keys. */
static int nu__key_cmp(const unsigned char *a, const unsigned char *a_end,
                       const unsigned char *b, const unsigned char *b_end)
{
    nu__scan_t sa = { a, a_end, 0 }, sb = { b, b_end, 0 };

    while (sa.p < a_end && sb.p < b_end) {
        uint32_t ca, cb, ua, ub;

        nu__scan_char(&sa, &ca);
        nu__scan_char(&sb, &cb);
        for (int k = 0; k < 2; k++) {
            ua = nu__utf16_unit(ca, k);
            ub = nu__utf16_unit(cb, k);
            if (ua != ub)
                return ua < ub ? -1 : 1;
            if (ca < 0x10000 || cb < 0x10000)
                break;
        }
    }
    return (sa.p < a_end) - (sb.p < b_end);
}

static int nu__scan_number(nu__scan_t *sc)
{
    const unsigned char *start = sc->p;
    int negative = 0;
    uint64_t v = 0;
    int digits = 0;

    if (*sc->p == '-') {
        negative = 1;
        sc->p++;
    }
    if (sc->p < sc->end && *sc->p == '0') {
        sc->p++;
        digits = 1;
        if (negative)
            return -1;      /* canonical form of -0 is 0 */
    } else {
        while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9') {
            if (digits == 0 && *sc->p == '0')
                return -1;
            if (++digits > 16)
                return -2;  /* a large double such as 1e20 prints so */
            v = v * 10 + (uint64_t)(*sc->p++ - '0');
        }
    }
    if (digits == 0)
        return -1;
    if (sc->p < sc->end && (*sc->p == '.' || *sc->p == 'e' || *sc->p == 'E'))
        return -2;
    (void)start;
    return v > (UINT64_C(1) << 53) ? -2 : 0;
}

static int nu__scan_literal(nu__scan_t *sc, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, lit, n) != 0)
        return -1;
    sc->p += n;
    return 0;
}

static int nu__scan_container(nu__scan_t *sc, int object)
{
    const unsigned char *prev_b = NULL, *prev_e = NULL, *kb, *ke;
    int rc;

    if (++sc->depth > 64)
        return -1;
    sc->p++;
    if (sc->p < sc->end && *sc->p == (object ? '}' : ']')) {
        sc->p++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        if (object) {
            if (nu__scan_string(sc, &kb, &ke) != 0)
                return -1;
            if (prev_b != NULL && nu__key_cmp(prev_b, prev_e, kb, ke) >= 0)
                return -1;
            prev_b = kb;
            prev_e = ke;
            if (sc->p >= sc->end || *sc->p++ != ':')
                return -1;
        }
        if ((rc = nu__scan_value(sc)) != 0)
            return rc;
        if (sc->p >= sc->end)
            return -1;
        if (*sc->p == ',') {
            sc->p++;
            continue;
        }
        if (*sc->p++ != (object ? '}' : ']'))
            return -1;
        sc->depth--;
        return 0;
    }
}

static int nu__scan_value(nu__scan_t *sc)
{
    if (sc->p >= sc->end)
        return -1;
    switch (*sc->p) {
    case '{': return nu__scan_container(sc, 1);
    case '[': return nu__scan_container(sc, 0);
    case '"': return nu__scan_string(sc, NULL, NULL);
    case 't': return nu__scan_literal(sc, "true");
    case 'f': return nu__scan_literal(sc, "false");
    case 'n': return nu__scan_literal(sc, "null");
    default: return nu__scan_number(sc);
    }
}

int nu__audit_is_canonical(const char *text)
{
    nu__scan_t sc = { (const unsigned char *)text, NULL, 0 };
    int rc;

    sc.end = sc.p + strlen(text);
    rc = nu__scan_value(&sc);
    if (rc == -2)
        return -1;
    return rc == 0 && sc.p == sc.end;
}
