/*
 * config_parse.c - reading options from a file ("option = value" lines) and
 * from the command line (see config.h for the syntax). Each value goes
 * through config__set_opt() in config.c: the same parser and range checks
 * as a default.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/config.h"
#include "node/config_internal.h"
#include "proto/errors.h"

/* ---- the file ----------------------------------------------------------- */

static bool is_blank_line(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Splits one line (NUL-terminated, no newline) in place. Returns 1 with
 * *key and *value set, 0 for a blank or comment line, or -EINVAL with
 * *problem set. */
static int split_line(char *line, char **key, char **value,
                      const char **problem)
{
    char *p = line;
    while (is_blank_line(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    *key = p;
    while (*p != '\0' && !is_blank_line(*p) && *p != '=')
        p++;
    char *key_end = p;
    while (is_blank_line(*p))
        p++;
    if (*p != '=') {
        *problem = "expected \"option = value\"";
        return -EINVAL;
    }
    if (key_end == *key) {
        *problem = "missing option name before '='";
        return -EINVAL;
    }
    *key_end = '\0';
    p++;
    while (is_blank_line(*p))
        p++;

    if (*p == '"') {
        /* Quoted: unescape in place. */
        char *out = p;
        *value = out;
        p++;
        for (;;) {
            if (*p == '\0') {
                *problem = "unterminated quoted value";
                return -EINVAL;
            }
            if (*p == '"')
                break;
            if (*p == '\\') {
                p++;
                if (*p != '"' && *p != '\\') {
                    *problem = "unknown escape in quoted value (use \\\" or "
                               "\\\\)";
                    return -EINVAL;
                }
            }
            *out++ = *p++;
        }
        p++; /* closing quote */
        while (is_blank_line(*p))
            p++;
        if (*p != '\0' && *p != '#') {
            *problem = "unexpected text after quoted value";
            return -EINVAL;
        }
        *out = '\0';
        return 1;
    }

    /* Unquoted: up to a '#' that starts the value or follows a blank. */
    *value = p;
    char *end = p;
    for (char *q = p; *q != '\0'; q++) {
        if (*q == '#' && (q == p || is_blank_line(q[-1])))
            break;
        end = q + 1;
    }
    while (end > p && is_blank_line(end[-1]))
        end--;
    *end = '\0';
    return 1;
}

int config_load_file(struct config *c, const char *path, char *err,
                     size_t errlen)
{
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = -errno;
        config__err(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }

    for (unsigned lineno = 1;; lineno++) {
        errno = 0;
        ssize_t n = getline(&line, &cap, f);
        if (n < 0) {
            if (ferror(f)) {
                rc = errno != 0 ? -errno : -EIO;
                config__err(err, errlen, "%s: %s", path, strerror(-rc));
            }
            break;
        }
        if (memchr(line, '\0', (size_t)n) != NULL) {
            config__err(err, errlen, "%s:%u: NUL byte in line", path, lineno);
            rc = RK_ECONFIG;
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';

        char *key = NULL, *value = NULL;
        const char *problem = NULL;
        int s = split_line(line, &key, &value, &problem);
        if (s == 0)
            continue;
        if (s < 0) {
            config__err(err, errlen, "%s:%u: %s", path, lineno, problem);
            rc = RK_ECONFIG;
            break;
        }
        const struct config_option *opt = config_find(key);
        if (opt == NULL) {
            config__err(err, errlen, "%s:%u: unknown option \"%s\"", path,
                        lineno, key);
            rc = RK_ECONFIG;
            break;
        }
        char why[512];
        rc = config__set_opt(c, opt, value, opt->name, why, sizeof(why));
        if (rc != 0) {
            config__err(err, errlen, "%s:%u: %s", path, lineno, why);
            break;
        }
    }
    if (line != NULL)
        sodium_memzero(line, cap);
    free(line);
    fclose(f);
    return rc;
}

/* ---- the command line --------------------------------------------------- */

int config_parse_args(struct config *c, int argc, char **argv, char *err,
                      size_t errlen)
{
    bool print = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return CONFIG_HELP;
        if (strcmp(a, "--print-config") == 0) {
            print = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=') {
            /* Never the value after '=': it may be a secret
             * ("-cluster-secret=..."). */
            size_t shown = strcspn(a, "=");
            config__err(err, errlen,
                        "unexpected argument \"%.*s%s\" (see --help)",
                        (int)shown, a, a[shown] == '=' ? "=..." : "");
            return RK_ECONFIG;
        }
        /* Name and value: "--name=value" or "--name" "value". */
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (name_len >= sizeof(name)) {
            config__err(err, errlen, "unknown option \"%.*s\" (see --help)",
                        (int)(name_len + 2), a);
            return RK_ECONFIG;
        }
        memcpy(name, a + 2, name_len);
        name[name_len] = '\0';
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            config__err(err, errlen, "--%s needs a value", name);
            return RK_ECONFIG;
        }

        if (strcmp(name, "config") == 0) {
            int rc = config_load_file(c, value, err, errlen);
            if (rc != 0)
                return rc;
            continue;
        }
        const struct config_option *opt = config_find(name);
        if (opt == NULL) {
            config__err(err, errlen, "unknown option \"--%s\" (see --help)",
                        name);
            return RK_ECONFIG;
        }
        char label[80];
        snprintf(label, sizeof(label), "--%s", name);
        int rc = config__set_opt(c, opt, value, label, err, errlen);
        if (rc != 0)
            return rc;
    }
    return print ? CONFIG_PRINT : 0;
}
