#!/usr/bin/env python3
"""bench_quorum.py - the measuring and reporting half of bench-quorum.sh.

  bench_quorum.py run --out F --meta JSON [--pids P,P] [--settle S]
                      [--gen-cores C] [--server-cores C] -- CMD...
      Runs CMD (a ringkv-bench --json command), samples the CPU time of the
      server processes (/proc/PID/stat utime + stime) and of CMD itself once
      --settle seconds after the start (connect + --warmup) and again at the
      end, and writes one point: META, the bench JSON, the measured window's
      wall time, server and generator CPU seconds and utilisations, and a
      verdict (ok / generator-bound / failed). The server pids are read again
      after the run, so a server that died is reported, not hidden.

  bench_quorum.py report --dir D --out OUT [--title T] [--no-plots]
      Reads every point D/*.json and writes OUT/results.json, OUT/results.md
      and (gnuplot permitting) OUT/throughput.png, OUT/p99.png,
      OUT/staleness.png, OUT/staleness-down.png.

  bench_quorum.py closed N R W K
      Prints PBS's k-staleness closed form 1 - (C(N-W,R)/C(N,R))^K.

Standard library only (python3 is on Debian's base system).
"""
import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
# A point is generator-bound when the generator used at least GEN_BUSY of
# its cores while the servers used less than SERVER_IDLE of theirs.
GEN_BUSY = 0.90
SERVER_IDLE = 0.80
# The k-staleness check: measured within this of the closed form.
TOLERANCE = 0.01


def closed_form(n, r, w, k):
    """PBS k-staleness (Bailis et al. 3.2): 1 - (C(n-w, r) / C(n, r))^k."""
    if r > n or w > n:
        return None
    miss = math.comb(n - w, r) / math.comb(n, r) if n - w >= r else 0.0
    return 1.0 - miss ** k


def proc_cpu(pid):
    """utime + stime of a process in seconds, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def cpus_busy():
    """Per cpu: (busy, total) jiffies from /proc/stat, busy = all but
    idle and iowait."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                res[line.split()[0]] = (sum(v) - v[3] - v[4], sum(v))
    return res


def servers_cpu(pids):
    vals = [proc_cpu(p) for p in pids]
    return vals


def cmd_run(a):
    meta = json.loads(a.meta)
    pids = [int(p) for p in a.pids.split(",") if p] if a.pids else []
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    before_rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop(signum, _frame):  # bench-quorum.sh stopping: the generator too
        p.terminate()
        p.wait()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Sample at the start of the measured window (connect + warmup).
    deadline = t0 + a.settle
    while time.monotonic() < deadline and p.poll() is None:
        time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
    t1 = time.monotonic()
    c1 = cpus_busy()
    s1 = servers_cpu(pids)
    g1 = proc_cpu(p.pid) if p.poll() is None else None
    out, err = p.communicate()
    t2 = time.monotonic()
    c2 = cpus_busy()
    s2 = servers_cpu(pids)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen_total = (ru.ru_utime - before_rusage.ru_utime) + (
        ru.ru_stime - before_rusage.ru_stime)
    point = dict(meta)
    point["cmd"] = cmd
    point["exit"] = p.returncode
    point["stderr"] = err.decode(errors="replace")[-2000:]
    try:
        point["bench"] = json.loads(out.decode())
    except ValueError:
        point["bench"] = None
    window = t2 - t1
    if g1 is None:  # ended before the window opened: use the whole run
        window, g1 = t2 - t0, 0.0
        s1 = [0.0 if v is not None else None for v in s1]
    point["window_s"] = round(window, 4)
    # How busy each cpu was with everything (ours and other users'): a
    # cpu busier than our processes on it were shared with someone else.
    point["cpu_busy"] = {k: round((c2[k][0] - c1[k][0]) /
                                  max(1, c2[k][1] - c1[k][1]), 3)
                         for k in c2 if k in c1}
    point["gen_cpu_s"] = round(gen_total - g1, 4)
    dead = [pid for pid, v in zip(pids, s2) if v is None]
    point["servers_dead"] = dead
    scpu = sum((b or 0.0) - (x or 0.0) for x, b in zip(s1, s2)
               if b is not None and x is not None)
    point["server_cpu_s"] = round(scpu, 4)
    point["gen_cores"] = a.gen_cores
    point["server_cores"] = a.server_cores
    point["gen_util"] = round(point["gen_cpu_s"] / (window * a.gen_cores), 3) \
        if window > 0 else None
    point["server_util"] = round(scpu / (window * a.server_cores), 3) \
        if window > 0 and pids else None
    b = point["bench"]
    if p.returncode != 0 or b is None:
        verdict = "failed"
    elif dead:
        verdict = "server died"
    elif point["gen_util"] is not None and point["gen_util"] >= GEN_BUSY and \
            (point["server_util"] is None or point["server_util"] < SERVER_IDLE):
        verdict = "generator-bound"
    else:
        verdict = "ok"
    point["verdict"] = verdict
    if b is not None:
        tot = b["total"] + b["errors"]["definite"] + b["errors"]["indefinite"]
        rate = tot / b["seconds"] if b["seconds"] > 0 else 0.0
        # CPU per answered request over the window (answers, errors too).
        point["server_us_per_req"] = round(scpu / (rate * window) * 1e6, 2) \
            if rate > 0 and window > 0 else None
        point["gen_us_per_req"] = round(
            point["gen_cpu_s"] / (rate * window) * 1e6, 2) \
            if rate > 0 and window > 0 else None
    with open(a.out, "w") as f:
        json.dump(point, f, indent=1)
    print(f"  {meta.get('label', '')}: {verdict}"
          + (f", {b['throughput']:.0f} ops/s" if b else "")
          + (f", errors {b['errors']['definite'] + b['errors']['indefinite']}"
             if b else "")
          + f", gen {point['gen_util']}, servers {point['server_util']}",
          file=sys.stderr)
    return 0 if verdict != "failed" else 1


