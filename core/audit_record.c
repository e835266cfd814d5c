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
 * rule 3 says: '"' and '\\' with a backslash, \b \f \n \r \t, other
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
    size_t offset;   /* of the char * in nu_audit_record_t */
} nu__field_t;

#define NU__F(name) { #name, offsetof(nu_audit_record_t, name) }

/* Preimage members in canonical order; "args" and "seq" are special. */
static const nu__field_t nu__fields[] = {
    NU__F(args), NU__F(decision), NU__F(kind), NU__F(operation), NU__F(pod),
    NU__F(prev_hash), NU__F(profile_digest), NU__F(reason),
    NU__F(result_digest), { "seq", 0 }, NU__F(spiffe_id), NU__F(time),
    NU__F(tool), NU__F(type),
};

static const char *nu__field_value(const nu_audit_record_t *r,
                                   const nu__field_t *f)
{
    return *(char *const *)((const char *)r + f->offset);
}

char *nu_audit_preimage(const nu_audit_record_t *r, size_t *len,
                        nu_err_t *err)
{
    nu__sb_t b = { 0 };
    const char *sep = "{";
    char num[32];

    for (size_t i = 0; i < sizeof nu__fields / sizeof nu__fields[0]; i++) {
        const nu__field_t *f = &nu__fields[i];
        const char *v;

        if (strcmp(f->name, "seq") == 0) {
            int n = snprintf(num, sizeof num, "%s\"seq\":%" PRId64, sep,
                             r->seq);
            nu__sb_put(&b, num, (size_t)n);
            sep = ",";
            continue;
        }
        v = nu__field_value(r, f);
        if (v == NULL)
            continue;

        nu__sb_put(&b, sep, 1);
        nu__sb_put(&b, "\"", 1);
        nu__sb_put(&b, f->name, strlen(f->name));
        nu__sb_put(&b, "\":", 2);
        sep = ",";
        if (f->offset == offsetof(nu_audit_record_t, args)) {
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
        if (strcmp(nu__fields[i].name, "seq") != 0)
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
            if (!json_is_integer(value) || json_integer_value(value) < 1) {
                rc = nu_err_set(err, NU_EPARSE, "audit: cannot read event: "
                                "'seq' is not a positive integer");
                goto cleanup;
            }
            r->seq = json_integer_value(value);
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
                jv = nu_json_parse(v, strlen(v), err);
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
