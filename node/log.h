/*
 * log.h - the node's one log macro.
 *
 * LOG(level, fmt, ...) checks the level before evaluating its arguments,
 * so a debug line costs one comparison when debug is off. Lines go to one
 * destination (stderr or a file opened in append mode), each prefixed with
 * a UTC timestamp, the level and the node id. Nothing per request at INFO:
 * per-request detail is DEBUG. Lines about a peer name its id and address.
 *
 * The level and destination are process-wide (one node per process; the
 * simulator sets the level once for all its nodes).
 */
#ifndef RINGKV_LOG_H
#define RINGKV_LOG_H

#include <stdio.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
    LOG_OFF,
    LOG_LEVEL_MAX
};

extern enum log_level log_min_level;

/* Sends lines to path (appending; created 0644), or to stderr when path is
 * NULL or "". Returns 0 or -errno (the destination is then unchanged). */
int log_open(enum log_level level, const char *path, const char *node_id);

/* Flushes and closes a log file opened by log_open; later lines go to
 * stderr. */
void log_close(void);

/* "debug", "info", "warn", "error" or "off" (static). */
const char *log_level_name(enum log_level level);

/* Parses "debug", "info", "warn", "error", "off". Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG(level, ...)                                                        \
    do {                                                                       \
        if ((level) >= log_min_level)                                          \
            log_write((level), __VA_ARGS__);                                   \
    } while (0)

#define LOG_DEBUG(...) LOG(LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  LOG(LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  LOG(LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG(LOG_ERROR, __VA_ARGS__)

#endif
