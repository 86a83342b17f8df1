/*
 * main.c - the ringkv node process: configuration, storage, core, servers,
 * signals and an orderly shutdown.
 *
 * Start-up: parse the configuration (file and --key value flags), open the
 * log, open the data dir (exclusive lock; a corrupt or foreign store stops
 * the node with a clear error, never an empty start over existing data),
 * then listen. Shutdown on SIGTERM/SIGINT:
 *
 *   stop accepting and reading -> core refuses new requests ->
 *   storage_close() commits what is queued and runs every done callback
 *   (their replies are queued) -> connections flush and close ->
 *   the loop runs dry -> uv_loop_close() must return 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "node/config.h"
#include "node/core.h"
#include "node/env_uv.h"
#include "node/log.h"
#include "node/member.h"
#include "node/peer.h"
#include "node/peer_auth.h"
#include "node/server.h"
#include "node/storage.h"
#include "ring/ring.h"

struct node {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t deadline; /* shutdown: force-close what has not flushed */
    struct storage *store;
    struct core *core;
    struct server *server;
    struct peers *peers;
    struct member *member; /* NULL without a cluster secret */
    char state_path[4096]; /* the saved ring state */
    struct ring *ring;
    struct core_member *members; /* by ring index */
    struct env env;
    bool stopping;
    bool failed; /* stopped by a storage failure: exit non-zero */
};

/* Builds the ring from the configured members and the member table in
 * ring order (the ring sorts members by id; every index in the node is a
 * ring index). */
static int build_membership(struct node *n, const struct config *cfg,
                            struct peer_conf **pc_out, uint32_t *nm_out,
                            uint32_t *self_out, char *err, size_t errlen)
{
    struct config_member cm[CONFIG_MAX_MEMBERS];
    const char *ids[CONFIG_MAX_MEMBERS];
    uint32_t nm, self;
    int rc =
        config_members(cfg, cm, CONFIG_MAX_MEMBERS, &nm, &self, err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < nm; i++)
        ids[i] = cm[i].id;
    if ((rc = ring_build(&n->ring, cfg->partitions, ids, nm)) != 0) {
        snprintf(err, errlen, "cannot build the ring: %s", rk_err_msg(rc));
        return rc;
    }
    n->members = calloc(nm, sizeof(*n->members));
    struct peer_conf *pc = calloc(nm, sizeof(*pc));
    if (n->members == NULL || pc == NULL) {
        free(pc);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nm; i++) {
        int k = ring_member_index(n->ring, cm[i].id);
        if (k < 0 || (uint32_t)k >= nm) {
            free(pc);
            return RK_EINTERNAL;
        }
        snprintf(n->members[k].id, sizeof(n->members[k].id), "%.64s", cm[i].id);
        snprintf(n->members[k].addr, sizeof(n->members[k].addr), "%s:%u",
                 cm[i].host, (unsigned)cm[i].port);
        pc[k].id = n->members[k].id;
        pc[k].port = cm[i].port;
        pc[k].host = strdup(cm[i].host);
        if (pc[k].host == NULL)
            return -ENOMEM;
    }
    *pc_out = pc;
    *nm_out = nm;
    *self_out = (uint32_t)ring_member_index(n->ring, cm[self].id);
    return 0;
}

/* ---- membership glue ----------------------------------------------------- */

/* The ring state is saved next to the database (DIR/ring.state) on every
 * change, written to a temporary file, synced and renamed, so a restart
 * finds the last whole state. */
static void save_state(void *arg, const uint8_t *buf, size_t len)
{
    struct node *n = arg;
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", n->state_path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL && fwrite(buf, 1, len, f) == len && fflush(f) == 0 &&
              fsync(fileno(f)) == 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, n->state_path) != 0)
        LOG_ERROR("cannot save the ring state to %s: %s", n->state_path,
                  strerror(errno));
}

/* Reads DIR/ring.state: its bytes (malloc'd) or NULL when there is none. */
static uint8_t *load_state(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long sz;
    *len = 0;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 &&
        sz <= (16l << 20) && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)sz)) != NULL &&
        fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
        *len = (size_t)sz;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void stop_node(struct node *n, const char *why);

static void on_left(void *arg)
{
    stop_node(arg, "left the cluster");
}

