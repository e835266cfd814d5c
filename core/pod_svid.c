/*
 * pod_svid.c - the pod's X.509-SVID inside the pod, rotated at half-life.
 *
 * When the state directory has a CA, a pod gets an SVID for its SPIFFE ID
 * at creation.  The files go to /run/nucleus/svid/{svid.pem, svid.key,
 * bundle.pem} inside the pod (the key 0600), sent over the host-pod
 * protocol, never through the pod's environment or command line.  Each
 * generation is a directory /run/nucleus/.svid.N, and /run/nucleus/svid is
 * a symbolic link swapped with rename(2), so a workload that opens the
 * directory once and reads the three files from it always gets a key and
 * certificate that match.
 *
 * A thread per pod re-issues when half of the SVID's lifetime has passed
 * (from the issue time, notBefore without the back-dating, to notAfter),
 * and retries a failed rotation after a quarter of the remaining
 * lifetime, at least 1 s.
 *
 * NOTE: the pod init serves one request at a time, so a rotation waits
 * for a running command to finish.  With the defaults (1 h SVIDs rotated
 * after 30 min, commands limited to 10 min) an SVID never expires in a
 * live pod; a command that must hold an SVID for longer than half its
 * lifetime should re-read the files between steps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nucleus/home.h"
#include "nucleus/log.h"
#include "pod_internal.h"

/* Issue one SVID generation and install it in the pod.  On success
 * *not_after gets its expiry. */
static int nu__svid_install(nu_pod_t *pod, time_t *not_before,
                            time_t *not_after, nu_err_t *err)
{
    nu_svid_t svid = { 0 };
    char dir[64], path[96];
    int rc;

    rc = nu_ca_issue(pod->ca, pod->spiffe_id, pod->svid_ttl, &svid, err);
    if (rc != NU_OK)
        return rc;

    pod->svid_generation++;
    snprintf(dir, sizeof dir, ".svid.%llu",
             (unsigned long long)pod->svid_generation);

    snprintf(path, sizeof path, "%s/svid.pem", dir);
    rc = nu_sandbox_put_file(pod->sandbox, path, svid.cert_pem,
                             strlen(svid.cert_pem), 0644, err);
    if (rc == NU_OK) {
        snprintf(path, sizeof path, "%s/svid.key", dir);
        rc = nu_sandbox_put_file(pod->sandbox, path, svid.key_pem,
                                 strlen(svid.key_pem), 0600, err);
    }
    if (rc == NU_OK) {
        snprintf(path, sizeof path, "%s/bundle.pem", dir);
        rc = nu_sandbox_put_file(pod->sandbox, path, svid.bundle_pem,
                                 strlen(svid.bundle_pem), 0644, err);
    }
    if (rc == NU_OK)
        rc = nu_sandbox_put_link(pod->sandbox, "svid", dir, err);

    *not_before = svid.not_before;
    *not_after = svid.not_after;
    nu_svid_free(&svid);
    return rc;
}

static void *nu__svid_thread(void *arg)
{
    nu_pod_t *pod = arg;
    time_t not_before = pod->svid_not_before + NU_SVID_BACKDATE;
    time_t not_after = pod->svid_not_after;

    pthread_mutex_lock(&pod->svid_lock);
    while (!pod->svid_stop) {
        time_t now = time(NULL);
        time_t due = not_before + (not_after - not_before) / 2;
        struct timespec until;

        if (now < due) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += due - now;
            pthread_cond_timedwait(&pod->svid_cond, &pod->svid_lock, &until);
            continue;
        }

        pthread_mutex_unlock(&pod->svid_lock);
        nu_err_t err;
        time_t nb, na;
        int rc = nu__svid_install(pod, &nb, &na, &err);
        pthread_mutex_lock(&pod->svid_lock);

        if (rc == NU_OK) {
            not_before = nb + NU_SVID_BACKDATE;
            not_after = na;
            nu_log(NU_LOG_INFO, "pod", "%s: rotated SVID (generation %llu, "
                   "expires %lld)", pod->id,
                   (unsigned long long)pod->svid_generation, (long long)na);
        } else if (!pod->svid_stop) {
            time_t left = not_after - time(NULL);
            time_t wait = left / 4 > 1 ? left / 4 : 1;
            nu_log(NU_LOG_ERROR, "pod", "%s: cannot rotate SVID, retrying in "
                   "%lld s: %s", pod->id, (long long)wait, err.msg);
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += wait;
            pthread_cond_timedwait(&pod->svid_cond, &pod->svid_lock, &until);
        }
    }
    pthread_mutex_unlock(&pod->svid_lock);
    return NULL;
}

int nu__pod_svid_start(nu_pod_t *pod, const char *home, int64_t ttl,
                       nu_err_t *err)
{
    char dir[4200];
    int rc;

    pthread_mutex_init(&pod->svid_lock, NULL);
    pthread_cond_init(&pod->svid_cond, NULL);
    pod->svid_sync = true;

    /* No CA yet: pods run without an identity document. */
    if (nu_home_path(home, "ca", dir, sizeof dir, err) != NU_OK)
        return NU_OK;
    if (nu_ca_load(dir, &pod->ca, err) != NU_OK) {
        pod->ca = NULL;
        nu_err_clear(err);
        return NU_OK;
    }

    /* The pod's SPIFFE ID belongs to the CA's trust domain. */
    const char *td = nu_ca_trust_domain(pod->ca);
    char *id = malloc(strlen(pod->spiffe_id) + strlen(td) + 16);
    if (id == NULL)
        return nu_err_set(err, NU_ENOMEM, "pod: out of memory");
    sprintf(id, "spiffe://%s%s", td, strchr(pod->spiffe_id + 9, '/'));
    free(pod->spiffe_id);
    pod->spiffe_id = id;

    pod->svid_ttl = ttl;
    rc = nu__svid_install(pod, &pod->svid_not_before, &pod->svid_not_after, err);
    if (rc != NU_OK)
        return rc;

    if (pthread_create(&pod->svid_thread, NULL, nu__svid_thread, pod) != 0)
        return nu_err_errno(err, errno, "pod: cannot start the SVID rotation "
                            "thread");
    pod->svid_running = true;
    return NU_OK;
}

void nu__pod_svid_stop(nu_pod_t *pod)
{
    if (!pod->svid_sync)
        return;
    if (pod->svid_running) {
        pthread_mutex_lock(&pod->svid_lock);
        pod->svid_stop = true;
        pthread_cond_broadcast(&pod->svid_cond);
        pthread_mutex_unlock(&pod->svid_lock);
        pthread_join(pod->svid_thread, NULL);
        pod->svid_running = false;
    }
    nu_ca_free(pod->ca);
    pod->ca = NULL;
    pthread_cond_destroy(&pod->svid_cond);
    pthread_mutex_destroy(&pod->svid_lock);
    pod->svid_sync = false;
}
