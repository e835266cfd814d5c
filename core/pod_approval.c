/*
 * pod_approval.c - approval grants and pending requests of a pod.
 *
 * A grant names one approval key, has a number of uses and an expiry.
 * Each executed call consumes exactly one use; a grant with no uses left
 * or past its expiry is removed and cannot be replayed.  The caller holds
 * the pod lock.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pod_internal.h"

bool nu__approval_key_valid(const char *key)
{
    const char *colon = strchr(key, ':');
    char op[32];

    if (colon == NULL || (size_t)(colon - key) >= sizeof op)
        return false;
    memcpy(op, key, (size_t)(colon - key));
    op[colon - key] = '\0';
    if (nu_op_parse(op) < 0)
        return false;
    if (strlen(colon + 1) != NU_SHA256_HEX_LEN)
        return false;
    for (const char *p = colon + 1; *p != '\0'; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return false;
    return true;
}

static void nu__grants_expire(nu_pod_t *pod, int64_t now)
{
    nu_grant_t **link = &pod->grants;

    while (*link != NULL) {
        nu_grant_t *g = *link;
        if (g->remaining <= 0 || g->expires <= now) {
            *link = g->next;
            free(g);
        } else {
            link = &g->next;
        }
    }
}

bool nu__approval_consume(nu_pod_t *pod, const char *key, int64_t now,
                          char *source, size_t source_size)
{
    nu__grants_expire(pod, now);

    for (nu_grant_t *g = pod->grants; g != NULL; g = g->next) {
        if (strcmp(g->key, key) != 0)
            continue;
        g->remaining--;
        snprintf(source, source_size, "%s", g->source);
        nu__grants_expire(pod, now);
        return true;
    }
    return false;
}

int nu__approval_add_pending(nu_pod_t *pod, const char *key,
                             const char *operation, const json_t *call,
                             const char *reason, int64_t now)
{
    for (nu_pending_t *p = pod->pending; p != NULL; p = p->next)
        if (strcmp(p->key, key) == 0)
            return NU_OK;

    nu_pending_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NU_ENOMEM;
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->operation, sizeof p->operation, "%s", operation);
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    p->call = json_deep_copy(call);
    if (p->call == NULL) {
        free(p);
        return NU_ENOMEM;
    }
    if (nu_redact_json(&pod->redactor, p->call) != 0) {
        json_decref(p->call);
        free(p);
        return NU_ENOMEM;
    }
    p->time = now;
    p->next = pod->pending;
    pod->pending = p;
    return NU_OK;
}

void nu__approval_remove_pending(nu_pod_t *pod, const char *key)
{
    nu_pending_t **link = &pod->pending;

    while (*link != NULL) {
        nu_pending_t *p = *link;
        if (strcmp(p->key, key) == 0) {
            *link = p->next;
            json_decref(p->call);
            free(p);
            return;
        }
        link = &p->next;
    }
}

void nu__approval_free_all(nu_pod_t *pod)
{
    while (pod->grants != NULL) {
        nu_grant_t *g = pod->grants;
        pod->grants = g->next;
        free(g);
    }
    while (pod->pending != NULL) {
        nu_pending_t *p = pod->pending;
        pod->pending = p->next;
        json_decref(p->call);
        free(p);
    }
}

int nu_pod_grant(nu_pod_t *pod, const char *key, int count, int ttl_s,
                 const char *source, nu_err_t *err)
{
    int64_t now = nu__now();
    json_t *args;
    int rc;

    if (key == NULL || !nu__approval_key_valid(key))
        return nu_err_set(err, NU_EINVAL, "approval: invalid key '%s' "
                          "(expected OPERATION:SHA256HEX as returned with "
                          "approval_required)", key ? key : "(null)");
    if (count < 1 || count > 1000)
        return nu_err_set(err, NU_EINVAL, "approval: invalid count %d "
                          "(expected 1 to 1000)", count);
    if (ttl_s < 0 || ttl_s > NU_APPROVAL_TTL_MAX)
        return nu_err_set(err, NU_EINVAL, "approval: invalid expiry %d s "
                          "(expected 1 to %d)", ttl_s, NU_APPROVAL_TTL_MAX);
    if (ttl_s == 0)
        ttl_s = NU_APPROVAL_TTL_MAX;

    nu_grant_t *g = calloc(1, sizeof *g);
    if (g == NULL)
        return nu_err_set(err, NU_ENOMEM, "approval: out of memory");
    snprintf(g->key, sizeof g->key, "%s", key);
    snprintf(g->source, sizeof g->source, "%s", source ? source : "orchestrator");
    g->remaining = count;
    g->expires = now + ttl_s;

    args = json_pack("{s:s, s:i, s:i, s:s}", "approval_key", key, "count",
                     count, "ttl", ttl_s, "source", g->source);
    pthread_mutex_lock(&pod->lock);
    rc = nu__pod_audit(pod, "approval_grant", NULL, NULL, args, "approve",
                       NULL, NULL, NULL, NULL, err);
    if (rc == NU_OK) {
        g->next = pod->grants;
        pod->grants = g;
        pod->grants_issued++;
        nu__approval_remove_pending(pod, key);
    } else {
        free(g);
    }
    pthread_mutex_unlock(&pod->lock);
    json_decref(args);
    return rc;
}

int nu_pod_deny(nu_pod_t *pod, const char *key, const char *source,
                nu_err_t *err)
{
    json_t *args;
    int rc;

    if (key == NULL || !nu__approval_key_valid(key))
        return nu_err_set(err, NU_EINVAL, "approval: invalid key '%s'",
                          key ? key : "(null)");

    args = json_pack("{s:s, s:s}", "approval_key", key, "source",
                     source ? source : "orchestrator");
    pthread_mutex_lock(&pod->lock);
    rc = nu__pod_audit(pod, "approval_deny", NULL, NULL, args, "deny",
                       "approval_denied", NULL, NULL, NULL, err);
    if (rc == NU_OK) {
        nu__approval_remove_pending(pod, key);
        pod->denials++;
    }
    pthread_mutex_unlock(&pod->lock);
    json_decref(args);
    return rc;
}

json_t *nu_pod_pending(nu_pod_t *pod)
{
    json_t *list = json_array();

    pthread_mutex_lock(&pod->lock);
    for (nu_pending_t *p = pod->pending; p != NULL && list != NULL; p = p->next)
        json_array_append_new(list, json_pack("{s:s, s:s, s:O, s:s, s:I}",
                              "approval_key", p->key, "operation",
                              p->operation, "call", p->call, "reason",
                              p->reason, "time", (json_int_t)p->time));
    pthread_mutex_unlock(&pod->lock);
    return list;
}