static int on_gossip(void *arg, const char *from_id, const uint8_t *buf,
                     size_t len)
{
    return member_gossip_in(arg, from_id, buf, len);
}

static int on_admin(void *arg, const char *cmd, const char *carg, uint32_t part,
                    bool json, bool from_peer, char **text)
{
    return member_admin(arg, cmd, carg, part, json, from_peer, text);
}

static void on_link(void *arg, uint32_t slot, const char *id, bool up)
{
    member_link(arg, slot, id, up);
}

/* Starts membership: seeds, the static members, the saved state. */
static int start_member(struct node *n, const struct config *cfg, char *err,
                        size_t errlen)
{
    char seeds[CONFIG_MAX_SEEDS + CONFIG_MAX_MEMBERS][CONFIG_ADDR_MAX + 1];
    const char *seedp[CONFIG_MAX_SEEDS + CONFIG_MAX_MEMBERS];
    const char *ids[RING_MAX_NODES];
    char self_addr[CONFIG_ADDR_MAX + 1];
    uint32_t ns = 0, nstatic = 0;
    size_t saved_len = 0;
    int rc = config_seeds(cfg, seeds, CONFIG_MAX_SEEDS, &ns, err, errlen);
    if (rc != 0)
        return rc;
    /* A static cluster (--peers): its members are the founding ring, and
     * gossip starts from their addresses. */
    uint32_t nring = n->ring ? ring_members(n->ring) : 0;
    for (uint32_t i = 0; nring > 1 && i < nring; i++) {
        ids[nstatic++] = ring_member(n->ring, i);
        if (strcmp(ring_member(n->ring, i), cfg->node_id) != 0 &&
            ns < CONFIG_MAX_SEEDS + CONFIG_MAX_MEMBERS)
            snprintf(seeds[ns++], CONFIG_ADDR_MAX + 1, "%.272s",
                     n->members[i].addr);
    }
    for (uint32_t i = 0; i < ns; i++)
        seedp[i] = seeds[i];
    config_advertise(cfg, self_addr, sizeof(self_addr));
    snprintf(n->state_path, sizeof(n->state_path), "%s/ring.state",
             cfg->data_dir);
    uint8_t *saved = load_state(n->state_path, &saved_len);
    struct member_opts mo = {
        .cluster = cfg->cluster_name,
        .self_id = cfg->node_id,
        .self_addr = self_addr,
        .seeds = seedp,
        .nseeds = ns,
        .static_ids = ids,
        .nstatic = nstatic,
        .partitions = cfg->partitions,
        .nval = cfg->n,
        .probe_interval_ms = (uint32_t)cfg->gossip_interval,
        .probe_timeout_ms = (uint32_t)cfg->gossip_timeout,
        .suspicion_mult = cfg->suspicion_mult,
        .transfer_batch = cfg->transfer_batch,
        .transfer_rate = cfg->transfer_rate,
        .saved = saved,
        .saved_len = saved_len,
        .save_state = save_state,
        .on_left = on_left,
        .cb_arg = n,
    };
    rc = member_create(&n->member, &n->env, n->core, &mo, err, errlen);
    free(saved);
    if (rc != 0)
        return rc;
    server_on_gossip(n->server, on_gossip, n->member);
    server_on_admin(n->server, on_admin, n->member);
    server_set_member(n->server, n->member);
    peers_on_link(n->peers, on_link, n->member);
    LOG_INFO("membership: advertised as %s, %u seed(s)%s", self_addr,
             (unsigned)ns, saved_len > 0 ? ", ring state restored" : "");
    return 0;
}

static const char *const node_fsync_names[] = {"always", "interval", "never"};

_Static_assert((int)CONFIG_FSYNC_ALWAYS == (int)STORAGE_FSYNC_ALWAYS &&
                   (int)CONFIG_FSYNC_INTERVAL == (int)STORAGE_FSYNC_INTERVAL &&
                   (int)CONFIG_FSYNC_NEVER == (int)STORAGE_FSYNC_NEVER,
               "config and storage fsync policies line up");
_Static_assert((int)CONFIG_LOG_DEBUG == (int)LOG_DEBUG &&
                   (int)CONFIG_LOG_ERROR == (int)LOG_ERROR,
               "config and log levels line up");

#define NODE_SHUTDOWN_GRACE_MS 5000

