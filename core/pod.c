/*
 * pod.c - pod lifecycle: create, attenuate, spawn, close, introspection.
 *
 * The tool-call pipeline itself is in pod_call.c; budgets in
 * pod_budget.c; approvals in pod_approval.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/json.h"
#include "nucleus/log.h"
#include "pod_internal.h"

int64_t nu__now(void)
{
    return (int64_t)time(NULL);
}

void nu_pod_options_init(nu_pod_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
}

int nu__pod_audit(nu_pod_t *pod, const char *type, const char *tool,
                  const char *operation, const json_t *args,
                  const char *decision, const char *kind, const char *reason,
                  const char *result_digest, int64_t *seq_out, nu_err_t *err)
{
    nu_audit_event_t ev = {
        .pod = pod->id,
        .spiffe_id = pod->spiffe_id,
        .type = type,
        .tool = tool,
        .operation = operation,
        .args = args,
        .decision = decision,
        .kind = kind,
        .reason = reason,
        .result_digest = result_digest,
        .profile_digest = pod->profile_digest,
    };
    nu_audit_redaction_t red[64];
    size_t nred = 0;

    if (seq_out != NULL)
        *seq_out = 0;
    if (pod->audit == NULL)
        return NU_OK;

    for (size_t i = 0; i < pod->redactor.count && nred < 64; i++) {
        red[nred].name = pod->redactor.names[i];
        red[nred].value = pod->redactor.values[i];
        nred++;
    }
    return nu_audit_append(pod->audit, &ev, red, nred, seq_out, err);
}

/* The audit arguments of one proxy refusal. */
static json_t *nu__denial_args(const nu_net_denial_t *d)
{
    char seconds[32];
    char when[48];
    struct tm tm;
    time_t sec = (time_t)(d->time_ms / 1000);

    gmtime_r(&sec, &tm);
    strftime(seconds, sizeof seconds, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof when, "%s.%03dZ", seconds, (int)(d->time_ms % 1000));

    json_t *args = json_pack("{s:s, s:s, s:i, s:s}", "destination",
                             d->destination, "reason", d->reason, "status",
                             d->status, "time", when);
    if (args != NULL && d->dropped_before > 0)
        json_object_set_new(args, "dropped_before",
                            json_integer((json_int_t)d->dropped_before));
    return args;
}

void nu__pod_drain_denials(nu_pod_t *pod)
{
    nu_net_denial_t batch[16];
    size_t n;
    nu_err_t err;

    if (pod->net == NULL)
        return;

    while ((n = nu_net_denials_take(pod->net, batch, 16)) > 0) {
        for (size_t i = 0; i < n; i++) {
            json_t *args = nu__denial_args(&batch[i]);
            int rc = args == NULL ? NU_ENOMEM
                   : nu__pod_audit(pod, "network_denied", NULL, NULL, args,
                                   "deny", "network_denied", batch[i].detail,
                                   NULL, NULL, &err);
            if (rc != NU_OK)
                nu_log(NU_LOG_ERROR, "pod", "cannot record the proxy "
                       "refusal of %s for pod %s: %s", batch[i].destination,
                       pod->id, args == NULL ? "out of memory" : err.msg);
            json_decref(args);
        }
    }
}

static int nu__pod_make_id(char out[NU_POD_ID_LEN + 1], nu_err_t *err)
{
    uint8_t bytes[8];

    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes)
        return nu_err_errno(err, errno, "pod: cannot read random bytes for "
                            "the pod id");
    memcpy(out, "pod-", 4);
    nu_hex_encode(bytes, sizeof bytes, out + 4);
    return NU_OK;
}

static bool nu__env_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* Build the sandbox environment: the executor's defaults plus the
 * credentials.  Returns a NULL-terminated malloc'd array of malloc'd
 * strings, or NULL on ENOMEM. */
