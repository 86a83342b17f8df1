/*
 * fuzz_bench_resp.c - libFuzzer target for ringkv-bench's decoders
 * (client/bench.h): the RESP reply decoder and the versioned-value reader.
 *
 * Decodes replies one after another from the input, as ringkv-bench does
 * with a connection's read buffer, until an error or an incomplete reply.
 * Checks the contract: the consumed count stays inside the input, a bulk
 * lies inside the bytes consumed and respects max_bulk, and feeding the
 * consumed bytes alone decodes the same reply. Each bulk (and the whole
 * input) goes through bench_value_version(); a version it reads must
 * survive bench_value_fill() and a second read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/bench.h"
#include "proto/errors.h"

#define FUZZ_MAX_BULK 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_version(const uint8_t *p, size_t n)
{
    uint64_t v = 0, again = 0;
    if (bench_value_version(p, n, &v) != 0)
        return;
    uint8_t buf[BENCH_STALE_MIN_VAL + 8];
    bench_value_fill(buf, sizeof(buf), v);
    fuzz_check(bench_value_version(buf, sizeof(buf), &again) == 0);
    fuzz_check(again == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    fuzz_version(data, size);
    while (off < size) {
        struct bench_resp_reply r, r2;
        int n = bench_resp_reply(data + off, size - off, FUZZ_MAX_BULK, &r);
        if (n <= 0) {
            fuzz_check(n == 0 || n == RK_EPROTO);
            break;
        }
        fuzz_check((size_t)n <= size - off);
        if (r.type == BENCH_RESP_BULK || r.type == BENCH_RESP_SIMPLE ||
            r.type == BENCH_RESP_ERROR) {
            fuzz_check(r.p >= data + off);
            fuzz_check(r.p + r.len <= data + off + (size_t)n);
        }
        if (r.type == BENCH_RESP_BULK) {
            fuzz_check(r.len <= FUZZ_MAX_BULK);
            fuzz_version(r.p, r.len);
        }
        fuzz_check(
            bench_resp_reply(data + off, (size_t)n, FUZZ_MAX_BULK, &r2) == n);
        fuzz_check(r2.type == r.type && r2.len == r.len && r2.ival == r.ival);
        off += (size_t)n;
    }
    return 0;
}
