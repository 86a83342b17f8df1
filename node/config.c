/*
 * config.c - node options from one table (see config.h for the syntax):
 * the table, parsing and printing one value, defaults and validation.
 * Reading a file and the command line is in config_parse.c, help, the
 * example file and the markdown table in config_doc.c; what they share is
 * declared in config_internal.h.
 *
 * Design: CONFIG_OPTIONS in config.h is expanded here into
 *   - config_table[]: name, type, default text, range, words, help;
 *   - enum config_opt: each option's index in that table;
 *   - store_value()/load_value(): a switch from index to struct field,
 *     going through union config_val, so all parsing, printing and range
 *     checks are written once per *type*, never per option.
 * Defaults are text in the table and go through the same parser as user
 * input, so a default that does not parse or is out of range is caught by
 * config_defaults() (and its unit test), and help, the example file and the
 * docs show the default exactly as written.
 *
 * Invariants:
 *   - A struct config returned by config_defaults() has every STRING field
 *     non-NULL and heap-owned; config_set() replaces a string only after
 *     the new value parsed, so c is unchanged on any error.
 *   - Numbers: digits only, overflow checked before every multiply and add;
 *     no strtol/atoi (no locale, sign or whitespace surprises).
 *   - config_format() output parses back to the same value (tested by the
 *     dump round trip). config_dump() is the exception for cluster_secret:
 *     it prints only that one is set and its length, as a comment.
 *   - Every string option is wiped before it is freed, and the line buffer
 *     of config_load_file() before it is freed: no copy of the cluster
 *     secret outlives the config in freed heap memory.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/config.h"
#include "node/config_internal.h"
#include "proto/errors.h"

/* ---- the table ---------------------------------------------------------- */

#define CONFIG_WORD_(constant, word) word,
#define CONFIG_WORDS_DECL_STRING(name)
#define CONFIG_WORDS_DECL_UINT(name)
#define CONFIG_WORDS_DECL_SIZE(name)
#define CONFIG_WORDS_DECL_DURATION(name)
#define CONFIG_WORDS_DECL_BOOL(name)
#define CONFIG_WORDS_DECL_ENUM(name)                                           \
    static const char *const config_words_##name[] = {                         \
        CONFIG_ENUM_##name(CONFIG_WORD_) NULL};
#define CONFIG_WORDS_DECL_(name, type, def, min, max, help)                    \
    CONFIG_WORDS_DECL_##type(name)
CONFIG_OPTIONS(CONFIG_WORDS_DECL_)

