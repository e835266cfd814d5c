/*
 * net_denials.c - the queue that carries proxy refusals from the proxy's
 * loop thread to the pod, which writes each one to its audit log as a
 * network_denied event.
 *
 * The queue is a ring of NU_NET_DENIALS_MAX fixed-size entries inside
 * nu_net_t, so pushing never allocates and the proxy never blocks on
 * anything but the short copy under the mutex.  When the ring is full the
 * newest refusal is dropped and counted; the count rides on the next entry
 * queued (dropped_before) and in the running total that the pod reports
 * at close, so a flood of refusals cannot hide that events were lost.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net_internal.h"

void nu__denials_init(nu__denials_t *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
}

void nu__denials_destroy(nu__denials_t *q)
{
    pthread_mutex_destroy(&q->lock);
}

static int64_t nu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nu__denials_push(nu__denials_t *q, const char *host, int port,
                      int status, const char *reason, const char *detail)
{
    nu_net_denial_t item;

    memset(&item, 0, sizeof item);
    snprintf(item.destination, sizeof item.destination, "%s:%d",
             host != NULL && host[0] != '\0' ? host : "?", port);
    snprintf(item.reason, sizeof item.reason, "%s", reason);
    snprintf(item.detail, sizeof item.detail, "%s", detail);
    item.status = status;
    item.time_ms = nu__now_ms();

    pthread_mutex_lock(&q->lock);
    if (q->count == NU_NET_DENIALS_MAX) {
        q->dropped++;
        q->dropped_total++;
    } else {
        item.dropped_before = q->dropped;
        q->dropped = 0;
        q->items[(q->head + q->count) % NU_NET_DENIALS_MAX] = item;
        q->count++;
    }
    pthread_mutex_unlock(&q->lock);
}

size_t nu__denials_take(nu__denials_t *q, nu_net_denial_t *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&q->lock);
    while (n < max && q->count > 0) {
        out[n++] = q->items[q->head];
        q->head = (q->head + 1) % NU_NET_DENIALS_MAX;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}

uint64_t nu__denials_dropped(nu__denials_t *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t total = q->dropped_total;
    pthread_mutex_unlock(&q->lock);
    return total;
}

size_t nu_net_denials_take(nu_net_t *net, nu_net_denial_t *out, size_t max)
{
    return nu__denials_take(&net->denials, out, max);
}
