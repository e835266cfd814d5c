/*
 * net_fetch.c - the web_fetch tool on libcurl.
 *
 * Rules, per hop (at most max_redirects + 1 hops):
 *   1. The URL must parse with nu_url_parse (http or https, no
 *      credentials, canonical host), and the host and port must pass
 *      nu_perm_check_host before curl opens any connection.
 *   2. curl never follows redirects itself (CURLOPT_FOLLOWLOCATION off);
 *      a 301/302/303/307/308 with a Location becomes the next hop, so
 *      rule 1 applies to every hop.  303, and 301/302 after a POST,
 *      switch to GET without a body, as browsers do.
 *   3. Through a pod's proxy, the proxy checks the destination again and
 *      resolves names.  Without a proxy, a socket callback refuses
 *      loopback, link-local, multicast and host addresses as the proxy
 *      does.
 *   4. The body is capped at max_bytes (the result says "truncated"), the
 *      whole call at timeout_ms, and TLS peers are verified unless
 *      insecure is set.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "net_internal.h"
#include "nucleus/decide.h"
#include "nucleus/log.h"

#define NU__FETCH_MAX_DEFAULT (10u << 20)
#define NU__FETCH_TIMEOUT_DEFAULT 30000

void nu_fetch_opts_init(nu_fetch_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_redirects = -1;
}

static pthread_once_t nu__curl_once = PTHREAD_ONCE_INIT;

static void nu__curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *data;
    size_t len;
    size_t max;
    bool truncated;
    json_t *headers;
    bool direct;          /* no proxy: check socket addresses */
} nu__sink_t;

static size_t nu__on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    nu__sink_t *s = arg;
    size_t n = size * nmemb;
    size_t take = n;

    if (s->len + take > s->max) {
        take = s->max - s->len;
        s->truncated = true;
    }
    if (take > 0) {
        char *bigger = realloc(s->data, s->len + take + 1);
        if (bigger == NULL)
            return 0;
        s->data = bigger;
        memcpy(s->data + s->len, ptr, take);
        s->len += take;
        s->data[s->len] = '\0';
    }
    return s->truncated ? 0 : n;   /* 0 stops the transfer */
}

static size_t nu__on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    nu__sink_t *s = arg;
    size_t n = size * nmemb;
    char *colon = memchr(ptr, ':', n);

    /* A status line starts a new response (proxy CONNECT, 100-continue). */
    if (n > 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        json_object_clear(s->headers);
        return n;
    }
    if (colon == NULL)
        return n;

    char name[128];
    size_t nlen = (size_t)(colon - ptr);
    if (nlen == 0 || nlen >= sizeof name)
        return n;
    for (size_t i = 0; i < nlen; i++)
        name[i] = (char)((ptr[i] >= 'A' && ptr[i] <= 'Z') ? ptr[i] + 32 : ptr[i]);
    name[nlen] = '\0';

    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                        v[vlen - 1] == ' '))
        vlen--;

    json_t *old = json_object_get(s->headers, name);
    if (old != NULL) {
        char *joined = NULL;
        if (asprintf(&joined, "%s, %.*s", json_string_value(old), (int)vlen,
                     v) >= 0) {
            json_object_set_new(s->headers, name, json_string(joined));
            free(joined);
        }
    } else {
        json_object_set_new(s->headers, name, json_stringn(v, vlen));
    }
    return n;
}