/* A UINT field is a uint32_t: its range must fit. */
#define CONFIG_CHECK_STRING(name, min, max)
#define CONFIG_CHECK_UINT(name, min, max)                                      \
    _Static_assert((max) <= UINT32_MAX && (min) <= (max), #name " range");
#define CONFIG_CHECK_SIZE(name, min, max)                                      \
    _Static_assert((min) <= (max), #name " range");
#define CONFIG_CHECK_DURATION(name, min, max)                                  \
    _Static_assert((min) <= (max), #name " range");
#define CONFIG_CHECK_BOOL(name, min, max)
#define CONFIG_CHECK_ENUM(name, min, max)
#define CONFIG_CHECK_(name, type, def, min, max, help)                         \
    CONFIG_CHECK_##type(name, min, max)
CONFIG_OPTIONS(CONFIG_CHECK_)

#define CONFIG_WORDS_STRING(name)   NULL
#define CONFIG_WORDS_UINT(name)     NULL
#define CONFIG_WORDS_SIZE(name)     NULL
#define CONFIG_WORDS_DURATION(name) NULL
#define CONFIG_WORDS_BOOL(name)     NULL
#define CONFIG_WORDS_ENUM(name)     config_words_##name

static const struct config_option config_table[] = {
#define CONFIG_ROW_(name, type, def, min, max, help)                           \
    {#name, CONFIG_##type, def, min, max, CONFIG_WORDS_##type(name), help},
    CONFIG_OPTIONS(CONFIG_ROW_)
#undef CONFIG_ROW_
};

enum config_opt {
#define CONFIG_IDX_(name, type, def, min, max, help) CONFIG_OPT_##name,
    CONFIG_OPTIONS(CONFIG_IDX_)
#undef CONFIG_IDX_
        CONFIG_OPT_COUNT_
};

#define CONFIG_NOPTS (sizeof(config_table) / sizeof(config_table[0]))

const struct config_option *config_options(size_t *n)
{
    *n = CONFIG_NOPTS;
    return config_table;
}

/* ---- field access ------------------------------------------------------- */

/* Frees a string option after wiping it: one of them is the cluster secret,
 * and the others are too few and small to tell apart cheaply. */
static void free_string(char *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, strlen(s));
    free(s);
}

union config_val {
    char *s;
    uint64_t u;
    bool b;
    int e;
};

#define CONFIG_STORE_STRING(f, v)                                              \
    do {                                                                       \
        free_string(f);                                                        \
        (f) = (v).s;                                                           \
    } while (0)
#define CONFIG_STORE_UINT(f, v)     ((f) = (uint32_t)(v).u)
#define CONFIG_STORE_SIZE(f, v)     ((f) = (v).u)
#define CONFIG_STORE_DURATION(f, v) ((f) = (v).u)
#define CONFIG_STORE_BOOL(f, v)     ((f) = (v).b)
#define CONFIG_STORE_ENUM(f, v)     ((f) = (v).e)

/* Stores v into option idx; a string's ownership moves into c. */
static void store_value(struct config *c, size_t idx, union config_val v)
{
    switch ((enum config_opt)idx) {
#define CONFIG_STORE_(name, type, def, min, max, help)                         \
    case CONFIG_OPT_##name:                                                    \
        CONFIG_STORE_##type(c->name, v);                                       \
        break;
        CONFIG_OPTIONS(CONFIG_STORE_)
#undef CONFIG_STORE_
    case CONFIG_OPT_COUNT_:
        assert(0);
        break;
    }
}

#define CONFIG_LOAD_STRING(f)   (v.s = (f))
#define CONFIG_LOAD_UINT(f)     (v.u = (f))
#define CONFIG_LOAD_SIZE(f)     (v.u = (f))
#define CONFIG_LOAD_DURATION(f) (v.u = (f))
#define CONFIG_LOAD_BOOL(f)     (v.b = (f))
#define CONFIG_LOAD_ENUM(f)     (v.e = (int)(f))

/* The value of option idx; a string is borrowed from c. */
static union config_val load_value(const struct config *c, size_t idx)
{
    union config_val v = {.u = 0};
    switch ((enum config_opt)idx) {
#define CONFIG_LOAD_(name, type, def, min, max, help)                          \
    case CONFIG_OPT_##name:                                                    \
        CONFIG_LOAD_##type(c->name);                                           \
        break;
        CONFIG_OPTIONS(CONFIG_LOAD_)
#undef CONFIG_LOAD_
    case CONFIG_OPT_COUNT_:
        assert(0);
        break;
    }
    return v;
}

/* ---- small helpers ------------------------------------------------------ */

void config__err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int to_lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static bool word_eq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        if (to_lower((unsigned char)*a) != to_lower((unsigned char)*b))
            return false;
    }
    return *a == *b;
}

/* Option names compare with '-' and '_' equivalent. */
static bool name_eq(const char *name, const char *key)
{
    for (; *name != '\0' && *key != '\0'; name++, key++) {
        char k = *key == '-' ? '_' : *key;
        if (*name != k)
            return false;
    }
    return *name == *key;
}

const struct config_option *config_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        if (name_eq(config_table[i].name, name))
            return &config_table[i];
    }
    return NULL;
}

static size_t option_index(const struct config_option *opt)
{
    assert(opt >= config_table && opt < config_table + CONFIG_NOPTS);
    return (size_t)(opt - config_table);
}

/* ---- numbers and units -------------------------------------------------- */

struct config_unit {
    const char *name;
    uint64_t mult;
};

static const struct config_unit config_size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", CONFIG_KiB},
    {"kb", CONFIG_KiB},
    {"kib", CONFIG_KiB},
    {"m", CONFIG_MiB},
    {"mb", CONFIG_MiB},
    {"mib", CONFIG_MiB},
    {"g", CONFIG_GiB},
    {"gb", CONFIG_GiB},
    {"gib", CONFIG_GiB},
    {"t", CONFIG_TiB},
    {"tb", CONFIG_TiB},
    {"tib", CONFIG_TiB},
    {NULL, 0},
};

static const struct config_unit config_duration_units[] = {
    {"", 1},
    {"ms", 1},
    {"s", CONFIG_SEC},
    {"m", CONFIG_MINUTE},
    {"min", CONFIG_MINUTE},
    {"h", CONFIG_HOUR},
    {NULL, 0},
};