static char **nu__pod_env(const nu_pod_options_t *opts,
                          const char *const *net_env)
{
    static const char *const base[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace",
        "LANG=C.UTF-8", "TERM=dumb",
    };
    size_t nbase = sizeof base / sizeof base[0], nextra = 0, nnet = 0;
    char **env;

    while (opts->env != NULL && opts->env[nextra] != NULL)
        nextra++;
    while (net_env != NULL && net_env[nnet] != NULL)
        nnet++;
    env = calloc(nbase + nextra + nnet + opts->ncredentials + 1, sizeof *env);
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < nbase; i++)
        if ((env[i] = strdup(base[i])) == NULL)
            goto fail;
    /* An extra variable replaces a default of the same name (getenv
     * returns the first match, so a duplicate would not override). */
    for (size_t i = 0; i < nextra; i++) {
        const char *eq = strchr(opts->env[i], '=');
        size_t slot = nbase, namelen = eq ? (size_t)(eq - opts->env[i]) : 0;
        for (size_t j = 0; j < nbase; j++)
            if (namelen > 0 && strncmp(env[j], opts->env[i], namelen + 1) == 0)
                slot = j;
        char *copy = strdup(opts->env[i]);
        if (copy == NULL)
            goto fail;
        if (slot < nbase)
            free(env[slot]);
        else
            nbase++;
        env[slot] = copy;
    }
    /* The egress proxy settings: the pod's only way out. */
    for (size_t i = 0; i < nnet; i++)
        if ((env[nbase++] = strdup(net_env[i])) == NULL)
            goto fail;
    for (size_t i = 0; i < opts->ncredentials; i++) {
        const nu_credential_t *c = &opts->credentials[i];
        size_t len = strlen(c->name) + strlen(c->value) + 2;
        if ((env[nbase + i] = malloc(len)) == NULL)
            goto fail;
        snprintf(env[nbase + i], len, "%s=%s", c->name, c->value);
    }
    return env;

fail:
    for (size_t i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
    return NULL;
}

static void nu__free_env(char **env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; env[i] != NULL; i++) {
        explicit_bzero(env[i], strlen(env[i]));
        free(env[i]);
    }
    free(env);
}

/* A namespace becomes one segment of the pod's SPIFFE ID path. */
static bool nu__segment_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

static int nu__pod_check_options(const nu_pod_options_t *opts, nu_err_t *err)
{
    struct stat st;

    if (opts->profile == NULL && opts->profile_name == NULL)
        return nu_err_set(err, NU_EINVAL, "pod: missing profile (give a "
                          "built-in name such as 'codegen' or a file)");
    if (opts->workspace == NULL)
        return nu_err_set(err, NU_EINVAL, "pod: missing workspace directory");
    if (stat(opts->workspace, &st) != 0)
        return nu_err_errno(err, errno, "pod: cannot use workspace '%s'",
                            opts->workspace);
    if (!S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "pod: workspace '%s' is not a "
                          "directory", opts->workspace);
    if (opts->namespace_ != NULL && !nu__segment_valid(opts->namespace_))
        return nu_err_set(err, NU_EINVAL, "pod: invalid namespace '%.100s' "
                          "(use 1 to 63 letters, digits, '.', '-' or '_', not "
                          "'.' or '..')", opts->namespace_);
    if (opts->isolation != NULL && strcmp(opts->isolation, "ns") != 0 &&
        strncmp(opts->isolation, "oci:", 4) != 0 &&
        strcmp(opts->isolation, "vm") != 0 &&
        strncmp(opts->isolation, "vm:", 3) != 0 &&
        strcmp(opts->isolation, "firecracker") != 0 &&
        strncmp(opts->isolation, "firecracker:", 12) != 0)
        return nu_err_set(err, NU_ENOTSUP, "pod: unknown isolation '%s' (use "
                          "'ns', 'oci:crun', 'oci:runc', 'oci:PATH', 'vm' or "
                          "'firecracker')", opts->isolation);

    for (size_t i = 0; opts->env != NULL && opts->env[i] != NULL; i++) {
        const char *eq = strchr(opts->env[i], '=');
        char name[256];
        size_t n = eq ? (size_t)(eq - opts->env[i]) : 0;
        if (n > 0 && n < sizeof name) {
            memcpy(name, opts->env[i], n);
            name[n] = '\0';
        }
        if (n == 0 || n >= sizeof name || !nu__env_name_valid(name))
            return nu_err_set(err, NU_EINVAL, "pod: invalid environment entry "
                              "'%.100s' (expected NAME=VALUE)", opts->env[i]);
    }

    for (size_t i = 0; i < opts->ncredentials; i++) {
        if (!nu__env_name_valid(opts->credentials[i].name))
            return nu_err_set(err, NU_EINVAL, "pod: invalid credential name "
                              "'%s' (use letters, digits and '_')",
                              opts->credentials[i].name
                                  ? opts->credentials[i].name : "(null)");
        if (opts->credentials[i].value == NULL)
            return nu_err_set(err, NU_EINVAL, "pod: credential '%s' has no "
                              "value", opts->credentials[i].name);
        /* Redaction replaces every occurrence of a value: a short one would
         * match ordinary text everywhere and corrupt results. */
        if (strlen(opts->credentials[i].value) < NU_CREDENTIAL_MIN)
            return nu_err_set(err, NU_EINVAL, "pod: credential '%s' is "
                              "shorter than %d bytes; such a value cannot be "
                              "redacted reliably (use a real secret)",
                              opts->credentials[i].name, NU_CREDENTIAL_MIN);
    }
    return NU_OK;
}

