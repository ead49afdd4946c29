#!/usr/bin/env python3
"""A stand-in for an inference engine, for the entrypoint tests (stdlib only).

The tests put small wrappers named like the real engines' commands (text-generation-launcher,
vllm, python3, text-embeddings-router) on PATH; each runs this script with the arguments the
entrypoint gave it. It understands only what the entrypoints pass:

  --port N | --port=N | -p N     port to listen on (default 8080)
  --host H | --hostname H        address to listen on (default 127.0.0.1)
  --api-key K                    require `Authorization: Bearer K` on /v1/* (as the engines do)
Every other argument is accepted and ignored (it is recorded, so tests can check it).

Routes: GET /health, GET /v1/models (not in TEI mode), GET /info, POST /v1/chat/completions,
POST /v1/embeddings. A chat message "sleep N" makes the answer take N seconds.

Behaviour, from the environment:
  FAKE_KIND          chat (default) or tei (an embedding model described at /info, no /v1/models)
  FAKE_LOAD_SECONDS  seconds of "model loading" before it is ready (default 0)
  FAKE_LOAD_MODE     late: listen only once loaded (vLLM, TGI, TEI do this; default)
                     503: listen at once and answer 503 until loaded
  FAKE_EXIT_AFTER    exit on its own this many seconds after start ...
  FAKE_EXIT_CODE     ... with this code (default 3)
  FAKE_TERM_CODE     exit code after SIGTERM or SIGINT (default 0)
  FAKE_IGNORE_TERM   1: ignore SIGTERM and SIGINT (only SIGKILL stops it)
  FAKE_RECORD        file to append JSON lines to: start (argv, pid, uid, some environment),
                     listening, signal, exit
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-org/fake-model"
WATCHED_ENV = ("API_KEY", "AOP_API_KEYS", "AOP_UPSTREAM_API_KEY", "HF_TOKEN", "PORT", "MODEL_ID")


def record(event, **fields):
    path = os.environ.get("FAKE_RECORD")
    if not path:
        return
    fields.update(event=event, t=time.time())
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(fields) + "\n")


def parse_args(argv):
    port, host, key = 8080, "127.0.0.1", None
    i = 0
    while i < len(argv):
        a = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        if a in ("--port", "-p"):
            port, i = int(value), i + 1
        elif a.startswith("--port="):
            port = int(a.split("=", 1)[1])
        elif a in ("--host", "--hostname"):
            host, i = value, i + 1
        elif a.startswith(("--host=", "--hostname=")):
            host = a.split("=", 1)[1]
        elif a == "--api-key":
            key, i = value, i + 1
        i += 1
    return port, host, key


class State:
    kind = os.environ.get("FAKE_KIND", "chat")
    ready = False
    api_key = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refused(self):
        """503 while loading, 401 without the engine's key; None when the request may go on."""
        if not State.ready:
            self.send_json(503, {"error": {"message": "model is loading", "type": "unavailable"}})
            return True
        if State.api_key and self.path.startswith("/v1/"):
            if self.headers.get("authorization") != f"Bearer {State.api_key}":
                self.send_json(401, {"error": {"message": "bad engine key", "type": "auth"}})
                return True
        return False

    def do_GET(self):
        if self.refused():
            return
        if self.path == "/health":
            self.send_json(200, {})
        elif self.path == "/v1/models" and State.kind != "tei":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}]})
        elif self.path == "/info" and State.kind == "tei":
            self.send_json(200, {"model_id": MODEL, "model_type": {"embedding": {"pooling": "cls"}},
                                 "max_input_length": 512})
        elif self.path == "/info":
            self.send_json(200, {"model_id": MODEL, "max_total_tokens": 4096})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.refused():
            return
        if self.path == "/v1/chat/completions" and State.kind != "tei":
            text = str((body.get("messages") or [{}])[-1].get("content", ""))
            if text.startswith("sleep "):
                time.sleep(float(text.split()[1]))
            self.send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body.get("model") or MODEL,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "fake answer"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
        elif self.path == "/v1/embeddings":
            inputs = body.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            self.send_json(200, {
                "object": "list", "model": body.get("model") or MODEL,
                "data": [{"object": "embedding", "index": i, "embedding": [0.5, -0.25, 0.125]}
                         for i, _ in enumerate(inputs)],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})


def main():
    argv = sys.argv[1:]
    port, host, State.api_key = parse_args(argv)
    record("start", argv=argv, pid=os.getpid(), uid=os.getuid(),
           env={k: os.environ.get(k) for k in WATCHED_ENV})

    stop = threading.Event()
    term_code = int(os.environ.get("FAKE_TERM_CODE", "0"))

    def on_signal(signum, _frame):
        record("signal", signal=signal.Signals(signum).name)
        if os.environ.get("FAKE_IGNORE_TERM") != "1":
            stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    load = float(os.environ.get("FAKE_LOAD_SECONDS", "0"))
    exit_after = os.environ.get("FAKE_EXIT_AFTER")
    exit_at = started + float(exit_after) if exit_after else None
    late = os.environ.get("FAKE_LOAD_MODE", "late") == "late"

    server = None

    def listen():
        nonlocal server
        ThreadingHTTPServer.allow_reuse_address = True
        ThreadingHTTPServer.daemon_threads = True
        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        record("listening", host=host, port=port)

    if not late:
        listen()
    code = None
    while code is None:
        now = time.monotonic()
        if stop.is_set():
            code = term_code
        elif exit_at is not None and now >= exit_at:
            code = int(os.environ.get("FAKE_EXIT_CODE", "3"))
        elif not State.ready and now - started >= load:
            if server is None:
                listen()
            State.ready = True
            record("ready")
        else:
            time.sleep(0.02)
    record("exit", code=code)
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
