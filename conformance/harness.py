"""Processes the conformance suite runs: mock engine, real engines, proxies. No pytest here."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

KEY = "conformance-key"
WRONG_KEY = "not-the-key"

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("AOP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "azure-openai-proxy")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port nothing listens on (bound, then released)."""
    return free_port()


def http_get(url, timeout=2.0, headers=None):
    """(status, body bytes) or (None, error text) when nothing answers."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError) as e:
        return None, str(e)


def http_post_json(url, payload, timeout=5.0):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


@dataclass
class Process:
    """A child process whose output goes to a log file."""
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log_tail(self, chars=3000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self):
        return self.popen.poll() is None

    def stop(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


def spawn(name, argv, log_dir, env=None):
    log_path = Path(log_dir) / f"{name}.log"
    log = open(log_path, "wb")
    popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})}, start_new_session=True)
    log.close()
    return Process(name, popen, log_path)


def wait_http(process, url, timeout, want=200):
    """Polls `url` until it answers `want`; raises with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode} before {url} answered:\n"
                               f"{process.log_tail()}")
        status, body = http_get(url)
        if status == want:
            return
        last = (status, body)
        time.sleep(0.1 if status is None else 0.25)
    process.stop()
    raise RuntimeError(f"{process.name}: {url} did not answer {want} within {timeout} s (last: {last}):\n"
                       f"{process.log_tail()}")


@dataclass
class Engine:
    kind: str  # "chat" or "embed"
    backend: str  # "mock" or "real"
    url: str
    model: str
    process: Process

    @property
    def is_mock(self):
        return self.backend == "mock"

    def requests(self):
        """What the mock engine received, oldest first."""
        assert self.is_mock, "only the mock engine records requests"
        status, body = http_get(self.url + "/mock/requests")
        assert status == 200, body
        return json.loads(body)

    def last_request(self, path=None):
        reqs = [r for r in self.requests() if path is None or r["path"] == path]
        assert reqs, f"the engine received no request{' to ' + path if path else ''}"
        return reqs[-1]

    def reset(self):
        if self.is_mock:
            http_post_json(self.url + "/mock/reset", {})


def start_mock_engine(kind, log_dir):
    port = free_port()
    proc = spawn(f"mock-{kind}-engine", [sys.executable, str(HERE / "mock_engine.py"), "--port", str(port),
                                         "--role", kind], log_dir)
    url = f"http://127.0.0.1:{port}"
    wait_http(proc, url + "/v1/models", timeout=20)
    return Engine(kind, "mock", url, "mock-chat" if kind == "chat" else "mock-embed", proc)


def start_real_engine(kind, log_dir):
    port = free_port()
    proc = spawn(f"real-{kind}-engine", ["bash", str(REPO / "scripts" / "engine.sh"), kind, str(port)], log_dir)
    url = f"http://127.0.0.1:{port}"
    wait_http(proc, url + "/v1/models", timeout=180)
    model = "smollm2-135m-instruct" if kind == "chat" else "smollm2-135m-embed"
    return Engine(kind, "real", url, model, proc)


def install_real_engine(log_dir):
    """Runs `scripts/engine.sh install`; returns None on success, else the reason it failed."""
    log_path = Path(log_dir) / "engine-install.log"
    with open(log_path, "wb") as log:
        rc = subprocess.call(["bash", str(REPO / "scripts" / "engine.sh"), "install"], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if rc != 0:
        return f"scripts/engine.sh install failed (exit {rc}): {log_path.read_text(errors='replace')[-500:]}"
    return None


def proxy_binary():
    explicit = os.environ.get("AOP_PROXY_BIN")
    if explicit:
        return Path(explicit)
    return REPO / "target" / "debug" / "azure-openai-proxy"


@dataclass
class Proxy:
    url: str
    key: str | None
    process: Process
    args: list = field(default_factory=list)

    def stop(self):
        self.process.stop()


def start_proxy(name, upstream_url, log_dir, key=None, extra_args=(), wait_ready=True):
    port = free_port()
    argv = [str(proxy_binary()), "--host", "127.0.0.1", "--port", str(port), "--upstream-url", upstream_url]
    if key:
        argv += ["--api-key", key]
    argv += list(extra_args)
    # Keep the proxy's own environment clean of AOP_* settings the caller may have exported.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOP_")}
    env.setdefault("RUST_LOG", "info")
    log_path = Path(log_dir) / f"{name}.log"
    log = open(log_path, "wb")
    popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
    log.close()
    proc = Process(name, popen, log_path)
    url = f"http://127.0.0.1:{port}"
    wait_http(proc, url + "/health", timeout=30)
    if wait_ready:
        wait_http(proc, url + "/ready", timeout=60)
    return Proxy(url, key, proc, argv)
