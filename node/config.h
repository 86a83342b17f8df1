/*
 * config.h - a node's options: defaults, the configuration file, the command
 * line, validation, help and documentation, all from one table.
 *
 * The table. CONFIG_OPTIONS below is the single list of options. Each row
 *
 *     X(name, TYPE, "default", min, max, "meaning")
 *
 * becomes a field `c->name` of struct config, a key `name = value` in the
 * file, a flag `--name value` (dashes for underscores) on the command line,
 * a line of --help, a line of the example file (ringkv.conf) and a row of
 * the reference table (docs/config.md). Adding an option is adding a row;
 * an ENUM option also needs its word list, CONFIG_ENUM_<name>, below.
 *
 * Types (field type in brackets):
 *   STRING    [char *, owned by the struct, never NULL] any text.
 *   UINT      [uint32_t] decimal digits only; min..max inclusive.
 *   SIZE      [uint64_t, bytes] a number with an optional unit: b, k, kb,
 *             kib, m, mb, mib, g, gb, gib, t, tb, tib (case-insensitive,
 *             spaces allowed before the unit). Every unit is binary:
 *             1k = 1kb = 1KiB = 1024. min..max inclusive, in bytes.
 *   DURATION  [uint64_t, milliseconds] a number with an optional unit: ms,
 *             s, m (or min), h (case-insensitive); no unit = ms.
 *             min..max inclusive, in milliseconds.
 *   BOOL      [bool] yes/no, true/false, on/off, 1/0 (case-insensitive).
 *   ENUM      [enum config_<name>] one of the words of CONFIG_ENUM_<name>
 *             (case-insensitive); the field holds its constant.
 * min and max are ignored (write 0, 0) for STRING, BOOL and ENUM. The
 * default is written in the syntax of the file, so it is parsed by the same
 * code as user input and shown to users exactly as written here.
 *
 * Numbers are parsed strictly: no sign, no trailing garbage, no fractions;
 * a number that overflows 64 bits, or its unit multiplication, is an error.
 *
 * Cross-field rules live in config_validate(); ranges are also re-checked
 * there, so a struct filled in by code is held to the same rules.
 */
#ifndef RINGKV_CONFIG_H
#define RINGKV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_KiB    (UINT64_C(1) << 10)
#define CONFIG_MiB    (UINT64_C(1) << 20)
#define CONFIG_GiB    (UINT64_C(1) << 30)
#define CONFIG_TiB    (UINT64_C(1) << 40)
#define CONFIG_SEC    UINT64_C(1000)
#define CONFIG_MINUTE (60 * CONFIG_SEC)
#define CONFIG_HOUR   (60 * CONFIG_MINUTE)
#define CONFIG_DAY    (24 * CONFIG_HOUR)

/* Longest node_id, in bytes. */
#define CONFIG_MAX_NODE_ID 64

