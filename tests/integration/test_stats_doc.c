/*
 * test_stats_doc.c - docs/stats.md documents every stat a real node
 * reports (the native stats op and RESP INFO), and nothing it no longer
 * reports. A counter added without its line in docs/stats.md fails here.
 *
 * The documented names are the first cells of the doc's tables:
 * lines that start with "| `name` |".
 */
#include "tests/integration/itest.h"

TestSuite(stats_doc, .timeout = 60, .fini = itest_cleanup);

#define DOC_MAX 256

static char doc_names[DOC_MAX][64];
static bool doc_seen[DOC_MAX];
static int ndoc;

static void load_doc(void)
{
    FILE *f = fopen(RINGKV_SOURCE_DIR "/docs/stats.md", "r");
    cr_assert(f != NULL, "docs/stats.md is missing");
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        const char *start = line + 3;
        const char *end = strchr(start, '`');
        cr_assert(end != NULL && end - start < 64, "bad row: %s", line);
        cr_assert(ndoc < DOC_MAX);
        snprintf(doc_names[ndoc++], 64, "%.*s", (int)(end - start), start);
    }
    fclose(f);
    cr_assert(ndoc > 0, "no \"| `name` |\" rows in docs/stats.md");
}

/* Marks name as reported; false when the doc does not have it. */
static bool doc_has(const char *name, size_t len)
{
    for (int i = 0; i < ndoc; i++) {
        if (strlen(doc_names[i]) == len &&
            memcmp(doc_names[i], name, len) == 0) {
            doc_seen[i] = true;
            return true;
        }
    }
    return false;
}

Test(stats_doc, every_stat_the_node_reports_is_documented_and_no_other)
{
    load_doc();
    struct itest_node *n = itest_start(NULL);

    struct rkc *c;
    struct rkc_result res = {0};
    cr_assert_eq(rkc_connect(&c, "127.0.0.1", (uint16_t)n->port, 5000), 0);
    cr_assert_eq(rkc_stats(c, &res), 0);
    cr_assert(res.nstats > 0);
    for (size_t i = 0; i < res.nstats; i++) {
        const char *nm = res.stats[i].name;
        cr_expect(doc_has(nm, strlen(nm)),
                  "stats reports '%s', which docs/stats.md does not document",
                  nm);
    }
    rkc_result_free(&res);
    rkc_close(c);

    /* INFO: "name:value" lines; "# Section" headers and blanks skipped. */
    static char out[16384];
    int rc =
        itest_sh(out, sizeof(out), "redis-cli -p %d INFO 2>&1", n->resp_port);
    cr_assert_eq(rc, 0, "%s", out);
    for (char *line = strtok(out, "\r\n"); line != NULL;
         line = strtok(NULL, "\r\n")) {
        char *colon = strchr(line, ':');
        if (line[0] == '#' || colon == NULL)
            continue;
        cr_expect(doc_has(line, (size_t)(colon - line)),
                  "INFO reports '%.*s', which docs/stats.md does not document",
                  (int)(colon - line), line);
    }

    for (int i = 0; i < ndoc; i++)
        cr_expect(doc_seen[i],
                  "docs/stats.md documents '%s', which the node does not "
                  "report",
                  doc_names[i]);
}
