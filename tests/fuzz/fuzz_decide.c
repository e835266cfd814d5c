/*
 * fuzz_decide.c - libFuzzer target for nu_decide and nu_url_parse.
 *
 * Input: one selector byte, then the rest.  With an even selector the rest
 * is a URL; a URL that parses must have a host and a port in 1..65535, and
 * re-parsing "http://HOST:PORT/" built from the canonical host must give
 * the same host (canonical forms are fixed points).  With an odd selector
 * the rest is a tool call in JSON, decided under a coding permission and
 * under TOP; the decision must be well formed: allow has no kind and no
 * step, deny has a kind, approval_required has a key that starts with the
 * operation's name, and the reason is one line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/decide.h"
#include "nucleus/lattice.h"

#ifndef NU_FUZZ_ENTRY
#define NU_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size);

static void nu__check_url(const char *text)
{
    nu_url_t url, again;
    char rebuilt[NU_URL_HOST_MAX + 32];
    nu_err_t err;

    if (nu_url_parse(text, &url, &err) != NU_OK)
        return;
    if (url.host[0] == '\0' || url.port < 1 || url.port > 65535)
        abort();

    if (strchr(url.host, ':') != NULL)
        snprintf(rebuilt, sizeof rebuilt, "http://[%s]:%d/", url.host,
                 url.port);
    else
        snprintf(rebuilt, sizeof rebuilt, "http://%s:%d/", url.host,
                 url.port);
    if (nu_url_parse(rebuilt, &again, &err) != NU_OK ||
        strcmp(again.host, url.host) != 0 || again.port != url.port)
        abort();
}

static void nu__check_decision(const nu_decision_t *d)
{
    size_t len = strnlen(d->reason, sizeof d->reason);

    if (len == sizeof d->reason || memchr(d->reason, '\n', len) != NULL)
        abort();
    len = strnlen(d->cmd_summary, sizeof d->cmd_summary);
    if (len == sizeof d->cmd_summary ||
        memchr(d->cmd_summary, '\n', len) != NULL)
        abort();
    switch (d->verdict) {
    case NU_DECISION_ALLOW:
        if (d->kind != NU_KIND_NONE || d->step != 0 || d->approval_key[0])
            abort();
        break;
    case NU_DECISION_DENY:
        if (d->kind == NU_KIND_NONE || d->step < 1 || d->step > 7)
            abort();
        break;
    case NU_DECISION_APPROVAL: {
        const char *name = nu_op_name(d->operation);
        if (d->kind != NU_KIND_APPROVAL_REQUIRED ||
            strncmp(d->approval_key, name, strlen(name)) != 0 ||
            d->approval_key[strlen(name)] != ':')
            abort();
        break;
    }
    default:
        abort();
    }
}

static void nu__perm_coding(nu_perm_t *p)
{
    nu_perm_init_top(p);
    p->obligations = NU_OPSET(NU_OP_GIT_COMMIT);
    for (size_t i = 0; nu_sensitive_patterns[i] != NULL; i++)
        nu_strset_add(&p->paths.block, nu_sensitive_patterns[i]);
    for (size_t i = 0; nu_autorun_patterns[i] != NULL; i++)
        nu_strset_add(&p->paths.write_block, nu_autorun_patterns[i]);
    nu_strset_add(&p->commands.block, "sudo");
    nu_strset_add(&p->commands.block, "git push");
    nu_strset_free(&p->network.domains);
    nu_strset_add(&p->network.domains, "example.org");
}

static void nu__check_call(const char *text, size_t len)
{
    static nu_perm_t perms[2];
    static int ready;
    json_error_t jerr;
    nu_decision_t d;

    if (!ready) {
        nu__perm_coding(&perms[0]);
        nu_perm_init_top(&perms[1]);
        ready = 1;
    }

    json_t *call = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_ANY,
                              &jerr);
    if (call == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        nu_decide_ctx_t ctx = {0};
        ctx.egress = i == 1;
        ctx.exposure = NU_LEG_PRIVATE;
        if (nu_decide(&perms[i], call, &ctx, &d) != NU_OK &&
            d.kind != NU_KIND_INTERNAL)
            abort();
        nu__check_decision(&d);
    }
    json_decref(call);
}

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;

    char *buf = malloc(size);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';

    if ((data[0] & 1) == 0)
        nu__check_url(buf);
    else
        nu__check_call(buf, size - 1);

    free(buf);
    return 0;
}