/* Effective permission: profile & restrict_to, with the time window made
 * absolute, normalized. */
static int nu__pod_effective(nu_pod_t *pod, const nu_pod_options_t *opts,
                             nu_err_t *err)
{
    const nu_perm_t *base = nu_profile_perm(pod->profile);
    int rc;

    if (opts->restrict_to != NULL)
        rc = nu_perm_meet(&pod->effective, base, opts->restrict_to);
    else
        rc = nu_perm_copy(&pod->effective, base);
    if (rc != NU_OK)
        return nu_err_set(err, rc, "pod: cannot compute the effective "
                          "permission: %s", nu_strerror(rc));

    nu_perm_resolve_time(&pod->effective, nu__now());
    nu_perm_normalize(&pod->effective);
    return NU_OK;
}

static int nu__pod_digest_profile(nu_pod_t *pod)
{
    json_t *j = nu_perm_to_json(&pod->effective);
    size_t len;
    char *text = j ? nu_json_canonical(j, &len, NULL) : NULL;

    json_decref(j);
    if (text == NULL)
        return NU_ENOMEM;
    nu_sha256_hex(text, len, pod->profile_digest);
    free(text);
    return NU_OK;
}

static int nu__pod_start_sandbox(nu_pod_t *pod, const nu_pod_options_t *opts,
                                 nu_err_t *err)
{
    nu_sandbox_opts_t sb;
    char **block = NULL, **write_block = NULL, **env = NULL;
    int rc;

    rc = nu_sandbox_collect(pod->workspace, &pod->effective, 0, &block,
                            &write_block, err);
    if (rc != NU_OK)
        return rc;

    /* An egress policy gets a veth, filters and the proxy (net.h); the
     * proxy's address must be in the environment before the pod starts. */
    if (nu_perm_has_egress(&pod->effective)) {
        rc = nu_net_prepare(&pod->effective, NULL, &pod->net, err);
        if (rc != NU_OK)
            goto out;
    }

    env = nu__pod_env(opts, pod->net ? nu_net_env(pod->net) : NULL);
    if (env == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "pod: out of memory");
        goto out;
    }

    nu_sandbox_opts_init(&sb);
    sb.workspace = pod->workspace;
    sb.block_paths = (const char *const *)block;
    sb.write_block_paths = (const char *const *)write_block;
    sb.env = (const char *const *)env;
    sb.isolation = opts->isolation;
    sb.network = pod->net != NULL;
    sb.timeout_ms = opts->timeout_ms;
    sb.limits.memory_bytes = opts->memory_bytes;
    sb.limits.pids = opts->pids;
    sb.limits.file_size_bytes = opts->file_size_bytes;
    rc = nu_sandbox_create(&sb, &pod->sandbox, err);
    if (rc == NU_OK && pod->net != NULL)
        rc = nu_net_attach(pod->net, nu_sandbox_netns_pid(pod->sandbox), err);

