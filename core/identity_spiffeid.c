/*
 * identity_spiffeid.c - parse and build SPIFFE IDs (rules in spiffeid.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nucleus/spiffeid.h"

#define NU__SCHEME "spiffe://"
#define NU__SCHEME_LEN (sizeof NU__SCHEME - 1)

/* Copy up to 96 bytes of text into buf for an error message, replacing
 * bytes outside printable ASCII (NUL, control characters, UTF-8) by '?'. */
static const char *nu__quote(const char *text, size_t len, char *buf,
                             size_t size)
{
    size_t n = 0, max = size - 4;

    if (max > 96)
        max = 96;
    for (size_t i = 0; i < len && n < max; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > max)
        buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
    buf[n] = '\0';
    return buf;
}

static int nu__is_td_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int nu__is_segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* Explain why c is not allowed in a trust domain. */
static const char *nu__td_char_problem(char c)
{
    if (c >= 'A' && c <= 'Z')
        return "trust domain contains an uppercase letter (trust domains "
               "are lowercase)";
    if (c == ':')
        return "trust domain contains ':' (ports are not allowed)";
    if (c == '@')
        return "trust domain contains '@' (user info is not allowed)";
    if (c == '%')
        return "trust domain contains '%' (percent-encoding is not allowed)";
    if (c == '?' || c == '#')
        return "a query or fragment is not allowed";
    return "trust domain contains a character other than a-z, 0-9, '.', "
           "'-' and '_'";
}

static const char *nu__segment_char_problem(char c)
{
    if (c == '%')
        return "path contains '%' (percent-encoding is not allowed)";
    if (c == '?')
        return "path contains '?' (a query is not allowed)";
    if (c == '#')
        return "path contains '#' (a fragment is not allowed)";
    return "path contains a character other than a-z, A-Z, 0-9, '.', '-' "
           "and '_'";
}

/* Validate the trust domain text[0..len).  Returns NULL or the problem. */
static const char *nu__check_trust_domain(const char *text, size_t len)
{
    if (len == 0)
        return "trust domain is missing";
    if (len > NU_TRUST_DOMAIN_MAX)
        return "trust domain is longer than 255 bytes";
    for (size_t i = 0; i < len; i++)
        if (!nu__is_td_char(text[i]))
            return nu__td_char_problem(text[i]);
    return NULL;
}

/* Validate a path ("" or "/seg/seg").  Returns NULL or the problem. */
static const char *nu__check_path(const char *path, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t start;

        if (path[i] != '/')
            return nu__segment_char_problem(path[i]);
        start = ++i;
        while (i < len && path[i] != '/') {
            if (!nu__is_segment_char(path[i]))
                return nu__segment_char_problem(path[i]);
            i++;
        }
        if (i == start)
            return "path has an empty segment (double or trailing slash)";
        if ((i - start == 1 && path[start] == '.') ||
            (i - start == 2 && path[start] == '.' && path[start + 1] == '.'))
            return "path has a '.' or '..' segment";
    }
    return NULL;
}

static int nu__reject(nu_err_t *err, const char *text, size_t len,
                      const char *problem)
{
    char quoted[128];

    return nu_err_set(err, NU_EPARSE, "spiffeid: invalid SPIFFE ID '%s': %s",
                      nu__quote(text, len, quoted, sizeof quoted), problem);
}

int nu_spiffeid_parse(const char *text, size_t len, nu_spiffeid_t *out,
                      nu_err_t *err)
{
    const char *td, *end = text + len, *slash;
    const char *problem;
    size_t td_len;

    if (len == 0)
        return nu__reject(err, text, len, "the ID is empty");
    if (len > NU_SPIFFEID_MAX)
        return nu__reject(err, text, len, "the ID is longer than 2048 bytes");
    if (memchr(text, '\0', len) != NULL)
        return nu__reject(err, text, len, "the ID contains a NUL byte");
    if (len < NU__SCHEME_LEN || memcmp(text, NU__SCHEME, NU__SCHEME_LEN) != 0)
        return nu__reject(err, text, len, "scheme is missing or invalid "
                          "(expected lowercase 'spiffe://')");

    td = text + NU__SCHEME_LEN;
    slash = memchr(td, '/', (size_t)(end - td));
    td_len = (size_t)((slash != NULL ? slash : end) - td);
    problem = nu__check_trust_domain(td, td_len);
    if (problem == NULL)
        problem = nu__check_path(td + td_len, (size_t)(end - td - td_len));
    if (problem != NULL)
        return nu__reject(err, text, len, problem);

    memcpy(out->id, text, len);
    out->id[len] = '\0';
    memcpy(out->trust_domain, td, td_len);
    out->trust_domain[td_len] = '\0';
    out->path_offset = NU__SCHEME_LEN + td_len;
    return NU_OK;
}

