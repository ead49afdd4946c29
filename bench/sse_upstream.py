#!/usr/bin/env python3
"""A slow OpenAI-compatible SSE upstream for the benchmark (bench/run.sh).

Every POST gets a `text/event-stream` answer (chunked, keep-alive): the first
event at once, then one every --interval-ms, --events in all, then
`data: [DONE]`. Each event's content is `t=<CLOCK_MONOTONIC ns>` taken just
before it is written, so a client on the same machine can tell how long each
chunk took to reach it. GET /v1/models answers a one-model list (the proxy's
health check); any other GET answers `{}`.

Standard library only; uses uvloop when it is importable.
"""

import argparse
import asyncio
import json
import time

MODELS = json.dumps(
    {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}
).encode()


def event(i: int, last: bool) -> bytes:
    delta = {"content": f"t={time.monotonic_ns()}"}
    if i == 0:
        delta["role"] = "assistant"
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }
    payload = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(payload), payload)


DONE = b"data: [DONE]\n\n"
DONE_CHUNK = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE), DONE)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


async def read_body(reader: asyncio.StreamReader, head: bytes) -> None:
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return
    elif length:
        await reader.readexactly(length)


async def handle(reader, writer, interval: float, events: int) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method = head.split(b" ", 1)[0]
            await read_body(reader, head)
            if method == b"POST":
                start = time.monotonic()
                writer.write(SSE_HEAD + event(0, events == 1))
                await writer.drain()
                for i in range(1, events):
                    delay = start + i * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    writer.write(event(i, i == events - 1))
                    await writer.drain()
                writer.write(DONE_CHUNK)
                await writer.drain()
            else:
                path = head.split(b" ", 2)[1]
                body = MODELS if path.startswith(b"/v1/models") else b"{}"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=6)
    args = parser.parse_args()
    interval = args.interval_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, interval, args.events),
        "127.0.0.1",
        args.port,
        backlog=4096,
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        from uvloop import run  # type: ignore
    except ImportError:
        from asyncio import run
    run(main())
