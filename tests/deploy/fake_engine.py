#!/usr/bin/env python3
"""A minimal OpenAI-compatible engine for tests/deploy (stdlib only).

check_deploy.py runs it in place of vLLM, TGI, SGLang or TEI: through a container entrypoint
(ENGINE_CMD), which appends the manifest's engine arguments and the listen address, or directly
as one of the engines a proxy.toml names. Of its arguments it reads only where to listen:

    --port N | --port=N | -p N        (default 8080)
    --host H | --hostname H           (default 127.0.0.1)

and ignores the rest (model names, batch sizes). The environment chooses what it serves:

    FAKE_KIND   chat (default): /v1/models, /v1/chat/completions, TGI-style /info
                embeddings: TEI-style /info with an embedding model_type, no /v1/models
    FAKE_MODEL  the model id it reports (default fake/model)

Every answer is immediate; SIGTERM ends it (exit 143, which the entrypoints count as clean).
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KIND = os.environ.get("FAKE_KIND", "chat")
MODEL = os.environ.get("FAKE_MODEL", "fake/model")


def listen_address(argv):
    host, port = "127.0.0.1", 8080
    args = iter(argv)
    for a in args:
        if a in ("--port", "-p"):
            port = int(next(args))
        elif a.startswith("--port="):
            port = int(a.split("=", 1)[1])
        elif a in ("--host", "--hostname"):
            host = next(args)
        elif a.startswith(("--host=", "--hostname=")):
            host = a.split("=", 1)[1]
    return host, port


def chat_completion(request):
    return {
        "id": "chatcmpl-deploy-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def embeddings(request):
    inputs = request.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    return {
        "object": "list",
        "model": request.get("model") or MODEL,
        "data": [{"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.75, 1.0]}
                 for i in range(count)],
        "usage": {"prompt_tokens": count, "total_tokens": count},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):  # quiet: the proxy logs every request already
        pass

    def send_json(self, status, body):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def not_found(self):
        self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(200, {})
        elif path == "/v1/models" and KIND == "chat":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "fake"}]})
        elif path == "/info":
            if KIND == "chat":
                self.send_json(200, {"model_id": MODEL, "max_total_tokens": 8192})
            else:
                self.send_json(200, {"model_id": MODEL,
                                     "model_type": {"embedding": {"pooling": "cls"}}})
        else:
            self.not_found()

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("content-length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON"}})
            return
        if path == "/v1/chat/completions" and KIND == "chat":
            self.send_json(200, chat_completion(request))
        elif path in ("/v1/embeddings", "/embeddings") and KIND == "embeddings":
            self.send_json(200, embeddings(request))
        elif path == "/v1/embeddings":
            self.send_json(400, {"error": {"message": "this model does not support embeddings"}})
        else:
            self.not_found()


def main():
    host, port = listen_address(sys.argv[1:])
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"fake engine ({KIND}, {MODEL}) on {host}:{port}; args: {sys.argv[1:]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