out:
    nu_sandbox_free_list(block);
    nu_sandbox_free_list(write_block);
    nu__free_env(env);
    return rc;
}

static void nu__pod_free(nu_pod_t *pod)
{
    if (pod == NULL)
        return;
    nu__pod_svid_stop(pod);
    nu_net_close(pod->net);
    nu_sandbox_close(pod->sandbox);
    if (pod->workspace_fd >= 0)
        close(pod->workspace_fd);
    nu__approval_free_all(pod);
    nu_redactor_free(&pod->redactor);
    nu_perm_free(&pod->effective);
    if (pod->own_profile)
        nu_profile_free(pod->profile);
    free(pod->children);
    free(pod->spiffe_id);
    free(pod->workspace);
    free(pod->namespace_);
    free(pod->isolation);
    pthread_mutex_destroy(&pod->lock);
    free(pod);
}

static int nu__pod_new(const nu_pod_options_t *opts, nu_pod_t **out,
                       nu_err_t *err)
{
    nu_pod_t *pod;
    int rc;
    size_t len;

    pod = calloc(1, sizeof *pod);
    if (pod == NULL)
        return nu_err_set(err, NU_ENOMEM, "pod: out of memory");
    pthread_mutex_init(&pod->lock, NULL);
    pod->workspace_fd = -1;
    nu_redactor_init(&pod->redactor);
    nu_perm_init_bottom(&pod->effective);

    rc = nu__pod_make_id(pod->id, err);
    if (rc != NU_OK)
        goto fail;

    pod->workspace = realpath(opts->workspace, NULL);
    pod->namespace_ = strdup(opts->namespace_ ? opts->namespace_ : "default");
    pod->isolation = strdup(opts->isolation ? opts->isolation : "ns");
    len = strlen(pod->id) + strlen(pod->namespace_) + 300;
    pod->spiffe_id = malloc(len);
    if (pod->workspace == NULL || pod->namespace_ == NULL ||
        pod->isolation == NULL || pod->spiffe_id == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "pod: out of memory");
        goto fail;
    }
    snprintf(pod->spiffe_id, len, "spiffe://%s/ns/%s/pod/%s",
             opts->trust_domain ? opts->trust_domain : "nucleus.local",
             pod->namespace_, pod->id);

    for (size_t i = 0; i < opts->ncredentials; i++)
        if (nu_redactor_add(&pod->redactor, opts->credentials[i].name,
                            opts->credentials[i].value) != 0) {
            rc = nu_err_set(err, NU_ENOMEM, "pod: out of memory");
            goto fail;
        }

    pod->workspace_fd = open(pod->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pod->workspace_fd < 0) {
        rc = nu_err_errno(err, errno, "pod: cannot open workspace '%s'",
                          pod->workspace);
        goto fail;
    }

    pod->approve = opts->approve;
    pod->approve_userdata = opts->approve_userdata;
    pod->audit = opts->audit;
    *out = pod;
    return NU_OK;

fail:
    nu__pod_free(pod);
    return rc;
}

