"""Chat completions through the azure-ai-inference SDK, as an Azure AI endpoint's client uses it."""

import asyncio
import json

import pytest
from azure.ai.inference import load_client, ChatCompletionsClient
from azure.ai.inference.models import (
    AssistantMessage,
    ChatCompletionsNamedToolChoice,
    ChatCompletionsNamedToolChoiceFunction,
    ChatCompletionsToolCall,
    ChatCompletionsToolDefinition,
    CompletionsFinishReason,
    DeveloperMessage,
    FunctionCall,
    FunctionDefinition,
    ImageContentItem,
    ImageDetailLevel,
    ImageUrl,
    JsonSchemaFormat,
    ModelType,
    SystemMessage,
    TextContentItem,
    ToolMessage,
    UserMessage,
)
from azure.core.credentials import AzureKeyCredential

from clients import async_chat_client, chat_client

# The SDK's enum says "chat_completion"; Azure's endpoints (and the proxy) answer "chat-completion",
# which the SDK's load_client also takes.
CHAT_TYPES = ("chat-completion", ModelType.CHAT_COMPLETION)
SMALL = {"max_tokens": 8, "temperature": 0.0, "seed": 7}
WEATHER = ChatCompletionsToolDefinition(function=FunctionDefinition(
    name="get_weather", description="Current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}))
# A 1x1 transparent PNG.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
         "60e6kgAAAABJRU5ErkJggg==")


def real_xfail(request, stack, reason):
    """Expects the running test to fail on the real engine (an engine limitation, not the
    proxy's); it still runs, so a fix shows as XPASS."""
    if not stack.is_mock:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))


def test_complete(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=[SystemMessage("You are terse."), UserMessage("Say hello")], **SMALL)
    assert len(result.choices) == 1
    choice = result.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.message.role == "assistant"
    assert choice.finish_reason in (CompletionsFinishReason.STOPPED, CompletionsFinishReason.TOKEN_LIMIT_REACHED)
    assert result.model == chat.engine.model
    assert result.usage.completion_tokens <= 8
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.id and result.created
    if chat.is_mock:
        assert choice.message.content == "echo: Say hello"
        sent = chat.engine.last_request("/v1/chat/completions")["body"]
        assert sent["messages"] == [{"role": "system", "content": "You are terse."},
                                    {"role": "user", "content": "Say hello"}]
        assert sent["max_tokens"] == 8 and sent["seed"] == 7
        assert sent["model"] == "mock-chat", "the proxy fills in the engine's model"


def test_complete_with_dict_messages(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=[{"role": "user", "content": "Say hi"}], **SMALL)
    assert result.choices[0].message.content


@pytest.mark.parametrize("prefix", ["/models", "/api/models"])
def test_endpoint_with_models_prefix(chat, prefix):
    with chat_client(chat.url + prefix) as client:
        result = client.complete(messages=[UserMessage("Say hello")], **SMALL)
        info = client.get_model_info()
    assert result.choices[0].message.content
    assert info.model_name == chat.engine.model


@pytest.mark.parametrize("api_version", ["2024-05-01-preview", "2025-04-01", "2025-05-15-preview"])
def test_published_api_versions(chat, api_version):
    with chat_client(chat.url, api_version=api_version) as client:
        result = client.complete(messages=[UserMessage("Say hello")], **SMALL)
    assert result.choices[0].message.content


def test_stream(chat):
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("Count to three")], stream=True, **SMALL))
    text = "".join(u.choices[0].delta.content or "" for u in updates if u.choices)
    assert text
    finishes = [u.choices[0].finish_reason for u in updates if u.choices and u.choices[0].finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")
    assert all(u.model == chat.engine.model for u in updates if u.model)
    if chat.is_mock:
        assert text == "echo: Count to three"
        assert chat.engine.last_request()["body"]["stream"] is True


def test_stream_with_usage(chat, request):
    """`stream_options` is outside the Azure spec: it goes with model_extras (pass-through)."""
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("Say hello")], stream=True,
                                       model_extras={"stream_options": {"include_usage": True}}, **SMALL))
    # llama-cpp-python never sends the usage chunk: the proxy makes it (README).
    usage = [u.usage for u in updates if u.usage]
    assert usage and usage[-1].completion_tokens >= 1
    assert usage[-1].total_tokens == usage[-1].prompt_tokens + usage[-1].completion_tokens


@pytest.mark.mock_only
def test_stream_quirky_engine_events_are_normalised(chat):
    """Keep-alive comments, `event:` lines, `data:` without a space and CRLF would make the SDK
    raise ValueError("SSE event not supported"); through the proxy they parse."""
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("one two MOCK_QUIRKY_STREAM")], stream=True))
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == \
        "echo: one two MOCK_QUIRKY_STREAM"


