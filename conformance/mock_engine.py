#!/usr/bin/env python3
"""A small, deterministic OpenAI-compatible engine for the conformance suite (stdlib only).

    python3 mock_engine.py --port P [--role chat|embed] [--model NAME]

Routes (the ones engines such as vLLM or llama.cpp's server offer):
  GET  /v1/models             one model, owned by "mock-org"
  POST /v1/chat/completions   JSON or SSE stream (role chat); 400 for role embed
  POST /v1/embeddings         deterministic vectors (role embed); 400 for role chat, the way a
                              chat model's engine refuses embeddings
Test hooks:
  GET  /mock/requests         every request the engine received, oldest first
  POST /mock/reset            forget them

What it answers is a function of the request, so tests can predict it:
  - chat: "echo: " + the text of the last user message (text parts joined with a space, one
    "[image]" per image part); each word is one token; max_tokens truncates (finish_reason
    "length"); response_format json_object answers {"echo": text} as JSON text;
  - with tools and a user message last: one call of the first tool, arguments {"text": text};
  - with a tool message last: "tool said: " + its content;
  - embeddings: `dimensions` (default 8) floats in [-1, 1] from the SHA-256 of the input.
Magic words anywhere in the last message (or an embeddings input) make it fail:
  MOCK_ERROR_500      500 with an OpenAI error body          MOCK_ERROR_400   400, same shape
  MOCK_ERROR_TEXT     503 with a plain-text body              MOCK_SLOW        sleep 3 s first
  MOCK_CLOSE          close the connection without answering
  MOCK_BREAK_STREAM   (stream) two chunks, then close the connection without [DONE]
  MOCK_QUIRKY_STREAM  (stream) keep-alive comments, `event:` lines, `data:` without a space, CRLF
  MOCK_SPLIT_STREAM   (stream) every event sent in 3-byte pieces (splitting UTF-8 characters)
  MOCK_NO_DONE        (stream) ends the stream cleanly but without `data: [DONE]`
  MOCK_LONG_STREAM    (stream) 400 words, 10 ms apart; a client that hangs up is recorded as a
                      request to the path "/mock/aborted"
  MOCK_BAD_JSON       200 with a body that is not JSON
  MOCK_JSON_FOR_STREAM  (stream) answers a plain JSON completion instead of a stream
  POST /mock/config {"models_status": 503}  makes GET /v1/models fail (engine loading); reset clears it
"""

import argparse
import base64
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREATED = 1_700_000_000


class State:
    def __init__(self, role, model):
        self.role = role
        self.model = model
        self.lock = threading.Lock()
        self.requests = []
        self.config = {}

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)
            del self.requests[:-200]

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.config = {}


