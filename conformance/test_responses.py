"""The Responses API through the openai SDK (`client.responses`), against engines without
`/v1/responses` (the mock and llama.cpp): the proxy serves it over chat completions (README)."""

import json

import pytest
from openai import AzureOpenAI, OpenAI

from harness import KEY

TOOLS = [{
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def v1(stack):
    return OpenAI(base_url=f"{stack.url}/openai/v1/", api_key=KEY, max_retries=0, timeout=60)


def test_responses_create(chat):
    r = v1(chat).responses.create(model=chat.engine.model, input="Say hi", instructions="Be brief",
                                  max_output_tokens=16)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.status in ("completed", "incomplete")
    assert r.output_text
    assert r.usage.output_tokens >= 1
    if chat.is_mock:
        assert r.output_text == "echo: Say hi"


def test_responses_with_api_version(chat):
    client = AzureOpenAI(azure_endpoint=chat.url, api_key=KEY, api_version="2025-04-01-preview", max_retries=0)
    r = client.responses.create(model=chat.engine.model, input="Say hi", max_output_tokens=8)
    assert r.output_text


def test_responses_stream(chat):
    events = list(v1(chat).responses.create(model=chat.engine.model, input="Say hi", stream=True,
                                            max_output_tokens=16))
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    if chat.is_mock:
        assert text == "echo: Say hi"


def test_responses_stream_helper_accumulates(chat):
    with v1(chat).responses.stream(model=chat.engine.model, input="Say hi", max_output_tokens=64) as stream:
        last = None
        for event in stream:
            last = event
        # The SDK's helper accumulates a final response only for `response.completed`; a tiny
        # model may run out of tokens (`response.incomplete`, as OpenAI ends such streams too).
        if last.type == "response.completed":
            assert stream.get_final_response().output_text
        else:
            assert last.type == "response.incomplete" and last.response.output_text


def test_responses_function_calling_round_trip(chat):
    client = v1(chat)
    history = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=chat.engine.model, input=history, tools=TOOLS, max_output_tokens=32)
    calls = [o for o in first.output if o.type == "function_call"]
    if chat.is_mock:
        assert calls and calls[0].name == "get_weather"
    if not calls:
        # The tiny real model may answer in words; the round trip with a call in the history
        # must still go through.
        calls = [type("Call", (), {"call_id": "call_1", "name": "get_weather",
                                   "arguments": json.dumps({"city": "Paris"})})()]
    history += [
        {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name, "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"},
    ]
    second = client.responses.create(model=chat.engine.model, input=history, tools=TOOLS, max_output_tokens=32)
    assert second.status in ("completed", "incomplete")
    if chat.is_mock:
        assert second.output_text == "tool said: sunny, 21 C"


def test_responses_previous_response_id_needs_state(mock_chat):
    with pytest.raises(Exception) as caught:
        v1(mock_chat).responses.create(model="mock-chat", input="Hi", previous_response_id="resp_unknown")
    assert getattr(caught.value, "status_code", None) == 400
    assert "no conversation state" in str(caught.value)


def test_langchain_azure_ai_over_the_responses_api(chat):
    """langchain-azure-ai's default class switches to the Responses API once it has an
    api_version: a multi-turn, tool-using conversation through it."""
    from langchain_azure_ai.chat_models import AzureAIChatCompletionsModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny, 21 C"

    model = AzureAIChatCompletionsModel(endpoint=f"{chat.url}/openai/v1", credential=KEY, model=chat.engine.model,
                                        api_version="preview", use_responses_api=True, max_tokens=32)
    llm = model.bind_tools([get_weather])
    history = [HumanMessage("What is the weather in Paris?")]
    first = llm.invoke(history)
    assert isinstance(first, AIMessage)
    if chat.is_mock:
        assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    if not first.tool_calls:
        # The tiny real model may answer in words: give the turn a call to answer.
        first = AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}])
    history += [first, ToolMessage("sunny, 21 C", tool_call_id=first.tool_calls[0]["id"])]
    second = llm.invoke(history)
    assert isinstance(second, AIMessage)
    if chat.is_mock:
        assert "tool said: sunny, 21 C" in second.text
    history += [second, HumanMessage("Thanks. And in Rome?")]
    third = llm.invoke(history)
    assert isinstance(third, AIMessage)
    # It went through the proxy's Responses route (the proxy's own metrics say so).
    import requests
    metrics = requests.get(f"{chat.url}/metrics", headers={"api-key": KEY}, timeout=10).text
    assert 'route="/openai/v1/responses"' in metrics
