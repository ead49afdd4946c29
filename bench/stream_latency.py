#!/usr/bin/env python3
"""Streaming latency client for the benchmark (bench/run.sh).

Sends --streams streaming chat requests one after another on one keep-alive
HTTP/1.1 connection and measures, for each:
  * time to first token: from writing the request to reading the first
    `data:` event;
  * per-chunk delivery latency: the upstream (bench/sse_upstream.py) puts
    `t=<CLOCK_MONOTONIC ns>` in every event just before writing it, and this
    client subtracts that from the time it reads the event (same machine, same
    clock), so a constant delay a proxy adds to every chunk shows up here even
    though it would not change the gaps between chunks;
  * gaps between consecutive events as the client sees them.
Prints one JSON object of percentiles in microseconds.
"""

import argparse
import asyncio
import json
import re
import time
from urllib.parse import urlsplit

STAMP = re.compile(rb"t=(\d+)")


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100.0 * (len(values) - 1))))
    return values[k]


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def ensure(self):
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def one_stream(conn, request, record):
    """Runs one request; calls record(kind, recv_ns, event_bytes) per event."""
    await conn.ensure()
    reader = conn.reader
    t0 = time.monotonic_ns()
    conn.writer.write(request)
    await conn.writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    pending = b""
    events = 0

    def feed(data):
        nonlocal pending, events
        now = time.monotonic_ns()
        pending += data
        while b"\n\n" in pending:
            ev, pending = pending.split(b"\n\n", 1)
            if ev.startswith(b"data:") or b"\ndata:" in ev:
                record(t0, now, ev, events)
                events += 1

    if b"chunked" in headers.get(b"transfer-encoding", b""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            feed(data[:-2])
    elif b"content-length" in headers:
        left = int(headers[b"content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise ConnectionError("closed mid-body")
            left -= len(data)
            feed(data)
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            feed(data)
        conn.close()
    if headers.get(b"connection") == b"close":
        conn.close()
    return status, events


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--body",
        default='{"messages":[{"role":"user","content":"Hello"}],"model":"m","stream":true}',
    )
    args = ap.parse_args()
    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    body = args.body.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    ttft, chunk_lat, gaps = [], [], []
    last = [0]
    errors = 0
    measuring = False

    def record(t0, now, ev, index):
        if b"[DONE]" in ev:
            return
        if measuring:
            if index == 0:
                ttft.append((now - t0) / 1000.0)
            else:
                gaps.append((now - last[0]) / 1000.0)
            m = STAMP.search(ev)
            if m:
                chunk_lat.append((now - int(m.group(1))) / 1000.0)
        last[0] = now

    conn = Conn(url.hostname, url.port or 80)
    for i in range(args.warmup + args.streams):
        measuring = i >= args.warmup
        try:
            status, events = await one_stream(conn, request, record)
            if status != 200 or events == 0:
                errors += 1
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn.close()
    conn.close()
    out = {"streams": args.streams, "errors": errors}
    for name, values in (("ttft", ttft), ("chunk", chunk_lat), ("gap", gaps)):
        for p in (50, 90, 99):
            out[f"{name}_p{p}_us"] = pct(values, p)
        out[f"{name}_n"] = len(values)
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        from uvloop import run  # type: ignore
    except ImportError:
        from asyncio import run
    run(main())
