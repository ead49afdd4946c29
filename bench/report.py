#!/usr/bin/env python3
"""Turns the key=value results of bench/run.sh into Markdown tables and target verdicts."""

import statistics
import sys


def load(path):
    """Every value of each key, in the order written (a test run in several rounds writes its
    keys once per round)."""
    r = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                r.setdefault(k, []).append(v.strip('"'))
    return r


def collapse(key, values):
    """One value for a key: errors summed over the rounds, other numbers given in several
    rounds their median, anything else the last value."""
    if len(values) == 1:
        return values[0]
    try:
        nums = [float(v) for v in values]
    except ValueError:
        return values[-1]
    if "_err_" in key:
        return str(int(sum(nums)))
    return str(statistics.median(nums))


ROUNDS = load(sys.argv[1])
R = {k: collapse(k, v) for k, v in ROUNDS.items()}


def per_round(key):
    """The numbers a key took, one per round."""
    try:
        return [float(v) for v in ROUNDS.get(key, [])]
    except ValueError:
        return []


def num(key):
    v = R.get(key)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def diff(a, b, digits=0):
    return "n/a" if a is None or b is None else f"{a - b:+,.{digits}f}"


def pct(v):
    return "n/a" if v is None else f"{v:.0f}%"


def mb(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


out = []
p = out.append
p(f"Machine: {R.get('machine_cpu')}, {R.get('machine_cores')} cores, "
  f"{fmt(num('machine_mem_mb'))} MB RAM, Linux {R.get('machine_kernel')}; "
  f"nginx {R.get('nginx_version')}, wrk {R.get('wrk_version')}, oha {R.get('oha_version')}; "
  f"proxy commit {R.get('commit')}; build {R.get('build', 'cargo build --release')}; "
  f"mode {R.get('mode')}; "
  f"load average before {R.get('load_before')}, after {R.get('load_after')}.")
p("")

dur, conns, rounds = R.get("dur"), R.get("conns"), R.get("rounds", "1")
p(f"### Max throughput (wrk, closed loop, {conns} connections, {dur} s; requests/s)")
p("")
if rounds != "1":
    p(f"Each figure is the median of {rounds} rounds. Within a round the paths run back to "
      "back; the table after the next gives ours/nginx round by round.")
    p("")
p("| request | direct | nginx | ours | ours/direct | nginx/direct | ours/nginx | errors (d/n/o) |")
p("|---|---:|---:|---:|---:|---:|---:|---|")
for label, d, n, o in (
    ("chat, JSON answer", "direct", "nginx", "ours"),
    ("chat, SSE answer (6 events)", "sdirect", "snginx", "sours"),
    (f"chat, JSON answer, {R.get('big_body_kb', '?')} kB request (32 messages)",
     "bdirect", "bnginx", "bours"),
    ("chat, JSON answer, the openai SDK's request (20 headers, deployment route)",
     "kdirect", "knginx", "kours"),
    # Like against like (see bench/run.sh); absent from results of older runs.
    ("chat, JSON, both with an access log (nginx: `buffer=64k`; ours as above)",
     "direct", "lnginx", "ours"),
    ("chat, SSE answer, both with an access log", "sdirect", "slnginx", "sours"),
    ("chat, JSON answer, the openai SDK's request, both with an access log", "kdirect",
     "klnginx", "kours"),
    ("chat, JSON, neither with an access log (ours: RUST_LOG=warn; nginx as above)",
     "direct", "nginx", "ours_warn"),
):
    vd, vn, vo = num(f"rps_{d}"), num(f"rps_{n}"), num(f"rps_{o}")
    if vn is None or vo is None:
        continue
    errs = "/".join(R.get(f"rps_err_{k}", "?") for k in (d, n, o))
    p(f"| {label} | {fmt(vd)} | {fmt(vn)} | {fmt(vo)} | {ratio(vo, vd)} | {ratio(vn, vd)} "
      f"| {ratio(vo, vn)} | {errs} |")
vp = num("rps_ours_plain")
if vp:
    p(f"| chat, JSON, ours built with plain `cargo build --release` (no PGO) | | | {fmt(vp)} "
      f"| {ratio(vp, num('rps_direct'))} | | {ratio(vp, num('rps_nginx'))} "
      f"| {R.get('rps_err_ours_plain', '?')} |")
vr = num("rps_relay")
p(f"| chat, JSON, through the no-op TCP relay (examples/relay.rs) instead of ours | | | {fmt(vr)} "
  f"| {ratio(vr, num('rps_direct'))} | | {ratio(vr, num('rps_nginx'))} "
  f"| {R.get('rps_err_relay', '?')} |")
p("")
if rounds != "1":
    p("Ours against nginx in each round (requests/s ratio; CPU per request ratio):")
    p("")
    p("| request | " + " | ".join(f"round {i + 1}" for i in range(int(rounds)))
      + " | median |")
    p("|---|" + "---:|" * (int(rounds) + 1))
    for label, n, o in (
        ("chat, JSON answer (ours with its access log, nginx without)", "nginx", "ours"),
        ("chat, JSON answer, both with an access log", "lnginx", "ours"),
        ("chat, JSON answer, neither with an access log", "nginx", "ours_warn"),
        ("chat, SSE answer (6 events)", "snginx", "sours"),
        ("chat, SSE answer, both with an access log", "slnginx", "sours"),
        (f"chat, JSON answer, {R.get('big_body_kb', '?')} kB request", "bnginx", "bours"),
        ("chat, JSON answer, the openai SDK's request", "knginx", "kours"),
        ("chat, JSON answer, the openai SDK's request, both with an access log", "klnginx",
         "kours"),
        ("chat, JSON answer, ours built without PGO", "nginx", "ours_plain"),
    ):
        rn, ro = per_round(f"rps_{n}"), per_round(f"rps_{o}")
        if not ro:
            continue
        cn, co = per_round(f"cpu_us_{n}"), per_round(f"cpu_us_{o}")
        cells = [f"{b / a:.2f}x; {d / c:.2f}x" if a and c else "n/a"
                 for a, b, c, d in zip(rn, ro, cn, co)]
        med = (f"{statistics.median(b / a for a, b in zip(rn, ro) if a):.2f}x" if rn else "n/a")
        p(f"| {label} | " + " | ".join(cells) + f" | {med} |")
    p("")

p("CPU time of the proxy under test during those runs (from /proc/PID/stat; nginx: its one worker; "
  "its core is CPU 0):")
p("")
p("| request | nginx CPU | nginx µs CPU/request | ours CPU | ours µs CPU/request | ours/nginx per request |")
p("|---|---:|---:|---:|---:|---:|")
for label, n, o in (
    ("chat, JSON answer", "nginx", "ours"),
    ("chat, SSE answer (6 events)", "snginx", "sours"),
    (f"chat, JSON answer, {R.get('big_body_kb', '?')} kB request", "bnginx", "bours"),
    ("chat, JSON answer, the openai SDK's request", "knginx", "kours"),
    ("chat, JSON, both with an access log", "lnginx", "ours"),
    ("chat, JSON, neither with an access log (ours: RUST_LOG=warn)", "nginx", "ours_warn"),
    ("chat, SSE, both with an access log", "slnginx", "sours"),
    ("chat, JSON, the openai SDK's request, both with an access log", "klnginx", "kours"),
    ("chat, JSON, ours built without PGO", "nginx", "ours_plain"),
    ("chat, JSON, the no-op relay in ours' place", "nginx", "relay"),
):
    if num(f"cpu_us_{o}") is None:
        continue
    p(f"| {label} | {pct(num(f'cpu_{n}'))} | {fmt(num(f'cpu_us_{n}'), 1)} "
      f"| {pct(num(f'cpu_{o}'))} | {fmt(num(f'cpu_us_{o}'), 1)} "
      f"| {ratio(num(f'cpu_us_{o}'), num(f'cpu_us_{n}'))} |")
p("")

p(f"### Latency at a fixed {R.get('rate')} requests/s (oha, open loop, "
  f"coordinated-omission corrected, {dur} s; µs)")
p("")
p("| percentile | direct | nginx | ours | no-op relay | nginx/direct | ours/direct | ours/nginx "
  "| added by nginx | added by ours | added by the relay |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, k in (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")):
    d, n, o, r = (num(f"lat_{k}_{t}") for t in ("direct", "nginx", "ours", "relay"))
    p(f"| {label} | {fmt(d)} | {fmt(n)} | {fmt(o)} | {fmt(r)} | {ratio(n, d)} | {ratio(o, d)} "
      f"| {ratio(o, n)} | {diff(n, d)} | {diff(o, d)} | {diff(r, d)} |")
