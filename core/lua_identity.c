/*
 * lua_identity.c - nucleus.identity: SPIFFE identities for orchestrators.
 *
 *   nucleus.identity.parse(id)                -> {id, trust_domain, path} | nil, err
 *   nucleus.identity.bundle([home])           -> PEM trust bundle of the local CA
 *   nucleus.identity.issue(id [, ttl [, home]]) -> {cert_pem, key_pem, bundle_pem,
 *                                                  id, not_before, not_after}
 *   nucleus.identity.verify(cert_pem, bundle_pem [, trust_domain])
 *                                             -> id | nil, reason
 *   nucleus.identity.jwt(id, aud [, ttl [, home]]) -> token
 *   nucleus.identity.jwt_verify(token, aud [, home]) -> id | nil, reason
 *   nucleus.identity.connect{host=, port=, svid_dir=, trust_domain=, timeout=}
 *       -> conn with conn:send(s), conn:receive() (one line), conn:peer_id(),
 *          conn:close(): an mTLS client that accepts only a peer holding an
 *          X.509-SVID of the trust domain.
 *
 * Errors that concern the identity (an invalid SVID, a wrong trust domain)
 * return nil and a reason; misuse (wrong argument types) raises.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "nucleus/home.h"
#include "nucleus/identity.h"
#include "nucleus/mtls.h"

#define NU__CONN_MT "nucleus.identity.conn"

static int nu__fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

static nu_ca_t *nu__load_ca(lua_State *L, int home_idx)
{
    const char *home = luaL_optstring(L, home_idx, NULL);
    char dir[4200];
    nu_ca_t *ca;
    nu_err_t err;

    if (nu_home_path(home, "ca", dir, sizeof dir, &err) != NU_OK ||
        nu_ca_load(dir, &ca, &err) != NU_OK)
        luaL_error(L, "identity: %s (run 'nucleus ca init' first)", err.msg);
    return ca;
}

static int nu__parse(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    nu_spiffeid_t id;
    nu_err_t err;

    if (nu_spiffeid_parse(text, len, &id, &err) != NU_OK)
        return nu__fail(L, err.msg);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, id.id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, id.trust_domain);
    lua_setfield(L, -2, "trust_domain");
    lua_pushstring(L, nu_spiffeid_path(&id));
    lua_setfield(L, -2, "path");
    return 1;
}

static int nu__bundle(lua_State *L)
{
    nu_ca_t *ca = nu__load_ca(L, 1);

    lua_pushstring(L, nu_ca_bundle_pem(ca));
    nu_ca_free(ca);
    return 1;
}

static int nu__issue(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    lua_Integer ttl = luaL_optinteger(L, 2, 0);
    nu_ca_t *ca = nu__load_ca(L, 3);
    nu_svid_t svid = { 0 };
    nu_err_t err;
    int rc = nu_ca_issue(ca, id, ttl, &svid, &err);

    nu_ca_free(ca);
    if (rc != NU_OK)
        return nu__fail(L, err.msg);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, svid.cert_pem);
    lua_setfield(L, -2, "cert_pem");
    lua_pushstring(L, svid.key_pem);
    lua_setfield(L, -2, "key_pem");
    lua_pushstring(L, svid.bundle_pem);
    lua_setfield(L, -2, "bundle_pem");
    lua_pushstring(L, svid.id.id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)svid.not_before);
    lua_setfield(L, -2, "not_before");
    lua_pushinteger(L, (lua_Integer)svid.not_after);
    lua_setfield(L, -2, "not_after");
    nu_svid_free(&svid);
    return 1;
}

static int nu__verify(lua_State *L)
{
    size_t clen, blen;
    const char *cert = luaL_checklstring(L, 1, &clen);
    const char *bundle = luaL_checklstring(L, 2, &blen);
    const char *td = luaL_optstring(L, 3, NULL);
    nu_bundle_set_t *set = nu_bundle_set_new();
    mbedtls_x509_crt chain;
    nu_spiffeid_t id;
    nu_err_t err;
    int rc;

    mbedtls_x509_crt_init(&chain);
    rc = set == NULL ? NU_ENOMEM : nu_x509_parse_certs(cert, clen, &chain, &err);
    if (rc >= 0)
        rc = nu_bundle_set_add_pem(set, NULL, bundle, blen, &err);
    if (rc >= 0)
        rc = nu_svid_verify(&chain, set, td, &id, &err);
    mbedtls_x509_crt_free(&chain);
    nu_bundle_set_free(set);

    if (rc < 0)
        return nu__fail(L, rc == NU_ENOMEM ? "out of memory" : err.msg);
    lua_pushstring(L, id.id);
    return 1;
}

static int nu__jwt(lua_State *L)
{
    const char *id = luaL_checkstring(L, 1);
    const char *aud = luaL_checkstring(L, 2);
    lua_Integer ttl = luaL_optinteger(L, 3, 0);
    nu_ca_t *ca = nu__load_ca(L, 4);
    char *token = NULL;
    nu_err_t err;
    int rc = nu_jwt_issue(ca, id, &aud, 1, ttl, &token, &err);

    nu_ca_free(ca);
    if (rc != NU_OK)
        return nu__fail(L, err.msg);
    lua_pushstring(L, token);
    free(token);
    return 1;
}

static int nu__jwt_verify(lua_State *L)
{
    const char *token = luaL_checkstring(L, 1);
    const char *aud = luaL_checkstring(L, 2);
    nu_ca_t *ca = nu__load_ca(L, 3);
    nu_jwt_bundle_t *bundle = NULL;
    nu_spiffeid_t id;
    nu_err_t err;
    int rc = nu_jwt_bundle_from_ca(ca, &bundle, &err);

    if (rc == NU_OK)
        rc = nu_jwt_verify(token, bundle, aud, time(NULL), &id, &err);
    nu_jwt_bundle_free(bundle);
    nu_ca_free(ca);
    if (rc != NU_OK)
        return nu__fail(L, err.msg);
    lua_pushstring(L, id.id);
    return 1;
}

/* --- mTLS client -------------------------------------------------------- */