def message_text(message):
    """The text of one message: a string, or its parts (text joined, images as [image])."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    words = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            words.append(part.get("text", ""))
        elif kind == "image_url":
            words.append("[image]")
        elif kind == "input_audio":
            words.append("[audio]")
    return " ".join(words)


def vector(text, dims):
    """`dims` deterministic floats in [-1, 1] for `text`."""
    out = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            (n,) = struct.unpack("<I", digest[i:i + 4])
            out.append(round(n / 0xFFFFFFFF * 2 - 1, 6))
        counter += 1
    return out[:dims]


def count_words(text):
    return len(text.split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-engine/1.0"
    state: State = None  # set by main

    def log_message(self, fmt, *args):  # quiet
        pass

    # ---- plumbing -------------------------------------------------------------------------

    def send_json(self, status, payload, extra_headers=()):
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, status, message, kind):
        self.send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return raw, json.loads(raw or b"null")
        except ValueError:
            return raw, None

    def hard_close(self):
        """Drop the connection with no (further) answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- routes ---------------------------------------------------------------------------

    def do_GET(self):
        if self.path == "/v1/models" and self.state.config.get("models_status"):
            self.send_error_json(self.state.config["models_status"], "model is loading", "ServiceUnavailable")
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": self.state.model, "object": "model", "created": CREATED, "owned_by": "mock-org"}]})
        elif self.path == "/mock/requests":
            self.send_json(200, self.state.snapshot())
        elif self.path == "/health":
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self):
        raw, body = self.read_body()
        if self.path == "/mock/reset":
            self.state.reset()
            self.send_json(200, {"ok": True})
            return
        if self.path == "/mock/config":
            self.state.config.update(body or {})
            self.send_json(200, self.state.config)
            return
        self.state.record({
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "raw": raw.decode("utf-8", "replace"),
        })
        if not isinstance(body, dict):
            self.send_error_json(400, "the body is not a JSON object", "BadRequestError")
        elif self.path == "/v1/chat/completions":
            if self.state.role != "chat":
                self.send_error_json(400, f"model {self.state.model} does not support chat", "BadRequestError")
            else:
                self.chat(body)
        elif self.path == "/v1/embeddings":
            if self.state.role != "embed":
                self.send_error_json(400, f"model {self.state.model} does not support embeddings", "BadRequestError")
            else:
                self.embeddings(body)
        else:
            self.send_json(404, {"detail": "Not Found"})

    # ---- failures -------------------------------------------------------------------------

    def failure(self, text):
        """Answers a magic-word failure; True when the request is done with."""
        if "MOCK_SLOW" in text:
            time.sleep(3)
        if "MOCK_ERROR_500" in text:
            self.send_error_json(500, "mock engine failure (MOCK_ERROR_500)", "InternalServerError")
        elif "MOCK_ERROR_400" in text:
            self.send_error_json(400, "mock engine refuses the prompt (MOCK_ERROR_400)", "BadRequestError")
        elif "MOCK_ERROR_TEXT" in text:
            data = b"engine overloaded, try later"
            self.send_response(503)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif "MOCK_CLOSE" in text:
            self.hard_close()
        elif "MOCK_BAD_JSON" in text:
            data = b"<html>this is not json</html>"
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            return False
        return True

    # ---- chat -----------------------------------------------------------------------------

    def chat(self, body):
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        text = message_text(last)
        if self.failure(text):
            return
        model = body.get("model") or self.state.model
        prompt_tokens = sum(count_words(message_text(m)) for m in messages)
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice")
        if last.get("role") == "tool":
            content = f"tool said: {text}"
        elif tools and tool_choice != "none":
            return self.tool_call(body, model, prompt_tokens, tools[0]["function"]["name"], text)
        else:
            content = f"echo: {text}"
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in ("json_object", "json_schema"):
            content = json.dumps({"echo": text})
        words = content.split(" ")
        finish = "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words = words[:max_tokens]
            finish = "length"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": prompt_tokens + len(words)}
        if "MOCK_LONG_STREAM" in text:
            words = [f"w{i}" for i in range(400)]
        if body.get("stream") and "MOCK_JSON_FOR_STREAM" not in text:
            try:
                self.stream_text(body, model, words, finish, usage, text)
            except (BrokenPipeError, ConnectionResetError):
                self.state.record({"path": "/mock/aborted", "headers": {}, "body": None, "raw": ""})
                self.close_connection = True
            return
        self.send_json(200, {
            "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                         "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        })

    def tool_call(self, body, model, prompt_tokens, name, text):
        arguments = json.dumps({"text": text})
        call_id = "call_mock_1"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5}
        if not body.get("stream"):
            self.send_json(200, {
                "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": None,
                    "tool_calls": [{"id": call_id, "type": "function",
                                    "function": {"name": name, "arguments": arguments}}]}}],
                "usage": usage,
            })
            return
        half = len(arguments) // 2
        deltas = [
            {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
        ]
        self.start_stream()
        for delta in deltas:
            self.event(self.chunk(model, delta, None))
        self.event(self.chunk(model, {}, "tool_calls"))
        if (body.get("stream_options") or {}).get("include_usage"):
            self.event({**self.chunk(model, {}, None), "choices": [], "usage": usage})
        self.write_raw(b"data: [DONE]\n\n")
        self.end_chunked()

    # ---- streaming ------------------------------------------------------------------------

    def chunk(self, model, delta, finish):
        return {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def start_stream(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def write_raw(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def event(self, payload, quirky=False, split=False):
        text = json.dumps(payload, ensure_ascii=False)
        if split:
            data = b"data: " + text.encode() + b"\n\n"
            for i in range(0, len(data), 3):
                self.write_raw(data[i:i + 3])
                time.sleep(0.0005)
        elif quirky:
            self.write_raw(b": keep-alive\r\n\r\n")
            self.write_raw(b"event: message\r\ndata:" + text.encode() + b"\r\n\r\n")
        else:
            self.write_raw(b"data: " + text.encode() + b"\n\n")

    def stream_text(self, body, model, words, finish, usage, text):
        quirky = "MOCK_QUIRKY_STREAM" in text
        split = "MOCK_SPLIT_STREAM" in text
        self.start_stream()
        self.event(self.chunk(model, {"role": "assistant", "content": ""}, None), quirky, split)
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            self.event(self.chunk(model, {"content": piece}, None), quirky, split)
            if i == 1 and "MOCK_BREAK_STREAM" in text:
                self.hard_close()
                return
            time.sleep(0.01 if "MOCK_LONG_STREAM" in text else 0.002)
        self.event(self.chunk(model, {}, finish), quirky, split)
        if (body.get("stream_options") or {}).get("include_usage"):
            self.event({**self.chunk(model, {}, None), "choices": [], "usage": usage}, quirky, split)
        if "MOCK_NO_DONE" not in text:
            self.write_raw(b"data: [DONE]\r\n\r\n" if quirky else b"data: [DONE]\n\n")
        self.end_chunked()

    # ---- embeddings -----------------------------------------------------------------------

    def embeddings(self, body):
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            self.send_error_json(400, "input must be a non-empty string or list", "BadRequestError")
            return
        texts = [x if isinstance(x, str) else json.dumps(x) for x in inputs]
        if self.failure(" ".join(texts)):
            return
        dims = body.get("dimensions") or 8
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            self.send_error_json(400, f"encoding_format {fmt} is not supported", "BadRequestError")
            return
        data = []
        for i, t in enumerate(texts):
            v = vector(t, dims)
            if fmt == "base64":
                v = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
            data.append({"object": "embedding", "index": i, "embedding": v})
        tokens = sum(max(1, count_words(t)) for t in texts)
        self.send_json(200, {"object": "list", "model": body.get("model") or self.state.model, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer (a test that stops reading a stream) is normal.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--role", choices=["chat", "embed"], default="chat")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    model = args.model or ("mock-chat" if args.role == "chat" else "mock-embed")
    Handler.state = State(args.role, model)
    server = Server((args.host, args.port), Handler)
    print(f"mock engine ({args.role}, model {model}) on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
