#!/usr/bin/env python3
"""The openai SDK's AzureOpenAI client against the proxy (Azure OpenAI routes,
/openai/deployments/{deployment}/chat/completions).

    AZURE_AI_ENDPOINT=http://127.0.0.1:8000 AZURE_AI_KEY=... [AZURE_OPENAI_DEPLOYMENT=name] \
        python examples/azure_openai.py

Without a config file every model the engine lists is a deployment of that name; without
AZURE_OPENAI_DEPLOYMENT the script uses the first deployment the proxy lists.
"""

import os
import sys

from openai import AzureOpenAI

endpoint = os.environ.get("AZURE_AI_ENDPOINT", "http://127.0.0.1:8000")
key = os.environ.get("AZURE_AI_KEY") or "no-key"
client = AzureOpenAI(azure_endpoint=endpoint, api_key=key, api_version="2024-10-21", max_retries=0)
deployment = os.environ.get("AZURE_OPENAI_DEPLOYMENT") or next(iter(client.models.list())).id
print(f"[deployment {deployment}]", file=sys.stderr)
result = client.chat.completions.create(
    model=deployment,
    messages=[{"role": "user", "content": "Say hello in five words."}],
    max_tokens=32,
)
print(result.choices[0].message.content)

stream = client.chat.completions.create(
    model=deployment,
    messages=[{"role": "user", "content": "Count from one to five."}],
    max_tokens=48,
    stream=True,
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
print()
