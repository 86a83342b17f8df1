// Client matrix: ioredis (npm) against a ringkv RESP port, default options.
//
// Usage: node ioredis.js PORT up|down  (see redis_py.py for the phases).
// Prints one "ok <check>" line per check; exits non-zero on failure.
'use strict';
const assert = require('assert');
const Redis = require('ioredis');

const port = Number(process.argv[2]);
const phase = process.argv[3];

function ok(what) {
  console.log('ok', what);
}

async function raises(p, ...words) {
  try {
    await p;
  } catch (e) {
    for (const w of words) assert.ok(String(e.message).includes(w), `error "${e.message}" lacks "${w}"`);
    return;
  }
  assert.fail('no error');
}

async function up(r) {
  assert.strictEqual(await r.ping(), 'PONG');
  ok('connect with defaults (HELLO 3 falls back to RESP2) + PING');
  assert.strictEqual(await r.set('io:a', '1'), 'OK');
  assert.strictEqual(await r.get('io:a'), '1');
  ok('SET/GET');
  assert.deepStrictEqual(await r.mget('io:a', 'io:missing'), ['1', null]);
  ok('MGET with a missing key');
  assert.strictEqual(await r.del('io:a', 'io:missing'), 1);
  assert.strictEqual(await r.get('io:a'), null);
  ok('DEL counts existing keys');
  const blob = Buffer.alloc(1024, 0).map((_, i) => i % 256);
  await r.set('io:bin', blob);
  assert.ok(blob.equals(await r.getBuffer('io:bin')));
  ok('binary value');
  const p = r.pipeline();
  for (let i = 0; i < 100; i++) p.set(`io:p${i}`, String(i));
  for (let i = 0; i < 100; i++) p.get(`io:p${i}`);
  const res = await p.exec();
  for (let i = 0; i < 100; i++) {
    assert.deepStrictEqual(res[i], [null, 'OK']);
    assert.deepStrictEqual(res[100 + i], [null, String(i)]);
  }
  ok('pipeline of 100 SET + 100 GET, in order');
  const big = 'x'.repeat(1 << 20);
  await r.set('io:big', big);
  assert.strictEqual(await r.get('io:big'), big);
  ok('1 MiB value');
  await raises(r.set('io:e', 'v', 'EX', 10), 'EX', 'not supported');
  await raises(r.set('io:e', 'v', 'NX'), 'NX', 'not supported');
  await raises(r.call('NOSUCH'), 'unknown');
  await raises(r.set('io:huge', 'x'.repeat(5 << 20)), 'larger than');
  assert.strictEqual(await r.ping(), 'PONG');
  ok('errors reject the promise, connection stays usable');
  const c2 = new Redis({port, connectionName: 'matrix', maxRetriesPerRequest: 0});
  assert.strictEqual(await c2.client('GETNAME'), 'matrix');
  c2.disconnect();
  ok('connectionName (CLIENT SETNAME)');
}

async function down(r) {
  await raises(r.set('io:d', 'v'), 'unavailable');
  await raises(r.get('io:d'), 'unavailable');
  await raises(r.mget('io:d', 'io:e'), 'unavailable');
  assert.strictEqual(await r.ping(), 'PONG');
  ok('unavailable rejects SET, GET and MGET');
}

(async () => {
  const r = new Redis({port, maxRetriesPerRequest: 0, connectTimeout: 10000});
  r.on('error', () => {});  // reported through the failing command
  try {
    await (phase === 'up' ? up(r) : down(r));
  } finally {
    r.disconnect();
  }
})().catch((e) => {
  console.error('FAIL', e && e.stack ? e.stack : e);
  process.exit(1);
});
