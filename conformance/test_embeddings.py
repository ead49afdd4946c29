"""Embeddings through the azure-ai-inference SDK."""

import asyncio
import base64
import math
import struct

import pytest
from azure.ai.inference import EmbeddingsClient, load_client
from azure.ai.inference.models import EmbeddingEncodingFormat, EmbeddingInputType, ModelType
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError

from clients import async_embeddings_client, embeddings_client


def dims(stack):
    return 8 if stack.is_mock else 576


def round_half_away(x):
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def test_embed(embed):
    with embeddings_client(embed.url) as client:
        result = client.embed(input=["first phrase", "second phrase"])
    assert [item.index for item in result.data] == [0, 1]
    for item in result.data:
        assert len(item.embedding) == dims(embed)
        assert all(isinstance(x, float) for x in item.embedding)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.model == embed.engine.model
    assert result.usage.prompt_tokens >= 2 and result.usage.total_tokens >= result.usage.prompt_tokens
    if embed.is_mock:
        sent = embed.engine.last_request("/v1/embeddings")["body"]
        assert sent["input"] == ["first phrase", "second phrase"]
        assert sent["model"] == "mock-embed"


def test_embed_is_deterministic(embed):
    with embeddings_client(embed.url) as client:
        a = client.embed(input=["same text"]).data[0].embedding
        b = client.embed(input=["same text"]).data[0].embedding
    assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("prefix", ["/models", "/api/models"])
def test_embed_with_models_prefix(embed, prefix):
    with embeddings_client(embed.url + prefix) as client:
        result = client.embed(input=["hello"])
        info = client.get_model_info()
    assert len(result.data[0].embedding) == dims(embed)
    assert info.model_type == ModelType.EMBEDDINGS


def test_encoding_formats(embed):
    """Each format is derived from the float vector by the rules in README.md."""
    text = ["encode me"]
    with embeddings_client(embed.url) as client:
        floats = client.embed(input=text, encoding_format=EmbeddingEncodingFormat.FLOAT).data[0].embedding
        got = {fmt: client.embed(input=text, encoding_format=fmt).data[0].embedding
               for fmt in ("base64", "int8", "uint8", "binary", "ubinary")}
    n = len(floats)
    assert n == dims(embed)

    raw = base64.b64decode(got["base64"])
    assert len(raw) == 4 * n
    assert list(struct.unpack(f"<{n}f", raw)) == pytest.approx(floats, abs=1e-5)

    m = max(abs(x) for x in floats)
    expect_int8 = [round_half_away(x / m * 127) for x in floats]
    expect_uint8 = [round_half_away((x / m + 1) * 127.5) for x in floats]
    # Exact up to float rounding at .5 boundaries.
    assert all(abs(a - b) <= 1 for a, b in zip(got["int8"], expect_int8)), got["int8"]
    assert sum(a != b for a, b in zip(got["int8"], expect_int8)) <= max(1, n // 100)
    assert all(-128 <= v <= 127 for v in got["int8"])
    assert all(abs(a - b) <= 1 for a, b in zip(got["uint8"], expect_uint8)), got["uint8"]
    assert all(0 <= v <= 255 for v in got["uint8"])

    bits = [1 if x > 0 else 0 for x in floats] + [0] * (-n % 8)
    expect_ubinary = [int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8)]
    assert got["ubinary"] == expect_ubinary
    assert got["binary"] == [b - 128 for b in expect_ubinary]

    if embed.is_mock:
        sent = embed.engine.last_request()["body"]
        assert sent.get("encoding_format", "float") == "float", "the proxy asks the engine for floats"


@pytest.mark.parametrize("field,value", [("dimensions", 4), ("input_type", EmbeddingInputType.QUERY)])
def test_parameters_the_engine_lacks_get_422(embed, field, value):
    """Mock and llama.cpp take neither `dimensions` nor `input_type`: the spec's 422."""
    with embeddings_client(embed.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.embed(input=["x"], **{field: value})
    assert caught.value.status_code == 422
    assert caught.value.error.code == "UnsupportedParameter"
    assert field in caught.value.message


def test_get_model_info(embed):
    with embeddings_client(embed.url) as client:
        info = client.get_model_info()
    assert info.model_name == embed.engine.model
    assert info.model_type == ModelType.EMBEDDINGS
    assert info.model_provider_name == ("mock-org" if embed.is_mock else "llama-cpp-python")


def test_load_client_picks_the_embeddings_client(embed):
    client = load_client(endpoint=embed.url, credential=AzureKeyCredential(embed.key), retry_total=0)
    with client:
        assert isinstance(client, EmbeddingsClient)
        assert len(client.embed(input=["x"]).data) == 1


def test_async_embed(embed):
    async def run():
        async with async_embeddings_client(embed.url) as client:
            return await client.embed(input=["async text"])

    result = asyncio.run(run())
    assert len(result.data[0].embedding) == dims(embed)


@pytest.mark.mock_only
def test_model_extras_reach_the_engine(embed):
    with embeddings_client(embed.url) as client:
        client.embed(input=["x"], model_extras={"truncate_prompt_tokens": 16, "user": "u-1"})
    sent = embed.engine.last_request()["body"]
    assert sent["truncate_prompt_tokens"] == 16 and sent["user"] == "u-1"


def test_image_embeddings_on_an_engine_without_them(embed):
    """Only vLLM has an image embeddings route; elsewhere the SDK gets OperationNotSupported."""
    from azure.ai.inference import ImageEmbeddingsClient
    from azure.ai.inference.models import ImageEmbeddingInput

    client = ImageEmbeddingsClient(endpoint=embed.url, credential=AzureKeyCredential(embed.key), retry_total=0)
    with client:
        with pytest.raises(HttpResponseError) as caught:
            client.embed(input=[ImageEmbeddingInput(image="data:image/png;base64,iVBORw0KGgo=", text="a cat")])
    assert caught.value.status_code in (400, 422)
    assert caught.value.error.code == "OperationNotSupported"
    if embed.is_mock:
        assert embed.engine.requests() == []