int nu_pod_create(const nu_pod_options_t *opts, nu_pod_t **out,
                  nu_err_t *err)
{
    nu_pod_t *pod = NULL;
    json_t *args;
    int rc;

    *out = NULL;
    rc = nu__pod_check_options(opts, err);
    if (rc != NU_OK)
        return rc;

    rc = nu__pod_new(opts, &pod, err);
    if (rc != NU_OK)
        return rc;

    if (opts->profile != NULL) {
        pod->profile = opts->profile;
    } else {
        rc = nu_profile_load(&pod->profile, opts->profile_name, NULL, err);
        if (rc != NU_OK)
            goto fail;
        pod->own_profile = true;
    }

    rc = nu__pod_effective(pod, opts, err);
    if (rc == NU_OK)
        rc = nu__pod_digest_profile(pod);
    if (rc != NU_OK)
        goto fail;
    nu__ledger_init(&pod->ledger, &pod->effective.budget);

    rc = nu__pod_start_sandbox(pod, opts, err);
    if (rc == NU_OK)
        rc = nu__pod_svid_start(pod, opts->home, opts->svid_ttl, err);
    if (rc != NU_OK)
        goto fail;

    args = json_pack("{s:s, s:s, s:s}", "profile", nu_profile_name(pod->profile),
                     "workspace", pod->workspace, "isolation",
                     opts->isolation ? opts->isolation : "ns");
    rc = nu__pod_audit(pod, "pod_create", NULL, NULL, args, NULL, NULL, NULL,
                       NULL, NULL, err);
    json_decref(args);
    if (rc != NU_OK)
        goto fail;

    nu_log(NU_LOG_INFO, "pod", "created %s (profile %s, workspace %s)",
           pod->id, nu_profile_name(pod->profile), pod->workspace);
    *out = pod;
    return NU_OK;

fail:
    nu__pod_free(pod);
    return rc;
}

int nu_pod_attenuate(nu_pod_t *pod, const nu_perm_t *p, nu_err_t *err)
{
    nu_perm_t next;
    json_t *args;
    int rc;

    pthread_mutex_lock(&pod->lock);
    rc = nu_perm_meet(&next, &pod->effective, p);
    if (rc != NU_OK) {
        pthread_mutex_unlock(&pod->lock);
        return nu_err_set(err, rc, "pod: cannot attenuate: %s", nu_strerror(rc));
    }
    nu_perm_normalize(&next);

    args = nu_perm_to_json(&next);
    rc = nu__pod_audit(pod, "attenuate", NULL, NULL, args, NULL, NULL, NULL,
                       NULL, NULL, err);
    json_decref(args);
    if (rc == NU_OK) {
        nu_perm_free(&pod->effective);
        pod->effective = next;
        pod->ledger.max = pod->effective.budget;
        nu__pod_digest_profile(pod);
    } else {
        nu_perm_free(&next);
    }

    /* The running pod's proxy and routes follow the narrower network. */
    if (rc == NU_OK && pod->net != NULL) {
        nu_err_t net_err = { 0 };
        rc = nu_net_restrict(pod->net, &pod->effective, &net_err);
        if (rc != NU_OK)
            nu_err_set(err, rc, "pod: attenuated %s, but cannot narrow its "
                       "running network: %s", pod->id, net_err.msg);
    }
    pthread_mutex_unlock(&pod->lock);
    return rc;
}

int nu_pod_charge(nu_pod_t *pod, double usd, int64_t input_tokens,
                  int64_t output_tokens, nu_err_t *err)
{
    nu_budget_t cost = { usd, input_tokens, output_tokens, 0 };
    json_t *args;
    int rc;

    if (!nu__budget_valid_charge(usd, input_tokens, output_tokens))
        return nu_err_set(err, NU_EINVAL, "budget: invalid charge (usd %g, "
                          "input_tokens %lld, output_tokens %lld): values "
                          "must be finite and not negative", usd,
                          (long long)input_tokens, (long long)output_tokens);

    pthread_mutex_lock(&pod->lock);
    if (!nu__ledger_reserve(&pod->ledger, &cost)) {
        pthread_mutex_unlock(&pod->lock);
        return nu_err_set(err, NU_ELIMIT, "budget: charge exceeds the "
                          "remaining budget of pod %s", pod->id);
    }

    args = json_pack("{s:f, s:I, s:I}", "usd", usd, "input_tokens",
                     (json_int_t)input_tokens, "output_tokens",
                     (json_int_t)output_tokens);
    rc = nu__pod_audit(pod, "budget_charge", NULL, NULL, args, NULL, NULL,
                       NULL, NULL, NULL, err);
    json_decref(args);
    nu__ledger_settle(&pod->ledger, &cost,
                      rc == NU_OK ? &cost : &(nu_budget_t){ 0, 0, 0, 0 });
    pthread_mutex_unlock(&pod->lock);
    return rc;
}