/* X(name, TYPE, "default", min, max, "meaning") */
#define CONFIG_OPTIONS(X)                                                       \
    X(node_id, STRING, "node1", 0, 0,                                           \
      "this node's name, unique in the cluster (1..64 bytes, no spaces)")       \
    X(data_dir, STRING, "./data", 0, 0,                                         \
      "directory holding the database; created if missing")                     \
    X(listen, STRING, "127.0.0.1", 0, 0,                                        \
      "address the listeners bind to (IPv4 or IPv6)")                           \
    X(port, UINT, "7001", 1, 65535,                                             \
      "TCP port of the native protocol (clients and peers)")                    \
    X(resp_port, UINT, "7101", 0, 65535,                                        \
      "TCP port of the Redis protocol (RESP) listener; 0 = off")                \
    X(fsync, ENUM, "always", 0, 0,                                              \
      "when a commit reaches the disk: always = before it is acknowledged, "    \
      "interval = every fsync_interval, never = when the OS likes")             \
    X(fsync_interval, DURATION, "100ms", 1, CONFIG_HOUR,                        \
      "how often to sync the database when fsync = interval")                   \
    X(map_size, SIZE, "1GiB", CONFIG_MiB, 64 * CONFIG_TiB,                      \
      "initial LMDB map size; when full the map doubles, up to max_db_size")    \
    X(max_db_size, SIZE, "64GiB", CONFIG_MiB, 64 * CONFIG_TiB,                  \
      "largest the database may grow; a write that does not fit is refused "    \
      "(storage, definite)")                                                    \
    X(partitions, UINT, "64", 1, 65536,                                         \
      "ring partitions, a power of two; the same on every node")                \
    X(max_frame, SIZE, "8MiB", CONFIG_KiB, CONFIG_GiB,                          \
      "largest frame body accepted or sent")                                    \
    X(max_key, SIZE, "500", 1, 509,                                             \
      "longest key (LMDB keys are at most 511 bytes, 2 go to the partition)")   \
    X(max_value, SIZE, "4MiB", 1, CONFIG_GiB, "largest value")                  \
    X(max_record, SIZE, "0", 0, CONFIG_GiB,                                     \
      "largest encoded record (all siblings and the version vector); a write "  \
      "or merge beyond is refused with too_large; 0 = max_frame less the "      \
      "frame envelope (640 bytes)")                                             \
    X(max_clients, UINT, "10000", 1, 1000000,                                   \
      "client connections served at once; more are refused")                    \
    X(idle_timeout, DURATION, "300s", 0, 30 * CONFIG_DAY,                       \
      "close a client connection idle this long (no whole request received); "  \
      "0 = never")                                                              \
    X(conn_max_inflight, UINT, "4096", 1, 1000000,                              \
      "requests of one connection waiting on the cluster; beyond, the "         \
      "connection is not read until some finish")                               \
    X(conn_max_buffer, SIZE, "64MiB", CONFIG_KiB, CONFIG_GiB,                   \
      "reply bytes held for one connection (unsent, or queued behind a "        \
      "slower reply); beyond, it is not read until they drain; one reply "      \
      "larger than this is answered with overloaded instead")                   \
    X(max_inflight, UINT, "65536", 1, 100000000,                                \
      "requests waiting on the cluster across all connections; beyond, new "    \
      "requests are refused with overloaded (definite)")                        \
    X(max_buffer, SIZE, "1GiB", CONFIG_MiB, CONFIG_TiB,                         \
      "bytes held for all connections together (buffers, queued replies, "      \
      "requests in flight); beyond, new requests are refused with overloaded "  \
      "(definite)")                                                             \
    X(peers, STRING, "", 0, 0,                                                  \
      "every member of the cluster, this node included: comma-separated "       \
      "id@host:port (native ports); empty = a cluster of this node alone")      \
    X(cluster_name, STRING, "ringkv", 0, 0,                                     \
      "the cluster's name: peers with another name are refused")                \
    X(cluster_secret, STRING, "", 0, 0,                                         \
      "shared secret peers prove they hold (HMAC handshake), at least 16 "      \
      "bytes; required with peers; prefer cluster_secret_file")                 \
    X(cluster_secret_file, STRING, "", 0, 0,                                    \
      "file holding the cluster secret (one line; mode 0600), e.g. from: "      \
      "head -c 32 /dev/urandom | base64 > secret")                              \
    X(seeds, STRING, "", 0, 0,                                                  \
      "members to join through: comma-separated host:port (native ports). "     \
      "A node with neither seeds nor peers founds a cluster of its own; one "   \
      "with seeds and no saved ring joins the cluster they belong to")          \
    X(join, STRING, "", 0, 0, "the same as seeds (ringkv --join SEED)")         \
    X(advertise, STRING, "", 0, 0,                                              \
      "host:port the other members reach this node at (gossiped); empty = "     \
      "listen and port (127.0.0.1 when listen is 0.0.0.0 or ::)")               \
    X(gossip_interval, DURATION, "1s", 10, CONFIG_MINUTE,                       \
      "gossip probe period: each period a node probes one member (SWIM); a "    \
      "member that stops answering is suspected within a few periods")          \
    X(gossip_timeout, DURATION, "400ms", 5, CONFIG_MINUTE,                      \
      "how long a probe waits for its ack before asking other members to "      \
      "probe (indirect probe); below gossip_interval")                          \
    X(suspicion_mult, UINT, "4", 1, 100,                                        \
      "periods a suspected member has to refute before it is declared dead "    \
      "(times log10 of the member count, at least 1)")                          \
    X(transfer_batch, UINT, "64", 1, 1024,                                      \
      "records per batch when a partition moves to a new owner")                \
    X(transfer_rate, UINT, "20000", 0, 10000000,                                \
      "records per second one partition transfer may send; 0 = unthrottled")    \
    X(n, UINT, "3", 1, 8,                                                       \
      "replicas per key (capped at the number of members)")                     \
    X(r, UINT, "2", 1, 16,                                                      \
      "default read quorum: replies a read waits for (capped at n)")            \
    X(w, UINT, "2", 1, 16,                                                      \
      "default write quorum: acknowledgements a write waits for (capped at n)") \
    X(conflict, ENUM, "siblings", 0, 0,                                         \
      "concurrent writes: siblings (keep all, the client resolves) or lww "     \
      "(keep the latest timestamp, discard the rest)")                          \
    X(max_siblings, UINT, "64", 1, 4096,                                        \
      "a write that would leave more live siblings is refused")                 \
    X(request_timeout, DURATION, "5s", 1, CONFIG_HOUR,                          \
      "how long a coordinator waits for replicas before failing a request")     \
    X(max_clock_drift, DURATION, "60s", 1, CONFIG_DAY,                          \
      "lww: replicated writes stamped further ahead of this clock are refused") \
    X(replica_fanout, ENUM, "all", 0, 0,                                        \
      "benchmarking switch, off (all) by default: all = a write goes to every " \
      "replica and a read asks every replica; exact = a write goes to exactly " \
      "w replicas and a read asks exactly r, chosen at random among the "       \
      "reachable ones, so staleness with r + w <= n follows the PBS closed "    \
      "form (for staleness benchmarks and teaching); not for production: the "  \
      "other n - w replicas never receive the write, so fewer copies survive "  \
      "a disk loss and reads are staler")                                       \
    X(read_repair, BOOL, "on", 0, 0,                                            \
      "on = a read sends the merged value to replicas that answered with an "   \
      "older one; turn it off only to measure raw replica staleness "           \
      "(benchmarks, teaching), never in production, where stale replicas "      \
      "would then stay stale")                                                  \
    X(peer_delay_mean_ms, UINT, "0", 0, 10000,                                  \
      "benchmarking switch, 0 = off: delay every outgoing replica request "     \
      "(rput, rget, fput, fdel) by a random exponentially distributed time "    \
      "with this mean, in ms, so replication lag is visible on loopback (for "  \
      "staleness benchmarks and teaching); never in production: it only adds "  \
      "latency")                                                                \
    X(log_level, ENUM, "info", 0, 0, "least severe message logged")             \
    X(log_file, STRING, "", 0, 0, "file to append the log to; empty = stderr")