int nu_spiffeid_parse_trust_domain(const char *text,
                                   char out[NU_TRUST_DOMAIN_MAX + 1],
                                   nu_err_t *err)
{
    size_t len = strlen(text);
    const char *problem;
    char quoted[128];

    if (len >= NU__SCHEME_LEN && memcmp(text, NU__SCHEME, NU__SCHEME_LEN) == 0) {
        text += NU__SCHEME_LEN;
        len -= NU__SCHEME_LEN;
    }
    problem = nu__check_trust_domain(text, len);
    if (problem != NULL)
        return nu_err_set(err, NU_EPARSE, "spiffeid: invalid trust domain "
                          "'%s': %s", nu__quote(text, len, quoted,
                          sizeof quoted), problem);
    memcpy(out, text, len);
    out[len] = '\0';
    return NU_OK;
}

const char *nu_spiffeid_path(const nu_spiffeid_t *id)
{
    return id->id + id->path_offset;
}

int nu_spiffeid_member_of(const nu_spiffeid_t *id, const char *td)
{
    return td != NULL && strcmp(id->trust_domain, td) == 0;
}

/* Format into a buffer and parse the result, so that a built ID obeys the
 * same rules as a parsed one. */
static int nu__build(nu_spiffeid_t *out, nu_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int nu__build(nu_spiffeid_t *out, nu_err_t *err, const char *fmt, ...)
{
    char buf[NU_SPIFFEID_MAX + 2];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return nu_err_set(err, NU_EINTERNAL, "spiffeid: cannot format ID");
    if ((size_t)n >= sizeof buf)
        return nu_err_set(err, NU_EPARSE, "spiffeid: invalid SPIFFE ID: the "
                          "ID is longer than 2048 bytes");
    return nu_spiffeid_parse(buf, (size_t)n, out, err);
}

static int nu__check_segment(const char *what, const char *seg, nu_err_t *err)
{
    char path[NU_SPIFFEID_MAX + 2];
    const char *problem;
    char quoted[128];
    int n = snprintf(path, sizeof path, "/%s", seg);

    if (n < 0 || (size_t)n >= sizeof path)
        return nu_err_set(err, NU_EPARSE, "spiffeid: invalid %s: longer "
                          "than 2048 bytes", what);
    problem = nu__check_path(path, (size_t)n);
    if (problem == NULL && strchr(seg, '/') != NULL)
        problem = "contains '/'";
    if (problem != NULL)
        return nu_err_set(err, NU_EPARSE, "spiffeid: invalid %s '%s': %s",
                          what, nu__quote(seg, strlen(seg), quoted,
                          sizeof quoted), problem);
    return NU_OK;
}

int nu_spiffeid_for_pod(const char *td, const char *ns, const char *pod_id,
                        nu_spiffeid_t *out, nu_err_t *err)
{
    int rc = nu__check_segment("namespace", ns, err);

    if (rc == NU_OK)
        rc = nu__check_segment("pod id", pod_id, err);
    if (rc != NU_OK)
        return rc;
    return nu__build(out, err, NU__SCHEME "%s/ns/%s/pod/%s", td, ns, pod_id);
}

int nu_spiffeid_for_node(const char *td, const char *node, nu_spiffeid_t *out,
                         nu_err_t *err)
{
    int rc = nu__check_segment("node name", node, err);

    if (rc != NU_OK)
        return rc;
    return nu__build(out, err, NU__SCHEME "%s/node/%s", td, node);
}