/* Whether path resolves to dir or to a directory beneath it. */
static bool nu__pod_beneath(const char *dir, const char *path)
{
    char *real = realpath(path, NULL);
    size_t n = strlen(dir);
    bool ok;

    ok = real != NULL && strncmp(real, dir, n) == 0 &&
         (real[n] == '\0' || real[n] == '/' || strcmp(dir, "/") == 0);
    free(real);
    return ok;
}

int nu_pod_spawn(nu_pod_t *parent, const nu_pod_options_t *opts,
                 const nu_perm_t *requested, bool strict, nu_pod_t **child,
                 nu_err_t *err)
{
    nu_pod_options_t copts = *opts;
    nu_budget_t remaining;
    nu_perm_t granted;
    nu_pod_t *c = NULL;
    int rc;

    *child = NULL;
    pthread_mutex_lock(&parent->lock);
    if (parent->effective.caps[NU_OP_MANAGE_PODS] == NU_NEVER) {
        pthread_mutex_unlock(&parent->lock);
        return nu_err_set(err, NU_EDENIED, "pod: cannot spawn from %s: its "
                          "profile does not grant manage_pods", parent->id);
    }
    nu__ledger_remaining(&parent->ledger, &remaining);
    rc = nu_perm_delegate(&granted, &parent->effective, requested, &remaining,
                          strict, err);
    pthread_mutex_unlock(&parent->lock);
    if (rc != NU_OK)
        return rc;

    /* A child runs on its parent's tier: a vm or oci parent must not
     * hand its work to a pod on the host kernel.  Only an ns parent may
     * choose another (stronger) tier. */
    if (copts.isolation == NULL)
        copts.isolation = parent->isolation;
    else if (strcmp(parent->isolation, "ns") != 0 &&
             strcmp(copts.isolation, parent->isolation) != 0) {
        nu_perm_free(&granted);
        return nu_err_set(err, NU_EDENIED, "pod: cannot spawn from %s: a "
                          "child of an '%s' pod runs on the same tier, not "
                          "'%s' (omit isolation)", parent->id,
                          parent->isolation, copts.isolation);
    }

    /* Delegation never widens: a child's workspace is the parent's or a
     * directory beneath it. */
    if (copts.workspace != NULL &&
        !nu__pod_beneath(parent->workspace, copts.workspace)) {
        nu_perm_free(&granted);
        return nu_err_set(err, NU_EDENIED, "pod: cannot spawn from %s: "
                          "workspace '%s' is not the parent's workspace or "
                          "a directory beneath it", parent->id,
                          copts.workspace);
    }

    copts.profile = parent->profile;
    copts.profile_name = NULL;
    copts.restrict_to = &granted;
    if (copts.workspace == NULL)
        copts.workspace = parent->workspace;
    if (copts.audit == NULL)
        copts.audit = parent->audit;

    rc = nu_pod_create(&copts, &c, err);
    nu_perm_free(&granted);
    if (rc != NU_OK)
        return rc;

    pthread_mutex_lock(&parent->lock);
    nu__ledger_remaining(&parent->ledger, &remaining);
    nu_pod_t **children = realloc(parent->children,
                                  (parent->nchildren + 1) * sizeof *children);
    if (children == NULL || parent->closed ||
        !nu__ledger_fits(&parent->ledger, &c->ledger.max)) {
        pthread_mutex_unlock(&parent->lock);
        if (children != NULL)
            parent->children = children;
        nu_pod_close(c);
        return nu_err_set(err, NU_ELIMIT, "pod: cannot spawn from %s: its "
                          "remaining budget changed or it closed", parent->id);
    }
    parent->children = children;
    parent->children[parent->nchildren++] = c;
    c->parent = parent;
    c->carved_from_parent = c->ledger.max;
    nu__ledger_carve(&parent->ledger, &c->ledger.max);

    json_t *args = json_pack("{s:s, s:s}", "child", c->id, "child_spiffe_id",
                             c->spiffe_id);
    rc = nu__pod_audit(parent, "spawn", NULL, "manage_pods", args, "allow",
                       NULL, NULL, NULL, NULL, err);
    json_decref(args);
    pthread_mutex_unlock(&parent->lock);
    if (rc != NU_OK) {
        nu_pod_close(c);
        return rc;
    }

    *child = c;
    return NU_OK;
}

