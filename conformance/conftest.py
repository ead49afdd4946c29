"""Fixtures: mock and real engines, and the proxy in front of each, started once per session.

Backends: `--backends mock,real` (conformance/run.sh sets it). A test that takes the `backend`
fixture (directly or through `chat` / `embed`) runs once per backend; one marked `mock_only` runs
on the mock only (it needs the mock's recorded requests or magic failures). With the mock backend
left out, tests that do not run against the real engine are deselected.
"""

import itertools
import os
from dataclasses import dataclass

import pytest

import harness
from harness import KEY


def pytest_addoption(parser):
    parser.addoption("--backends", default=os.environ.get("AOP_BACKENDS", "mock,real"),
                     help="comma-separated engine backends to run against: mock, real")


def pytest_configure(config):
    config.addinivalue_line("markers", "mock_only: needs the mock engine (recorded requests, magic failures)")
    config.addinivalue_line("markers", "azure_openai: the Azure OpenAI surface (openai SDK)")


def _backends(config):
    chosen = [b.strip() for b in config.getoption("backends").split(",") if b.strip()]
    unknown = set(chosen) - {"mock", "real"}
    if unknown:
        raise pytest.UsageError(f"unknown backends: {sorted(unknown)}")
    return chosen


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        backends = _backends(metafunc.config)
        if metafunc.definition.get_closest_marker("mock_only"):
            backends = [b for b in backends if b == "mock"]
        metafunc.parametrize("backend", backends, scope="session")


def pytest_collection_modifyitems(config, items):
    backends = _backends(config)
    if "mock" in backends:
        return
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        (keep if params and params.params.get("backend") in backends else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# ---- processes ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def log_dir(tmp_path_factory, pytestconfig):
    """Where the engines' and proxies' output goes (named in the summary when a test fails)."""
    path = tmp_path_factory.mktemp("logs")
    pytestconfig.stash[_LOG_DIR] = path
    yield path


_LOG_DIR = pytest.StashKey()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = config.stash.get(_LOG_DIR, None)
    if path is not None and exitstatus not in (0, 5):
        terminalreporter.write_line(f"engine and proxy logs: {path}")


@pytest.fixture(scope="session")
def proxy_binary():
    path = harness.proxy_binary()
    if not path.is_file():
        pytest.fail(f"no proxy binary at {path}: run `cargo build` (conformance/run.sh does)")
    return path


@pytest.fixture(scope="session")
def mock_chat_engine(log_dir):
    engine = harness.start_mock_engine("chat", log_dir)
    yield engine
    engine.process.stop()


@pytest.fixture(scope="session")
def mock_embed_engine(log_dir):
    engine = harness.start_mock_engine("embed", log_dir)
    yield engine
    engine.process.stop()


@pytest.fixture(scope="session")
def real_engine_installed(log_dir):
    reason = os.environ.get("AOP_REAL_SKIP")
    if reason:
        pytest.skip(reason)
    reason = harness.install_real_engine(log_dir)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def real_chat_engine(real_engine_installed, log_dir):
    engine = harness.start_real_engine("chat", log_dir)
    yield engine
    engine.process.stop()


@pytest.fixture(scope="session")
def real_embed_engine(real_engine_installed, log_dir):
    engine = harness.start_real_engine("embed", log_dir)
    yield engine
    engine.process.stop()


@dataclass
class Stack:
    """One engine and the proxy in front of it (with the API key KEY)."""
    backend: str
    engine: harness.Engine
    proxy: harness.Proxy

    @property
    def url(self):
        return self.proxy.url

    @property
    def key(self):
        return self.proxy.key

    @property
    def is_mock(self):
        return self.engine.is_mock


def _stack(request, backend, kind, log_dir):
    engine = request.getfixturevalue(f"{backend}_{kind}_engine")
    proxy = harness.start_proxy(f"proxy-{backend}-{kind}", engine.url, log_dir, key=KEY)
    return Stack(backend, engine, proxy)


@pytest.fixture(scope="session")
def _stacks(request, proxy_binary, log_dir):
    started = {}

    def get(backend, kind):
        if (backend, kind) not in started:
            started[(backend, kind)] = _stack(request, backend, kind, log_dir)
        return started[(backend, kind)]

    yield get
    for stack in started.values():
        stack.proxy.stop()


@pytest.fixture
def chat(_stacks, backend):
    """The chat engine of this backend behind a proxy with key KEY (mock: requests forgotten)."""
    stack = _stacks(backend, "chat")
    stack.engine.reset()
    return stack


@pytest.fixture
def embed(_stacks, backend):
    """The embeddings engine of this backend behind a proxy with key KEY."""
    stack = _stacks(backend, "embed")
    stack.engine.reset()
    return stack


@pytest.fixture
def mock_chat(_stacks):
    """The mock chat engine behind a proxy with key KEY, for tests that run on the mock only."""
    stack = _stacks("mock", "chat")
    stack.engine.reset()
    return stack


@pytest.fixture
def mock_embed(_stacks):
    stack = _stacks("mock", "embed")
    stack.engine.reset()
    return stack


_EXTRA = itertools.count(1)


@pytest.fixture
def proxy_factory(proxy_binary, log_dir):
    """Starts extra proxies (own flags) for one test; stopped after it."""
    started = []

    def start(upstream_url, key=KEY, extra_args=(), wait_ready=True):
        proxy = harness.start_proxy(f"proxy-extra-{next(_EXTRA)}", upstream_url,
                                    log_dir, key=key, extra_args=extra_args, wait_ready=wait_ready)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def dead_proxy(proxy_binary, log_dir):
    """A proxy whose engine address has nothing listening."""
    proxy = harness.start_proxy("proxy-dead-upstream", f"http://127.0.0.1:{harness.closed_port()}", log_dir,
                                key=KEY, wait_ready=False)
    yield proxy
    proxy.stop()
