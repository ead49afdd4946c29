#!/usr/bin/env python3
"""Function calling with the azure-ai-inference SDK: the model asks for a tool, the script runs it
and sends the result back in the history, the model answers.

    AZURE_AI_ENDPOINT=http://127.0.0.1:8000 AZURE_AI_KEY=... python examples/tools.py

Small models call tools poorly; tool_choice names the function so even they call it.
"""

import json
import os

from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import (
    AssistantMessage,
    ChatCompletionsNamedToolChoice,
    ChatCompletionsNamedToolChoiceFunction,
    ChatCompletionsToolDefinition,
    CompletionsFinishReason,
    FunctionDefinition,
    ToolMessage,
    UserMessage,
)
from azure.core.credentials import AzureKeyCredential

endpoint = os.environ.get("AZURE_AI_ENDPOINT", "http://127.0.0.1:8000")
key = os.environ.get("AZURE_AI_KEY") or "no-key"


def get_weather(city="Paris", **_):
    return f"sunny and 21 degrees in {city}"


weather_tool = ChatCompletionsToolDefinition(function=FunctionDefinition(
    name="get_weather",
    description="The current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
))

with ChatCompletionsClient(endpoint=endpoint, credential=AzureKeyCredential(key)) as client:
    messages = [UserMessage("What is the weather in Paris?")]
    first = client.complete(
        messages=messages, tools=[weather_tool], max_tokens=64,
        tool_choice=ChatCompletionsNamedToolChoice(function=ChatCompletionsNamedToolChoiceFunction(name="get_weather")),
    )
    choice = first.choices[0]
    if choice.finish_reason != CompletionsFinishReason.TOOL_CALLS or not choice.message.tool_calls:
        raise SystemExit(f"the model did not call the tool: {choice.message.content!r}")

    call = choice.message.tool_calls[0]
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        arguments = {}
    output = get_weather(**arguments) if isinstance(arguments, dict) else get_weather()
    print(f"tool call: {call.function.name}({call.function.arguments}) -> {output}")

    # Some engines' chat templates need a string content on the assistant turn, so send "".
    messages += [AssistantMessage(content="", tool_calls=[call]), ToolMessage(content=output, tool_call_id=call.id)]
    final = client.complete(messages=messages, tools=[weather_tool], tool_choice="none", max_tokens=48)
    print(f"answer: {final.choices[0].message.content}")
