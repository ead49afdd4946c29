"""Azure client frameworks work unchanged through the proxy (issue 10), against the mock and the
real engine: LangChain (langchain-azure-ai on the azure-ai-inference SDK and on the openai SDK's
/openai/v1, langchain-openai's AzureChatOpenAI), the litellm SDK (azure_ai/ and azure/), lm-deluge's
Azure provider, and LlamaIndex's azure-inference LLM and embeddings.

For each: chat, stream, a tool round trip, structured output, embeddings and a wrong key. The
adapters in frameworks/adapters.py drive each framework as its users write it; the tests assert
on what the framework returns. On the mock the answers are known (mock_engine.py: "echo: ...", a
call of the first tool with {"text": ...}, "tool said: ..." after a tool result, {"echo": ...} for
a JSON schema, vectors from the SHA-256 of the text); on the real engine (SmolLM2-135M) the tool
round trip starts from a history that already holds the call and its result, since the tiny model
may not call the tool itself.

litellm runs in its own venv (frameworks/litellm_venv.py: every litellm this registry can install
needs openai<3, the conformance venv has openai 3), made on first use in the cache.

Aspects a framework cannot do are skipped with the reason (the adapter's `skips`). Every stream
must arrive whole (expect_whole_stream).
"""

import math

import pytest

import harness
from frameworks import adapters, litellm_venv
from frameworks.adapters import EMBED_TEXTS, FRAMEWORKS, TOOL_PROMPT, TOOL_RESULT, Echo
from mock_engine import vector


def _ids(frameworks):
    return [f.id for f in frameworks]


EACH = pytest.mark.parametrize("fw", FRAMEWORKS, ids=_ids(FRAMEWORKS), indirect=True)
EACH_ASYNC = pytest.mark.parametrize("fw", [f for f in FRAMEWORKS if f.has_async],
                                     ids=_ids(f for f in FRAMEWORKS if f.has_async), indirect=True)


@pytest.fixture(scope="session")
def litellm_worker(log_dir):
    python, why = litellm_venv.ensure(harness.CACHE, log_dir / "litellm-venv.log")
    if why:
        pytest.skip(why)
    worker = adapters.LitellmWorker(python, log_dir)
    yield worker
    worker.stop()


@pytest.fixture
def fw(request):
    framework = request.param
    why = framework.unavailable()
    if why:
        pytest.skip(why)
    if framework.needs_litellm:
        framework.worker = request.getfixturevalue("litellm_worker")
    return framework


def aspect(fw, name):
    """Skips what the framework cannot do."""
    if name in fw.skips:
        pytest.skip(fw.skips[name])


def expect_whole_stream(fw, stack, streamed):
    """A stream arrives whole: text, and a finish_reason where the framework reports one.
    (llama-cpp-python's server cuts a running stream short when another request reaches it; the
    proxy's own requests to the engine — tokenize for the usage chunk, health checks, readiness —
    wait until it is idle, and scripts/engine.sh starts it with --interrupt_requests false.)"""
    assert streamed.text
    if fw.stream_reports_finish:
        assert streamed.finish_reason is not None


def dims(stack):
    return 8 if stack.is_mock else 576


@EACH
def test_chat(fw, chat):
    aspect(fw, "chat")
    reply = fw.chat(chat)
    assert reply.text
    if reply.model is not None:
        assert chat.engine.model in reply.model
    if chat.is_mock:
        assert reply.text == "echo: Say hello"
        assert reply.finish_reason in (None, "stop")
    else:
        assert reply.finish_reason in (None, "stop", "length")


@EACH_ASYNC
def test_async_chat(fw, chat):
    aspect(fw, "chat")
    reply = fw.achat(chat)
    assert reply.text
    if chat.is_mock:
        assert reply.text == "echo: Say hello"


@EACH
def test_stream(fw, chat):
    aspect(fw, "stream")
    streamed = fw.stream(chat)
    expect_whole_stream(fw, chat, streamed)
    assert streamed.text
    assert streamed.finish_reason in (None, "stop", "length")
    if streamed.total_tokens is not None:
        assert streamed.total_tokens > 0
    if chat.is_mock:
        assert streamed.text == "echo: Count to three"
        assert len(streamed.pieces) >= 4, "the answer came word by word"


@EACH
def test_tool_round_trip(fw, chat):
    aspect(fw, "tools")
    if chat.is_mock:
        asked = fw.ask_for_tool(chat)
        assert [(c.name, c.args) for c in asked.calls] == [("lookup_weather", {"text": TOOL_PROMPT})]
        assert asked.calls[0].id == "call_mock_1"
        reply = fw.answer_tool(chat, asked)
        assert reply.text == f"tool said: {TOOL_RESULT}"
    else:
        # The history holds the assistant's tool call (no text) and the tool's result.
        reply = fw.answer_tool(chat, None)
        assert reply.text
        assert reply.finish_reason in (None, "stop", "length")


@EACH
def test_structured_output(fw, chat):
    """A JSON schema (on llama-cpp-python the proxy turns it into json_object with the schema, which
    the engine enforces with a grammar)."""
    aspect(fw, "structured")
    echo = fw.structured(chat)
    assert isinstance(echo, Echo)
    if chat.is_mock:
        assert echo.echo == "Say hi"


@EACH
def test_embeddings(fw, embed):
    aspect(fw, "embeddings")
    docs, query = fw.embed(embed)
    assert len(docs) == len(EMBED_TEXTS)
    for v in docs:
        assert len(v) == dims(embed)
        assert all(isinstance(x, float) and math.isfinite(x) for x in v)
    assert docs[0] != docs[1]
    if query is not None:
        assert query == pytest.approx(docs[0], abs=1e-4)
    if embed.is_mock:
        for text, v in zip(EMBED_TEXTS, docs):
            assert v == pytest.approx(vector(text, 8), abs=1e-6)


@EACH
def test_wrong_key(fw, chat):
    aspect(fw, "auth")
    failure = fw.wrong_key(chat)
    assert failure.status_code == 401, failure.error


@EACH
def test_wrong_key_embeddings(fw, embed):
    aspect(fw, "auth")
    aspect(fw, "embeddings")
    failure = fw.wrong_key_embeddings(embed)
    assert failure.status_code == 401, failure.error
