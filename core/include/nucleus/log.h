/*
 * log.h - the library's only way to report events.
 *
 * libnucleus never writes to stdout or stderr itself.  It calls one
 * process-wide sink; the CLI and the daemon install a sink that prints
 * text or JSON lines.  The default sink drops everything below WARN and
 * prints the rest to stderr as "nucleus: <area>: <message>".
 *
 * Messages must never contain credential values: callers log names, ids
 * and digests, not secrets.
 */
#ifndef NUCLEUS_LOG_H
#define NUCLEUS_LOG_H

typedef enum {
    NU_LOG_DEBUG = 0,
    NU_LOG_INFO = 1,
    NU_LOG_WARN = 2,
    NU_LOG_ERROR = 3
} nu_log_level_t;

/* area is a short module name ("sandbox", "policy"); message is one line
 * without a trailing newline. */
typedef void (*nu_log_sink_t)(nu_log_level_t level, const char *area,
                              const char *message, void *userdata);

/* Install sink (NULL restores the default) and the minimum level passed. */
void nu_log_set_sink(nu_log_sink_t sink, void *userdata);
void nu_log_set_level(nu_log_level_t min_level);

void nu_log(nu_log_level_t level, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *nu_log_level_name(nu_log_level_t level);

#endif