static void on_deadline(uv_timer_t *t)
{
    struct node *n = t->data;
    LOG_WARN("clients still hold unsent replies after %d ms; closing them",
             NODE_SHUTDOWN_GRACE_MS);
    server_force_close(n->server);
    uv_close((uv_handle_t *)t, NULL);
}

static void stop_node(struct node *n, const char *why)
{
    if (n->stopping)
        return;
    n->stopping = true;
    LOG_INFO("shutting down (%s)", why);
    server_stop(n->server);
    member_close(n->member);
    core_shutdown(n->core);
    env_uv_close(&n->env);   /* fails peer requests waiting out a delay */
    peers_close(n->peers);   /* fails what waits on peers */
    storage_close(n->store); /* runs every pending done callback */
    n->store = NULL;
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    /* Clients that do not read their replies must not hold the node up:
     * after NODE_SHUTDOWN_GRACE_MS their connections are cut. Unref'd, so
     * it does not keep the loop alive once everything else has closed. */
    uv_timer_init(&n->loop, &n->deadline);
    n->deadline.data = n;
    uv_timer_start(&n->deadline, on_deadline, NODE_SHUTDOWN_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&n->deadline);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop_node(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The store failed (fsync, commit, LMDB panic): what is on disk is no
 * longer known, so the node must not go on acknowledging nothing and
 * serving reads as if healthy. Writes in flight were answered (indefinite
 * where they may be on disk); stop and exit non-zero. */
static void on_storage_fatal(void *arg, const char *msg)
{
    struct node *n = arg;
    LOG_ERROR("%s: stopping the node (exit status 1); check the disk, "
              "then restart",
              msg);
    n->failed = true;
    stop_node(n, "storage failure");
}

/* Raises the open-files limit towards max_clients plus room for peers,
 * the database and the log; says so when the hard limit is lower. */
static void raise_nofile(uint32_t max_clients)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_clients + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur =
        rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need)
        LOG_WARN("open files are limited to %llu: fewer than max_clients "
                 "(%u) connections can be served",
                 (unsigned long long)rl.rlim_cur, (unsigned)max_clients);
}

/* The cluster secret from cluster_secret or cluster_secret_file into buf
 * (PEER_AUTH_MAX_SECRET bytes). Returns its length (0 = none) or an error
 * with err set. */