# ---- report -----------------------------------------------------------------

def load(d):
    pts = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                pts.append(json.load(f))
    return pts


def fnum(x, nd=0):
    if x is None:
        return "-"
    if nd == 0:
        return f"{x:,.0f}".replace(",", " ")
    return f"{x:.{nd}f}"


def errs_text(b):
    by = b["errors"]["by_code"]
    if not by:
        return "0"
    return ", ".join(f"{v} {k}" for k, v in sorted(by.items()))


def busy_text(p):
    b = p.get("cpu_busy") or {}
    return "/".join(f"{b[k]:.2f}" for k in sorted(b)) or "-"


def setting(p):
    return f"R={p['r']} W={p['w']}"


def redis_ref(pts):
    rs = [p for p in pts if p["kind"] == "redis" and p["bench"]]
    if not rs:
        return None
    return sum(p["bench"]["throughput"] for p in rs) / len(rs)


def stale_rows(p):
    return p["bench"]["staleness"]["delays"] if p.get("bench") and \
        "staleness" in p["bench"] else []


def k_within(row, k):
    """Fraction of reads fewer than k versions behind."""
    return sum(row["k"][:k]) / row["reads"] if row["reads"] else None


def report(a):
    pts = load(a.dir)
    os.makedirs(a.out, exist_ok=True)
    ref = redis_ref(pts)
    thr = [p for p in pts if p["kind"] == "thr"]
    stale = [p for p in pts if p["kind"] == "stale"]
    cmp_ = [p for p in pts if p["kind"] == "compare"]
    order = lambda p: (p.get("down", 0), p.get("r", 0), p.get("w", 0))
    thr.sort(key=order)
    stale.sort(key=order)
    checks = []
    for p in stale:
        if p.get("down") or p["r"] + p["w"] > 3 or not stale_rows(p):
            continue
        row = stale_rows(p)[0]  # t = 0: reads right after the ack
        for k in (1, 2, 3):
            m = k_within(row, k)
            c = closed_form(3, p["r"], p["w"], k)
            tool = p.get("closed_form", {}).get(str(k))
            if tool is not None and abs(tool - c) > 1e-5:
                print(f"bench_quorum.py: ringkv-bench's closed form {tool} "
                      f"!= {c} for R={p['r']} W={p['w']} k={k}",
                      file=sys.stderr)
            se = math.sqrt(c * (1 - c) / row["reads"]) if row["reads"] else None
            checks.append(dict(r=p["r"], w=p["w"], k=k, reads=row["reads"],
                               measured=m, closed=c, stderr=se,
                               diff=(m - c) if m is not None else None,
                               within=(m is not None and
                                       abs(m - c) <= TOLERANCE)))
    summary = dict(title=a.title, redis_ops=ref, gen_busy=GEN_BUSY,
                   server_idle=SERVER_IDLE, tolerance=TOLERANCE,
                   k_checks=checks, points=pts)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)

    md = [f"# {a.title}", ""]
    meta = next((p for p in pts if "machine" in p), None)
    if meta:
        md += [meta["machine"], ""]
    rs = [p for p in pts if p["kind"] == "redis"]
    if rs:
        md += ["## Calibration and baseline: redis-server, same workload", "",
               "| run | ops/s | get p50/p99 µs | put p50/p99 µs | server CPU util | "
               "generator CPU util | cpus busy | server µs/req | "
               "generator µs/req | verdict |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for p in rs:
            b = p["bench"] or {}
            o = b.get("ops", {})
            md.append(
                f"| {p['label']} | {fnum(b.get('throughput'))} | "
                f"{fnum(o.get('get', {}).get('p50_us'))}/{fnum(o.get('get', {}).get('p99_us'))} | "
                f"{fnum(o.get('put', {}).get('p50_us'))}/{fnum(o.get('put', {}).get('p99_us'))} | "
                f"{fnum(p['server_util'], 2)} | {fnum(p['gen_util'], 2)} | "
                f"{busy_text(p)} | {fnum(p.get('server_us_per_req'), 1)} | "
                f"{fnum(p.get('gen_us_per_req'), 1)} | {p['verdict']} |")
        md += ["", f"Reference for the ratios: {fnum(ref)} ops/s (mean of the "
               "redis runs above).", ""]
    if thr:
        md += ["## Throughput and latency per setting (N = 3)", "",
               "| R | W | up | ops/s | / redis | get p50 µs | get p99 µs | "
               "put p50 µs | put p99 µs | errors | server CPU util | "
               "gen CPU util | cpus busy | server µs/req | verdict |",
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
        for p in thr:
            b = p["bench"]
            if b is None:
                md.append(f"| {p['r']} | {p['w']} | {3 - p['down']} | - | - | - "
                          f"| - | - | - | - | - | - | - | - | {p['verdict']} |")
                continue
            o = b["ops"]
            bound = p["verdict"] == "generator-bound"
            tp = b["throughput"]
            verdict = p["verdict"]
            if tp == 0 and b["errors"]["by_code"]:
                verdict = "unavailable" if "unavailable" in \
                    b["errors"]["by_code"] else "all failed"
            elif b["errors"]["by_code"]:
                failed = [op for op in ("get", "put") if o[op]["count"] == 0]
                verdict += f" ({'/'.join(failed) or 'some'} failed)"
            ratio = "-" if bound or ref is None or tp == 0 else f"{tp / ref:.2f}"
            tps = f"({fnum(tp)})" if bound else fnum(tp)
            md.append(
                f"| {p['r']} | {p['w']} | {3 - p['down']} | {tps} | {ratio} | "
                f"{fnum(o['get']['p50_us'])} | {fnum(o['get']['p99_us'])} | "
                f"{fnum(o['put']['p50_us'])} | {fnum(o['put']['p99_us'])} | "
                f"{errs_text(b)} | {fnum(p['server_util'], 2)} | "
                f"{fnum(p['gen_util'], 2)} | {busy_text(p)} | "
                f"{fnum(p.get('server_us_per_req'), 1)} | {verdict} |")
        md += ["", "`up`: nodes running (2 = node 3 killed after start, the "
               "generator talks to nodes 1 and 2). ops/s counts answered "
               "requests, errors excluded; a generator-bound figure is shown "
               "in parentheses and gets no ratio. Utilisation is CPU time over "
               "the measured window divided by the cores the processes were "
               "pinned to; `cpus busy` is each cpu's busy fraction over the "
               "window from /proc/stat, everyone's work included (cpu0/cpu1): "
               "a cpu busier than our processes on it was shared with other "
               "work, and that point's figures are low by about the "
               "difference.", ""]
    if stale:
        delays = [r["t_ms"] for r in stale_rows(stale[0])]
        md += ["## Staleness: P(consistent) against t (ms after the ack)", "",
               "| R | W | up | reads per t | " +
               " | ".join(f"t={d:g}" for d in delays) +
               " | closed form k=1 | RYW viol. | mono viol. | errors |",
               "|---:|---:|---:|---:|" + "---:|" * len(delays) +
               "---:|---:|---:|---|"]
        for p in stale:
            rows = stale_rows(p)
            b = p["bench"]
            if not rows:
                md.append(f"| {p['r']} | {p['w']} | {3 - p['down']} | - |" +
                          " - |" * len(delays) + f" - | - | - | {p['verdict']} |")
                continue
            s = b["staleness"]
            nrep = 3 - p["down"]
            cf = closed_form(nrep, p["r"], p["w"], 1)
            md.append(
                f"| {p['r']} | {p['w']} | {nrep} | {rows[0]['reads']} | " +
                " | ".join(fnum(r["p_consistent"], 3) if r["reads"] else "-"
                           for r in rows) +
                f" | {fnum(cf, 3)} | {s['ryw_violations']} | "
                f"{s['monotonic_violations']} | {errs_text(b)} |")
        md += ["", "Closed form with n = the replicas up (3, or 2 with a "
               "node down, where reads and writes pick among the reachable "
               "ones); R or W above that is unavailable.", ""]
    if checks:
        md += ["## k-staleness: measured (t = 0) against the closed form, "
               "R + W <= N", "",
               "| R | W | k | reads | measured | closed form | diff | "
               "binomial stderr | within ±0.01 | enough samples (2 stderr <= 0.01) |",
               "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for c in checks:
            md.append(
                f"| {c['r']} | {c['w']} | {c['k']} | {c['reads']} | "
                f"{fnum(c['measured'], 4)} | {fnum(c['closed'], 4)} | "
                f"{c['diff']:+.4f} | {fnum(c['stderr'], 4)} | "
                f"{'yes' if c['within'] else 'NO'} | "
                f"{'yes' if c['stderr'] is not None and 2 * c['stderr'] <= TOLERANCE else 'no'} |")
        md += ["", "Measured: the fraction of reads at t = 0 fewer than k "
               "versions behind. The check needs 2 stderr <= 0.01 (about "
               "9 000 reads at p = 1/3) to mean anything; --quick runs have "
               "fewer.", ""]
    if cmp_:
        md += ["## ringkv (3 nodes, N=3 R=W=2) against redis-server", "",
               "| op | P | target | ops/s | p50 µs | p99 µs | errors | "
               "server CPU µs/req | server CPU util | gen CPU util | "
               "cpus busy | / redis ops/s | / redis CPU per req | verdict | "
               "runs ops/s |",
               "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
        # Repeated runs: the median by ops/s of each (op, P, target) stands
        # for it; every run's ops/s is listed.
        runs = {}
        for p in cmp_:
            if p["bench"] is not None:
                runs.setdefault((p["op"], p["pipeline"], p["target"]),
                                []).append(p)
        groups = {}
        for (op, pl, target), ps in runs.items():
            ps.sort(key=lambda q: q["bench"]["throughput"])
            med = dict(ps[(len(ps) - 1) // 2])
            med["all_runs"] = [q["bench"]["throughput"] for q in ps]
            groups.setdefault((op, pl), []).append(med)
        for (op, pl), ps in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0] != "SET")):
            red = next((q for q in ps if q["target"] == "redis"), None)
            for p in sorted(ps, key=lambda q: q["target"]):
                b = p["bench"]
                o = b["ops"]["put" if op == "SET" else "get"]
                rr = rc = "-"
                if red and red["bench"] and p is not red:
                    rr = f"{b['throughput'] / red['bench']['throughput']:.2f}"
                    if red.get("server_us_per_req") and \
                            p.get("server_us_per_req"):
                        rc = (f"{p['server_us_per_req'] / red['server_us_per_req']:.2f}")
                md.append(
                    f"| {op} | {pl} | {p['target']} | {fnum(b['throughput'])} | "
                    f"{fnum(o['p50_us'])} | {fnum(o['p99_us'])} | "
                    f"{errs_text(b)} | {fnum(p.get('server_us_per_req'), 2)} | "
                    f"{fnum(p['server_util'], 2)} | {fnum(p['gen_util'], 2)} | "
                    f"{busy_text(p)} | {rr} | {rc} | {p['verdict']} | "
                    + " / ".join(fnum(x) for x in p["all_runs"]) + " |")
        md += ["", "Each row is the median run by ops/s (last column: every "
               "run's ops/s, interleaved with the other targets). CPU per "
               "request is the servers' utime + stime over the measured "
               "window divided by the requests answered in it: for ringkv "
               "the three nodes together.", ""]
    plots = [] if a.no_plots else plot(a.out, thr, stale)
    if plots:
        md += ["## Plots", ""] + [f"![{t}]({f})" for f, t in plots] + [""]
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("\n".join(md))
    return 0


def gp(script, out):
    if shutil.which("gnuplot") is None:
        return False
    r = subprocess.run(["gnuplot"], input=script.encode(),
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        print("bench_quorum.py: gnuplot: " + r.stderr.decode()[-500:],
              file=sys.stderr)
        return False
    return os.path.exists(out)


def bars(png, term, title, ylabel, key, plot_cmd):
    """A clustered bar chart of the columns plot_cmd names."""
    return gp(term + f"""set output '{png}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel '{ylabel}'
set yrange [0:*]
set key {key}
set grid ytics
plot {plot_cmd}
""", png)


def plot(out, thr, stale):
    made = []
    if shutil.which("gnuplot") is None:
        print("bench_quorum.py: no gnuplot (scripts/deps.sh --bench "
              "installs gnuplot-nox): no plots", file=sys.stderr)
        return made
    term = "set terminal pngcairo size 800,420 font ',10'\n"
    if thr:
        dat = os.path.join(out, "throughput.dat")
        with open(dat, "w") as f:
            f.write("# setting up3_ops down_ops up_get_p99 up_put_p99 "
                    "down_get_p99 down_put_p99\n")
            for r, w in sorted({(p["r"], p["w"]) for p in thr}):
                row = [f'"R={r} W={w}"']
                ps = {p["down"]: p for p in thr if (p["r"], p["w"]) == (r, w)}
                for d in (0, 1):
                    b = ps.get(d, {}).get("bench")
                    ok = b and ps[d]["verdict"] != "generator-bound"
                    row.append(f"{b['throughput']:.1f}" if ok else "NaN")
                for d in (0, 1):
                    b = ps.get(d, {}).get("bench")
                    for op in ("get", "put"):
                        v = b["ops"][op]["p99_us"] / 1000 if b and \
                            b["ops"][op]["count"] else None
                        row.append(f"{v:.3f}" if v else "NaN")
                f.write(" ".join(row) + "\n")
        if bars(os.path.join(out, "throughput.png"), term,
                "ringkv N=3: throughput per setting (answered requests/s)",
                "ops/s", "top right",
                f"'{dat}' using 2:xtic(1) title '3 nodes up', "
                "'' using 3 title 'one node down'"):
            made.append(("throughput.png", "throughput per setting"))
        if bars(os.path.join(out, "p99.png"), term,
                "ringkv N=3: p99 latency per setting", "p99 (ms)", "top left",
                f"'{dat}' using 4:xtic(1) title 'get, 3 up', "
                "'' using 5 title 'put, 3 up', "
                "'' using 6 title 'get, 1 down', '' using 7 title 'put, 1 down'"):
            made.append(("p99.png", "p99 latency per setting"))
    for down, name in ((0, "staleness.png"), (1, "staleness-down.png")):
        ps = [p for p in stale if p["down"] == down and stale_rows(p)
              and stale_rows(p)[0]["reads"]]
        if not ps:
            continue
        dat = os.path.join(out, f"staleness-{down}.dat")
        with open(dat, "w") as f:
            for p in ps:
                f.write(f"# R={p['r']} W={p['w']}\n")
                for i, r in enumerate(stale_rows(p)):
                    f.write(f"{i} {r['t_ms']:g} {r['p_consistent']:.5f}\n")
                f.write("\n\n")
        labels = ", ".join(f"'{dat}' index {i} using 1:3:xtic(2) with "
                           f"linespoints title 'R={p['r']} W={p['w']}'"
                           for i, p in enumerate(ps))
        png = os.path.join(out, name)
        up = "3 nodes up" if not down else "one node down"
        if gp(term + f"""set output '{png}'
set title 'P(consistent) against t, N=3, {up} (exact fanout, no read repair)'
set xlabel 't after the write was acknowledged (ms)'
set ylabel 'P(read returns the latest acknowledged version)'
set yrange [0:1.05]
set key bottom right
set grid
plot {labels}
""", png):
            made.append((name, f"P(consistent) against t, {up}"))
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="sub", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--meta", default="{}")
    r.add_argument("--pids", default="")
    r.add_argument("--settle", type=float, default=0.0)
    r.add_argument("--gen-cores", type=int, default=1)
    r.add_argument("--server-cores", type=int, default=1)
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    rp = sub.add_parser("report")
    rp.add_argument("--dir", required=True)
    rp.add_argument("--out", required=True)
    rp.add_argument("--title", default="bench-quorum results")
    rp.add_argument("--no-plots", action="store_true")
    c = sub.add_parser("closed")
    for x in ("n", "r", "w", "k"):
        c.add_argument(x, type=int)
    a = ap.parse_args()
    if a.sub == "run":
        return cmd_run(a)
    if a.sub == "report":
        return report(a)
    v = closed_form(a.n, a.r, a.w, a.k)
    print("-" if v is None else f"{v:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
