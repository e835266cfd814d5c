/*
 * approval_key.c - canonical approval keys.
 *
 * A key is "<operation>:<hex SHA-256 of the call's RFC 8785 canonical
 * JSON>".  The canonical form makes the key independent of key order and
 * number spelling in the request, so an approval granted for one request
 * matches the same request sent again, and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>

#include "nucleus/decide.h"
#include "nucleus/digest.h"
#include "nucleus/json.h"

int nu_approval_key(nu_op_t op, const json_t *call,
                    char out[NU_APPROVAL_KEY_MAX])
{
    char hex[NU_SHA256_HEX_LEN + 1];
    nu_err_t err = {.code = NU_EINVAL};
    size_t len;

    out[0] = '\0';
    if (call == NULL || (int)op < 0 || op >= NU_OP_COUNT)
        return NU_EINVAL;

    char *canon = nu_json_canonical(call, &len, &err);
    if (canon == NULL)
        return err.code < 0 ? err.code : NU_EINVAL;

    nu_sha256_hex(canon, len, hex);
    free(canon);
    snprintf(out, NU_APPROVAL_KEY_MAX, "%s:%s", nu_op_name(op), hex);
    return NU_OK;
}