enum config_num_err {
    CONFIG_NUM_OK = 0,
    CONFIG_NUM_NOT_A_NUMBER,
    CONFIG_NUM_BAD_UNIT,
    CONFIG_NUM_TOO_LARGE,
};

/* Parses digits, optional blanks, and a unit from units (NULL: no unit
 * allowed) covering all of s. */
static enum config_num_err
parse_num(const char *s, const struct config_unit *units, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return CONFIG_NUM_NOT_A_NUMBER;
    bool overflow = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    if (units == NULL) {
        if (*p != '\0')
            return CONFIG_NUM_NOT_A_NUMBER;
        if (overflow)
            return CONFIG_NUM_TOO_LARGE;
        *out = v;
        return CONFIG_NUM_OK;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    const struct config_unit *u = units;
    while (u->name != NULL && !word_eq(u->name, p))
        u++;
    if (u->name == NULL)
        return CONFIG_NUM_BAD_UNIT;
    if (overflow || v > UINT64_MAX / u->mult)
        return CONFIG_NUM_TOO_LARGE;
    *out = v * u->mult;
    return CONFIG_NUM_OK;
}

static int parse_units(const char *s, const struct config_unit *units,
                       uint64_t *out)
{
    uint64_t v;
    if (parse_num(s, units, &v) != CONFIG_NUM_OK)
        return RK_ECONFIG;
    *out = v;
    return 0;
}

int config_parse_uint(const char *s, uint64_t *out)
{
    return parse_units(s, NULL, out);
}

int config_parse_size(const char *s, uint64_t *out)
{
    return parse_units(s, config_size_units, out);
}

int config_parse_duration(const char *s, uint64_t *out)
{
    return parse_units(s, config_duration_units, out);
}

/* Writes n with the largest unit of units[] that divides it exactly
 * (units ordered small to large; entry 0 is the bare number). */
static void fmt_num(uint64_t n, const struct config_unit *units,
                    const char *const *names, char *buf, size_t len)
{
    size_t best = 0;
    for (size_t i = 1; names[i] != NULL; i++) {
        const struct config_unit *u = units;
        while (!word_eq(u->name, names[i]))
            u++;
        if (n != 0 && n % u->mult == 0)
            best = i;
    }
    if (best == 0) {
        snprintf(buf, len, "%" PRIu64 "%s", n, names[0]);
        return;
    }
    const struct config_unit *u = units;
    while (!word_eq(u->name, names[best]))
        u++;
    snprintf(buf, len, "%" PRIu64 "%s", n / u->mult, names[best]);
}

static const char *const config_size_names[] = {"",    "KiB", "MiB",
                                                "GiB", "TiB", NULL};
static const char *const config_duration_names[] = {"ms", "s", "m", "h", NULL};

static void fmt_size(uint64_t n, char *buf, size_t len)
{
    fmt_num(n, config_size_units, config_size_names, buf, len);
}

static void fmt_duration(uint64_t n, char *buf, size_t len)
{
    if (n == 0) {
        snprintf(buf, len, "0");
        return;
    }
    fmt_num(n, config_duration_units, config_duration_names, buf, len);
}

/* A number of opt's type, as text: "7001", "8MiB", "100ms". */
static void fmt_typed(const struct config_option *opt, uint64_t n, char *buf,
                      size_t len)
{
    if (opt->type == CONFIG_SIZE)
        fmt_size(n, buf, len);
    else if (opt->type == CONFIG_DURATION)
        fmt_duration(n, buf, len);
    else
        snprintf(buf, len, "%" PRIu64, n);
}

/* "1..65535", "1MiB..64TiB". */
void config__fmt_range(const struct config_option *opt, char *buf, size_t len)
{
    char lo[32], hi[32];
    fmt_typed(opt, opt->min, lo, sizeof(lo));
    fmt_typed(opt, opt->max, hi, sizeof(hi));
    snprintf(buf, len, "%s..%s", lo, hi);
}

/* ---- parsing one value -------------------------------------------------- */

static const char *const config_true_words[] = {"yes", "true", "on", "1", NULL};
static const char *const config_false_words[] = {"no", "false", "off", "0",
                                                 NULL};

/* The index of s in the NULL-terminated words, or -ENOENT. */
static int find_word(const char *const *words, const char *s)
{
    for (int i = 0; words[i] != NULL; i++) {
        if (word_eq(words[i], s))
            return i;
    }
    return -ENOENT;
}

int config_parse_bool(const char *s, bool *out)
{
    if (find_word(config_true_words, s) >= 0) {
        *out = true;
        return 0;
    }
    if (find_word(config_false_words, s) >= 0) {
        *out = false;
        return 0;
    }
    return RK_ECONFIG;
}

/* Parses text as a value of opt into *v (a string is malloc'd). label
 * prefixes error messages. Returns 0, RK_ECONFIG or -ENOMEM. */
static int parse_value(const struct config_option *opt, const char *text,
                       const char *label, union config_val *v, char *err,
                       size_t errlen)
{
    switch (opt->type) {
    case CONFIG_STRING:
        for (const char *p = text; *p != '\0'; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch < 0x20 || ch == 0x7f) {
                config__err(err, errlen, "%s: control character in value",
                            label);
                return RK_ECONFIG;
            }
        }
        v->s = strdup(text);
        if (v->s == NULL) {
            config__err(err, errlen, "%s: out of memory", label);
            return -ENOMEM;
        }
        return 0;
    case CONFIG_BOOL:
        if (config_parse_bool(text, &v->b) == 0)
            return 0;
        config__err(err, errlen,
                    "%s: \"%s\" is not yes/no, true/false, on/off or 1/0",
                    label, text);
        return RK_ECONFIG;
    case CONFIG_ENUM: {
        int i = find_word(opt->words, text);
        if (i >= 0) {
            v->e = i;
            return 0;
        }
        char list[256] = "";
        size_t used = 0;
        for (size_t k = 0; opt->words[k] != NULL && used < sizeof(list); k++) {
            int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                             k > 0 ? ", " : "", opt->words[k]);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        config__err(err, errlen, "%s: \"%s\" is not one of %s", label, text,
                    list);
        return RK_ECONFIG;
    }
    case CONFIG_UINT:
    case CONFIG_SIZE:
    case CONFIG_DURATION: {
        const struct config_unit *units = NULL;
        const char *unit_help = "";
        if (opt->type == CONFIG_SIZE) {
            units = config_size_units;
            unit_help = " (use b, k, m, g, t, KiB, MiB, GiB, TiB)";
        } else if (opt->type == CONFIG_DURATION) {
            units = config_duration_units;
            unit_help = " (use ms, s, m, h)";
        }
        uint64_t n = 0;
        char range[80];
        config__fmt_range(opt, range, sizeof(range));
        switch (parse_num(text, units, &n)) {
        case CONFIG_NUM_OK:
            break;
        case CONFIG_NUM_NOT_A_NUMBER:
            config__err(err, errlen, "%s: \"%s\" is not a number", label, text);
            return RK_ECONFIG;
        case CONFIG_NUM_BAD_UNIT:
            config__err(err, errlen, "%s: \"%s\" has an unknown unit%s", label,
                        text, unit_help);
            return RK_ECONFIG;
        case CONFIG_NUM_TOO_LARGE:
            config__err(err, errlen, "%s: \"%s\" is too large (range %s)",
                        label, text, range);
            return RK_ECONFIG;
        }
        if (n < opt->min || n > opt->max) {
            config__err(err, errlen, "%s: %s is outside the range %s", label,
                        text, range);
            return RK_ECONFIG;
        }
        v->u = n;
        return 0;
    }
    case CONFIG_TYPE_MAX:
        break;
    }
    assert(0);
    return RK_EINTERNAL;
}

