/*
 * mtls.h - mutual TLS between workloads that hold X.509-SVIDs (mbedTLS 2.28).
 *
 * Both sides present an SVID and require one from the peer.  The peer's
 * chain must reach the trust bundle of the expected trust domain.  A verify
 * callback applies the SPIFFE rules of nu_svid_check_chain (one URI SAN,
 * leaf not a CA, key usages, intermediates are CAs with keyCertSign) and
 * rejects IDs outside the expected trust domain.  After the handshake
 * the caller reads the peer's SPIFFE ID with nu_mtls_peer_id and decides
 * what that ID may do; nothing here authorizes beyond the trust domain.
 *
 * Protocol: TLS 1.2 only, ECDHE-ECDSA with AES-128-GCM-SHA256 or
 * AES-256-GCM-SHA384, key exchange over X25519 (preferred) or P-256, and
 * P-256 certificates.  mbedTLS 2.28's TLS 1.3 support is
 * experimental (and off in Debian's build), so it is not offered.
 *
 * Session resumption is on by default: a server keeps recent sessions for
 * NU_MTLS_SESSION_TTL seconds and a client offers its last session, so a
 * repeated connection skips the public-key operations.  The peer's
 * certificate from the session is checked again for the SPIFFE rules,
 * the trust domain and its dates on every handshake.
 *
 * The connection runs over a connected socket that the caller owns and
 * closes; on TCP the handshake turns on TCP_NODELAY.  Calls block;
 * timeout_ms bounds each wait for data.
 */
#ifndef NUCLEUS_MTLS_H
#define NUCLEUS_MTLS_H

#include <stddef.h>
#include <sys/types.h>

#include "nucleus/error.h"
#include "nucleus/spiffeid.h"

#define NU_MTLS_SESSION_TTL 300 /* seconds a server keeps a session */

typedef enum { NU_MTLS_CLIENT, NU_MTLS_SERVER } nu_mtls_role_t;

typedef struct nu_mtls_config nu_mtls_config_t;
typedef struct nu_mtls_conn nu_mtls_conn_t;

/* Build a configuration from our SVID (cert_pem: leaf then intermediates;
 * key_pem) and the trust bundle of expected_td (NULL: our own SVID's trust
 * domain).  Our SVID must pass nu_svid_check_chain and match the key.
 * timeout_ms bounds every read (0: wait forever).  Returns NU_OK,
 * NU_EPARSE, NU_EDENIED or NU_ECRYPTO.  The configuration may serve many
 * connections on many threads; only its session cache changes, under a
 * lock. */
int nu_mtls_config_new(nu_mtls_role_t role, const char *cert_pem,
                       const char *key_pem, const char *bundle_pem,
                       const char *expected_td, int timeout_ms,
                       nu_mtls_config_t **out, nu_err_t *err);

/* The same from an SVID directory (svid.pem, svid.key, bundle.pem), read
 * with nu_svid_read_dir.  A later rotation needs a new configuration. */
int nu_mtls_config_from_dir(nu_mtls_role_t role, const char *dir,
                            const char *expected_td, int timeout_ms,
                            nu_mtls_config_t **out, nu_err_t *err);

/* Turn session resumption on (the default) or off; call it before the
 * configuration serves any connection. */
void nu_mtls_config_set_resumption(nu_mtls_config_t *cfg, int enabled);

/* Free a configuration after every connection that uses it is closed. */
void nu_mtls_config_free(nu_mtls_config_t *cfg);

/* Run the handshake over fd.  Returns NU_OK with *out set; NU_EDENIED when
 * the peer's certificate is rejected (err gives the SPIFFE or X.509
 * reason); NU_ETIMEDOUT; NU_EPROTO for other TLS failures. */
int nu_mtls_handshake(const nu_mtls_config_t *cfg, int fd,
                      nu_mtls_conn_t **out, nu_err_t *err);

/* The peer's validated SPIFFE ID. */
const nu_spiffeid_t *nu_mtls_peer_id(const nu_mtls_conn_t *conn);

/* 1 when this client connection resumed the session it offered, else 0
 * (always 0 on a server). */
int nu_mtls_resumed(const nu_mtls_conn_t *conn);

/* The negotiated ciphersuite's IANA name. */
const char *nu_mtls_ciphersuite(const nu_mtls_conn_t *conn);

/* Read up to len bytes.  Returns the count, 0 when the peer closed the
 * connection, or a negative NU_E* code. */
ssize_t nu_mtls_read(nu_mtls_conn_t *conn, void *buf, size_t len,
                     nu_err_t *err);

/* Write all len bytes.  Returns NU_OK or a negative NU_E* code. */
int nu_mtls_write(nu_mtls_conn_t *conn, const void *buf, size_t len,
                  nu_err_t *err);

/* Send close_notify (best effort) and free conn; the fd stays open. */
void nu_mtls_close(nu_mtls_conn_t *conn);

#endif
