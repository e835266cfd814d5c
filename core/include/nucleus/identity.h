/*
 * identity.h - SPIFFE workload identity: the trust domain's CA, X.509-SVIDs,
 * JWT-SVIDs, trust bundles and the SVID directory of a pod (mbedTLS 2.28).
 *
 * State on disk ($NUCLEUS_HOME/ca/, see home.h), written by nu_ca_create:
 *   ca.pem      the self-signed root: ECDSA P-256, URI SAN spiffe://TD,
 *               basicConstraints CA with pathLen 0, keyCertSign + cRLSign
 *   ca.key      its PKCS#8 private key, mode 0600
 *   jwt.key     the JWT-SVID signing key (ECDSA P-256), mode 0600
 *   ca.json     {"trust_domain": TD, "sequence": N}: N counts CA
 *               (re)creations and is the bundle's spiffe_sequence
 *
 * Each X.509-SVID issued here has a new P-256 key and one URI SAN.  Its
 * basicConstraints is critical with cA false, its keyUsage is critical
 * digitalSignature, and its EKU is serverAuth and clientAuth.  It has a
 * 16-byte positive random serial and subject and authority key ids.
 * notBefore is 60 s in the past for clock skew, and notAfter is at most the
 * CA's.
 *
 * Validation follows the SPIFFE X.509-SVID standard and go-spiffe's
 * x509svid package.  nu_svid_leaf_id is the one function that turns a leaf
 * certificate into a SPIFFE ID; verification, mTLS and the CLI all use it.
 *
 * Thread safety: a nu_ca_t may be shared between threads (issuance takes a
 * lock); bundle sets and JWT bundles are read-only after construction.
 * Random numbers come from one process-wide CTR-DRBG that reseeds after
 * fork.
 */
#ifndef NUCLEUS_IDENTITY_H
#define NUCLEUS_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <uv.h>

#include "nucleus/error.h"
#include "nucleus/spiffeid.h"

#define NU_TRUST_DOMAIN_DEFAULT "nucleus.local"
#define NU_SVID_TTL_DEFAULT 3600            /* seconds */
#define NU_SVID_BACKDATE 60                 /* seconds before "now" */
#define NU_CA_TTL_DEFAULT (10 * 365 * 86400) /* seconds */
#define NU_BUNDLE_REFRESH_HINT 300          /* seconds, in the bundle JSON */

/* ---- CA ---------------------------------------------------------------- */

typedef struct nu_ca nu_ca_t;

/* Create the CA of trust_domain (NULL for the default) in ca_dir, creating
 * the directory.  Returns NU_OK; NU_EEXIST when a CA is already there and
 * force is 0; NU_EPARSE for a bad trust domain; NU_EIO or NU_ECRYPTO. */
int nu_ca_create(const char *ca_dir, const char *trust_domain, int force,
                 nu_err_t *err);

/* Load the CA from ca_dir into *out (free with nu_ca_free).  Returns NU_OK,
 * NU_ENOENT when there is no CA (err tells the user to run 'nucleus ca
 * init'), or NU_EPARSE or NU_ECRYPTO for damaged files. */
int nu_ca_load(const char *ca_dir, nu_ca_t **out, nu_err_t *err);
void nu_ca_free(nu_ca_t *ca);

const char *nu_ca_trust_domain(const nu_ca_t *ca);
time_t nu_ca_not_after(const nu_ca_t *ca);

/* The trust bundle in PEM (the root certificate); owned by ca. */
const char *nu_ca_bundle_pem(const nu_ca_t *ca);

/* The SPIFFE bundle (JWKS) as JSON text: one "x509-svid" key with x5c, one
 * "jwt-svid" key with kid, spiffe_sequence and spiffe_refresh_hint.  The
 * caller frees the result; NULL with err on failure. */
char *nu_ca_bundle_json(const nu_ca_t *ca, nu_err_t *err);

/* ---- X.509-SVID issuance ----------------------------------------------- */

/* An issued SVID: PEM texts (malloc'd) and facts about the leaf.  cert_pem
 * is the leaf followed by any intermediates (none today: the root signs
 * leaves directly); bundle_pem is the trust bundle. */
typedef struct nu_svid {
    char *cert_pem;
    char *key_pem;
    char *bundle_pem;
    nu_spiffeid_t id;
    time_t not_before;
    time_t not_after;
} nu_svid_t;

/* Issue an X.509-SVID for spiffe_id, which must belong to the CA's trust
 * domain and have a non-empty path.  ttl is in seconds (0 means
 * NU_SVID_TTL_DEFAULT); notAfter is clamped to the CA's notAfter.  Returns
 * NU_OK and fills *out (release with nu_svid_free); NU_EPARSE, NU_EINVAL
 * (wrong trust domain, bad ttl, CA expired) or NU_ECRYPTO. */
