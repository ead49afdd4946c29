"""The Azure OpenAI surface through the openai SDK: /openai/deployments/{d}/... with api-version,
and the v1 API at /openai/v1/ (README "Azure OpenAI routes"). Without a config file every model
an engine lists is a deployment of that name.

"""

import asyncio
import base64
import json
import struct

import openai
import pytest
from openai import AsyncAzureOpenAI, AzureOpenAI, OpenAI

from harness import KEY, WRONG_KEY
from marks import AZURE_OPENAI

pytestmark = pytest.mark.azure_openai

API_VERSION = "2024-10-21"
SMALL = {"max_tokens": 8, "temperature": 0.0}
HI = [{"role": "user", "content": "Say hi"}]


def azure(stack_url, key=KEY, api_version=API_VERSION):
    return AzureOpenAI(azure_endpoint=stack_url, api_key=key, api_version=api_version, max_retries=0, timeout=60)


def v1(stack_url, key=KEY):
    return OpenAI(base_url=f"{stack_url}/openai/v1/", api_key=key, max_retries=0, timeout=60)


@AZURE_OPENAI
def test_azure_openai_chat(chat):
    result = azure(chat.url).chat.completions.create(model=chat.engine.model, messages=HI, **SMALL)
    assert result.choices[0].message.content
    assert result.choices[0].finish_reason in ("stop", "length")
    assert result.usage.completion_tokens <= 8
    if chat.is_mock:
        assert result.choices[0].message.content == "echo: Say hi"
        request = chat.engine.last_request()
        assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "mock-chat"


@AZURE_OPENAI
def test_azure_openai_chat_stream(chat):
    stream = azure(chat.url).chat.completions.create(model=chat.engine.model, messages=HI, stream=True, **SMALL)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    if chat.is_mock:
        assert text == "echo: Say hi"


@AZURE_OPENAI
def test_azure_openai_unknown_fields_go_to_the_engine(mock_chat):
    """No extra-parameters header on this surface: stream_options reaches the engine."""
    stream = azure(mock_chat.url).chat.completions.create(
        model="mock-chat", messages=HI, stream=True, stream_options={"include_usage": True}, max_completion_tokens=4)
    chunks = list(stream)
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == 3
    sent = mock_chat.engine.last_request()["body"]
    assert sent["stream_options"] == {"include_usage": True} and sent["max_completion_tokens"] == 4


@AZURE_OPENAI
def test_azure_openai_tools(mock_chat):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    client = azure(mock_chat.url)
    first = client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "Oslo"}],
                                           tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"text": "Oslo"}
    history = [{"role": "user", "content": "Oslo"}, first.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "cold"}]
    final = client.chat.completions.create(model="mock-chat", messages=history, tools=tools)
    assert final.choices[0].message.content == "tool said: cold"


@AZURE_OPENAI
def test_azure_openai_embeddings(embed):
    """The openai SDK asks for base64 by default and decodes it; floats on request."""
    client = azure(embed.url)
    default = client.embeddings.create(model=embed.engine.model, input=["hello", "world"])
    floats = client.embeddings.create(model=embed.engine.model, input=["hello", "world"], encoding_format="float")
    n = 8 if embed.is_mock else 576
    assert len(default.data) == 2 and len(default.data[0].embedding) == n
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-5)


@AZURE_OPENAI
def test_azure_openai_embeddings_base64_on_the_wire(embed):
    raw = azure(embed.url).embeddings.with_raw_response.create(model=embed.engine.model, input="x",
                                                               encoding_format="base64")
    item = json.loads(raw.text)["data"][0]["embedding"]
    n = 8 if embed.is_mock else 576
    assert len(struct.unpack(f"<{n}f", base64.b64decode(item))) == n


@AZURE_OPENAI
def test_azure_openai_async(chat):
    async def run():
        client = AsyncAzureOpenAI(azure_endpoint=chat.url, api_key=KEY, api_version=API_VERSION, max_retries=0)
        try:
            result = await client.chat.completions.create(model=chat.engine.model, messages=HI, **SMALL)
            stream = await client.chat.completions.create(model=chat.engine.model, messages=HI, stream=True,
                                                          **SMALL)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return result, text
        finally:
            await client.close()

    result, text = asyncio.run(run())
    assert result.choices[0].message.content and text


def test_azure_openai_wrong_key(mock_chat):
    with pytest.raises(openai.AuthenticationError) as caught:
        azure(mock_chat.url, key=WRONG_KEY).chat.completions.create(model="mock-chat", messages=HI)
    assert caught.value.status_code == 401


@AZURE_OPENAI
def test_azure_openai_unsupported_api_version(mock_chat):
    with pytest.raises(openai.BadRequestError) as caught:
        azure(mock_chat.url, api_version="2001-01-01").chat.completions.create(model="mock-chat", messages=HI)
    assert caught.value.status_code == 400
    assert "API version not supported" in caught.value.message


@AZURE_OPENAI
def test_azure_openai_missing_api_version_is_404(mock_chat):
    import requests
    r = requests.post(f"{mock_chat.url}/openai/deployments/mock-chat/chat/completions", json={"messages": HI},
                      headers={"api-key": KEY}, timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "404"


@AZURE_OPENAI
def test_azure_openai_unknown_deployment(mock_chat):
    with pytest.raises(openai.NotFoundError) as caught:
        azure(mock_chat.url).chat.completions.create(model="no-such-deployment", messages=HI)
    assert caught.value.status_code == 404
    assert caught.value.code == "DeploymentNotFound"


@AZURE_OPENAI
def test_azure_openai_wrong_operation_for_the_model(mock_chat):
    """Embeddings on a chat model: 400 OperationNotSupported."""
    with pytest.raises(openai.BadRequestError) as caught:
        azure(mock_chat.url).embeddings.create(model="mock-chat", input="x")
    assert caught.value.code == "OperationNotSupported"


@AZURE_OPENAI
def test_azure_openai_upstream_down(dead_proxy):
    client = AzureOpenAI(azure_endpoint=dead_proxy.url, api_key=KEY, api_version=API_VERSION, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="anything", messages=HI)
    assert caught.value.status_code in (502, 503)


@AZURE_OPENAI
def test_azure_openai_engine_error(mock_chat):
    with pytest.raises(openai.InternalServerError) as caught:
        azure(mock_chat.url).chat.completions.create(model="mock-chat",
                                                     messages=[{"role": "user", "content": "MOCK_ERROR_500"}])
    assert caught.value.status_code == 500 and "mock engine failure" in caught.value.message


@AZURE_OPENAI
def test_openai_v1_chat(chat):
    result = v1(chat.url).chat.completions.create(model=chat.engine.model, messages=HI, **SMALL)
    assert result.choices[0].message.content


@AZURE_OPENAI
def test_openai_v1_stream(chat):
    stream = v1(chat.url).chat.completions.create(model=chat.engine.model, messages=HI, stream=True, **SMALL)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@AZURE_OPENAI
def test_openai_v1_embeddings(embed):
    result = v1(embed.url).embeddings.create(model=embed.engine.model, input="hello")
    assert len(result.data[0].embedding) == (8 if embed.is_mock else 576)


@AZURE_OPENAI
def test_openai_v1_models(chat):
    ids = [m.id for m in v1(chat.url).models.list()]
    assert chat.engine.model in ids


def test_openai_v1_wrong_key(mock_chat):
    with pytest.raises(openai.AuthenticationError):
        v1(mock_chat.url, key=WRONG_KEY).chat.completions.create(model="m", messages=HI)