int config__set_opt(struct config *c, const struct config_option *opt,
                    const char *value, const char *label, char *err,
                    size_t errlen)
{
    union config_val v;
    int rc = parse_value(opt, value, label, &v, err, errlen);
    if (rc != 0)
        return rc;
    store_value(c, option_index(opt), v);
    return 0;
}

int config_set(struct config *c, const char *key, const char *value, char *err,
               size_t errlen)
{
    const struct config_option *opt = config_find(key);
    if (opt == NULL) {
        config__err(err, errlen, "unknown option \"%s\"", key);
        return RK_ECONFIG;
    }
    return config__set_opt(c, opt, value, opt->name, err, errlen);
}

/* ---- lifecycle ---------------------------------------------------------- */

int config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        const struct config_option *opt = &config_table[i];
        int rc = config__set_opt(c, opt, opt->def, opt->name, NULL, 0);
        if (rc == -ENOMEM)
            return rc;
        assert(rc == 0); /* the table's defaults parse: see test_config */
        if (rc != 0)
            return rc;
    }
    return 0;
}

#define CONFIG_FREE_STRING(f)                                                  \
    do {                                                                       \
        free_string(f);                                                        \
        (f) = NULL;                                                            \
    } while (0)
#define CONFIG_FREE_UINT(f)
#define CONFIG_FREE_SIZE(f)
#define CONFIG_FREE_DURATION(f)
#define CONFIG_FREE_BOOL(f)
#define CONFIG_FREE_ENUM(f)