int nu_ca_issue(nu_ca_t *ca, const char *spiffe_id, int64_t ttl,
                nu_svid_t *out, nu_err_t *err);

/* Free the texts of svid (wiping the key) and zero it; NULL is fine. */
void nu_svid_free(nu_svid_t *svid);

/* ---- PEM input ----------------------------------------------------------- */

/* Read a whole file of at most 1 MiB (a PEM bundle, a key, bundle JSON) into
 * a malloc'd NUL-terminated buffer; *len gets its length.  Returns NU_OK,
 * NU_ENOENT, NU_ELIMIT or another errno-derived code. */
int nu_identity_read_file(const char *path, char **out, size_t *len,
                          nu_err_t *err);

/* Append the CERTIFICATE blocks of pem (len bytes) to chain, which the caller
 * has initialized.  Other block types are skipped.  A certificate with bytes
 * after its DER encoding is rejected (mbedTLS alone would accept it).
 * Returns the number of certificates added (0 for empty input), or NU_EPARSE
 * when the input holds text but no PEM block or a block does not parse. */
int nu_x509_parse_certs(const char *pem, size_t len, mbedtls_x509_crt *chain,
                        nu_err_t *err);

/* Parse the first "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" (SEC1) block
 * of pem into key, which the caller has initialized.  Returns NU_OK or
 * NU_EPARSE. */
int nu_x509_parse_key(const char *pem, size_t len, mbedtls_pk_context *key,
                      nu_err_t *err);

/* ---- X.509-SVID validation --------------------------------------------- */

/* Extract the SPIFFE ID of a leaf certificate: its subjectAltName must hold
 * exactly one URI, which must be a valid SPIFFE ID with a non-empty path.
 * Returns NU_OK or NU_EDENIED with the reason in err. */
int nu_svid_leaf_id(const mbedtls_x509_crt *leaf, nu_spiffeid_t *out,
                    nu_err_t *err);

/* Check the shape of an SVID chain without dates or signatures, with the
 * rules of go-spiffe's x509svid.Parse, in this order:
 *   1. a leaf exists, and nu_svid_leaf_id accepts it;
 *   2. the leaf is not a CA;
 *   3. its keyUsage has digitalSignature and neither keyCertSign nor cRLSign;
 *   4. every further certificate is a CA with keyCertSign.
 * Returns NU_OK with the ID in *out (may be NULL), or NU_EDENIED. */
int nu_svid_check_chain(const mbedtls_x509_crt *chain, nu_spiffeid_t *out,
                        nu_err_t *err);

/* Return NU_OK when key is the private key of leaf's public key, else
 * NU_EDENIED. */
int nu_svid_check_key(const mbedtls_x509_crt *leaf, mbedtls_pk_context *key,
                      nu_err_t *err);

typedef struct nu_bundle_set nu_bundle_set_t;

/* A set of trust bundles keyed by trust domain.  A chain is only ever built
 * against the bundle of the trust domain its leaf names. */
nu_bundle_set_t *nu_bundle_set_new(void);
void nu_bundle_set_free(nu_bundle_set_t *set);

/* Add the certificates of pem as the bundle of trust domain td.  td may be
 * NULL when the first certificate has a URI SAN spiffe://TD (as the roots
 * made by nu_ca_create do).  Returns the number of certificates added,
 * NU_EPARSE, or NU_EINVAL when td is NULL and cannot be derived or the set
 * already has a bundle for td. */
int nu_bundle_set_add_pem(nu_bundle_set_t *set, const char *td,
                          const char *pem, size_t len, nu_err_t *err);

/* The bundle of td, or NULL. */
mbedtls_x509_crt *nu_bundle_set_find(const nu_bundle_set_t *set,
                                     const char *td);

/* The trust domain of the set's only bundle, or NULL when it has 0 or >1. */
const char *nu_bundle_set_only_domain(const nu_bundle_set_t *set);

/* Verify chain (leaf first, then intermediates) as an X.509-SVID at the
 * current time:
 *   1. nu_svid_check_chain accepts it;
 *   2. the leaf's trust domain is expected_td (unless that is NULL);
 *   3. the set has a bundle for the leaf's trust domain;
 *   4. mbedTLS builds a chain from the leaf to that bundle and checks
 *      signatures, dates, CA flags, key usages and path lengths.
 * Returns NU_OK with the ID in *out (may be NULL), or NU_EDENIED with the
 * reason. */
int nu_svid_verify(mbedtls_x509_crt *chain, const nu_bundle_set_t *bundles,
                   const char *expected_td, nu_spiffeid_t *out, nu_err_t *err);

/* ---- JWT-SVID ---------------------------------------------------------- */

/* JWT-SVID signing keys of one trust domain, looked up by kid. */
typedef struct nu_jwt_bundle nu_jwt_bundle_t;

int nu_jwt_bundle_from_ca(const nu_ca_t *ca, nu_jwt_bundle_t **out,
                          nu_err_t *err);

