#!/usr/bin/env python3
"""Behaviour tests of the container entrypoints (tgi-, vllm-, sglang-, tei-entrypoint.sh), run by
tests/entrypoints/run.sh: each entrypoint runs the real proxy (target/debug, or AOP_PROXY_BIN) in
front of fake_engine.py, which stands in for the engine under the engine command's own name.

    python3 tests/entrypoints/test_entrypoints.py [-k SUBSTRING] [-j JOBS] [-v]

Stdlib only. Ports are free ones picked at run time. Ends with "N passed, N failed".
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FAKE = os.path.join(HERE, "fake_engine.py")
IS_ROOT = os.geteuid() == 0

# What each entrypoint runs by default, and how the engine is told where to listen.
ENGINES = {
    "tgi": {"display": "TGI", "cmd": "text-generation-launcher", "pre": [], "host": "--hostname",
            "kind": "chat", "short_port": True},
    "vllm": {"display": "vLLM", "cmd": "vllm", "pre": ["serve"], "host": "--host",
             "kind": "chat", "short_port": False},
    "sglang": {"display": "SGLang", "cmd": "python3", "pre": ["-m", "sglang.launch_server"],
               "host": "--host", "kind": "chat", "short_port": False},
    "tei": {"display": "TEI", "cmd": "text-embeddings-router", "pre": [], "host": "--hostname",
            "kind": "tei", "short_port": True},
}

CHAT = ("/chat/completions?api-version=2024-05-01-preview",
        {"messages": [{"role": "user", "content": "hello"}]})
EMBED = ("/embeddings?api-version=2024-05-01-preview", {"input": ["hello"]})


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


_PORTS_LOCK = threading.Lock()
_PORTS_GIVEN = set()


def _port_range():
    """Below the kernel's ephemeral range, so no outgoing connection holds the port meanwhile."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="utf-8") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return (10000, ephemeral_low - 1) if ephemeral_low > 12000 else (ephemeral_low // 2, ephemeral_low - 1)


def free_port():
    """A port nothing listens on, never handed out twice in one run (tests run in parallel)."""
    low, high = _port_range()
    with _PORTS_LOCK:
        for _ in range(2000):
            port = random.randint(low, high)
            if port in _PORTS_GIVEN:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("0.0.0.0", port))
                except OSError:
                    continue
            _PORTS_GIVEN.add(port)
            return port
    raise Failure("no free port found")