typedef struct nu_lconn {
    nu_mtls_config_t *cfg;
    nu_mtls_conn_t *conn;
    int fd;
    char *buf;       /* bytes received after the last line */
    size_t len;
} nu_lconn_t;

static nu_lconn_t *nu__check_conn(lua_State *L)
{
    nu_lconn_t *c = luaL_checkudata(L, 1, NU__CONN_MT);

    if (c->conn == NULL)
        luaL_error(L, "identity: connection is closed");
    return c;
}

static int nu__conn_close(lua_State *L)
{
    nu_lconn_t *c = luaL_checkudata(L, 1, NU__CONN_MT);

    nu_mtls_close(c->conn);
    c->conn = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    nu_mtls_config_free(c->cfg);
    c->cfg = NULL;
    free(c->buf);
    c->buf = NULL;
    return 0;
}

static int nu__conn_send(lua_State *L)
{
    nu_lconn_t *c = nu__check_conn(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    nu_err_t err;

    if (nu_mtls_write(c->conn, data, len, &err) != NU_OK)
        return nu__fail(L, err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* Receive one line (without its newline), or nil at end of stream. */
static int nu__conn_receive(lua_State *L)
{
    nu_lconn_t *c = nu__check_conn(L);
    nu_err_t err;

    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            lua_pushlstring(L, c->buf, n);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return 1;
        }
        char *grown = realloc(c->buf, c->len + 65536);
        if (grown == NULL)
            return luaL_error(L, "identity: out of memory");
        c->buf = grown;
        ssize_t got = nu_mtls_read(c->conn, c->buf + c->len, 65536, &err);
        if (got < 0)
            return nu__fail(L, err.msg);
        if (got == 0)
            return nu__fail(L, "connection closed");
        c->len += (size_t)got;
    }
}

static int nu__conn_peer(lua_State *L)
{
    nu_lconn_t *c = nu__check_conn(L);

    lua_pushstring(L, nu_mtls_peer_id(c->conn)->id);
    return 1;
}

static int nu__tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
    int fd = -1;

    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int nu__connect(lua_State *L)
{
    const char *host, *dir, *td;
    char port[16];
    lua_Integer timeout;
    nu_lconn_t *c;
    nu_err_t err;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "host");
    host = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "port");
    snprintf(port, sizeof port, "%d", (int)luaL_checkinteger(L, -1));
    lua_getfield(L, 1, "svid_dir");
    dir = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "trust_domain");
    td = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "timeout");
    timeout = luaL_optinteger(L, -1, 10);

    c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    luaL_setmetatable(L, NU__CONN_MT);

    if (nu_mtls_config_from_dir(NU_MTLS_CLIENT, dir, td, (int)timeout * 1000,
                                &c->cfg, &err) != NU_OK)
        return nu__fail(L, err.msg);
    c->fd = nu__tcp_connect(host, port);
    if (c->fd < 0)
        return nu__fail(L, "cannot connect to the server");
    if (nu_mtls_handshake(c->cfg, c->fd, &c->conn, &err) != NU_OK)
        return nu__fail(L, err.msg);
    return 1;
}

void nu__lua_register_identity(lua_State *L);

/* Add nucleus.identity to the module table at the top of the stack. */
void nu__lua_register_identity(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "parse", nu__parse }, { "bundle", nu__bundle },
        { "issue", nu__issue }, { "verify", nu__verify },
        { "jwt", nu__jwt }, { "jwt_verify", nu__jwt_verify },
        { "connect", nu__connect }, { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "send", nu__conn_send }, { "receive", nu__conn_receive },
        { "peer_id", nu__conn_peer }, { "close", nu__conn_close },
        { NULL, NULL },
    };

    if (luaL_newmetatable(L, NU__CONN_MT)) {
        lua_pushcfunction(L, nu__conn_close);
        lua_setfield(L, -2, "__gc");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);

    luaL_newlib(L, functions);
    lua_setfield(L, -2, "identity");
}