/* Word lists of the ENUM options: X(CONSTANT, "word"), in value order. */
#define CONFIG_ENUM_fsync(X)                                                   \
    X(CONFIG_FSYNC_ALWAYS, "always")                                           \
    X(CONFIG_FSYNC_INTERVAL, "interval")                                       \
    X(CONFIG_FSYNC_NEVER, "never")
#define CONFIG_ENUM_conflict(X)                                                \
    X(CONFIG_CONFLICT_SIBLINGS, "siblings")                                    \
    X(CONFIG_CONFLICT_LWW, "lww")
#define CONFIG_ENUM_replica_fanout(X)                                          \
    X(CONFIG_FANOUT_ALL, "all")                                                \
    X(CONFIG_FANOUT_EXACT, "exact")
#define CONFIG_ENUM_log_level(X)                                               \
    X(CONFIG_LOG_DEBUG, "debug")                                               \
    X(CONFIG_LOG_INFO, "info")                                                 \
    X(CONFIG_LOG_WARN, "warn")                                                 \
    X(CONFIG_LOG_ERROR, "error")

/* enum config_fsync { CONFIG_FSYNC_ALWAYS, ... }; one per ENUM option. The
 * values equal storage.h's STORAGE_FSYNC_* and log.h's LOG_* (tested). */
#define CONFIG_ENUM_CONST_(constant, word) constant,
#define CONFIG_DECL_STRING(name)
#define CONFIG_DECL_UINT(name)
#define CONFIG_DECL_SIZE(name)
#define CONFIG_DECL_DURATION(name)
#define CONFIG_DECL_BOOL(name)
#define CONFIG_DECL_ENUM(name)                                                 \
    enum config_##name{CONFIG_ENUM_##name(CONFIG_ENUM_CONST_)};
#define CONFIG_DECL_(name, type, def, min, max, help) CONFIG_DECL_##type(name)
CONFIG_OPTIONS(CONFIG_DECL_)
#undef CONFIG_DECL_