void config_free(struct config *c)
{
    if (c == NULL)
        return;
#define CONFIG_FREE_(name, type, def, min, max, help)                          \
    CONFIG_FREE_##type(c->name);
    CONFIG_OPTIONS(CONFIG_FREE_)
#undef CONFIG_FREE_
}

/* ---- validation --------------------------------------------------------- */

int config_validate(const struct config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        const struct config_option *opt = &config_table[i];
        union config_val v = load_value(c, i);
        switch (opt->type) {
        case CONFIG_STRING:
            if (v.s == NULL) {
                config__err(err, errlen, "%s is not set", opt->name);
                return RK_ECONFIG;
            }
            break;
        case CONFIG_UINT:
        case CONFIG_SIZE:
        case CONFIG_DURATION:
            if (v.u < opt->min || v.u > opt->max) {
                char val[32], range[80];
                fmt_typed(opt, v.u, val, sizeof(val));
                config__fmt_range(opt, range, sizeof(range));
                config__err(err, errlen, "%s: %s is outside the range %s",
                            opt->name, val, range);
                return RK_ECONFIG;
            }
            break;
        case CONFIG_ENUM: {
            int n = 0;
            while (opt->words[n] != NULL)
                n++;
            if (v.e < 0 || v.e >= n) {
                config__err(err, errlen, "%s: invalid value %d", opt->name,
                            v.e);
                return RK_ECONFIG;
            }
            break;
        }
        case CONFIG_BOOL:
        case CONFIG_TYPE_MAX:
            break;
        }
    }

    size_t id_len = strlen(c->node_id);
    if (id_len == 0 || id_len > CONFIG_MAX_NODE_ID) {
        config__err(err, errlen, "node_id must be 1..%d bytes long",
                    CONFIG_MAX_NODE_ID);
        return RK_ECONFIG;
    }
    for (size_t i = 0; i < id_len; i++) {
        unsigned char ch = (unsigned char)c->node_id[i];
        if (ch <= ' ' || ch >= 0x7f) {
            config__err(err, errlen,
                        "node_id \"%s\" may hold only printable ASCII without "
                        "spaces",
                        c->node_id);
            return RK_ECONFIG;
        }
    }
    if (c->data_dir[0] == '\0') {
        config__err(err, errlen, "data_dir must not be empty");
        return RK_ECONFIG;
    }
    if (c->listen[0] == '\0') {
        config__err(err, errlen, "listen must not be empty");
        return RK_ECONFIG;
    }
    if ((c->partitions & (c->partitions - 1)) != 0) {
        config__err(err, errlen,
                    "partitions (%" PRIu32 ") must be a power of two",
                    c->partitions);
        return RK_ECONFIG;
    }
    if (c->resp_port != 0 && c->resp_port == c->port) {
        config__err(err, errlen, "port and resp_port are both %" PRIu32,
                    c->port);
        return RK_ECONFIG;
    }
    if (c->max_key > c->max_frame) {
        config__err(err, errlen,
                    "max_key (%" PRIu64 ") exceeds max_frame (%" PRIu64 ")",
                    c->max_key, c->max_frame);
        return RK_ECONFIG;
    }
    if (c->max_value > c->max_frame) {
        config__err(err, errlen,
                    "max_value (%" PRIu64 ") exceeds max_frame (%" PRIu64 ")",
                    c->max_value, c->max_frame);
        return RK_ECONFIG;
    }
    if (c->map_size > c->max_db_size) {
        config__err(err, errlen,
                    "map_size (%" PRIu64 ") exceeds max_db_size (%" PRIu64 ")",
                    c->map_size, c->max_db_size);
        return RK_ECONFIG;
    }
    if (c->conn_max_buffer > c->max_buffer) {
        config__err(err, errlen,
                    "conn_max_buffer (%" PRIu64 ") exceeds max_buffer (%" PRIu64
                    ")",
                    c->conn_max_buffer, c->max_buffer);
        return RK_ECONFIG;
    }
    if (c->r > c->n || c->w > c->n) {
        config__err(err, errlen,
                    "r (%" PRIu32 ") and w (%" PRIu32
                    ") must not exceed n (%" PRIu32 ")",
                    c->r, c->w, c->n);
        return RK_ECONFIG;
    }
    if (c->max_record != 0 &&
        c->max_record > c->max_frame - CONFIG_RECORD_ENVELOPE) {
        config__err(err, errlen,
                    "max_record (%" PRIu64 ") must leave %u bytes of max_frame "
                    "(%" PRIu64 ") for the frame envelope: at most %" PRIu64,
                    c->max_record, (unsigned)CONFIG_RECORD_ENVELOPE,
                    c->max_frame, c->max_frame - CONFIG_RECORD_ENVELOPE);
        return RK_ECONFIG;
    }
    size_t name_len = strlen(c->cluster_name);
    if (name_len == 0 || name_len > 255) {
        config__err(err, errlen, "cluster_name must be 1..255 bytes long");
        return RK_ECONFIG;
    }
    if (c->cluster_secret[0] != '\0' && c->cluster_secret_file[0] != '\0') {
        config__err(err, errlen,
                    "set cluster_secret or cluster_secret_file, not both");
        return RK_ECONFIG;
    }
    if (c->cluster_secret[0] != '\0' &&
        strlen(c->cluster_secret) < CONFIG_MIN_SECRET) {
        config__err(err, errlen,
                    "cluster_secret must be at least %d bytes; make one with: "
                    "head -c 32 /dev/urandom | base64",
                    CONFIG_MIN_SECRET);
        return RK_ECONFIG;
    }
    if (c->gossip_timeout >= c->gossip_interval) {
        config__err(err, errlen,
                    "gossip_timeout (%" PRIu64 " ms) must be below "
                    "gossip_interval (%" PRIu64 " ms)",
                    c->gossip_timeout, c->gossip_interval);
        return RK_ECONFIG;
    }
    uint32_t nm, self, ns;
    int rc = config_members(c, NULL, 0, &nm, &self, err, errlen);
    if (rc == 0)
        rc = config_seeds(c, NULL, 0, &ns, err, errlen);
    if (rc == 0 && (nm > 1 || ns > 0) && c->cluster_secret[0] == '\0' &&
        c->cluster_secret_file[0] == '\0') {
        config__err(err, errlen,
                    "peers are configured but no cluster secret: make one with "
                    "`head -c 32 /dev/urandom | base64 > secret && chmod 600 "
                    "secret` and set cluster_secret_file = secret on every "
                    "node");
        return RK_ECONFIG;
    }
    return rc;
}

