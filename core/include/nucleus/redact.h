/*
 * redact.h - keep credential values out of everything Nucleus emits.
 *
 * A redactor holds (name, value) pairs.  nu_redact_string replaces every
 * occurrence of every value with "[REDACTED:NAME]"; when values overlap,
 * the longest match at each position wins, so a value that contains
 * another is replaced whole.  Empty values are ignored.
 */
#ifndef NUCLEUS_REDACT_H
#define NUCLEUS_REDACT_H

#include <stddef.h>

#include <jansson.h>

typedef struct nu_redactor {
    size_t count;
    char **names;
    char **values;
} nu_redactor_t;

void nu_redactor_init(nu_redactor_t *r);
void nu_redactor_free(nu_redactor_t *r);

/* Add a pair (both copied).  Returns 0, or -1 on ENOMEM. */
int nu_redactor_add(nu_redactor_t *r, const char *name, const char *value);

/* Return a malloc'd copy of s (len bytes) with every value replaced, its
 * length in *out_len (may be NULL); NULL on ENOMEM.  The output is
 * NUL-terminated. */
char *nu_redact_string(const nu_redactor_t *r, const char *s, size_t len,
                       size_t *out_len);

/* Redact every string inside v in place (object keys are left alone).  A
 * member X whose sibling "X_encoding" is "base64" is decoded, redacted as
 * bytes and re-encoded, so binary output cannot carry a value past it.
 * Returns 0, or -1 on ENOMEM. */
int nu_redact_json(const nu_redactor_t *r, json_t *v);

#endif