p(f"| achieved rate (req/s) | {fmt(num('lat_rps_direct'))} | {fmt(num('lat_rps_nginx'))} "
  f"| {fmt(num('lat_rps_ours'))} | {fmt(num('lat_rps_relay'))} | | | | | | |")
p(f"| failed requests | {R.get('lat_err_direct')} | {R.get('lat_err_nginx')} "
  f"| {R.get('lat_err_ours')} | {R.get('lat_err_relay')} | | | | | | |")
p("")

p(f"### Streaming against an upstream sending one event every 10 ms "
  f"({R.get('streams')} streams of 6 events, one at a time; µs)")
p("")

def stream_table(rows, suffix=""):
    p("| measure | direct | nginx | ours | no-op relay | ours/nginx | added by nginx | added by ours "
      "| added by the relay | ours − relay |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, k in rows:
        d, n, o, r = (num(f"{k}_{t}{suffix}") for t in ("direct", "nginx", "ours", "relay"))
        p(f"| {label} | {fmt(d)} | {fmt(n)} | {fmt(o)} | {fmt(r)} | {ratio(o, n)} | {diff(n, d)} "
          f"| {diff(o, d)} | {diff(r, d)} | {diff(o, r)} |")


stream_table((
    ("time to first token, p50", "ttft_p50"),
    ("time to first token, p99", "ttft_p99"),
    ("chunk delivery (upstream write → client read), p50", "chunk_p50"),
    ("chunk delivery, p99", "chunk_p99"),
    ("gap between chunks, p50 (nominal 10,000)", "gap_p50"),
    ("gap between chunks, p99", "gap_p99"),
))
p(f"| failed streams | {R.get('stream_err_direct')} | {R.get('stream_err_nginx')} "
  f"| {R.get('stream_err_ours')} | {R.get('stream_err_relay')} | | | | | |")
p("")

if R.get("idle_poll") == "1":
    p("The same streams again, with idle CPUs polling for up to 200 µs before they halt "
      "(haltpoll `guest_halt_poll_ns` 200000, the kernel's default; this machine runs with 0):")
    p("")
    stream_table((
        ("time to first token, p50", "ttft_p50"),
        ("time to first token, p99", "ttft_p99"),
        ("chunk delivery, p50", "chunk_p50"),
        ("chunk delivery, p99", "chunk_p99"),
    ), "_poll")
    p("")

p("### Memory (VmRSS)")
p("")
p("| state | ours | nginx worker | ours/nginx | streams open end to end (ours / nginx) |")
p("|---|---:|---:|---:|---|")
p(f"| idle, just started | {mb(num('rss_idle'))} | {mb(num('rss_nginx_idle'))} "
  f"| {ratio(num('rss_idle'), num('rss_nginx_idle'))} | |")
p(f"| after the throughput and latency runs | {mb(num('rss_after_load'))} | | | |")
for label, k in (
    ("1,000 open streams (HTTP/1.1, one connection each)", "1k"),
    ("10,000 open streams (HTTP/2 from the client, 100 per connection)", "10k"),
):
    opened = f"{R.get(f'upconns_ours_{k}', 'n/a')} / {R.get(f'upconns_nginx_{k}', 'n/a')}"
    o, n = num(f"rss_ours_{k}"), num(f"rss_nginx_{k}")
    p(f"| {label} | {mb(o)} | {mb(n)} | {ratio(o, n)} | {opened} |")
per = None
if num("rss_ours_10k") is not None and num("rss_idle_hold") is not None:
    per = (num("rss_ours_10k") - num("rss_idle_hold")) / 10000
pern = None
if num("rss_nginx_10k") is not None and num("rss_nginx_idle") is not None:
    pern = (num("rss_nginx_10k") - num("rss_nginx_idle")) / 10000
p(f"| per open stream (10,000 − idle) | {fmt(per, 1)} kB | {fmt(pern, 1)} kB "
  f"| {ratio(per, pern)} | |")
p(f"| after the streams closed | {mb(num('rss_after_hold'))} | | | |")
p("")


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


targets = []


def throughput_target(name, n, o):
    """ours ≥ nginx: the median of the rounds' own ratios (each round's figures were measured
    back to back)."""
    pairs = [(a, b) for a, b in zip(per_round(f"rps_{n}"), per_round(f"rps_{o}")) if a]
    if not pairs:
        return
    t = statistics.median(b / a for a, b in pairs)
    targets.append((
        name,
        f"{fmt(num(f'rps_{o}'))} vs {fmt(num(f'rps_{n}'))} req/s (medians; ours/nginx per "
        f"round: {', '.join(f'{b / a:.2f}x' for a, b in pairs)}; median {t:.2f}x)",
        t >= 1,
    ))


throughput_target("max throughput through ours ≥ nginx's (JSON, both with an access log)",
                  "lnginx", "ours")
throughput_target("max throughput through ours ≥ nginx's (JSON, neither with an access log)",
                  "nginx", "ours_warn")
throughput_target("max throughput through ours ≥ nginx's (JSON, ours with its access log, "
                  "nginx without)", "nginx", "ours")
throughput_target("max throughput through ours ≥ nginx's (JSON, the openai SDK's request, "
                  "both with an access log)", "klnginx", "kours")
throughput_target("max throughput through ours ≥ nginx's (JSON, the openai SDK's request; "
                  "ours with its access log, nginx without)", "knginx", "kours")
throughput_target("max throughput through ours ≥ nginx's (SSE answer, both with an access "
                  "log)", "slnginx", "sours")
throughput_target("max throughput through ours ≥ nginx's (SSE answer; ours with its access "
                  "log, nginx without)", "snginx", "sours")
d, n, o = (num(f"lat_p50_{t}") for t in ("direct", "nginx", "ours"))
ok = None if None in (d, n, o) else (o - d) <= (n - d)
targets.append((
    "added p50 latency ≤ nginx's",
    f"{diff(o, d)} µs vs {diff(n, d)} µs",
    ok,
))
d, o, r = num("ttft_p50_direct"), num("ttft_p50_ours"), num("ttft_p50_relay")
targets.append((
    "added time to first token < 100 µs (p50)",
    f"{diff(o, d)} µs (the no-op relay adds {diff(r, d)} µs; ours beyond the relay: {diff(o, r)} µs)",
    None if None in (d, o) else (o - d) < 100,
))
if R.get("idle_poll") == "1":
    d, o, r = (num(f"ttft_p50_{t}_poll") for t in ("direct", "ours", "relay"))
    targets.append((
        "added time to first token < 100 µs (p50), idle CPUs polling",
        f"{diff(o, d)} µs (the no-op relay adds {diff(r, d)} µs; ours beyond the relay: {diff(o, r)} µs)",
        None if None in (d, o) else (o - d) < 100,
    ))
v = num("rss_idle")
targets.append(("RSS idle < 10 MB", mb(v), None if v is None else v < 10 * 1024))
v = num("rss_ours_10k")
opened = num("upconns_ours_10k")
targets.append((
    "RSS with 10,000 open streams < 100 MB",
    f"{mb(v)} ({fmt(opened)} streams open upstream)",
    None if v is None or opened is None or opened < 9900 else v < 100 * 1024,
))
p("### Targets")
p("")
p("| target | measured | result |")
p("|---|---|---|")
for name, measured, ok in targets:
    p(f"| {name} | {measured} | {verdict(ok)} |")
print("\n".join(out))
