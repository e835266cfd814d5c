/*
 * json.c - RFC 8785 canonical serialization and strict parsing on jansson.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/json.h"

#define NU_JSON_MAX_DEPTH 64

/* 2^53: the largest range in which every integer is an exact double. */
#define NU_JSON_MAX_SAFE_INT 9007199254740992LL

typedef struct nu_buf {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} nu_buf_t;

static void nu__buf_append(nu_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
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

static void nu__buf_puts(nu_buf_t *b, const char *s)
{
    nu__buf_append(b, s, strlen(s));
}

int nu_json_format_number(double d, char *buf, size_t size)
{
    char sci[40];
    char digits[20];
    int precision, exponent, ndigits, n;
    size_t k = 0;

    if (!isfinite(d))
        return NU_ERANGE;
    if (d == 0) {
        snprintf(buf, size, "0");
        return NU_OK;
    }

    /* Shortest decimal that reads back as the same double. */
    for (precision = 1; precision <= 17; precision++) {
        snprintf(sci, sizeof sci, "%.*e", precision - 1, d);
        if (strtod(sci, NULL) == d)
            break;
    }

    /* sci is "[-]D.DDDDe[+-]XX": split it into digits and exponent. */
    const char *p = sci;
    char *out = buf;
    if (*p == '-') {
        *out++ = '-';
        size--;
        p++;
    }
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    ndigits = (int)k;
    exponent = atoi(p + 1);
    n = exponent + 1;

    /* ECMAScript Number::toString, with k = ndigits digits and the
     * decimal point after n of them. */
    char text[64];
    size_t t = 0;
    if (ndigits <= n && n <= 21) {
        memcpy(text, digits, (size_t)ndigits);
        t = (size_t)ndigits;
        for (int z = 0; z < n - ndigits; z++)
            text[t++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(text, digits, (size_t)n);
        t = (size_t)n;
        text[t++] = '.';
        memcpy(text + t, digits + n, (size_t)(ndigits - n));
        t += (size_t)(ndigits - n);
    } else if (-6 < n && n <= 0) {
        text[t++] = '0';
        text[t++] = '.';
        for (int z = 0; z < -n; z++)
            text[t++] = '0';
        memcpy(text + t, digits, (size_t)ndigits);
        t += (size_t)ndigits;
    } else {
        text[t++] = digits[0];
        if (ndigits > 1) {
            text[t++] = '.';
            memcpy(text + t, digits + 1, (size_t)(ndigits - 1));
            t += (size_t)(ndigits - 1);
        }
        t += (size_t)snprintf(text + t, sizeof text - t, "e%c%d",
                              n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    text[t] = '\0';
    snprintf(out, size, "%s", text);
    return NU_OK;
}

/* Decode one UTF-8 sequence at s; returns its length, or 0 when invalid. */
static size_t nu__utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
    size_t len;
    uint32_t c = s[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len > avail)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Compare two UTF-8 keys as sequences of UTF-16 code units. */
static int nu__key_compare(const void *pa, const void *pb)
{
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    size_t alen = strlen((const char *)a), blen = strlen((const char *)b);

    while (alen > 0 && blen > 0) {
        uint32_t ca = 0, cb = 0;
        size_t la = nu__utf8_decode(a, alen, &ca);
        size_t lb = nu__utf8_decode(b, blen, &cb);
        if (la == 0 || lb == 0)
            return memcmp(a, b, alen < blen ? alen : blen);

        /* Characters above the BMP sort by their high surrogate. */
        uint32_t ua = ca >= 0x10000 ? 0xd800 + ((ca - 0x10000) >> 10) : ca;
        uint32_t ub = cb >= 0x10000 ? 0xd800 + ((cb - 0x10000) >> 10) : cb;
        if (ua != ub)
            return ua < ub ? -1 : 1;
        if (ca != cb)
            return ca < cb ? -1 : 1;
        a += la, alen -= la;
        b += lb, blen -= lb;
    }
    return alen == blen ? 0 : (alen < blen ? -1 : 1);
}

static int nu__put_string(nu_buf_t *b, const char *s, size_t len, nu_err_t *err)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    nu__buf_append(b, "\"", 1);
    while (i < len) {
        uint32_t cp;
        size_t step = nu__utf8_decode(p + i, len - i, &cp);
        char esc[8];

        if (step == 0)
            return nu_err_set(err, NU_EINVAL,
                              "json: invalid UTF-8 in string at byte %zu", i);
        switch (cp) {
        case '"': nu__buf_puts(b, "\\\""); break;
        case '\\': nu__buf_puts(b, "\\\\"); break;
        case '\b': nu__buf_puts(b, "\\b"); break;
        case '\f': nu__buf_puts(b, "\\f"); break;
        case '\n': nu__buf_puts(b, "\\n"); break;
        case '\r': nu__buf_puts(b, "\\r"); break;
        case '\t': nu__buf_puts(b, "\\t"); break;
        default:
            if (cp < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                nu__buf_puts(b, esc);
            } else {
                nu__buf_append(b, s + i, step);
            }
        }
        i += step;
    }
    nu__buf_append(b, "\"", 1);
    return NU_OK;
}

static int nu__put_value(nu_buf_t *b, const json_t *v, int depth, nu_err_t *err);

static int nu__put_object(nu_buf_t *b, const json_t *v, int depth, nu_err_t *err)
{
    size_t count = json_object_size(v), i = 0;
    const char **keys = NULL;
    const char *key;
    json_t *member;
    int rc = NU_OK;

    if (count > 0) {
        keys = malloc(count * sizeof *keys);
        if (keys == NULL)
            return nu_err_set(err, NU_ENOMEM, "json: out of memory");
    }
    json_object_foreach((json_t *)v, key, member)
        keys[i++] = key;
    if (count > 1)
        qsort(keys, count, sizeof *keys, nu__key_compare);

    nu__buf_append(b, "{", 1);
    for (i = 0; i < count && rc == NU_OK; i++) {
        if (i > 0)
            nu__buf_append(b, ",", 1);
        rc = nu__put_string(b, keys[i], strlen(keys[i]), err);
        nu__buf_append(b, ":", 1);
        if (rc == NU_OK)
            rc = nu__put_value(b, json_object_get(v, keys[i]), depth + 1, err);
    }
    nu__buf_append(b, "}", 1);

    free(keys);
    return rc;
}

static int nu__put_value(nu_buf_t *b, const json_t *v, int depth, nu_err_t *err)
{
    char num[40];

    if (depth > NU_JSON_MAX_DEPTH)
        return nu_err_set(err, NU_ELIMIT, "json: nesting deeper than %d levels",
                          NU_JSON_MAX_DEPTH);

    switch (json_typeof(v)) {
    case JSON_NULL: nu__buf_puts(b, "null"); return NU_OK;
    case JSON_TRUE: nu__buf_puts(b, "true"); return NU_OK;
    case JSON_FALSE: nu__buf_puts(b, "false"); return NU_OK;
    case JSON_STRING:
        return nu__put_string(b, json_string_value(v), json_string_length(v), err);
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i > NU_JSON_MAX_SAFE_INT || i < -NU_JSON_MAX_SAFE_INT)
            return nu_err_set(err, NU_ERANGE,
                              "json: integer %lld is outside +-2^53",
                              (long long)i);
        snprintf(num, sizeof num, "%lld", (long long)i);
        nu__buf_puts(b, num);
        return NU_OK;
    }
    case JSON_REAL:
        if (nu_json_format_number(json_real_value(v), num, sizeof num) != NU_OK)
            return nu_err_set(err, NU_ERANGE, "json: NaN or infinite number");
        nu__buf_puts(b, num);
        return NU_OK;
    case JSON_ARRAY: {
        int rc = NU_OK;
        nu__buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && rc == NU_OK; i++) {
            if (i > 0)
                nu__buf_append(b, ",", 1);
            rc = nu__put_value(b, json_array_get(v, i), depth + 1, err);
        }
        nu__buf_append(b, "]", 1);
        return rc;
    }
    case JSON_OBJECT:
        return nu__put_object(b, v, depth, err);
    }
    return nu_err_set(err, NU_EINVAL, "json: unknown value type");
}