@pytest.mark.mock_only
def test_stream_split_mid_character_is_reassembled(chat):
    """The engine's events arrive in 3-byte pieces, splitting UTF-8 characters and lines."""
    prompt = "héllo 🌍 wörld 日本 MOCK_SPLIT_STREAM"
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage(prompt)], stream=True))
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "echo: " + prompt


@pytest.mark.mock_only
def test_stream_without_done_from_the_engine(chat):
    """An engine that ends its stream without `data: [DONE]`: the SDK still gets a whole answer."""
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("a b MOCK_NO_DONE")], stream=True))
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "echo: a b MOCK_NO_DONE"
    assert updates[-1].choices[0].finish_reason == "stop"


@pytest.mark.mock_only
def test_concurrent_streams(chat):
    """Twenty streams at once through one proxy, each getting its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        with chat_client(chat.url) as client:
            updates = client.complete(messages=[UserMessage(f"stream {i} a b c d")], stream=True)
            return "".join(u.choices[0].delta.content or "" for u in updates if u.choices)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert answers == [f"echo: stream {i} a b c d" for i in range(20)]


def test_async_complete_and_stream(chat):
    async def run():
        async with async_chat_client(chat.url) as client:
            result = await client.complete(messages=[UserMessage("Say hello")], **SMALL)
            stream = await client.complete(messages=[UserMessage("Say hello")], stream=True, **SMALL)
            pieces = [u.choices[0].delta.content or "" async for u in stream if u.choices]
            await stream.aclose()
            info = await client.get_model_info()
            return result, "".join(pieces), info

    result, streamed, info = asyncio.run(run())
    assert result.choices[0].message.content
    assert streamed
    assert info.model_type in CHAT_TYPES
    if chat.is_mock:
        assert result.choices[0].message.content == streamed == "echo: Say hello"


def test_tool_call_requested(chat):
    """A named tool_choice makes even the real engine call the tool."""
    choice = ChatCompletionsNamedToolChoice(function=ChatCompletionsNamedToolChoiceFunction(name="get_weather"))
    with chat_client(chat.url) as client:
        result = client.complete(messages=[UserMessage("What is the weather in Paris?")], tools=[WEATHER],
                                 tool_choice=choice, max_tokens=32, temperature=0.0)
    message = result.choices[0].message
    assert result.choices[0].finish_reason == CompletionsFinishReason.TOOL_CALLS
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"
    assert isinstance(json.loads(message.tool_calls[0].function.arguments), dict)
    assert message.tool_calls[0].id
    if chat.is_mock:
        sent = chat.engine.last_request()["body"]
        assert sent["tools"][0]["function"]["name"] == "get_weather"
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.mock_only
def test_tool_call_streamed(chat):
    with chat_client(chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("Weather in Oslo?")], tools=[WEATHER], stream=True))
    calls = [tc for u in updates if u.choices and u.choices[0].delta.tool_calls for tc in u.choices[0].delta.tool_calls]
    assert calls[0].function.name == "get_weather" and calls[0].id == "call_mock_1"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"text": "Weather in Oslo?"}
    assert [u.choices[0].finish_reason for u in updates if u.choices][-1] == "tool_calls"


def _history(assistant):
    return [
        SystemMessage("Use the tools."),
        UserMessage("What is the weather in Paris?"),
        assistant,
        ToolMessage(content="sunny, 21 C", tool_call_id="call_1"),
    ]


CALL = ChatCompletionsToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}'))


def test_tool_results_in_history(chat):
    """The SDK's own shape: an assistant message with tool_calls and no content, then the tool's.
    (llama-cpp-python's chat template needs a string content there; the proxy's engine profile
    fills it in.)"""
    with chat_client(chat.url) as client:
        result = client.complete(messages=_history(AssistantMessage(tool_calls=[CALL])), tools=[WEATHER],
                                 max_tokens=16)
    assert result.choices[0].message.content
    if chat.is_mock:
        assert result.choices[0].message.content == "tool said: sunny, 21 C"
        sent = chat.engine.last_request()["body"]["messages"]
        assert sent[2] == {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
        assert sent[3] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_1"}


def test_tool_results_in_history_with_empty_content(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=_history(AssistantMessage(content="", tool_calls=[CALL])),
                                 tools=[WEATHER], max_tokens=16)
    assert result.choices[0].message.content
    if chat.is_mock:
        assert result.choices[0].message.content == "tool said: sunny, 21 C"


def test_multimodal_content_parts(chat):
    """Text and image parts (the real text-only engine gets the text part only; its chat template
    takes no parts, so the proxy flattens text parts for it: issue 10)."""
    message = UserMessage(content=[TextContentItem(text="Describe")] + (
        [ImageContentItem(image_url=ImageUrl(url=PIXEL, detail=ImageDetailLevel.LOW))] if chat.is_mock else []))
    with chat_client(chat.url) as client:
        result = client.complete(messages=[message], **SMALL)
    assert result.choices[0].message.content
    if chat.is_mock:
        assert result.choices[0].message.content == "echo: Describe [image]"
        sent = chat.engine.last_request()["body"]["messages"][0]["content"]
        assert sent == [{"type": "text", "text": "Describe"},
                        {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}}]


def test_text_parts_only(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=[UserMessage(content=[TextContentItem(text="Say"),
                                                                TextContentItem(text="hello")])], **SMALL)
    assert result.choices[0].message.content
    if chat.is_mock:
        assert result.choices[0].message.content == "echo: Say hello"


def test_model_extras_reach_the_engine(chat):
    """model_extras makes the SDK send `extra-parameters: pass-through`; the fields reach the engine."""
    extras = {"top_k": 5, "repeat_penalty": 1.1, "custom_field": {"nested": [1, 2]}}
    if not chat.is_mock:
        extras.pop("custom_field")  # llama-cpp-python refuses unknown fields
    with chat_client(chat.url) as client:
        result = client.complete(messages=[UserMessage("Say hello")], model_extras=extras, **SMALL)
    assert result.choices[0].message.content
    if chat.is_mock:
        request = chat.engine.last_request()
        for name, value in extras.items():
            assert request["body"][name] == value
        assert "extra-parameters" not in request["headers"]


@pytest.mark.mock_only
def test_engine_never_sees_the_client_key(chat):
    with chat_client(chat.url) as client:
        client.complete(messages=[UserMessage("hi")])
    headers = chat.engine.last_request()["headers"]
    assert chat.key not in json.dumps(headers)
    assert "api-key" not in headers


def test_response_format_json_object(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=[SystemMessage("Answer in JSON."), UserMessage("Give {\"a\": 1}")],
                                 response_format="json_object", max_tokens=24, temperature=0.0)
    content = result.choices[0].message.content
    assert content
    if chat.is_mock:
        assert json.loads(content) == {"echo": 'Give {"a": 1}'}
        assert chat.engine.last_request()["body"]["response_format"] == {"type": "json_object"}


@pytest.mark.mock_only
def test_response_format_json_schema(chat):
    schema = JsonSchemaFormat(name="answer", schema={"type": "object", "properties": {"echo": {"type": "string"}},
                                                     "required": ["echo"], "additionalProperties": False},
                              description="An echo", strict=True)
    with chat_client(chat.url) as client:
        result = client.complete(messages=[UserMessage("x")], response_format=schema)
    assert json.loads(result.choices[0].message.content) == {"echo": "x"}
    sent = chat.engine.last_request()["body"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "answer"


@pytest.mark.mock_only
def test_sampling_parameters_are_forwarded(chat):
    with chat_client(chat.url) as client:
        client.complete(messages=[DeveloperMessage("Be brief."), UserMessage("hi")], stop=["\n", "END"],
                        temperature=0.5, top_p=0.9, presence_penalty=0.1, frequency_penalty=0.2, max_tokens=3)
    sent = chat.engine.last_request()["body"]
    assert sent["stop"] == ["\n", "END"]
    assert (sent["temperature"], sent["top_p"], sent["presence_penalty"], sent["frequency_penalty"]) == \
        (0.5, 0.9, 0.1, 0.2)
    assert sent["messages"][0] == {"role": "developer", "content": "Be brief."}


def test_token_limit(chat):
    with chat_client(chat.url) as client:
        result = client.complete(messages=[UserMessage("Write a long story about a cat and a dog")], max_tokens=2)
    assert result.choices[0].finish_reason == CompletionsFinishReason.TOKEN_LIMIT_REACHED
    assert result.usage.completion_tokens <= 2


def test_get_model_info(chat):
    with chat_client(chat.url) as client:
        info = client.get_model_info()
    assert info.model_name == chat.engine.model
    assert info.model_type in CHAT_TYPES
    assert info.model_provider_name == ("mock-org" if chat.is_mock else "llama-cpp-python")


def test_load_client_picks_the_chat_client(chat):
    client = load_client(endpoint=chat.url, credential=AzureKeyCredential(chat.key), retry_total=0)
    with client:
        assert isinstance(client, ChatCompletionsClient)
        assert client.complete(messages=[UserMessage("Say hello")], **SMALL).choices[0].message.content