#define CONFIG_FIELD_STRING(name)                      char *name;
#define CONFIG_FIELD_UINT(name)                        uint32_t name;
#define CONFIG_FIELD_SIZE(name)                        uint64_t name;
#define CONFIG_FIELD_DURATION(name)                    uint64_t name;
#define CONFIG_FIELD_BOOL(name)                        bool name;
#define CONFIG_FIELD_ENUM(name)                        enum config_##name name;
#define CONFIG_FIELD_(name, type, def, min, max, help) CONFIG_FIELD_##type(name)

/* One field per option, named as the option. Fill it with
 * config_defaults(); release it with config_free(). */
struct config {
    CONFIG_OPTIONS(CONFIG_FIELD_)
};

/* ---- describing the options -------------------------------------------- */

enum config_type {
    CONFIG_STRING,
    CONFIG_UINT,
    CONFIG_SIZE,
    CONFIG_DURATION,
    CONFIG_BOOL,
    CONFIG_ENUM,
    CONFIG_TYPE_MAX
};

struct config_option {
    const char *name; /* "data_dir" */
    enum config_type type;
    const char *def;          /* default, in file syntax */
    uint64_t min, max;        /* UINT, SIZE, DURATION: inclusive range */
    const char *const *words; /* ENUM: words in value order, NULL-ended */
    const char *help;         /* one-line meaning */
};

/* The option table, in the order of CONFIG_OPTIONS; *n is set to its
 * length. Static storage. */
const struct config_option *config_options(size_t *n);

/* The option called name, with '-' and '_' equivalent ("data-dir" finds
 * data_dir), or NULL. */
const struct config_option *config_find(const char *name);

/* ---- lifecycle ---------------------------------------------------------- */

/* Sets every option to its default. c's previous contents are overwritten
 * without being freed (call config_free() first if it held a config).
 * Returns 0 or -ENOMEM; on failure c is left safe to config_free(). */
int config_defaults(struct config *c);

/* Frees the strings c owns and sets them to NULL. c may then be filled
 * again with config_defaults(). A zeroed struct is safe to free. */
void config_free(struct config *c);

/* ---- setting values ----------------------------------------------------- */

/* Sets option key ('-' and '_' equivalent) from its text form value, as
 * found in a file or after a flag. value is copied. On failure c is
 * unchanged and err[0..errlen) holds "key: problem" (err may be NULL).
 * Returns 0, RK_ECONFIG (unknown key, or a value that does not parse or is
 * out of range) or -ENOMEM. */
int config_set(struct config *c, const char *key, const char *value, char *err,
               size_t errlen);

/* Reads a configuration file into c, over the values c already holds
 * (options the file does not mention keep theirs).
 *
 *   # a comment line              blank lines are ignored too
 *   key = value                   value: the rest of the line, trimmed
 *   key = "a value # not comment" quoted: \" and \\ are the escapes
 *   key = value   # a comment     '#' after whitespace starts a comment
 *   key =                         empty value ("" for a string)
 *
 * A key may appear more than once; the last one wins. Stops at the first
 * error, with err set to "path:line: problem"; options set by earlier lines
 * keep their new values. Returns 0; RK_ECONFIG for a line that is not
 * "key = value", an unknown key, or a bad value; -errno when the file
 * cannot be opened or read (err = "path: reason"); -ENOMEM. */
int config_load_file(struct config *c, const char *path, char *err,
                     size_t errlen);

/* Return values of config_parse_args() that ask main() to do something
 * other than run. */
#define CONFIG_HELP  1 /* --help or -h: print config_print_help(), exit 0 */
#define CONFIG_PRINT 2 /* --print-config: print config_dump(), exit 0 */

/* Applies the command line argv[1..argc) to c, left to right:
 *   --key value, --key=value  set an option (--data-dir or --data_dir)
 *   --config FILE             load FILE here: flags before it are
 *                             overridden by it, flags after it override it
 *   --print-config            after all flags, return CONFIG_PRINT
 *   --help, -h                stop and return CONFIG_HELP
 * Every option takes a value, BOOL ones included (--flag yes).
 * Returns 0, CONFIG_HELP, CONFIG_PRINT, or an error with err set:
 * RK_ECONFIG (unknown flag, missing value, bad value, stray argument, or
 * an error in a --config file), -errno (a --config file unreadable),
 * -ENOMEM. */
