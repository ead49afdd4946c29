#!/usr/bin/env python3
"""A streamed chat completion with the azure-ai-inference SDK: tokens print as they arrive.

    AZURE_AI_ENDPOINT=http://127.0.0.1:8000 AZURE_AI_KEY=... python examples/stream.py ["your prompt"]
"""

import os
import sys

from azure.ai.inference import ChatCompletionsClient
from azure.ai.inference.models import UserMessage
from azure.core.credentials import AzureKeyCredential

endpoint = os.environ.get("AZURE_AI_ENDPOINT", "http://127.0.0.1:8000")
key = os.environ.get("AZURE_AI_KEY") or "no-key"
prompt = sys.argv[1] if len(sys.argv) > 1 else "Count from one to five."

with ChatCompletionsClient(endpoint=endpoint, credential=AzureKeyCredential(key)) as client:
    finish = None
    for update in client.complete(messages=[UserMessage(prompt)], max_tokens=48, stream=True):
        if update.choices:
            print(update.choices[0].delta.content or "", end="", flush=True)
            finish = update.choices[0].finish_reason or finish
    print()
    print(f"[finish_reason {getattr(finish, 'value', finish)}]", file=sys.stderr)