static curl_socket_t nu__on_open(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *addr)
{
    (void)arg;
    if (purpose != CURLSOCKTYPE_IPCXN || addr->family != AF_INET) {
        /* IPv6 destinations are not allowed without a proxy. */
        return CURL_SOCKET_BAD;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)&addr->addr;
    if (nu__net_addr_forbidden(NULL, sin->sin_addr.s_addr,
                               ntohs(sin->sin_port)))
        return CURL_SOCKET_BAD;
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static json_t *nu__fail(const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *nu__fail(const char *kind, const char *fmt, ...)
{
    char msg[NU_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", kind, "error", msg);
}

static const char nu__b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *nu__base64(const char *data, size_t len)
{
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    size_t o = 0;
    json_t *value;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(uint8_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)(uint8_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= (uint8_t)data[i + 2];
        out[o++] = nu__b64[(v >> 18) & 63];
        out[o++] = nu__b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? nu__b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? nu__b64[v & 63] : '=';
    }
    out[o] = '\0';
    value = json_stringn(out, o);
    free(out);
    return value;
}

/* Validate the call's optional fields; returns NULL or an error result. */
static json_t *nu__check_call(const json_t *call, const char **method,
                              const char **body, size_t *body_len,
                              size_t *max_bytes)
{
    static const char *const methods[] = { "GET", "HEAD", "POST", "PUT",
                                           "PATCH", "DELETE", "OPTIONS" };
    json_t *m = json_object_get(call, "method");
    json_t *b = json_object_get(call, "body");
    json_t *h = json_object_get(call, "headers");
    json_t *cap = json_object_get(call, "max_bytes");
    const char *name;
    json_t *value;
    bool known = false;

    *method = m != NULL ? json_string_value(m) : "GET";
    for (size_t i = 0; *method != NULL && i < 7; i++)
        known = known || strcmp(*method, methods[i]) == 0;
    if (!known)
        return nu__fail("invalid_request", "web_fetch: invalid method (use "
                        "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)");
    if (b != NULL && !json_is_string(b))
        return nu__fail("invalid_request", "web_fetch: body must be a string");
    *body = b != NULL ? json_string_value(b) : NULL;
    *body_len = b != NULL ? json_string_length(b) : 0;
    if (cap != NULL) {
        if (!json_is_integer(cap) || json_integer_value(cap) < 1)
            return nu__fail("invalid_request",
                            "web_fetch: max_bytes must be a positive integer");
        if ((size_t)json_integer_value(cap) < *max_bytes)
            *max_bytes = (size_t)json_integer_value(cap);
    }
    if (h != NULL && !json_is_object(h))
        return nu__fail("invalid_request", "web_fetch: headers must be an object");
    json_object_foreach((json_t *)h, name, value) {
        if (!json_is_string(value) || strpbrk(name, "\r\n: ") != NULL ||
            strpbrk(json_string_value(value), "\r\n") != NULL || name[0] == '\0')
            return nu__fail("invalid_request", "web_fetch: invalid header '%s'",
                            name);
        if (strcasecmp(name, "host") == 0 || strncasecmp(name, "proxy-", 6) == 0)
            return nu__fail("invalid_request", "web_fetch: header '%s' is set "
                            "by the fetch itself", name);
    }
    return NULL;
}

static struct curl_slist *nu__header_list(const json_t *call)
{
    json_t *h = json_object_get(call, "headers");
    struct curl_slist *list = NULL;
    const char *name;
    json_t *value;

    json_object_foreach(h, name, value) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", name, json_string_value(value)) < 0)
            continue;
        struct curl_slist *next = curl_slist_append(list, line);
        free(line);
        if (next != NULL)
            list = next;
    }
    return list;
}

static struct curl_slist *nu__resolve_list(const char *const *hosts,
                                           const nu_url_t *u)
{
    const char *addr = nu__net_hosts_lookup(hosts, u->host);
    char *entry = NULL;
    struct curl_slist *list;

    if (addr == NULL || asprintf(&entry, "%s:%d:%s", u->host, u->port, addr) < 0)
        return NULL;
    list = curl_slist_append(NULL, entry);
    free(entry);
    return list;
}

static long nu__remaining_ms(const struct timespec *start, uint32_t timeout_ms)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    long used = (now.tv_sec - start->tv_sec) * 1000L +
                (now.tv_nsec - start->tv_nsec) / 1000000L;
    return (long)timeout_ms - used;
}

typedef struct {
    const nu_fetch_opts_t *opts;
    const json_t *call;
    const char *method;
    const char *body;
    size_t body_len;
    long timeout_ms;
    nu__sink_t sink;
    long status;
    char *location;       /* next hop, absolute */
    char proxy_error[CURL_ERROR_SIZE];
} nu__hop_t;

/* Run one request; returns NULL on success or an error result. */
static json_t *nu__hop(nu__hop_t *hop, const char *url, const nu_url_t *u)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL, *resolve = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    json_t *fail = NULL;
    CURLcode rc;
    long connect_code = 0;
    char *redirect = NULL;

    if (curl == NULL)
        return nu__fail("internal", "web_fetch: cannot start curl");
    hop->sink.direct = hop->opts->proxy == NULL;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, hop->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, nu__on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &hop->sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, nu__on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &hop->sink);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "nucleus-web-fetch/" NU_VERSION);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, hop->opts->insecure ? 0L : 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, hop->opts->insecure ? 0L : 2L);
    if (hop->opts->ca_file != NULL)
        curl_easy_setopt(curl, CURLOPT_CAINFO, hop->opts->ca_file);
    /* An empty CURLOPT_PROXY also ignores the *_proxy variables. */
    curl_easy_setopt(curl, CURLOPT_PROXY,
                     hop->opts->proxy != NULL ? hop->opts->proxy : "");
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "");
    if (hop->opts->proxy != NULL && hop->opts->proxy_credential != NULL) {
        curl_easy_setopt(curl, CURLOPT_PROXYUSERPWD,
                         hop->opts->proxy_credential);
        curl_easy_setopt(curl, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
    }
    if (hop->opts->proxy == NULL) {
        curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, nu__on_open);
        curl_easy_setopt(curl, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4);
        resolve = nu__resolve_list(hop->opts->hosts, u);
        if (resolve != NULL)
            curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
    }
    if (strcmp(hop->method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else if (strcmp(hop->method, "GET") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, hop->method);
    if (hop->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, hop->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)hop->body_len);
    }
    headers = nu__header_list(hop->call);
    if (headers != NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &hop->status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    if (curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK &&
        redirect != NULL)
        hop->location = strdup(redirect);

    if (rc == CURLE_WRITE_ERROR && hop->sink.truncated)
        rc = CURLE_OK;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        fail = nu__fail("timeout", "web_fetch: %s timed out", url);
    else if (connect_code == 403)
        fail = nu__fail("network_denied", "web_fetch: the egress proxy refused "
                        "%s:%d", u->host, u->port);
    else if (connect_code >= 400)
        fail = nu__fail("io_error", "web_fetch: the egress proxy cannot reach "
                        "%s:%d (CONNECT status %ld: the name does not resolve "
                        "or the connection failed)", u->host, u->port,
                        connect_code);
    else if (rc == CURLE_COULDNT_CONNECT && hop->opts->proxy == NULL &&
             strstr(errbuf, "socket") != NULL)
        fail = nu__fail("network_denied", "web_fetch: %s resolves to an "
                        "address that is not allowed", u->host);
    else if (rc != CURLE_OK)
        fail = nu__fail("io_error", "web_fetch: cannot fetch %s: %s", url,
                        errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));

    curl_slist_free_all(headers);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(curl);
    return fail;
}

