/*
 * config_internal.h - what config.c (the table, value parsing, validation),
 * config_parse.c (file and command line) and config_doc.c (help, example
 * file, markdown) share. Private to those three files.
 */
#ifndef RINGKV_CONFIG_INTERNAL_H
#define RINGKV_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "node/config.h"

/* Writes the formatted message into err (if err is non-NULL and errlen > 0). */
void config__err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses value for opt and stores it into c; on error c is unchanged and err
 * says why, naming the option as label ("--port", "port"). */
int config__set_opt(struct config *c, const struct config_option *opt,
                    const char *value, const char *label, char *err,
                    size_t errlen);

/* The range of a number option as text: "1..65535", "1MiB..64TiB". */
void config__fmt_range(const struct config_option *opt, char *buf, size_t len);

/* s as it would be written in a file (quoted and escaped if it must be);
 * returns the length as snprintf would. */
size_t config__format_string(const char *s, char *buf, size_t len);

#endif
