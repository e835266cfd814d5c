/*
 * node.h - the node's own identity: an X.509-SVID for
 * spiffe://TD/node/HOSTNAME that signs audit checkpoints.
 *
 * When the state directory has a CA (nucleus ca init), the node holds an
 * SVID at HOME/node/svid (svid.pem, svid.key, bundle.pem; installed with
 * nu_svid_install, so readers never see a mixed pair).  The audit log
 * signs its checkpoints with that key and stores the certificate chain in
 * each checkpoint, so a verifier needs only the trust bundle.  Without a
 * CA the audit log keeps its local key pair (HOME/audit/node.key).
 */
#ifndef NUCLEUS_NODE_H
#define NUCLEUS_NODE_H

#include "nucleus/audit.h"
#include "nucleus/error.h"

/* Lifetime of a node SVID, seconds.  A checkpoint must be signed while its
 * certificate is valid, so a node SVID is renewed when less than half of
 * this remains at the time a process opens the log. */
#define NU_NODE_SVID_TTL (30 * 24 * 3600)

/* Fill signer with the node SVID's key and chain, issuing or renewing the
 * SVID first when needed.  Returns NU_OK, NU_ENOENT when home has no CA
 * (the caller falls back to the local key), or another code with err set.
 * Release with nu_audit_signer_free. */
int nu_node_signer(const char *home, nu_audit_signer_t *signer, nu_err_t *err);

/* The CA's trust bundle (PEM, malloc'd) of home, or NULL when it has no
 * CA. */
char *nu_node_bundle(const char *home);

#endif