static int load_secret(const struct config *cfg, uint8_t *buf, char *err,
                       size_t errlen)
{
    size_t n = strlen(cfg->cluster_secret);
    bool loose = false;
    if (cfg->cluster_secret_file[0] == '\0') {
        if (n >= PEER_AUTH_MAX_SECRET) {
            snprintf(err, errlen, "cluster_secret is longer than %d bytes",
                     PEER_AUTH_MAX_SECRET - 1);
            return RK_ECONFIG;
        }
        memcpy(buf, cfg->cluster_secret, n);
        return (int)n;
    }
    int rc = peer_auth_read_secret(cfg->cluster_secret_file, buf,
                                   PEER_AUTH_MAX_SECRET, &loose, err, errlen);
    if (rc > 0 && loose)
        LOG_WARN("cluster_secret_file %s may be read by other users; "
                 "chmod 600 it",
                 cfg->cluster_secret_file);
    return rc;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct node n = {0};
    struct storage_info info;
    uint8_t secret[PEER_AUTH_MAX_SECRET];
    int secret_len = 0;
    char err[512] = "";
    int rc, status = 1;

    signal(SIGPIPE, SIG_IGN);
    if (config_defaults(&cfg) != 0) {
        fprintf(stderr, "ringkv: out of memory\n");
        return 2;
    }
    rc = config_parse_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == CONFIG_HELP) {
        config_print_help(stdout);
        config_free(&cfg);
        return 0;
    }
    if (rc == 0 || rc == CONFIG_PRINT) {
        int print = rc == CONFIG_PRINT;
        rc = config_validate(&cfg, err, sizeof(err));
        if (rc == 0 && print) {
            config_dump(&cfg, stdout);
            config_free(&cfg);
            return 0;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "ringkv: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    /* config's log_level words are log.h's levels, in the same order. */
    if ((rc = log_open((enum log_level)cfg.log_level, cfg.log_file,
                       cfg.node_id)) != 0) {
        fprintf(stderr, "ringkv: cannot open log file '%s': %s\n", cfg.log_file,
                strerror(-rc));
        config_free(&cfg);
        return 2;
    }
    raise_nofile(cfg.max_clients);
    if (peer_auth_init() != 0 ||
        (secret_len = load_secret(&cfg, secret, err, sizeof(err))) < 0) {
        if (secret_len >= 0)
            snprintf(err, sizeof(err), "cannot initialise libsodium");
        LOG_ERROR("%s", err);
        fprintf(stderr, "ringkv: %s\n", err);
        config_free(&cfg);
        log_close();
        return 2;
    }
    struct peers_auth auth = {.self_id = cfg.node_id,
                              .cluster = cfg.cluster_name,
                              .secret = secret,
                              .secret_len = (size_t)secret_len};

    uv_loop_init(&n.loop);
    struct storage_opts so = {
        .dir = cfg.data_dir,
        .fsync = (enum storage_fsync)cfg.fsync,
        .fsync_interval_ms = (uint32_t)cfg.fsync_interval,
        .map_size = cfg.map_size,
        .max_db_size = cfg.max_db_size,
        .partitions = cfg.partitions,
        .node_id = cfg.node_id,
        .new_epoch = env_uv_random64(),
        /* Storage queues share the node's budget: an op holds the bytes
         * of its request, and at most max_inflight are waiting. */
        .max_queue = cfg.max_inflight,
        .max_queue_bytes = cfg.max_buffer,
        .on_fatal = on_storage_fatal,
        .fatal_arg = &n,
    };
    rc = storage_open(&n.store, &n.loop, &so, &info, err, sizeof(err));
    if (rc != 0) {
        LOG_ERROR("cannot open data dir %s: %s", cfg.data_dir, err);
        if (cfg.log_file[0] != '\0')
            fprintf(stderr, "ringkv: cannot open data dir %s: %s\n",
                    cfg.data_dir, err);
        goto fail;
    }
    LOG_INFO("data dir %s: %s store, epoch %016" PRIx64, cfg.data_dir,
             info.created ? "new" : "existing", info.epoch);
    if (info.epoch_renewed)
        LOG_WARN("data dir %s was not closed cleanly and its last run did "
                 "not sync every commit: new epoch %016" PRIx64
                 " (was %016" PRIx64 "), so no write it acknowledged before "
                 "the stop can have its version reissued",
                 cfg.data_dir, info.epoch, info.old_epoch);
    else if (info.unclean)
        LOG_INFO("data dir %s was not closed cleanly; every commit was "
                 "synced (fsync always), epoch kept",
                 cfg.data_dir);

    struct peer_conf *pc = NULL;
    uint32_t nm = 0, self = 0;
    rc = build_membership(&n, &cfg, &pc, &nm, &self, err, sizeof(err));
    /* With a cluster secret the node runs membership (gossip), so it has a
     * peer transport even when it starts alone. */
    if (rc == 0 && (nm > 1 || secret_len > 0))
        rc = peers_create(&n.peers, &n.loop, pc, nm, self, &auth,
                          (uint32_t)cfg.max_frame,
                          2 * cfg.request_timeout + 1000, err, sizeof(err));
    for (uint32_t i = 0; pc != NULL && i < nm; i++)
        free((char *)pc[i].host);
    free(pc);
    if (rc != 0) {
        LOG_ERROR("%s", err);
        if (cfg.log_file[0] != '\0')
            fprintf(stderr, "ringkv: %s\n", err);
        goto fail;
    }
    env_uv_init(&n.env, &n.loop, n.store, n.peers);
    /* Delayed requests share the node's budget of waiting requests. */
    env_uv_delay_peers(&n.env, cfg.peer_delay_mean_ms, cfg.max_inflight);
    uint8_t ctx_key[PEER_AUTH_CTX_KEY_LEN];
    if (secret_len > 0)
        peer_auth_ctx_key(ctx_key, secret, (size_t)secret_len);
    struct core_opts co = {
        .actor = info.epoch,
        .partitions = cfg.partitions,
        .max_siblings = cfg.max_siblings,
        .conflict = cfg.conflict == CONFIG_CONFLICT_LWW
                        ? CORE_CONFLICT_LWW
                        : CORE_CONFLICT_SIBLINGS,
        .max_drift_ms = cfg.max_clock_drift,
        .ring = n.ring,
        .members = n.members,
        .self = self,
        .n = (uint8_t)cfg.n,
        .r = (uint8_t)cfg.r,
        .w = (uint8_t)cfg.w,
        .timeout_ms = cfg.request_timeout,
        .incarnation = env_uv_random64(),
        .max_record = config_max_record(&cfg),
        .ctx_key = secret_len > 0 ? ctx_key : NULL,
        .exact_fanout = cfg.replica_fanout == CONFIG_FANOUT_EXACT,
        .no_read_repair = !cfg.read_repair,
    };
    n.core = core_create(&n.env, &co);
    sodium_memzero(ctx_key, sizeof(ctx_key)); /* the core keeps a copy */
    if (n.core == NULL) {
        LOG_ERROR("out of memory");
        goto fail;
    }
    struct server_opts sv = {
        .listen = cfg.listen,
        .port = (uint16_t)cfg.port,
        .resp_port = (uint16_t)cfg.resp_port,
        .lim = {.max_frame = (uint32_t)cfg.max_frame,
                .max_key = (uint32_t)cfg.max_key,
                .max_value = (uint32_t)cfg.max_value},
        .max_clients = cfg.max_clients,
        .conn_max_inflight = cfg.conn_max_inflight,
        .conn_max_buffer = cfg.conn_max_buffer,
        .max_inflight = cfg.max_inflight,
        .max_buffer = cfg.max_buffer,
        .idle_timeout_ms = cfg.idle_timeout,
        .node_id = cfg.node_id,
        .epoch = info.epoch,
        .partitions = cfg.partitions,
        .cluster = cfg.cluster_name,
        .secret = secret_len > 0 ? secret : NULL,
        .secret_len = (size_t)secret_len,
        .peers = n.peers,
        .env = &n.env,
    };
    rc = server_start(&n.server, &n.loop, n.core, n.store, &sv, err,
                      sizeof(err));
    if (rc != 0) {
        LOG_ERROR("%s", err);
        fprintf(stderr, "ringkv: %s\n", err);
        goto fail;
    }
    if (secret_len > 0 &&
        (rc = start_member(&n, &cfg, err, sizeof(err))) != 0) {
        LOG_ERROR("%s", err);
        fprintf(stderr, "ringkv: %s\n", err);
        server_stop(n.server);
        goto fail;
    }
    uv_signal_init(&n.loop, &n.sigterm);
    uv_signal_init(&n.loop, &n.sigint);
    n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uint32_t nval = core_nval(n.core);
    LOG_INFO("node %s serving: native %s:%u, resp %s:%u, fsync %s, "
             "%u member(s), n=%u r=%u w=%u",
             cfg.node_id, cfg.listen, (unsigned)cfg.port, cfg.listen,
             (unsigned)cfg.resp_port, node_fsync_names[cfg.fsync], (unsigned)nm,
             (unsigned)nval, (unsigned)(cfg.r < nval ? cfg.r : nval),
             (unsigned)(cfg.w < nval ? cfg.w : nval));

    uv_run(&n.loop, UV_RUN_DEFAULT);
    /* Everything closed before the shutdown deadline fired: close it. */
    if (!uv_is_closing((uv_handle_t *)&n.deadline)) {
        uv_close((uv_handle_t *)&n.deadline, NULL);
        uv_run(&n.loop, UV_RUN_DEFAULT);
    }
    status = n.failed ? 1 : 0;
    goto out;

fail:
    /* server_start() already stopped a half-started server. */
    peers_close(n.peers);
    storage_close(n.store);
    uv_run(&n.loop, UV_RUN_DEFAULT);
out:
    server_destroy(n.server);
    member_destroy(n.member);
    core_destroy(n.core);
    peers_destroy(n.peers);
    ring_destroy(n.ring);
    free(n.members);
    rc = uv_loop_close(&n.loop);
    if (rc != 0) {
        LOG_ERROR("event loop did not close cleanly: %s", uv_strerror(rc));
        status = 1;
    } else if (status == 0) {
        LOG_INFO("stopped cleanly");
    } else if (n.failed) {
        LOG_ERROR("stopped after a storage failure");
    }
    config_free(&cfg);
    log_close();
    sodium_memzero(secret, sizeof(secret));
    return status;
}
