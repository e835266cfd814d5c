/*
 * decide_url.c - http(s) URL parsing with canonical hosts for network rules.
 *
 * A network rule is only as strong as the host it is matched against.  The
 * same address has many spellings, and a fetcher that parses a URL
 * differently from the policy check reaches a host the check never saw.
 * So this parser is strict where parsers disagree and canonical where they
 * agree:
 *
 *   1. Scheme "http" or "https" (any case), then "//".  Nothing else.
 *   2. The authority ends at the first '/', '?' or '#'.  A backslash, a
 *      space, a control character or a non-ASCII byte anywhere in the URL
 *      is rejected (WHATWG parsers read '\' as '/', others do not).
 *   3. Credentials ("user:pass@host") are rejected: "http://good@evil/"
 *      is a classic way to dress one host as another.
 *   4. "[...]" is an IPv6 literal (inet_pton); a zone ("%25eth0") is
 *      rejected; an IPv4-mapped address (::ffff:a.b.c.d) becomes the IPv4
 *      address.
 *   5. Otherwise the host is lowercased and one trailing dot removed.  When
 *      its last label is a number (digits, or 0x plus hex digits), the
 *      whole host must be an IPv4 address in an inet_aton form, which
 *      WHATWG accepts too.  That is 1 to 4 parts, each decimal, octal
 *      (leading 0) or hex (0x), the last part filling the remaining
 *      bytes.  It is printed as
 *      dotted decimal, so 2130706433, 0177.1 and 0x7f.0.0.1 all become
 *      127.0.0.1.
 *   6. Anything else must be a DNS name: labels of [a-z0-9_-], none empty,
 *      at most 253 bytes in all.  Percent-encoding in the host is
 *      rejected; IDNA is not supported, so non-ASCII hosts are rejected.
 *   7. The port is 1-65535 in decimal digits, default 80 or 443.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nucleus/decide.h"

#define NU_DNS_NAME_MAX 253

static int nu__url_fail(nu_err_t *err, const char *url, const char *detail)
{
    return nu_err_set(err, NU_EINVAL, "url: cannot parse '%.200s': %s", url,
                      detail);
}

/* Parse one IPv4 part as inet_aton does: 0x hex, leading-0 octal, or
 * decimal.  Returns -1 on a bad digit; values above 2^32 saturate. */
static int64_t nu__ipv4_part(const char *s, size_t len)
{
    int base = 10;
    int64_t value = 0;

    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        len -= 2;
    } else if (len >= 2 && s[0] == '0') {
        base = 8;
        s++;
        len--;
    }
    if (len == 0)
        return base == 16 ? 0 : -1;

    for (size_t i = 0; i < len; i++) {
        int digit;
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (base == 16 && isxdigit(c))
            digit = tolower(c) - 'a' + 10;
        else
            return -1;
        if (digit >= base)
            return -1;
        value = value * base + digit;
        if (value > 0x100000000LL)
            value = 0x100000000LL;
    }
    return value;
}

/* Does the host's last label look like a number (rule 5)? */
static bool nu__ends_in_number(const char *host)
{
    const char *last = strrchr(host, '.');
    last = last ? last + 1 : host;
    if (*last == '\0')
        return false;
    if (last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (const char *p = last + 2; *p; p++)
            if (!isxdigit((unsigned char)*p))
                return false;
        return true;
    }
    for (const char *p = last; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

static int nu__parse_ipv4(const char *host, char *out, size_t size)
{
    int64_t parts[4];
    int n = 0;
    const char *p = host;

    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 4 || len == 0)
            return -1;
        parts[n] = nu__ipv4_part(p, len);
        if (parts[n] < 0)
            return -1;
        n++;
        if (dot == NULL)
            break;
        p = dot + 1;
    }

    uint64_t addr = 0;
    for (int i = 0; i < n - 1; i++) {
        if (parts[i] > 255)
            return -1;
        addr |= (uint64_t)parts[i] << (8 * (3 - i));
    }
    uint64_t last_max = (uint64_t)1 << (8 * (5 - n));
    if ((uint64_t)parts[n - 1] >= last_max)
        return -1;
    addr |= (uint64_t)parts[n - 1];

    snprintf(out, size, "%u.%u.%u.%u", (unsigned)(addr >> 24) & 255,
             (unsigned)(addr >> 16) & 255, (unsigned)(addr >> 8) & 255,
             (unsigned)addr & 255);
    return 0;
}

