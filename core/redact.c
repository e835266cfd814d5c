/*
 * redact.c - replace credential values in strings and JSON values.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "nucleus/redact.h"

void nu_redactor_init(nu_redactor_t *r)
{
    memset(r, 0, sizeof *r);
}

void nu_redactor_free(nu_redactor_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->names[i]);
        /* Wipe the value before returning the memory. */
        explicit_bzero(r->values[i], strlen(r->values[i]));
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    memset(r, 0, sizeof *r);
}

int nu_redactor_add(nu_redactor_t *r, const char *name, const char *value)
{
    char **names, **values;

    if (value == NULL || value[0] == '\0')
        return 0;

    names = realloc(r->names, (r->count + 1) * sizeof *names);
    if (names == NULL)
        return -1;
    r->names = names;
    values = realloc(r->values, (r->count + 1) * sizeof *values);
    if (values == NULL)
        return -1;
    r->values = values;

    r->names[r->count] = strdup(name);
    r->values[r->count] = strdup(value);
    if (r->names[r->count] == NULL || r->values[r->count] == NULL) {
        free(r->names[r->count]);
        free(r->values[r->count]);
        return -1;
    }
    r->count++;
    return 0;
}

/* Index of the longest value that starts at s[0..avail), or -1. */
static long nu__match_at(const nu_redactor_t *r, const char *s, size_t avail)
{
    long best = -1;
    size_t best_len = 0;

    for (size_t i = 0; i < r->count; i++) {
        size_t vlen = strlen(r->values[i]);
        if (vlen <= avail && vlen > best_len &&
            memcmp(s, r->values[i], vlen) == 0) {
            best = (long)i;
            best_len = vlen;
        }
    }
    return best;
}

char *nu_redact_string(const nu_redactor_t *r, const char *s, size_t len,
                       size_t *out_len)
{
    size_t cap = len + 1, o = 0;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;

    for (size_t i = 0; i < len;) {
        long m = r->count > 0 ? nu__match_at(r, s + i, len - i) : -1;
        const char *piece = s + i;
        size_t piece_len = 1, consumed = 1;
        char label[300];

        if (m >= 0) {
            piece_len = (size_t)snprintf(label, sizeof label, "[REDACTED:%s]",
                                         r->names[m]);
            if (piece_len >= sizeof label)
                piece_len = sizeof label - 1;
            piece = label;
            consumed = strlen(r->values[m]);
        }

        if (o + piece_len + 1 > cap) {
            cap = (o + piece_len + 1) * 2;
            char *grown = realloc(out, cap);
            if (grown == NULL) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + o, piece, piece_len);
        o += piece_len;
        i += consumed;
    }

    out[o] = '\0';
    if (out_len != NULL)
        *out_len = o;
    return out;
}

/* Redact the bytes behind a base64 field and store them re-encoded. */
static int nu__redact_base64(const nu_redactor_t *r, json_t *field)
{
    const char *text = json_string_value(field);
    size_t text_len = json_string_length(field), raw_len = 0, red_len, enc_len;
    unsigned char *raw;
    char *red = NULL;
    unsigned char *enc = NULL;
    int rc = -1;

    raw = malloc(text_len + 1);
    if (raw == NULL)
        return -1;
    if (mbedtls_base64_decode(raw, text_len + 1, &raw_len,
                              (const unsigned char *)text, text_len) != 0) {
        /* Not base64 after all: redact it as text. */
        free(raw);
        red = nu_redact_string(r, text, text_len, &red_len);
        if (red == NULL)
            return -1;
        rc = json_string_setn_nocheck(field, red, red_len) == 0 ? 0 : -1;
        free(red);
        return rc;
    }

    red = nu_redact_string(r, (const char *)raw, raw_len, &red_len);
    if (red == NULL)
        goto out;
    if (red_len == raw_len && memcmp(red, raw, raw_len) == 0) {
        rc = 0;
        goto out;
    }

    enc_len = 4 * ((red_len + 2) / 3) + 1;
    enc = malloc(enc_len);
    if (enc == NULL ||
        mbedtls_base64_encode(enc, enc_len, &enc_len,
                              (const unsigned char *)red, red_len) != 0)
        goto out;
    rc = json_string_setn_nocheck(field, (const char *)enc, enc_len) == 0 ? 0 : -1;

out:
    free(raw);
    free(red);
    free(enc);
    return rc;
}

static int nu__is_base64_field(json_t *object, const char *key)
{
    char name[128];
    json_t *encoding;

    if (snprintf(name, sizeof name, "%s_encoding", key) >= (int)sizeof name)
        return 0;
    encoding = json_object_get(object, name);
    return json_is_string(encoding) &&
           strcmp(json_string_value(encoding), "base64") == 0;
}

int nu_redact_json(const nu_redactor_t *r, json_t *v)
{
    const char *key;
    json_t *member;
    size_t i;

    if (r->count == 0 || v == NULL)
        return 0;

    if (json_is_string(v)) {
        size_t out_len;
        char *red = nu_redact_string(r, json_string_value(v),
                                     json_string_length(v), &out_len);
        if (red == NULL)
            return -1;
        int rc = json_string_setn_nocheck(v, red, out_len);
        free(red);
        return rc == 0 ? 0 : -1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, member) {
            /* Encoding markers are protocol, not data. */
            size_t klen = strlen(key);
            if (klen >= 9 && strcmp(key + klen - 9, "_encoding") == 0)
                continue;
            int rc = json_is_string(member) && nu__is_base64_field(v, key)
                   ? nu__redact_base64(r, member)
                   : nu_redact_json(r, member);
            if (rc != 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, member)
            if (nu_redact_json(r, member) != 0)
                return -1;
    }
    return 0;
}