int config_parse_args(struct config *c, int argc, char **argv, char *err,
                      size_t errlen);

/* Checks what single values cannot: every numeric option in range, node_id
 * 1..CONFIG_MAX_NODE_ID bytes of printable non-space ASCII, data_dir and
 * listen non-empty, partitions a power of two, port and resp_port
 * distinct, max_key <= max_frame and max_value <= max_frame, max_record
 * leaves CONFIG_RECORD_ENVELOPE of max_frame, cluster_name 1..255 bytes, at
 * most one of cluster_secret / cluster_secret_file, a cluster_secret of at
 * least CONFIG_MIN_SECRET bytes, and a secret when there are peers. Returns 0
 * or RK_ECONFIG with err set to the first problem. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* Bytes of a frame that a record cannot use: the envelope of the largest
 * message carrying one (an rput with a max_key key). */
#define CONFIG_RECORD_ENVELOPE 640u
/* Shortest cluster secret, in bytes. */
#define CONFIG_MIN_SECRET 16

/* The effective max_record: the option, or when 0 max_frame less
 * CONFIG_RECORD_ENVELOPE. */
uint64_t config_max_record(const struct config *c);

/* ---- parsing single values (also for other modules' flags) ------------ */

/* Each parses all of s as described under "Types" above and returns 0 with
 * *out set, or RK_ECONFIG (*out unchanged) for an empty string, garbage,
 * an unknown unit or overflow. No range is applied. */
int config_parse_uint(const char *s, uint64_t *out);     /* digits only */
int config_parse_size(const char *s, uint64_t *out);     /* bytes */
int config_parse_duration(const char *s, uint64_t *out); /* ms */
int config_parse_bool(const char *s, bool *out);

/* ---- cluster members ------------------------------------------------------
 */

#define CONFIG_MAX_MEMBERS 256

struct config_member {
    char id[CONFIG_MAX_NODE_ID + 1];
    char host[256]; /* without [] for IPv6 */
    uint16_t port;
};

/* The cluster's members from `peers` ("id@host:port,..."; an empty list is
 * a cluster of this node alone, at listen:port). Copies up to cap entries
 * into out (out may be NULL to only check) and sets *n and *self (this
 * node's index). Returns 0 or RK_ECONFIG with err set: a malformed entry, a
 * duplicate id, more than CONFIG_MAX_MEMBERS, this node missing, or this
 * node listed at a port other than `port`. */
int config_members(const struct config *c, struct config_member *out,
                   uint32_t cap, uint32_t *n, uint32_t *self, char *err,
                   size_t errlen);

#define CONFIG_ADDR_MAX  272 /* "host:port", as gossip's GOSSIP_ADDR_MAX */
#define CONFIG_MAX_SEEDS 16

/* The seed addresses from `seeds` and `join` ("host:port,..."), copied into
 * out[0..cap) (out may be NULL to only check); *n is how many were copied.
 * Returns 0 or RK_ECONFIG with err set. */
int config_seeds(const struct config *c, char (*out)[CONFIG_ADDR_MAX + 1],
                 uint32_t cap, uint32_t *n, char *err, size_t errlen);

/* The address other members reach this node at: `advertise` (":port"
 * added when it has none), else listen:port with a wildcard listen
 * replaced by 127.0.0.1. */
void config_advertise(const struct config *c, char *buf, size_t len);

/* ---- printing ----------------------------------------------------------- */

/* Writes the value of option opt (from config_options()) in c as it would
 * appear in a file, quoted when needed, into buf (always NUL-terminated
 * when len > 0). Sizes and durations use the largest exact unit ("1GiB",
 * "5m"). Returns the length the full text needs, like snprintf. */
size_t config_format(const struct config *c, const struct config_option *opt,
                     char *buf, size_t len);

/* Writes every option as "key = value\n", in table order. The output read
 * back with config_load_file() gives the same configuration. */
void config_dump(const struct config *c, FILE *f);

/* Usage for `ringkv --help`: every flag, its type, range, default and
 * meaning. */
void config_print_help(FILE *f);

/* The example configuration file (the repository's ringkv.conf): every
 * option's meaning as a comment, then its default as a "key = value" line. */
void config_print_example(FILE *f);

/* The reference table of docs/config.md in Markdown: option, type,
 * default, meaning. */
void config_print_markdown(FILE *f);

#endif