static int nu__parse_ipv6(const char *text, nu_url_t *out)
{
    struct in6_addr a6;

    if (strchr(text, '%') != NULL || inet_pton(AF_INET6, text, &a6) != 1)
        return -1;
    out->ip = true;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        const uint8_t *b = a6.s6_addr;
        snprintf(out->host, sizeof out->host, "%u.%u.%u.%u", b[12], b[13],
                 b[14], b[15]);
        return 0;
    }
    if (inet_ntop(AF_INET6, &a6, out->host, sizeof out->host) == NULL)
        return -1;
    return 0;
}

static bool nu__dns_name_ok(const char *host)
{
    size_t label = 0;

    if (strlen(host) > NU_DNS_NAME_MAX)
        return false;
    for (const char *p = host;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0)
                return false;
            if (*p == '\0')
                return true;
            label = 0;
            continue;
        }
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
              *p == '-' || *p == '_'))
            return false;
        label++;
    }
}

/* Canonicalize a host that is not in brackets (rules 5 and 6). */
static int nu__parse_name(const char *url, char *host, nu_url_t *out,
                          nu_err_t *err)
{
    size_t len = strlen(host);

    for (size_t i = 0; i < len; i++)
        host[i] = (char)tolower((unsigned char)host[i]);
    if (len > 1 && host[len - 1] == '.')
        host[--len] = '\0';
    if (len == 0)
        return nu__url_fail(err, url, "empty host");
    if (strchr(host, '%') != NULL)
        return nu__url_fail(err, url, "percent-encoded host");

    if (nu__ends_in_number(host)) {
        if (nu__parse_ipv4(host, out->host, sizeof out->host) != 0)
            return nu__url_fail(err, url, "invalid IPv4 address");
        out->ip = true;
        return NU_OK;
    }
    if (!nu__dns_name_ok(host))
        return nu__url_fail(err, url, "invalid host name");
    snprintf(out->host, sizeof out->host, "%s", host);
    return NU_OK;
}

static int nu__parse_port(const char *url, const char *text, nu_url_t *out,
                          nu_err_t *err)
{
    long port = 0;

    if (*text == '\0')
        return NU_OK; /* "host:" means the default port */
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p) || port > 65535)
            return nu__url_fail(err, url, "invalid port");
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return nu__url_fail(err, url, "port out of range 1-65535");
    out->port = (int)port;
    return NU_OK;
}

static int nu__check_chars(const char *url, nu_err_t *err)
{
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return nu__url_fail(err, url,
                                "space, control or non-ASCII character "
                                "(percent-encode it; IDNA hosts are not "
                                "supported)");
        if (*p == '\\')
            return nu__url_fail(err, url, "backslash");
    }
    return NU_OK;
}

static int nu__parse_scheme(const char *url, nu_url_t *out, const char **rest,
                            nu_err_t *err)
{
    if (strncasecmp(url, "http://", 7) == 0) {
        out->https = false;
        out->port = 80;
        *rest = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        out->https = true;
        out->port = 443;
        *rest = url + 8;
    } else {
        return nu__url_fail(err, url, "scheme must be http:// or https://");
    }
    return NU_OK;
}

int nu_url_parse(const char *url, nu_url_t *out, nu_err_t *err)
{
    char authority[NU_URL_HOST_MAX + 16];
    const char *rest = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (strlen(url) > NU_DECIDE_MAX_URL)
        return nu__url_fail(err, url, "longer than 8192 bytes");
    rc = nu__check_chars(url, err);
    if (rc != NU_OK)
        return rc;
    rc = nu__parse_scheme(url, out, &rest, err);
    if (rc != NU_OK)
        return rc;

    size_t alen = strcspn(rest, "/?#");
    if (alen >= sizeof authority)
        return nu__url_fail(err, url, "host too long");
    memcpy(authority, rest, alen);
    authority[alen] = '\0';
    if (strchr(authority, '@') != NULL)
        return nu__url_fail(err, url,
                            "credentials in the URL are not allowed");

    if (authority[0] == '[') {
        char *close = strchr(authority, ']');
        if (close == NULL)
            return nu__url_fail(err, url, "unterminated IPv6 literal");
        *close = '\0';
        if (close[1] != '\0' && close[1] != ':')
            return nu__url_fail(err, url, "junk after IPv6 literal");
        if (nu__parse_ipv6(authority + 1, out) != 0)
            return nu__url_fail(err, url, "invalid IPv6 literal");
        return close[1] == ':' ? nu__parse_port(url, close + 2, out, err)
                               : NU_OK;
    }

    char *colon = strchr(authority, ':');
    if (colon != NULL) {
        *colon = '\0';
        rc = nu__parse_port(url, colon + 1, out, err);
        if (rc != NU_OK)
            return rc;
    }
    return nu__parse_name(url, authority, out, err);
}
