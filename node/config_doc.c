/*
 * config_doc.c - documentation generated from the option table: --help,
 * the example ringkv.conf and docs/config.md's table (tests/unit/
 * test_config.c checks the committed files match).
 */
#include <stdio.h>
#include <string.h>

#include "node/config.h"
#include "node/config_internal.h"

/* The type column: "size, 1MiB..64TiB", "always, interval, never". */
static void describe_type(const struct config_option *opt, char *buf,
                          size_t len)
{
    char range[80];
    switch (opt->type) {
    case CONFIG_STRING:
        snprintf(buf, len, "string");
        return;
    case CONFIG_UINT:
        config__fmt_range(opt, range, sizeof(range));
        snprintf(buf, len, "integer, %s", range);
        return;
    case CONFIG_SIZE:
        config__fmt_range(opt, range, sizeof(range));
        snprintf(buf, len, "size, %s", range);
        return;
    case CONFIG_DURATION:
        config__fmt_range(opt, range, sizeof(range));
        snprintf(buf, len, "duration, %s", range);
        return;
    case CONFIG_BOOL:
        snprintf(buf, len, "yes or no");
        return;
    case CONFIG_ENUM: {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t k = 0; opt->words[k] != NULL && used < len; k++) {
            int w = snprintf(buf + used, len - used, "%s%s",
                             k > 0 ? ", " : "one of ", opt->words[k]);
            if (w < 0)
                return;
            used += (size_t)w;
        }
        return;
    }
    case CONFIG_TYPE_MAX:
        break;
    }
    snprintf(buf, len, "?");
}

/* The default as it would be written in a file. */
static void default_text(const struct config_option *opt, char *buf, size_t len)
{
    if (opt->type == CONFIG_STRING)
        config__format_string(opt->def, buf, len);
    else
        snprintf(buf, len, "%s", opt->def);
}

/* Writes text word-wrapped at width columns, each line starting with
 * prefix. */
static void wrap_text(FILE *f, const char *prefix, const char *text,
                      size_t width)
{
    size_t plen = strlen(prefix), col = 0;
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w == 0)
            break;
        if (col > 0 && col + 1 + w > width) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0) {
            fputs(prefix, f);
            col = plen;
        } else {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, w, f);
        col += w;
        p += w;
    }
    if (col > 0)
        fputc('\n', f);
}

/* "--data-dir" for "data_dir". */
static void flag_name(const struct config_option *opt, char *buf, size_t len)
{
    snprintf(buf, len, "--%s", opt->name);
    for (char *p = buf + 2; *p != '\0'; p++) {
        if (*p == '_')
            *p = '-';
    }
}

static const char *metavar(const struct config_option *opt)
{
    switch (opt->type) {
    case CONFIG_STRING:
        return "TEXT";
    case CONFIG_UINT:
        return "N";
    case CONFIG_SIZE:
        return "SIZE";
    case CONFIG_DURATION:
        return "DURATION";
    case CONFIG_BOOL:
        return "yes|no";
    case CONFIG_ENUM:
        return "WORD";
    case CONFIG_TYPE_MAX:
        break;
    }
    return "VALUE";
}

void config_print_help(FILE *f)
{
    fputs("Usage: ringkv [--config FILE] [--OPTION VALUE]...\n"
          "\n"
          "Runs a ringkv node. Every option has a default; a configuration "
          "file\n"
          "(\"option = value\" lines, see ringkv.conf) and flags override it, "
          "in\n"
          "command-line order: whatever comes later wins.\n"
          "\n"
          "  --config FILE\n"
          "        load FILE at this point of the command line\n"
          "  --print-config\n"
          "        print the effective configuration and exit\n"
          "  -h, --help\n"
          "        print this help and exit\n"
          "\n"
          "Options (--name VALUE or --name=VALUE):\n",
          f);
    size_t nopts;
    const struct config_option *table = config_options(&nopts);
    for (size_t i = 0; i < nopts; i++) {
        const struct config_option *opt = &table[i];
        char flag[80], type[160], def[256], text[1024];
        flag_name(opt, flag, sizeof(flag));
        describe_type(opt, type, sizeof(type));
        default_text(opt, def, sizeof(def));
        fprintf(f, "  %s %s\n", flag, metavar(opt));
        snprintf(text, sizeof(text), "%s [%s; default %s]", opt->help, type,
                 def);
        wrap_text(f, "        ", text, 79);
    }
    fputs("\nSizes take a unit: b, k, m, g, t or KiB, MiB, GiB, TiB (all "
          "powers of\n1024). Durations take ms, s, m or h; a bare number is "
          "milliseconds.\n",
          f);
}

void config_print_example(FILE *f)
{
    fputs("# ringkv.conf - example configuration of a ringkv node.\n"
          "#\n"
          "# Every option is listed with its default. Generated from the "
          "option table\n"
          "# in node/config.h (config_print_example); tests/unit/"
          "test_config.c checks\n"
          "# that this file matches the table and parses to the defaults. "
          "To\n"
          "# regenerate: RINGKV_UPDATE_DOCS=1 build/tests/test_config\n"
          "#\n"
          "# Syntax: \"option = value\"; '#' starts a comment (at the start "
          "of a line\n"
          "# or after a blank); values may be quoted \"like this\". Sizes "
          "take a unit\n"
          "# (b, k, m, g, t, KiB, MiB, GiB, TiB: all powers of 1024); "
          "durations take\n"
          "# ms, s, m or h (a bare number is milliseconds). Use it with\n"
          "#   ringkv --config ringkv.conf [--option value]...\n"
          "# where flags after --config override the file.\n",
          f);
    size_t nopts;
    const struct config_option *table = config_options(&nopts);
    for (size_t i = 0; i < nopts; i++) {
        const struct config_option *opt = &table[i];
        char type[160], def[256], text[1024];
        describe_type(opt, type, sizeof(type));
        default_text(opt, def, sizeof(def));
        snprintf(text, sizeof(text), "%s [%s]", opt->help, type);
        fputc('\n', f);
        wrap_text(f, "# ", text, 78);
        fprintf(f, "%s = %s\n", opt->name, def);
    }
}

void config_print_markdown(FILE *f)
{
    fputs("| option | type | default | meaning |\n"
          "|---|---|---|---|\n",
          f);
    size_t nopts;
    const struct config_option *table = config_options(&nopts);
    for (size_t i = 0; i < nopts; i++) {
        const struct config_option *opt = &table[i];
        char type[160], def[256];
        describe_type(opt, type, sizeof(type));
        default_text(opt, def, sizeof(def));
        fprintf(f, "| `%s` | %s | `%s` | %s |\n", opt->name, type, def,
                opt->help);
    }
}