/* Return a closing child's unspent carve to its parent. */
static void nu__pod_detach_from_parent(nu_pod_t *pod)
{
    nu_pod_t *parent = pod->parent;
    const nu_budget_t *carve = &pod->carved_from_parent;

    if (parent == NULL)
        return;
    pthread_mutex_lock(&parent->lock);
    for (size_t i = 0; i < parent->nchildren; i++) {
        if (parent->children[i] != pod)
            continue;
        parent->children[i] = parent->children[--parent->nchildren];
        break;
    }
    nu__ledger_uncarve(&parent->ledger, carve, &pod->ledger.spent);
    pthread_mutex_unlock(&parent->lock);
}

/* The proxy's totals and refused destinations, for the pod_close event. */
static json_t *nu__pod_net_summary(nu_net_t *net)
{
    nu_net_stats_t st;
    json_t *denied = nu_net_denied(net);

    nu_net_stats(net, &st);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}",
                     "bytes_in", (json_int_t)st.bytes_in,
                     "bytes_out", (json_int_t)st.bytes_out,
                     "connections", (json_int_t)st.connections,
                     "denied", (json_int_t)st.denied,
                     "denied_events_dropped",
                     (json_int_t)st.denials_dropped,
                     "denied_destinations", denied != NULL ? denied
                                                           : json_array());
}

void nu_pod_close(nu_pod_t *pod)
{
    nu_err_t err;

    if (pod == NULL)
        return;

    /* Children first: each detaches itself from this pod. */
    for (;;) {
        pthread_mutex_lock(&pod->lock);
        pod->closed = true;
        nu_pod_t *c = pod->nchildren > 0 ? pod->children[0] : NULL;
        pthread_mutex_unlock(&pod->lock);
        if (c == NULL)
            break;
        nu_pod_close(c);
    }

    nu__pod_detach_from_parent(pod);

    /* NOTE: the proxy keeps running until nu__pod_free, so a refusal
     * after this drain gets no network_denied event. */
    pthread_mutex_lock(&pod->lock);
    nu__pod_drain_denials(pod);
    pthread_mutex_unlock(&pod->lock);

    /* A drift kill that no later call reported is recorded here. */
    bool unchecked = pod->net != NULL && nu_net_check_failed(pod->net);
    if (pod->net != NULL && nu_net_drifted(pod->net) && !pod->drift_recorded &&
        nu__pod_audit(pod, unchecked ? "network_check_failed" : "network_drift",
                      NULL, NULL, NULL, "deny", "sandbox_error",
                      unchecked ? "the pod's packet filter could not be read "
                                  "back; the pod was killed"
                                : "the pod's packet filter changed; the pod "
                                  "was killed", NULL, NULL, &err) != NU_OK)
        nu_log(NU_LOG_ERROR, "pod", "cannot record the network drift of pod "
               "%s: %s", pod->id, err.msg);

    json_t *args = json_pack("{s:I, s:f}", "tool_calls",
                             (json_int_t)pod->ledger.spent.tool_calls, "usd",
                             pod->ledger.spent.usd);
    if (args != NULL && pod->net != NULL)
        json_object_set_new(args, "network", nu__pod_net_summary(pod->net));
    if (nu__pod_audit(pod, "pod_close", NULL, NULL, args, NULL, NULL, NULL,
                      NULL, NULL, &err) != NU_OK)
        nu_log(NU_LOG_ERROR, "pod", "cannot record closing pod %s: %s",
               pod->id, err.msg);
    json_decref(args);
    if (pod->audit != NULL && nu_audit_checkpoint(pod->audit, NULL, &err) != NU_OK)
        nu_log(NU_LOG_ERROR, "pod", "cannot write the checkpoint for pod %s: %s",
               pod->id, err.msg);

    nu_log(NU_LOG_INFO, "pod", "closed %s", pod->id);
    nu__pod_free(pod);
}