uint64_t config_max_record(const struct config *c)
{
    return c->max_record != 0 ? c->max_record
                              : c->max_frame - CONFIG_RECORD_ENVELOPE;
}

/* The next item of a comma-separated list at *p: *item and *len get it
 * with blanks (space, tab) trimmed; empty items are skipped. Returns false
 * at the end of the list. */
static bool next_item(const char **p, const char **item, size_t *len)
{
    while (**p != '\0') {
        const char *s = *p, *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        *p = e ? e + 1 : s + n;
        while (n > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n > 0) {
            *item = s;
            *len = n;
            return true;
        }
    }
    return false;
}

/* Parses one "id@host:port" (host may be [v6]) of length len into m. */
static int parse_member(const char *s, size_t len, struct config_member *m,
                        char *err, size_t errlen)
{
    const char *at = memchr(s, '@', len);
    const char *end = s + len;
    const char *colon;
    size_t idl, hl;
    char port[8];

    if (at == NULL || at == s) {
        config__err(err, errlen, "peers: \"%.*s\" is not id@host:port",
                    (int)len, s);
        return RK_ECONFIG;
    }
    idl = (size_t)(at - s);
    colon = end;
    while (colon > at && colon[-1] != ':')
        colon--;
    if (colon == at + 1 || colon <= at + 1 || colon == end ||
        (size_t)(end - colon) >= sizeof(port)) {
        config__err(err, errlen, "peers: \"%.*s\" has no :port", (int)len, s);
        return RK_ECONFIG;
    }
    const char *h = at + 1;
    hl = (size_t)(colon - 1 - h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (idl > CONFIG_MAX_NODE_ID || hl == 0 || hl >= sizeof(m->host)) {
        config__err(err, errlen, "peers: bad id or host in \"%.*s\"", (int)len,
                    s);
        return RK_ECONFIG;
    }
    memcpy(port, colon, (size_t)(end - colon));
    port[end - colon] = '\0';
    uint64_t pv;
    if (config_parse_uint(port, &pv) != 0 || pv < 1 || pv > 65535) {
        config__err(err, errlen, "peers: bad port in \"%.*s\"", (int)len, s);
        return RK_ECONFIG;
    }
    memcpy(m->id, s, idl);
    m->id[idl] = '\0';
    memcpy(m->host, h, hl);
    m->host[hl] = '\0';
    m->port = (uint16_t)pv;
    return 0;
}

int config_members(const struct config *c, struct config_member *out,
                   uint32_t cap, uint32_t *n, uint32_t *self, char *err,
                   size_t errlen)
{
    struct config_member tmp[CONFIG_MAX_MEMBERS];
    const char *p = c->peers;
    uint32_t k = 0;

    *n = 0;
    *self = 0;
    if (p[0] == '\0') {
        snprintf(tmp[0].id, sizeof(tmp[0].id), "%s", c->node_id);
        snprintf(tmp[0].host, sizeof(tmp[0].host), "%s", c->listen);
        tmp[0].port = (uint16_t)c->port;
        k = 1;
    } else {
        const char *item;
        size_t len;
        while (next_item(&p, &item, &len)) {
            if (k == CONFIG_MAX_MEMBERS) {
                config__err(err, errlen, "peers: more than %d members",
                            CONFIG_MAX_MEMBERS);
                return RK_ECONFIG;
            }
            int rc = parse_member(item, len, &tmp[k], err, errlen);
            if (rc != 0)
                return rc;
            for (uint32_t j = 0; j < k; j++) {
                if (strcmp(tmp[j].id, tmp[k].id) == 0) {
                    config__err(err, errlen, "peers: %s is listed twice",
                                tmp[k].id);
                    return RK_ECONFIG;
                }
            }
            k++;
        }
    }
    uint32_t me = k;
    for (uint32_t j = 0; j < k; j++)
        if (strcmp(tmp[j].id, c->node_id) == 0)
            me = j;
    if (me == k) {
        config__err(err, errlen, "peers does not list this node (node_id %s)",
                    c->node_id);
        return RK_ECONFIG;
    }
    if (tmp[me].port != c->port) {
        config__err(err, errlen,
                    "peers lists %s at port %u but port is %" PRIu32,
                    c->node_id, (unsigned)tmp[me].port, c->port);
        return RK_ECONFIG;
    }
    if (out != NULL) {
        if (cap < k) {
            config__err(err, errlen, "too many members");
            return RK_ECONFIG;
        }
        memcpy(out, tmp, k * sizeof(*out));
    }
    *n = k;
    *self = me;
    return 0;
}

/* One "host:port" (host may be [v6]) of a seed list into out. */
static int seed_parse(const char *s, size_t len, char *out, size_t cap,
                      char *err, size_t errlen)
{
    const char *colon = s + len;
    char port[8];
    uint64_t pv;
    while (colon > s && colon[-1] != ':')
        colon--;
    size_t pl = (size_t)(s + len - colon);
    if (colon <= s + 1 || pl == 0 || pl >= sizeof(port) || len >= cap) {
        config__err(err, errlen, "seeds: \"%.*s\" is not host:port", (int)len,
                    s);
        return RK_ECONFIG;
    }
    memcpy(port, colon, pl);
    port[pl] = '\0';
    if (config_parse_uint(port, &pv) != 0 || pv < 1 || pv > 65535) {
        config__err(err, errlen, "seeds: bad port in \"%.*s\"", (int)len, s);
        return RK_ECONFIG;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int config_seeds(const struct config *c, char (*out)[CONFIG_ADDR_MAX + 1],
                 uint32_t cap, uint32_t *n, char *err, size_t errlen)
{
    const char *lists[2] = {c->seeds, c->join};
    char one[CONFIG_ADDR_MAX + 1];
    uint32_t k = 0;
    for (int l = 0; l < 2; l++) {
        const char *p = lists[l], *item;
        size_t len;
        while (next_item(&p, &item, &len)) {
            int rc = seed_parse(item, len, one, sizeof(one), err, errlen);
            if (rc != 0)
                return rc;
            if (k == CONFIG_MAX_SEEDS) {
                config__err(err, errlen, "seeds: more than %d",
                            CONFIG_MAX_SEEDS);
                return RK_ECONFIG;
            }
            if (out != NULL && k < cap)
                memcpy(out[k], one, sizeof(one));
            k++;
        }
    }
    *n = out != NULL && k > cap ? cap : k;
    return 0;
}

void config_advertise(const struct config *c, char *buf, size_t len)
{
    if (c->advertise[0] != '\0') {
        if (strchr(c->advertise, ':') != NULL &&
            c->advertise[strlen(c->advertise) - 1] != ']')
            snprintf(buf, len, "%s", c->advertise);
        else
            snprintf(buf, len, "%s:%" PRIu32, c->advertise, c->port);
        return;
    }
    const char *h = c->listen;
    if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || h[0] == '\0')
        h = "127.0.0.1";
    if (strchr(h, ':') != NULL)
        snprintf(buf, len, "[%s]:%" PRIu32, h, c->port);
    else
        snprintf(buf, len, "%s:%" PRIu32, h, c->port);
}

/* ---- printing ----------------------------------------------------------- */

/* Whether a string needs quotes to survive the file syntax. */
static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '#' || *p == '"' || *p == '\\')
            return true;
    }
    return false;
}

