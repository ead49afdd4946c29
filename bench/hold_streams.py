#!/usr/bin/env python3
"""Opens N streaming chat requests and keeps them open (bench/run.sh memory test).

--proto h1: one HTTP/1.1 connection per stream.
--proto h2: HTTP/2 with prior knowledge (h2c), up to --per-conn streams per
  connection (and no more than the server's SETTINGS_MAX_CONCURRENT_STREAMS);
  needs the `h2` package. This is how 10,000 streams fit under a 20,000
  open-file limit: over HTTP/1.1 the proxy would need 10,000 client sockets
  plus 10,000 upstream sockets.

A stream counts as open once its first `data:` event has arrived. When every
stream is open or has failed (or --open-timeout passes), one JSON line
{"ready": R, "failed": F, "seconds": S} is written to --ready-file and stdout;
the streams then stay open until --hold-seconds pass or SIGTERM.
"""

import argparse
import asyncio
import json
import resource
import signal
import time
from urllib.parse import urlsplit


class State:
    def __init__(self):
        self.ready = 0
        self.failed = 0
        self.ended = 0


async def h1_stream(host, port, request, state, sem):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            buf = b""
            while b"data:" not in buf:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                buf += data
            if not buf.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(buf[:40])
            state.ready += 1
        except (OSError, asyncio.IncompleteReadError):
            state.failed += 1
            return
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    state.ended += 1
    writer.close()


async def h2_connection(host, port, authority, path, body, want, per_conn, state, tasks):
    """Opens one h2c connection, starts its share of streams; returns how many it took."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    got_settings = False
    while not got_settings:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed before SETTINGS")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                got_settings = True
        writer.write(conn.data_to_send())
    count = min(want, per_conn, conn.remote_settings.max_concurrent_streams)
    open_ids, ready_ids = set(), set()
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", path),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    for _ in range(count):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers)
        conn.send_data(sid, body, end_stream=True)
        open_ids.add(sid)
    writer.write(conn.data_to_send())
    await writer.drain()

    async def pump():
        try:
            while open_ids:
                data = await reader.read(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers).get(b":status")
                        if status != b"200" and ev.stream_id in open_ids:
                            open_ids.discard(ev.stream_id)
                            state.failed += 1
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        sid = ev.stream_id
                        if sid in open_ids and sid not in ready_ids and b"data:" in ev.data:
                            ready_ids.add(sid)
                            state.ready += 1
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                        if ev.stream_id in open_ids:
                            open_ids.discard(ev.stream_id)
                            if ev.stream_id in ready_ids:
                                state.ended += 1
                            else:
                                state.failed += 1
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        open_ids.clear()
                writer.write(conn.data_to_send())
        except Exception:  # noqa: BLE001 - any failure ends this connection's streams
            pass
        state.failed += len(open_ids - ready_ids)
        state.ended += len(open_ids & ready_ids)
        writer.close()

    tasks.append(asyncio.ensure_future(pump()))
    return count


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--proto", choices=["h1", "h2"], default="h1")
    ap.add_argument("--per-conn", type=int, default=100)
    ap.add_argument("--rate", type=float, default=4000.0, help="streams opened per second")
    ap.add_argument("--open-timeout", type=float, default=60.0)
    ap.add_argument("--hold-seconds", type=float, default=120.0)
    ap.add_argument("--ready-file")
    ap.add_argument(
        "--body",
        default='{"messages":[{"role":"user","content":"Hello"}],"model":"m","stream":true}',
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    url = urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    path = url.path + (f"?{url.query}" if url.query else "")
    body = args.body.encode()
    state = State()
    tasks = []
    start = time.monotonic()
    if args.proto == "h1":
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sem = asyncio.Semaphore(256)
        for i in range(args.n):
            tasks.append(asyncio.ensure_future(h1_stream(host, port, request, state, sem)))
            if i % 100 == 99:
                await asyncio.sleep(100 / args.rate)
    else:
        left = args.n
        while left > 0:
            try:
                took = await h2_connection(
                    host, port, url.netloc.encode(), path.encode(), body, left, args.per_conn,
                    state, tasks,
                )
            except OSError:
                state.failed += left
                break
            left -= took
            await asyncio.sleep(took / args.rate)

    while state.ready + state.failed < args.n and time.monotonic() - start < args.open_timeout:
        await asyncio.sleep(0.05)
    line = json.dumps(
        {
            "ready": state.ready,
            "failed": state.failed + max(0, args.n - state.ready - state.failed),
            "seconds": round(time.monotonic() - start, 2),
        }
    )
    print(line, flush=True)
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(line + "\n")
        import os

        os.replace(args.ready_file + ".tmp", args.ready_file)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.hold_seconds)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    try:
        from uvloop import run  # type: ignore
    except ImportError:
        from asyncio import run
    run(main())