char *nu_json_canonical(const json_t *v, size_t *len_out, nu_err_t *err)
{
    nu_buf_t b = {0};

    if (v == NULL) {
        nu_err_set(err, NU_EINVAL, "json: cannot serialize a NULL value");
        return NULL;
    }
    if (nu__put_value(&b, v, 0, err) != NU_OK) {
        free(b.data);
        return NULL;
    }
    if (b.failed) {
        free(b.data);
        nu_err_set(err, NU_ENOMEM, "json: out of memory");
        return NULL;
    }
    if (len_out != NULL)
        *len_out = b.len;
    return b.data;
}

static int nu__depth_ok(const json_t *v, int depth)
{
    const char *key;
    json_t *member;
    size_t i;

    if (depth > NU_JSON_MAX_DEPTH)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, member)
            if (!nu__depth_ok(member, depth + 1))
                return 0;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, member)
            if (!nu__depth_ok(member, depth + 1))
                return 0;
    }
    return 1;
}

json_t *nu_json_parse(const char *text, size_t len, nu_err_t *err)
{
    json_error_t jerr;
    json_t *v;

    v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        nu_err_set(err, NU_EPARSE, "json: %s at line %d column %d", jerr.text,
                   jerr.line, jerr.column);
        return NULL;
    }
    if (!nu__depth_ok(v, 0)) {
        json_decref(v);
        nu_err_set(err, NU_ELIMIT, "json: nesting deeper than %d levels",
                   NU_JSON_MAX_DEPTH);
        return NULL;
    }
    return v;
}
