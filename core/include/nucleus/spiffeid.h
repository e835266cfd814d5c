/*
 * spiffeid.h - SPIFFE IDs: parsing, validation and construction.
 *
 * A SPIFFE ID is "spiffe://" TRUST-DOMAIN PATH, with these rules from the
 * SPIFFE ID standard (spiffe/spiffe, standards/SPIFFE-ID.md):
 *   1. the scheme is exactly "spiffe" in lowercase;
 *   2. the trust domain is not empty and holds only lowercase letters,
 *      digits, '.', '-' and '_' (so no port, user info or percent-encoding);
 *   3. the path is empty or a sequence of "/" SEGMENT, where a segment is not
 *      empty, is not "." or "..", and holds only [a-zA-Z0-9.-_] (so no
 *      trailing slash, query, fragment or percent-encoding);
 *   4. the whole ID is at most 2048 bytes.
 * This module also limits the trust domain to 255 bytes, the length of a
 * DNS name, so that it fits a fixed buffer.
 *
 * Every SPIFFE ID that the identity code accepts (certificate URI SANs,
 * JWT subjects, command-line options) goes through nu_spiffeid_parse.
 */
#ifndef NUCLEUS_SPIFFEID_H
#define NUCLEUS_SPIFFEID_H

#include <stddef.h>

#include "nucleus/error.h"

#define NU_SPIFFEID_MAX 2048
#define NU_TRUST_DOMAIN_MAX 255

/* A validated SPIFFE ID.  id is the whole NUL-terminated ID; trust_domain
 * is its trust domain; path_offset is where the path ("" or "/a/b") starts
 * inside id. */
typedef struct nu_spiffeid {
    char id[NU_SPIFFEID_MAX + 1];
    char trust_domain[NU_TRUST_DOMAIN_MAX + 1];
    size_t path_offset;
} nu_spiffeid_t;

/* Parse and validate exactly len bytes of text (which may contain NUL
 * bytes; they are rejected).  Returns NU_OK and fills *out, or NU_EPARSE
 * with err naming the broken rule ("spiffeid: invalid SPIFFE ID '...':
 * trust domain contains an uppercase letter ..."). */
int nu_spiffeid_parse(const char *text, size_t len, nu_spiffeid_t *out,
                      nu_err_t *err);

/* Validate a trust domain name given either bare ("example.org") or as a
 * SPIFFE ID with an empty path ("spiffe://example.org"), and copy the bare
 * name into out (NU_TRUST_DOMAIN_MAX + 1 bytes).  Returns NU_OK or
 * NU_EPARSE. */
int nu_spiffeid_parse_trust_domain(const char *text,
                                   char out[NU_TRUST_DOMAIN_MAX + 1],
                                   nu_err_t *err);

/* Return the path of id: "" for a trust domain's own ID, else "/...". */
const char *nu_spiffeid_path(const nu_spiffeid_t *id);

/* Return 1 when id belongs to trust domain td (an exact, whole-name match:
 * "nucleus.local.evil" is not "nucleus.local"), else 0. */
int nu_spiffeid_member_of(const nu_spiffeid_t *id, const char *td);

/* Build spiffe://TD/ns/NAMESPACE/pod/POD_ID or spiffe://TD/node/NODE.  Each
 * part must be a valid path segment.  Returns NU_OK or NU_EPARSE. */
int nu_spiffeid_for_pod(const char *td, const char *ns, const char *pod_id,
                        nu_spiffeid_t *out, nu_err_t *err);
int nu_spiffeid_for_node(const char *td, const char *node, nu_spiffeid_t *out,
                         nu_err_t *err);

#endif
