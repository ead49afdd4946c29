"""The scripts in examples/ run as a user would run them, so they cannot rot."""

import os
import shutil
import subprocess
import sys

import pytest

from harness import REPO
from marks import AZURE_OPENAI

EXAMPLES = REPO / "examples"


def run_example(argv, stack, key=True):
    env = {**os.environ, "AZURE_AI_ENDPOINT": stack.url}
    if key:
        env["AZURE_AI_KEY"] = stack.key
    else:
        env.pop("AZURE_AI_KEY", None)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, f"{argv} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def py(name, *args):
    return [sys.executable, str(EXAMPLES / name), *args]


def test_chat_example(chat):
    out = run_example(py("chat.py", "Say hello"), chat)
    assert out.strip()
    if chat.is_mock:
        assert out.strip() == "echo: Say hello"


def test_stream_example(chat):
    out = run_example(py("stream.py", "Count to three"), chat)
    assert out.strip()
    if chat.is_mock:
        assert out.strip() == "echo: Count to three"


def test_tools_example(chat):
    out = run_example(py("tools.py"), chat)
    assert "tool call: get_weather(" in out
    assert "answer: " in out
    if chat.is_mock:
        assert "answer: tool said: sunny and 21 degrees in" in out


def test_embeddings_example(embed):
    out = run_example(py("embeddings.py"), embed)
    assert f"vectors of {8 if embed.is_mock else 576} dimensions" in out
    assert "cosine similarity: " in out


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_example(mock_chat):
    out = run_example(["bash", str(EXAMPLES / "curl.sh")], mock_chat)
    assert '"model_name":"mock-chat"' in out.replace(" ", "")
    assert "echo: Say hello in five words." in out
    assert "data: [DONE]" in out
    assert "UnsupportedApiVersion" in out


def test_chat_example_without_key_against_an_open_proxy(mock_chat, proxy_factory):
    proxy = proxy_factory(mock_chat.engine.url, key=None)

    class Open:
        url, key = proxy.url, None

    assert run_example(py("chat.py", "hi"), Open, key=False).strip() == "echo: hi"


@AZURE_OPENAI
def test_azure_openai_example(mock_chat):
    out = run_example(py("azure_openai.py"), mock_chat)
    assert "echo: Say hello in five words." in out