const char *nu_pod_id(const nu_pod_t *pod)
{
    return pod->id;
}

const char *nu_pod_spiffe_id(const nu_pod_t *pod)
{
    return pod->spiffe_id;
}

unsigned nu_pod_exposure(nu_pod_t *pod)
{
    pthread_mutex_lock(&pod->lock);
    unsigned e = pod->exposure;
    pthread_mutex_unlock(&pod->lock);
    return e;
}

bool nu_pod_has_egress(nu_pod_t *pod)
{
    return pod->net != NULL;
}

int nu_pod_effective(nu_pod_t *pod, nu_perm_t *out)
{
    pthread_mutex_lock(&pod->lock);
    int rc = nu_perm_copy(out, &pod->effective);
    pthread_mutex_unlock(&pod->lock);
    return rc;
}

void nu_pod_budget(nu_pod_t *pod, nu_budget_t *max, nu_budget_t *spent)
{
    pthread_mutex_lock(&pod->lock);
    if (max != NULL)
        *max = pod->ledger.max;
    if (spent != NULL)
        *spent = pod->ledger.spent;
    pthread_mutex_unlock(&pod->lock);
}

static json_t *nu__budget_json(const nu_budget_t *b)
{
    json_t *o = json_object();

    json_object_set_new(o, "usd", isinf(b->usd) ? json_string("*") : json_real(b->usd));
#define NU__BUDGET_INT(field) \
    json_object_set_new(o, #field, b->field == NU_UNLIMITED \
                        ? json_string("*") : json_integer(b->field))
    NU__BUDGET_INT(input_tokens);
    NU__BUDGET_INT(output_tokens);
    NU__BUDGET_INT(tool_calls);
#undef NU__BUDGET_INT
    return o;
}

static json_t *nu__exposure_json(unsigned exposure)
{
    json_t *a = json_array();

    if (exposure & NU_LEG_PRIVATE)
        json_array_append_new(a, json_string("private"));
    if (exposure & NU_LEG_UNTRUSTED)
        json_array_append_new(a, json_string("untrusted"));
    if (exposure & NU_LEG_EXFIL)
        json_array_append_new(a, json_string("exfil"));
    return a;
}

json_t *nu_pod_info(nu_pod_t *pod)
{
    json_t *info, *children = json_array();

    pthread_mutex_lock(&pod->lock);
    for (size_t i = 0; i < pod->nchildren; i++)
        json_array_append_new(children, json_string(pod->children[i]->id));
    info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:o, s:o}, s:o, s:b, "
                     "s:s?}",
                     "id", pod->id, "spiffe_id", pod->spiffe_id, "profile",
                     nu_profile_name(pod->profile), "workspace", pod->workspace,
                     "isolation", pod->isolation,
                     "exposure", nu__exposure_json(pod->exposure), "budget",
                     "max", nu__budget_json(&pod->ledger.max), "spent",
                     nu__budget_json(&pod->ledger.spent), "children", children,
                     "closed", pod->closed, "parent",
                     pod->parent ? pod->parent->id : NULL);
    pthread_mutex_unlock(&pod->lock);

    if (info != NULL)
        json_object_set_new(info, "pending", nu_pod_pending(pod));
    return info;
}

char *nu_pod_redact(nu_pod_t *pod, const char *s, size_t len, size_t *out_len)
{
    return nu_redact_string(&pod->redactor, s, len, out_len);
}
