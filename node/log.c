/*
 * log.c - the log destination and line format (see log.h).
 *
 * One fprintf per line on an unbuffered-by-line FILE, so concurrent writers
 * (the storage worker logs rarely) never interleave within a line.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "node/log.h"

enum log_level log_min_level = LOG_INFO;

static FILE *log_file;
static char log_node[64] = "-";

static const char *const log_names[LOG_LEVEL_MAX] = {"debug", "info", "warn",
                                                     "error", "off"};

const char *log_level_name(enum log_level level)
{
    return log_names[level < LOG_LEVEL_MAX ? level : LOG_ERROR];
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < LOG_LEVEL_MAX; i++) {
        if (strcmp(s, log_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int log_open(enum log_level level, const char *path, const char *node_id)
{
    if (path != NULL && path[0] != '\0') {
        FILE *f = fopen(path, "a");
        if (f == NULL)
            return -errno;
        setvbuf(f, NULL, _IOLBF, 0);
        log_close();
        log_file = f;
    }
    log_min_level = level;
    snprintf(log_node, sizeof(log_node), "%s", node_id ? node_id : "-");
    return 0;
}

void log_close(void)
{
    if (log_file != NULL)
        fclose(log_file);
    log_file = NULL;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    FILE *f = log_file ? log_file : stderr;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    int n;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(
        line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, (long)(tv.tv_usec / 1000),
        log_names[level < LOG_LEVEL_MAX ? level : LOG_ERROR], log_node);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(f, "%s\n", line);
}