static json_t *nu__result(nu__hop_t *hop, const char *url)
{
    json_t *body;

    if (hop->sink.data == NULL)
        body = json_string("");
    else
        body = json_stringn(hop->sink.data, hop->sink.len);
    json_t *result = json_pack("{s:b,s:I,s:O,s:b,s:s}", "ok", 1, "status",
                               (json_int_t)hop->status, "headers",
                               hop->sink.headers, "truncated",
                               hop->sink.truncated, "url", url);
    if (result == NULL) {
        json_decref(body);
        return NULL;
    }
    if (body != NULL) {
        json_object_set_new(result, "body", body);
    } else {
        /* Not UTF-8: return the bytes in base64. */
        json_object_set_new(result, "body", json_null());
        json_object_set_new(result, "body_base64",
                            nu__base64(hop->sink.data, hop->sink.len));
    }
    return result;
}

/* Length of the first line of data[0..len) (NULL gives 0). */
static size_t nu__line_len(const char *data, size_t len)
{
    const char *nl = data != NULL ? memchr(data, '\n', len) : NULL;

    if (data == NULL)
        return 0;
    return nl != NULL ? (size_t)(nl - data) : len;
}

static bool nu__is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 ||
           status == 308;
}

int nu_net_fetch(const nu_perm_t *perm, const json_t *call,
                 const nu_fetch_opts_t *opts, json_t **result, nu_err_t *err)
{
    nu_fetch_opts_t defaults;
    nu__hop_t hop = { 0 };
    struct timespec start;
    const json_t *url_json = json_object_get(call, "url");
    char *url = NULL;
    int max_redirects;
    uint32_t timeout_ms;
    json_t *out = NULL;

    *result = NULL;
    pthread_once(&nu__curl_once, nu__curl_init);
    if (opts == NULL) {
        nu_fetch_opts_init(&defaults);
        opts = &defaults;
    }
    max_redirects = opts->max_redirects < 0 ? 5 : opts->max_redirects;
    timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms
                                       : NU__FETCH_TIMEOUT_DEFAULT;
    hop.opts = opts;
    hop.call = call;
    hop.sink.max = opts->max_bytes != 0 ? opts->max_bytes : NU__FETCH_MAX_DEFAULT;
    clock_gettime(CLOCK_MONOTONIC, &start);

    if (!json_is_string(url_json)) {
        out = nu__fail("invalid_request", "web_fetch: url must be a string");
        goto done;
    }
    out = nu__check_call(call, &hop.method, &hop.body, &hop.body_len,
                         &hop.sink.max);
    if (out != NULL)
        goto done;
    url = strdup(json_string_value(url_json));
    if (url == NULL)
        goto nomem;

    for (int hops = 0;; hops++) {
        nu_url_t u;
        nu_err_t uerr = { 0 };

        if (nu_url_parse(url, &u, &uerr) != NU_OK) {
            out = nu__fail(hops == 0 ? "invalid_request" : "network_denied",
                           "web_fetch: %s", uerr.msg);
            goto done;
        }
        if (!nu_perm_check_host(perm, u.host, u.port)) {
            out = nu__fail("network_denied", "web_fetch: %s:%d is not in the "
                           "pod's network policy%s", u.host, u.port,
                           hops > 0 ? " (redirect)" : "");
            goto done;
        }
        hop.timeout_ms = nu__remaining_ms(&start, timeout_ms);
        if (hop.timeout_ms <= 0) {
            out = nu__fail("timeout", "web_fetch: %s timed out", url);
            goto done;
        }

        json_decref(hop.sink.headers);
        hop.sink.headers = json_object();
        free(hop.sink.data);
        hop.sink.data = NULL;
        hop.sink.len = 0;
        hop.sink.truncated = false;
        free(hop.location);
        hop.location = NULL;
        if (hop.sink.headers == NULL)
            goto nomem;

        out = nu__hop(&hop, url, &u);
        if (out != NULL)
            goto done;
        if (opts->proxy != NULL && hop.status >= 400 &&
            json_object_get(hop.sink.headers, "nucleus-proxy-denied") != NULL) {
            /* The proxy's own refusal, not the server's reply: a 403 is
             * the policy, anything else a lookup or connection failure. */
            out = nu__fail(hop.status == 403 ? "network_denied" : "io_error",
                           "web_fetch: the egress proxy refused %s:%d: %.*s",
                           u.host, u.port, (int)nu__line_len(hop.sink.data,
                                                            hop.sink.len),
                           hop.sink.data != NULL ? hop.sink.data : "");
            goto done;
        }
        if (!nu__is_redirect(hop.status) || hop.location == NULL ||
            max_redirects == 0) {
            out = nu__result(&hop, url);
            goto done;
        }
        if (hops >= max_redirects) {
            out = nu__fail("network_denied", "web_fetch: more than %d "
                           "redirects, stopped at %s", max_redirects, url);
            goto done;
        }
        if (hop.status == 303 ||
            ((hop.status == 301 || hop.status == 302) &&
             strcmp(hop.method, "POST") == 0)) {
            hop.method = "GET";
            hop.body = NULL;
            hop.body_len = 0;
        }
        free(url);
        url = hop.location;
        hop.location = NULL;
    }

done:
    free(url);
    free(hop.location);
    free(hop.sink.data);
    json_decref(hop.sink.headers);
    if (out == NULL)
        return nu_err_set(err, NU_ENOMEM, "web_fetch: out of memory");
    *result = out;
    return NU_OK;

nomem:
    out = NULL;
    goto done;
}

int nu_net_fetch_pod(nu_net_t *net, const json_t *call, json_t **result,
                     nu_err_t *err)
{
    nu_fetch_opts_t opts;
    char proxy[64];
    nu_perm_t perm;
    int rc;

    nu_fetch_opts_init(&opts);
    snprintf(proxy, sizeof proxy, "http://%s:%d", net->host_addr,
             NU_NET_PROXY_PORT);
    opts.proxy = proxy;
    opts.ca_file = net->ca_file;
    opts.hosts = (const char *const *)net->hosts;
    opts.proxy_credential = net->proxy_credential;

    /* A copy, because nu_net_restrict may replace the policy while this
     * fetch runs; the proxy checks every hop against the new one anyway. */
    pthread_rwlock_rdlock(&net->perm_lock);
    rc = nu_perm_copy(&perm, &net->perm);
    pthread_rwlock_unlock(&net->perm_lock);
    if (rc != NU_OK)
        return nu_err_set(err, rc, "web_fetch: out of memory");
    rc = nu_net_fetch(&perm, call, &opts, result, err);
    nu_perm_free(&perm);
    return rc;
}