/* Read the "jwt-svid" keys of a SPIFFE bundle (JSON text).  td may be NULL
 * when an "x509-svid" key's first x5c certificate has a URI SAN spiffe://TD.
 * Returns NU_OK, NU_EPARSE or NU_EINVAL. */
int nu_jwt_bundle_from_json(const char *json, size_t len, const char *td,
                            nu_jwt_bundle_t **out, nu_err_t *err);
void nu_jwt_bundle_free(nu_jwt_bundle_t *bundle);
const char *nu_jwt_bundle_trust_domain(const nu_jwt_bundle_t *bundle);

/* Sign a JWT-SVID with ES256.  The header has kid and typ JWT, and the
 * claims are sub, aud, exp and iat.  aud contains n_aud >= 1 audiences, and
 * ttl is in seconds (0 means NU_SVID_TTL_DEFAULT).  Returns NU_OK with a
 * malloc'd token in *token. */
int nu_jwt_issue(nu_ca_t *ca, const char *spiffe_id, const char *const *aud,
                 size_t n_aud, int64_t ttl, char **token, nu_err_t *err);

/* Verify token at time now: three strict base64url parts; header alg ES256
 * (anything else, "none" and HS* included, is rejected), a known kid, no
 * crit; a 64-byte r||s signature valid for that key; claims sub (a SPIFFE
 * ID of the bundle's trust domain), aud (string or array) containing aud,
 * exp > now, nbf <= now when present.  Returns NU_OK with the subject in
 * *out, or NU_EDENIED with the reason. */
int nu_jwt_verify(const char *token, const nu_jwt_bundle_t *bundle,
                  const char *aud, time_t now, nu_spiffeid_t *out,
                  nu_err_t *err);

/* ---- SVID directories and rotation -------------------------------------- */

/* Write svid.pem, svid.key (0600) and bundle.pem into dir (created 0700 if
 * missing).  Each file is written to a temporary name, synced and renamed,
 * so no file is ever partly written.  The three files are not replaced
 * together, so use nu_svid_install for a directory that is read while it
 * changes. */
int nu_svid_write_dir(const char *dir, const nu_svid_t *svid, nu_err_t *err);

/* Install svid at path so that readers never see a key and a certificate
 * of different generations.  path is a symbolic link to a sibling
 * directory ".<name>.<generation>" that contains the three files.  The new
 * generation is written and synced, then a new link replaces path with
 * rename(2), and generations older than the previous one are removed.
 * Reader protocol: open path once with O_DIRECTORY and read the files with
 * openat from that descriptor (nu_svid_read_dir does this), retrying once
 * on ENOENT.  A real directory at path is rejected (NU_EEXIST). */
int nu_svid_install(const char *path, const nu_svid_t *svid, nu_err_t *err);

/* Read the three files of an SVID directory following the reader protocol
 * above.  Returns NU_OK with malloc'd texts.  bundle_pem may be NULL when
 * the bundle is not needed. */
int nu_svid_read_dir(const char *path, char **cert_pem, char **key_pem,
                     char **bundle_pem, nu_err_t *err);

/* A rotator, which keeps the SVID of one workload fresh.  It issues at start
 * and again when half of the current SVID's lifetime has passed, counted
 * from the issue time (notBefore without the back-dating) to notAfter.  A
 * failed rotation is logged and retried after min(10 s, a quarter of the
 * remaining lifetime). */
typedef struct nu_svid_rotator nu_svid_rotator_t;

/* ca must outlive the rotator.  Nothing is issued until rotate or start. */
int nu_svid_rotator_new(nu_ca_t *ca, const char *spiffe_id, int64_t ttl,
                        const char *path, nu_svid_rotator_t **out,
                        nu_err_t *err);

/* Issue and install a new SVID now.  A started rotator calls this itself,
 * so call it directly only on a rotator that is not started: two
 * rotations at once would race for the same generation directory. */
int nu_svid_rotator_rotate(nu_svid_rotator_t *r, nu_err_t *err);

/* Milliseconds until the next rotation is due (0 when due now). */
int64_t nu_svid_rotator_delay_ms(const nu_svid_rotator_t *r);

/* Number of SVIDs installed so far. */
uint64_t nu_svid_rotator_generation(const nu_svid_rotator_t *r);

/* Run the rotator on a libuv loop (a uv_timer in that loop's thread) or on
 * its own thread.  Each issues the first SVID before it returns. */
int nu_svid_rotator_start_uv(nu_svid_rotator_t *r, uv_loop_t *loop,
                             nu_err_t *err);
int nu_svid_rotator_start_thread(nu_svid_rotator_t *r, nu_err_t *err);

/* Stop and free.  For a libuv rotator, call it on the loop's thread; the
 * memory is released in the timer's close callback, on the next loop
 * iteration. */
void nu_svid_rotator_free(nu_svid_rotator_t *r);

#endif