def http(method, port, path, body=None, headers=None, timeout=5):
    """(status, parsed JSON or text); status 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Run:
    """One entrypoint process with its fake engine, in its own process group."""

    def __init__(self, tmp, engine, args=(), env=None, fake=None, name="run"):
        self.engine = engine
        self.spec = ENGINES[engine]
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
        self.record_path = os.path.join(self.dir, "record.jsonl")
        self.log_path = os.path.join(self.dir, "entrypoint.log")
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        wrapper = os.path.join(bindir, self.spec["cmd"])
        with open(wrapper, "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        os.chmod(wrapper, 0o755)
        self.proxy_port = free_port()
        self.engine_port = free_port()
        proxy_bin = os.environ.get("AOP_PROXY_BIN") or os.path.join(
            REPO, "target", "debug", "azure-openai-proxy")
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("AOP_", "FAKE_", "ENGINE_"))
                   and k not in ("PORT", "API_KEY", "MODEL_ID", "VIRTUAL_ENV", "PROXY_USER",
                                 "PROXY_BIN", "VLLM_API_KEY", "NO_COLOR")}
        environ.update({
            "PATH": os.pathsep.join([bindir, os.path.dirname(proxy_bin), "/usr/local/sbin",
                                     "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
            "PORT": str(self.proxy_port),
            "ENGINE_PORT": str(self.engine_port),
            "FAKE_KIND": self.spec["kind"],
            "FAKE_RECORD": self.record_path,
            "AOP_SHUTDOWN_TIMEOUT": "5",
            "RUST_LOG": "info",
        })
        if proxy_bin != os.path.join(os.path.dirname(proxy_bin), "azure-openai-proxy"):
            environ["PROXY_BIN"] = proxy_bin
        environ.update(fake or {})
        for k, v in (env or {}).items():
            if v is None:
                environ.pop(k, None)
            else:
                environ[k] = str(v)
        self.env = environ
        self.args = list(args)
        self.proc = None
        self.started = None

    def start(self):
        script = os.path.join(REPO, f"{self.engine}-entrypoint.sh")
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in cleanup)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([script, *self.args], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"the entrypoint still runs after {timeout} s\n{self.log()}") from None

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def events(self):
        try:
            with open(self.record_path, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def event(self, name):
        return next((e for e in self.events() if e["event"] == name), None)

    def pids(self):
        """(engine pid, proxy pid) from the entrypoint's log line."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(r"engine pid (\d+), proxy pid (\d+)", self.log())
            if m:
                return int(m.group(1)), int(m.group(2))
            time.sleep(0.05)
        raise Failure(f"no pid line in the log\n{self.log()}")

    def wait_for(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise Failure(f"the entrypoint exited ({self.proc.returncode}) while waiting for "
                              f"{what}\n{self.log()}")
            time.sleep(0.05)
        raise Failure(f"timed out waiting for {what}\n{self.log()}")

    def get(self, path, **kw):
        return http("GET", self.proxy_port, path, **kw)

    def post(self, path, body, **kw):
        return http("POST", self.proxy_port, path, body, **kw)

    def signal(self, signum):
        self.proc.send_signal(signum)

    def cleanup(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.log_file.close()


# ---------------------------------------------------------------------------------------------
# Tests. Each takes the temporary directory and a list to register its Runs in (for clean-up).

def expected_argv(engine, user_args, engine_port):
    spec = ENGINES[engine]
    return [*spec["pre"], *user_args, "--port", str(engine_port), spec["host"], "127.0.0.1"]


def lifecycle(engine, load_mode):
    """Start-up, readiness while loading, a proxied request, SIGTERM to both, clean exit."""

    def test(tmp, runs):
        user_args = ["--model-arg", "two words", "--empty", ""]
        run = Run(tmp, engine, user_args, fake={"FAKE_LOAD_SECONDS": "3",
                                                "FAKE_LOAD_MODE": load_mode}, name=engine)
        runs.append(run)
        run.start()
        run.wait_for("/health", lambda: run.get("/health")[0] == 200, 10)
        status, body = run.get("/ready")
        check(status == 503, f"/ready while the engine loads: {status} {body}")
        run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 15)
        path, payload = EMBED if ENGINES[engine]["kind"] == "tei" else CHAT
        status, body = run.post(path, payload)
        check(status == 200, f"POST {path}: {status} {body}")
        if ENGINES[engine]["kind"] == "tei":
            check(body["data"][0]["embedding"] == [0.5, -0.25, 0.125], f"embeddings: {body}")
        else:
            check(body["choices"][0]["message"]["content"] == "fake answer", f"chat: {body}")
        start = run.event("start")
        check(start["argv"] == expected_argv(engine, user_args, run.engine_port),
              f"engine argv: {start['argv']}")
        log = run.log()
        check("--allow-unauthenticated" in log, f"no word of --allow-unauthenticated\n{log}")
        engine_pid, proxy_pid = run.pids()
        check(start["pid"] == engine_pid, "the engine's pid is not the one logged")
        if IS_ROOT:
            with open(f"/proc/{proxy_pid}/status", encoding="utf-8") as f:
                uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
            check(uid == "65534", f"the proxy runs as uid {uid}, not nobody")
        t0 = time.monotonic()
        run.signal(signal.SIGTERM)
        code = run.wait(20)
        check(code == 0, f"exit code after SIGTERM: {code}\n{run.log()}")
        check(time.monotonic() - t0 < 10, "stopping took too long")
        check(not pid_alive(engine_pid) and not pid_alive(proxy_pid), "a child outlived the stop")
        signals = [e["signal"] for e in run.events() if e["event"] == "signal"]
        check(signals == ["SIGTERM"], f"signals the engine got: {signals}")
        log = run.log()
        check("shutting down" in log, f"the proxy did not log its shutdown\n{log}")
        proxy_done = log.find("the proxy exited with code 0")
        engine_done = log.find(f"{ENGINES[engine]['display']} exited with code 0")
        check(0 <= proxy_done < engine_done, f"the engine was not stopped after the proxy\n{log}")
        check(run.event("exit") is not None, "the engine did not record its exit")

    return test


def engine_dies(engine):
    """The engine exits on its own with code 3: the proxy is stopped, the entrypoint exits 3."""

    def test(tmp, runs):
        run = Run(tmp, engine, fake={"FAKE_EXIT_AFTER": "1.5", "FAKE_EXIT_CODE": "3"},
                  name=engine)
        runs.append(run)
        run.start()
        _, proxy_pid = run.pids()
        run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
        code = run.wait(15)
        check(code == 3, f"exit code: {code}\n{run.log()}")
        check(not pid_alive(proxy_pid), "the proxy outlived the engine")
        check("exited on its own with code 3" in run.log(), run.log())

    return test


def port_conflicts(engine):
    """Engine port == proxy port, from ENGINE_PORT or from the engine's own --port: refused."""

    def test(tmp, runs):
        cases = []
        run = Run(tmp, engine, name=engine)
        run.env["ENGINE_PORT"] = run.env["PORT"]
        cases.append((run, "cannot both listen on port"))
        for args in (["--port", "{p}"], ["--port={p}"]) + ((["-p", "{p}"],)
                                                          if ENGINES[engine]["short_port"] else ()):
            run = Run(tmp, engine, env={"ENGINE_PORT": None}, name=engine)
            run.args = [a.format(p=run.proxy_port) for a in args]
            cases.append((run, "the proxy's public port"))
        run = Run(tmp, engine, name=engine)  # ENGINE_PORT set, and a different --port
        run.args = ["--port", str(free_port())]
        cases.append((run, "conflicting engine ports"))
        run = Run(tmp, engine, env={"ENGINE_PORT": "80x"}, name=engine)
        cases.append((run, "ENGINE_PORT must be a number"))
        for run, message in cases:
            runs.append(run)
            run.start()
            code = run.wait(10)
            check(code == 2, f"{run.args} {run.env.get('ENGINE_PORT')}: exit code {code}\n"
                             f"{run.log()}")
            check(message in run.log(), f"expected {message!r} in\n{run.log()}")
            check(run.event("start") is None, "the engine was started anyway")

    return test


def api_key_from_env(tmp, runs):
    """API_KEY protects the proxy; the engine does not see it."""
    run = Run(tmp, "tgi", env={"API_KEY": "s3cret"}, name="apikey")
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    status, _ = run.post(*CHAT)
    check(status == 401, f"without a key: {status}")
    status, body = run.post(*CHAT, headers={"api-key": "s3cret"})
    check(status == 200, f"with the key: {status} {body}")
    check("--allow-unauthenticated" not in run.log(), run.log())
    env = run.event("start")["env"]
    check(env["API_KEY"] is None and env["AOP_API_KEYS"] is None, f"the engine saw keys: {env}")
    run.signal(signal.SIGTERM)
    check(run.wait(15) == 0, run.log())


def unauthenticated_refused(tmp, runs):
    """AOP_ALLOW_UNAUTHENTICATED=false without a key: the proxy refuses to start, and the
    entrypoint stops the engine and exits with the proxy's code."""
    run = Run(tmp, "vllm", env={"AOP_ALLOW_UNAUTHENTICATED": "false"}, name="noauth")
    runs.append(run)
    run.start()
    engine_pid, _ = run.pids()
    check(run.wait(10) == 2, run.log())
    check("the proxy exited on its own with code 2" in run.log(), run.log())
    check(not pid_alive(engine_pid), "the engine outlived the proxy")


def engine_key_passed_to_proxy(tmp, runs):
    """--api-key in the engine's arguments: the proxy sends it to the engine."""
    run = Run(tmp, "sglang", ["--api-key", "engine-key"], env={"AOP_API_KEYS": "client-key"},
              name="enginekey")
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    status, body = run.post(*CHAT, headers={"api-key": "client-key"})
    check(status == 200, f"chat: {status} {body}")
    check("engine-key" not in run.log(), "the engine's key was logged")


def user_port_is_used(tmp, runs):
    """The engine's own --port (without ENGINE_PORT) becomes the proxy's upstream."""
    run = Run(tmp, "vllm", env={"ENGINE_PORT": None}, name="userport")
    port = free_port()
    run.args = ["--port", str(port)]
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    check(run.event("listening")["port"] == port, "the engine did not get its own --port")
    check(run.event("start")["argv"] == ["serve", "--port", str(port), "--host", "127.0.0.1"],
          f"argv: {run.event('start')['argv']}")


def proxy_dies(tmp, runs):
    """The proxy is killed: the engine gets SIGTERM, the entrypoint exits 137."""
    run = Run(tmp, "vllm", name="proxydies")
    runs.append(run)
    run.start()
    engine_pid, proxy_pid = run.pids()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    os.kill(proxy_pid, signal.SIGKILL)
    code = run.wait(15)
    check(code == 137, f"exit code {code}\n{run.log()}")
    check(not pid_alive(engine_pid), "the engine outlived the proxy")
    check([e["signal"] for e in run.events() if e["event"] == "signal"] == ["SIGTERM"],
          "the engine got no SIGTERM")


def sigint_stops_both(tmp, runs):
    """SIGINT (Ctrl-C) stops both too, forwarded as SIGTERM."""
    run = Run(tmp, "sglang", name="sigint")
    runs.append(run)
    run.start()
    engine_pid, proxy_pid = run.pids()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    run.signal(signal.SIGINT)
    check(run.wait(15) == 0, run.log())
    check(not pid_alive(engine_pid) and not pid_alive(proxy_pid), "a child outlived the stop")


def stubborn_engine_killed(tmp, runs):
    """An engine that ignores SIGTERM is killed after ENGINE_STOP_TIMEOUT."""
    run = Run(tmp, "tei", env={"ENGINE_STOP_TIMEOUT": "1"}, fake={"FAKE_IGNORE_TERM": "1"},
              name="stubborn")
    runs.append(run)
    run.start()
    engine_pid, _ = run.pids()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    t0 = time.monotonic()
    run.signal(signal.SIGTERM)
    code = run.wait(15)
    check(code == 137, f"exit code {code}\n{run.log()}")
    check(time.monotonic() - t0 < 5, "the SIGKILL came late")
    check("SIGKILL" in run.log() and not pid_alive(engine_pid), run.log())


def slow_chat(run, seconds):
    """A chat request taking `seconds` at the engine, in a thread; returns (thread, result list)."""
    result = []
    body = {"messages": [{"role": "user", "content": f"sleep {seconds}"}]}
    thread = threading.Thread(target=lambda: result.append(
        run.post(CHAT[0], body, timeout=seconds + 20)), daemon=True)
    thread.start()
    return thread, result


def in_flight_request_completes(tmp, runs):
    """SIGTERM during a request: the proxy drains it while the engine still runs, then both stop."""
    run = Run(tmp, "vllm", name="inflight")
    runs.append(run)
    run.start()
    engine_pid, proxy_pid = run.pids()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    thread, result = slow_chat(run, 2)
    time.sleep(0.5)
    run.signal(signal.SIGTERM)
    time.sleep(0.5)
    check(run.event("signal") is None, "the engine was stopped before the proxy had drained")
    thread.join(15)
    check(result and result[0][0] == 200, f"the request in flight: {result}\n{run.log()}")
    check(run.wait(15) == 0, run.log())
    check(not pid_alive(engine_pid) and not pid_alive(proxy_pid), "a child outlived the stop")


def second_signal_stops_now(tmp, runs):
    """A second SIGTERM stops the engine at once, while the proxy still drains."""
    run = Run(tmp, "sglang", env={"AOP_SHUTDOWN_TIMEOUT": "30"}, name="twice")
    runs.append(run)
    run.start()
    engine_pid, proxy_pid = run.pids()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    thread, _ = slow_chat(run, 20)
    time.sleep(0.5)
    run.signal(signal.SIGTERM)
    time.sleep(1)
    check(run.event("signal") is None, "the engine was stopped before the proxy had drained")
    t0 = time.monotonic()
    run.signal(signal.SIGTERM)
    run.wait(15)
    check(time.monotonic() - t0 < 8, f"the second signal did not stop things quickly\n{run.log()}")
    check("again" in run.log(), run.log())
    check(not pid_alive(engine_pid) and not pid_alive(proxy_pid), "a child outlived the stop")
    thread.join(5)


def poll_fallback(tmp, runs):
    """The polling path (shells without wait -p): engine death and SIGTERM both handled."""
    run = Run(tmp, "tgi", env={"_AOP_ENTRYPOINT_POLL": "1"},
              fake={"FAKE_EXIT_AFTER": "1", "FAKE_EXIT_CODE": "5"}, name="poll")
    runs.append(run)
    run.start()
    check(run.wait(10) == 5, run.log())
    run = Run(tmp, "tgi", env={"_AOP_ENTRYPOINT_POLL": "1"}, name="poll")
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    run.signal(signal.SIGTERM)
    check(run.wait(10) == 0, run.log())


def engine_exits_at_once(tmp, runs):
    """An engine that fails at once (bad arguments, say): its code, promptly."""
    run = Run(tmp, "sglang", fake={"FAKE_EXIT_AFTER": "0", "FAKE_EXIT_CODE": "1"}, name="atonce")
    runs.append(run)
    run.start()
    check(run.wait(10) == 1, run.log())


def missing_engine(tmp, runs):
    """An engine command that does not exist: 127 and a clear message, nothing started."""
    run = Run(tmp, "vllm", env={"ENGINE_CMD": "/nonexistent/vllm serve"}, name="missing")
    runs.append(run)
    run.start()
    check(run.wait(10) == 127, run.log())
    check("engine command '/nonexistent/vllm' was not found" in run.log(), run.log())


def model_id(tmp, runs):
    """MODEL_ID names the model for vLLM and SGLang when the arguments do not."""
    cases = [
        ("vllm", [], ["serve", "--port", "{p}", "--host", "127.0.0.1", "--model", "org/m"]),
        ("vllm", ["other/m"], ["serve", "other/m", "--port", "{p}", "--host", "127.0.0.1"]),
        ("sglang", [], ["-m", "sglang.launch_server", "--port", "{p}", "--host", "127.0.0.1",
                        "--model-path", "org/m"]),
        ("sglang", ["--model-path=x"], ["-m", "sglang.launch_server", "--model-path=x", "--port",
                                        "{p}", "--host", "127.0.0.1"]),
    ]
    for engine, args, want in cases:
        run = Run(tmp, engine, args, env={"MODEL_ID": "org/m"},
                  fake={"FAKE_EXIT_AFTER": "0", "FAKE_EXIT_CODE": "0"}, name="model")
        runs.append(run)
        run.start()
        check(run.wait(10) == 0, run.log())
        want = [w.format(p=run.engine_port) for w in want]
        check(run.event("start")["argv"] == want, f"{engine} {args}: {run.event('start')['argv']}")


def engine_args_env(tmp, runs):
    """ENGINE_ARGS adds arguments after the command line's; ENGINE_HOST moves the engine."""
    run = Run(tmp, "tei", ["--model-id", "m"],
              env={"ENGINE_ARGS": "--pooling  cls\n--dtype float16", "ENGINE_HOST": "127.0.0.2"},
              name="engineargs")
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    want = ["--model-id", "m", "--pooling", "cls", "--dtype", "float16", "--port",
            str(run.engine_port), "--hostname", "127.0.0.2"]
    check(run.event("start")["argv"] == want, f"argv: {run.event('start')['argv']}")


def metrics_port_clash(tmp, runs):
    """TGI and TEI also listen on 9000 (metrics): a proxy on 9000 is refused."""
    for engine in ("tgi", "tei"):
        run = Run(tmp, engine, env={"PORT": "9000"}, name="metrics")
        runs.append(run)
        run.start()
        check(run.wait(10) == 2 and "metrics port" in run.log(), run.log())


def key_file_unreadable(tmp, runs):
    """As root, a key file the proxy's user cannot read is refused up front."""
    if not IS_ROOT:
        return "skipped: needs root"
    path = os.path.join(tmp, "keys.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("k1\n")
    os.chmod(path, 0o600)
    run = Run(tmp, "vllm", env={"AOP_API_KEY_FILE": path}, name="keyfile")
    runs.append(run)
    run.start()
    check(run.wait(10) == 2 and f"cannot read {path}" in run.log(), run.log())
    run = Run(tmp, "vllm", env={"AOP_API_KEY_FILE": path, "PROXY_USER": "root"}, name="keyfile")
    runs.append(run)
    run.start()
    run.wait_for("/ready 200", lambda: run.get("/ready")[0] == 200, 10)
    status, _ = run.post(*CHAT, headers={"api-key": "k1"})
    check(status == 200, f"with the file's key: {status}")
    return None


def common_part_identical(tmp, runs):
    """The four scripts share their common part verbatim."""
    marker = "# ---- common part:"
    parts = {}
    for engine in ENGINES:
        with open(os.path.join(REPO, f"{engine}-entrypoint.sh"), encoding="utf-8") as f:
            text = f.read()
        check(marker in text, f"{engine}-entrypoint.sh has no common part")
        parts[engine] = text[text.index(marker):]
    check(len(set(parts.values())) == 1,
          "the common parts differ: " + ", ".join(f"{e}: {len(p)} chars" for e, p in parts.items()))


def shellcheck(tmp, runs):
    """shellcheck finds nothing, down to style, in the entrypoints and this folder's runner."""
    tool = os.environ.get("SHELLCHECK") or shutil.which("shellcheck")
    check(tool, "shellcheck is not installed (tests/entrypoints/run.sh installs it)")
    files = [f"{e}-entrypoint.sh" for e in ENGINES] + ["tests/entrypoints/run.sh"]
    r = subprocess.run([tool, "--severity=style", *files], cwd=REPO, capture_output=True,
                       text=True, check=False)
    check(r.returncode == 0, r.stdout + r.stderr)


def hadolint(tmp, runs):
    """hadolint finds nothing, down to style, in the Dockerfile."""
    cached = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                          "azure-openai-proxy", "lint-venv", "bin", "hadolint")
    tool = (os.environ.get("HADOLINT") or shutil.which("hadolint")
            or (cached if os.access(cached, os.X_OK) else None))
    check(tool, "hadolint is not installed (tests/entrypoints/run.sh installs it)")
    r = subprocess.run([tool, "--no-color", "--failure-threshold", "style", "Dockerfile"],
                       cwd=REPO, capture_output=True, text=True, check=False)
    check(r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr)


def dockerfile_consistency(tmp, runs):
    """What a build would need, checked without Docker: the targets, their entrypoints, and that
    every file COPY'd from the context exists and is let through by .dockerignore."""
    with open(os.path.join(REPO, "Dockerfile"), encoding="utf-8") as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    with open(os.path.join(REPO, ".dockerignore"), encoding="utf-8") as f:
        allowed = [ln[1:].rstrip("/") for ln in f.read().splitlines() if ln.startswith("!")]
    stages, current = {}, None
    for line in lines:
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            current = words[-1] if len(words) >= 4 and words[-2].upper() == "AS" else None
            stages[current] = {"copies": [], "entrypoint": None, "env": line}
        elif current and words[0] == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            from_stage = any(w.startswith("--from=") for w in words[1:])
            if not from_stage:
                for src in args[:-1]:
                    check(os.path.exists(os.path.join(REPO, src.rstrip("/"))),
                          f"COPY {src}: no such file")
                    check(any(src.rstrip("/") == a or src.startswith(a + "/") for a in allowed),
                          f"COPY {src}: .dockerignore keeps it out of the build context")
            stages[current]["copies"].append((from_stage, args))
        elif current and words[0] == "ENTRYPOINT":
            stages[current]["entrypoint"] = json.loads(line.split(None, 1)[1])
    scripts = {"tgi": "tgi", "vllm": "vllm", "sglang": "sglang", "tei-cpu": "tei", "tei-gpu": "tei"}
    for target, engine in scripts.items():
        check(target in stages, f"no target {target}")
        stage = stages[target]
        entry = "/usr/local/bin/azure-openai-proxy-entrypoint"
        check(stage["entrypoint"] == [entry], f"{target}: ENTRYPOINT {stage['entrypoint']}")
        check((False, [f"{engine}-entrypoint.sh", entry]) in stage["copies"],
              f"{target}: does not copy {engine}-entrypoint.sh to {entry}")
        check((True, ["/out/azure-openai-proxy", "/usr/local/bin/azure-openai-proxy"])
              in stage["copies"], f"{target}: does not copy the proxy binary")
    for name, value in re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", "\n".join(lines), re.M):
        tag = value.rsplit(":", 1)[-1] if ":" in value.rsplit("/", 1)[-1] else ""
        check(tag and tag != "latest" and re.search(r"\d", tag), f"{name}={value} is not pinned")


TESTS = {}
for _engine, _mode in (("tgi", "late"), ("vllm", "late"), ("sglang", "503"), ("tei", "503")):
    TESTS[f"lifecycle[{_engine}]"] = lifecycle(_engine, _mode)
    TESTS[f"engine_dies[{_engine}]"] = engine_dies(_engine)
    TESTS[f"port_conflicts[{_engine}]"] = port_conflicts(_engine)
for _f in (api_key_from_env, unauthenticated_refused, engine_key_passed_to_proxy, user_port_is_used, proxy_dies,
           sigint_stops_both, stubborn_engine_killed, in_flight_request_completes,
           second_signal_stops_now, poll_fallback,
           engine_exits_at_once, missing_engine, model_id, engine_args_env, metrics_port_clash,
           key_file_unreadable, common_part_identical, shellcheck, hadolint,
           dockerfile_consistency):
    TESTS[_f.__name__] = _f


def run_one(name, tmp):
    runs = []
    t0 = time.monotonic()
    try:
        outcome = TESTS[name](tmp, runs)
        status, detail = ("skipped", outcome) if isinstance(outcome, str) else ("passed", "")
    except Exception as e:  # noqa: BLE001 (a failed test, whatever it raised)
        status = "failed"
        detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
    finally:
        for run in runs:
            run.cleanup()
    return name, status, detail, time.monotonic() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="run the tests whose name contains this")
    parser.add_argument("-j", type=int, default=8, help="tests at once (default 8)")
    parser.add_argument("-v", action="store_true", help="print each test's time")
    opts = parser.parse_args()
    names = [n for n in TESTS if opts.k in n]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    with tempfile.TemporaryDirectory(prefix="aop-entrypoints-") as tmp:
        os.chmod(tmp, 0o755)  # the proxy may run as nobody
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.j)) as pool:
            futures = [pool.submit(run_one, n, tmp) for n in names]
            for future in concurrent.futures.as_completed(futures):
                name, status, detail, seconds = future.result()
                counts[status] += 1
                timing = f" ({seconds:.1f} s)" if opts.v else ""
                print(f"{status.upper():7} {name}{timing}" + (f": {detail}" if status == "skipped"
                                                                else ""), flush=True)
                if status == "failed":
                    print("        " + detail.replace("\n", "\n        "), flush=True)
    line = f"{counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        line += f", {counts['skipped']} skipped"
    print(line)
    return 1 if counts["failed"] or not names else 0


if __name__ == "__main__":
    sys.exit(main())
