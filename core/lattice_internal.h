/*
 * lattice_internal.h - definitions shared by the lattice source files
 * (lattice.c, lattice_json.c, lattice_check.c); not part of the API.
 */
#ifndef NUCLEUS_LATTICE_INTERNAL_H
#define NUCLEUS_LATTICE_INTERNAL_H

#include <stddef.h>

#include "nucleus/lattice.h"

/* One set-valued field of nu_perm_t.  Allow-like sets (allow, domains,
 * trusted) grant more as they grow; block-like sets grant less. */
typedef struct nu_perm_set_field {
    const char *component; /* "paths" */
    const char *key;       /* "allow" */
    size_t offset;         /* of the nu_strset_t inside nu_perm_t */
    bool is_block;
} nu_perm_set_field_t;

#define NU__PERM_SET_COUNT 8
extern const nu_perm_set_field_t nu__perm_set_fields[NU__PERM_SET_COUNT];

static inline nu_strset_t *nu__perm_set(nu_perm_t *p, size_t i)
{
    return (nu_strset_t *)((char *)p + nu__perm_set_fields[i].offset);
}

static inline const nu_strset_t *nu__perm_set_const(const nu_perm_t *p,
                                                     size_t i)
{
    return (const nu_strset_t *)((const char *)p +
                                 nu__perm_set_fields[i].offset);
}

/* Is the validity window empty (never valid)? */
static inline bool nu__time_empty(const nu_timewin_t *t)
{
    return t->not_before >= t->not_after;
}

/* Rewrite an empty window as the canonical empty window [0, 0). */
void nu__time_canonicalize(nu_timewin_t *t);

/* Zero every field of p and make every set EMPTY, so that nu_perm_free
 * is safe whatever happens next. */
void nu__perm_init_sets_empty(nu_perm_t *p);

/* Extra nu_glob_match flags that switch off the fast paths, so that tests
 * and fuzzers can compare them with the general automaton. */
#define NU__GLOB_NO_PRECHECK 0x100 /* skip the literal prefix/suffix test */
#define NU__GLOB_WIDE 0x200        /* use the multi-word automaton */

/* nu_glob_match_path, telling an invalid pattern apart: 1 match, 0 no
 * match, -1 invalid pattern (glob.c). */
int nu__glob_match_path_checked(const char *pattern, const char *path);

/* Validators used by nu_perm_from_json (lattice_check.c). */
bool nu__net_entry_valid(const char *entry);    /* "CIDR:port", "CIDR" */
bool nu__domain_pattern_valid(const char *pattern);
bool nu__cmdrule_valid(const char *rule);

#endif