/* Appends s quoted and escaped, as snprintf would; returns the length. */
static size_t quote_value(const char *s, char *buf, size_t len)
{
    size_t n = 0;
#define CONFIG_PUT_(ch)                                                        \
    do {                                                                       \
        if (n + 1 < len)                                                       \
            buf[n] = (ch);                                                     \
        n++;                                                                   \
    } while (0)
    CONFIG_PUT_('"');
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            CONFIG_PUT_('\\');
        CONFIG_PUT_(*p);
    }
    CONFIG_PUT_('"');
#undef CONFIG_PUT_
    if (len > 0)
        buf[n < len ? n : len - 1] = '\0';
    return n;
}

size_t config__format_string(const char *s, char *buf, size_t len)
{
    if (needs_quotes(s))
        return quote_value(s, buf, len);
    int n = snprintf(buf, len, "%s", s);
    return n < 0 ? 0 : (size_t)n;
}

size_t config_format(const struct config *c, const struct config_option *opt,
                     char *buf, size_t len)
{
    union config_val v = load_value(c, option_index(opt));
    char tmp[64];
    const char *text = tmp;
    switch (opt->type) {
    case CONFIG_STRING:
        return config__format_string(v.s != NULL ? v.s : "", buf, len);
    case CONFIG_UINT:
    case CONFIG_SIZE:
    case CONFIG_DURATION:
        fmt_typed(opt, v.u, tmp, sizeof(tmp));
        break;
    case CONFIG_BOOL:
        text = v.b ? "yes" : "no";
        break;
    case CONFIG_ENUM: {
        int n = 0;
        while (opt->words[n] != NULL)
            n++;
        text = v.e >= 0 && v.e < n ? opt->words[v.e] : "?";
        break;
    }
    case CONFIG_TYPE_MAX:
        text = "?";
        break;
    }
    int n = snprintf(buf, len, "%s", text);
    return n < 0 ? 0 : (size_t)n;
}

void config_dump(const struct config *c, FILE *f)
{
    for (size_t i = 0; i < CONFIG_NOPTS; i++) {
        char buf[4096];
        if (i == CONFIG_OPT_cluster_secret && c->cluster_secret != NULL &&
            c->cluster_secret[0] != '\0') {
            /* Never the secret itself; commented out, so a file saved from
             * this output does not adopt a placeholder as the secret. */
            fprintf(f, "# %s = (set, %zu bytes; not printed)\n",
                    config_table[i].name, strlen(c->cluster_secret));
            continue;
        }
        size_t n = config_format(c, &config_table[i], buf, sizeof(buf));
        if (n < sizeof(buf)) {
            fprintf(f, "%s = %s\n", config_table[i].name, buf);
            continue;
        }
        char *big = malloc(n + 1);
        if (big == NULL) {
            fprintf(f, "%s = %s\n", config_table[i].name, buf);
            continue;
        }
        config_format(c, &config_table[i], big, n + 1);
        fprintf(f, "%s = %s\n", config_table[i].name, big);
        free(big);
    }
}
