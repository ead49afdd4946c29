#!/usr/bin/env python3
"""Embeddings with the azure-ai-inference SDK, and the cosine similarity of two sentences.

    AZURE_AI_ENDPOINT=http://127.0.0.1:8001 AZURE_AI_KEY=... python examples/embeddings.py

The endpoint must be a proxy in front of an embeddings engine (scripts/engine.sh embed PORT).
"""

import math
import os

from azure.ai.inference import EmbeddingsClient
from azure.core.credentials import AzureKeyCredential

endpoint = os.environ.get("AZURE_AI_ENDPOINT", "http://127.0.0.1:8000")
key = os.environ.get("AZURE_AI_KEY") or "no-key"
sentences = ["The cat sits on the mat.", "A kitten is resting on a rug."]

with EmbeddingsClient(endpoint=endpoint, credential=AzureKeyCredential(key)) as client:
    info = client.get_model_info()
    result = client.embed(input=sentences)
    packed = client.embed(input=sentences[:1], encoding_format="int8")

a, b = (item.embedding for item in result.data)
cosine = sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
print(f"model {info.model_name} ({info.model_type}): {len(result.data)} vectors of {len(a)} dimensions")
print(f"first values: {[round(x, 4) for x in a[:4]]}")
print(f"int8 first values: {packed.data[0].embedding[:4]}")
print(f"cosine similarity: {cosine:.4f}")
