#!/usr/bin/env python3
"""One chat completion with the azure-ai-inference SDK.

    AZURE_AI_ENDPOINT=http://127.0.0.1:8000 AZURE_AI_KEY=... python examples/chat.py ["your prompt"]

AZURE_AI_KEY may be left unset for a proxy started without --api-key.
"""

import os
import sys

from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import SystemMessage, UserMessage
from azure.core.credentials import AzureKeyCredential

endpoint = os.environ.get("AZURE_AI_ENDPOINT", "http://127.0.0.1:8000")
key = os.environ.get("AZURE_AI_KEY") or "no-key"
prompt = sys.argv[1] if len(sys.argv) > 1 else "Say hello in five words."

with ChatCompletionsClient(endpoint=endpoint, credential=AzureKeyCredential(key)) as client:
    result = client.complete(
        messages=[SystemMessage("You are a helpful assistant."), UserMessage(prompt)],
        max_tokens=32,
        temperature=0.2,
    )

choice = result.choices[0]
print(choice.message.content)
print(f"[model {result.model}, finish_reason {getattr(choice.finish_reason, 'value', choice.finish_reason)}, "
      f"{result.usage.prompt_tokens} prompt + {result.usage.completion_tokens} completion tokens]", file=sys.stderr)
