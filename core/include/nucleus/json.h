/*
 * json.h - RFC 8785 canonical JSON and small jansson helpers.
 *
 * Canonical JSON is the one byte form used wherever bytes are hashed or
 * compared: approval keys, profile digests, audit event preimages and the
 * output of "nucleus policy show".  Rules (RFC 8785, JSON Canonicalization
 * Scheme):
 *   1. no white space between tokens;
 *   2. object members sorted by key, comparing keys as UTF-16 code units;
 *   3. strings escape only '"', '\\' and control characters below 0x20,
 *      using \b \f \n \r \t where they exist and \u00xx (lowercase hex)
 *      otherwise; all other characters are written as UTF-8;
 *   4. numbers are written as ECMAScript's Number.prototype.toString does
 *      (shortest round-trip digits; exponent form below 1e-6 and from 1e21);
 *      integers outside +-2^53 are rejected because IEEE doubles cannot
 *      carry them exactly; NaN and infinities are rejected.
 */
#ifndef NUCLEUS_JSON_H
#define NUCLEUS_JSON_H

#include <stddef.h>
#include <jansson.h>

#include "nucleus/error.h"

/* Serialize v canonically.  Returns a malloc'd NUL-terminated string (the
 * caller frees it) and stores its length in *len_out when len_out is not
 * NULL; returns NULL and fills err for NaN, infinities, out-of-range
 * integers, invalid UTF-8 or nesting deeper than 64 levels. */
char *nu_json_canonical(const json_t *v, size_t *len_out, nu_err_t *err);

/* Format a double as ECMAScript does into buf (at least 32 bytes).
 * Returns NU_OK, or NU_ERANGE for NaN and infinities. */
int nu_json_format_number(double d, char *buf, size_t size);

/* Parse text (exactly len bytes) into a JSON value, rejecting duplicate
 * object keys, NUL in strings and nesting deeper than 64 levels.  Returns a
 * new reference, or NULL with err filled ("json: invalid ... at line L
 * column C"). */
json_t *nu_json_parse(const char *text, size_t len, nu_err_t *err);

#endif
