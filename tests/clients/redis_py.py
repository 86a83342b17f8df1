#!/usr/bin/python3
"""Client matrix: redis-py (Debian's python3-redis) against a ringkv RESP port.

Usage: redis_py.py PORT up|down
  up    every check against a healthy cluster
  down  with too few replicas up: errors must surface as exceptions
Prints one "ok <check>" line per check; exits non-zero on the first failure.
"""
import sys

import redis

port, phase = int(sys.argv[1]), sys.argv[2]
r = redis.Redis(port=port, socket_timeout=20)  # defaults otherwise


def ok(what):
    print("ok", what, flush=True)


def raises(fn, *words):
    try:
        fn()
    except redis.exceptions.ResponseError as e:
        msg = str(e)
        for w in words:
            assert w in msg, "error %r lacks %r" % (msg, w)
        return msg
    raise AssertionError("no exception")


if phase == "up":
    assert r.ping() is True
    ok("connect with defaults + PING")
    assert r.set("py:a", "1") is True and r.get("py:a") == b"1"
    ok("SET/GET")
    assert r.mget(["py:a", "py:missing"]) == [b"1", None]
    ok("MGET with a missing key")
    assert r.delete("py:a", "py:missing") == 1 and r.get("py:a") is None
    ok("DEL counts existing keys")
    blob = bytes(range(256)) * 4
    r.set("py:bin", blob)
    assert r.get("py:bin") == blob
    ok("binary value")
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set("py:p%d" % i, i)
    for i in range(100):
        p.get("py:p%d" % i)
    res = p.execute()
    assert res[:100] == [True] * 100 and res[100:] == [b"%d" % i for i in range(100)]
    ok("pipeline of 100 SET + 100 GET, in order")
    big = b"x" * (1 << 20)
    r.set("py:big", big)
    assert r.get("py:big") == big
    ok("1 MiB value")
    raises(lambda: r.set("py:e", "v", ex=10), "EX", "not supported")
    raises(lambda: r.set("py:e", "v", nx=True), "NX", "not supported")
    raises(lambda: r.execute_command("NOSUCH"), "unknown")
    raises(lambda: r.set("py:huge", b"x" * (5 << 20)), "larger than")
    assert r.ping() is True  # the connection survived every error
    ok("errors raise ResponseError, connection stays usable")
    raises(lambda: r.pipeline().set("py:t", 1).execute(), "MULTI")
    ok("transactions (MULTI) are refused with a clear error")
    c2 = redis.Redis(port=port, client_name="matrix")
    assert c2.client_getname() == "matrix"
    ok("client_name= (CLIENT SETNAME)")
else:
    raises(lambda: r.set("py:d", "v"), "unavailable")
    raises(lambda: r.get("py:d"), "unavailable")
    raises(lambda: r.mget(["py:d", "py:e"]), "unavailable")
    assert r.ping() is True
    ok("unavailable raises ResponseError for SET, GET and MGET")
