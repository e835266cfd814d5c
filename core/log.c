/*
 * log.c - process-wide log sink.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "nucleus/log.h"

static pthread_mutex_t nu__log_lock = PTHREAD_MUTEX_INITIALIZER;
static nu_log_sink_t nu__log_sink;
static void *nu__log_userdata;
static nu_log_level_t nu__log_min = NU_LOG_WARN;

static void nu__log_default(nu_log_level_t level, const char *area,
                            const char *message, void *userdata)
{
    (void)userdata;
    fprintf(stderr, "nucleus: %s: %s: %s\n", nu_log_level_name(level), area,
            message);
}

void nu_log_set_sink(nu_log_sink_t sink, void *userdata)
{
    pthread_mutex_lock(&nu__log_lock);
    nu__log_sink = sink;
    nu__log_userdata = userdata;
    pthread_mutex_unlock(&nu__log_lock);
}

void nu_log_set_level(nu_log_level_t min_level)
{
    nu__log_min = min_level;
}

const char *nu_log_level_name(nu_log_level_t level)
{
    switch (level) {
    case NU_LOG_DEBUG: return "debug";
    case NU_LOG_INFO: return "info";
    case NU_LOG_WARN: return "warn";
    case NU_LOG_ERROR: return "error";
    }
    return "unknown";
}

void nu_log(nu_log_level_t level, const char *area, const char *fmt, ...)
{
    char message[1024];
    va_list ap;

    if (level < nu__log_min)
        return;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&nu__log_lock);
    if (nu__log_sink != NULL)
        nu__log_sink(level, area, message, nu__log_userdata);
    else
        nu__log_default(level, area, message, NULL);
    pthread_mutex_unlock(&nu__log_lock);
}
