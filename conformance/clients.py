"""SDK clients as the tests make them: no retries (errors surface at once), short timeouts."""

from azure.ai.inference import ChatCompletionsClient, EmbeddingsClient
from azure.core.credentials import AzureKeyCredential

from harness import KEY

NO_RETRY = {"retry_total": 0}


def chat_client(url, key=KEY, **kwargs):
    return ChatCompletionsClient(endpoint=url, credential=AzureKeyCredential(key), **{**NO_RETRY, **kwargs})


def embeddings_client(url, key=KEY, **kwargs):
    return EmbeddingsClient(endpoint=url, credential=AzureKeyCredential(key), **{**NO_RETRY, **kwargs})


def async_chat_client(url, key=KEY, **kwargs):
    from azure.ai.inference.aio import ChatCompletionsClient as AsyncChatCompletionsClient
    return AsyncChatCompletionsClient(endpoint=url, credential=AzureKeyCredential(key), **{**NO_RETRY, **kwargs})


def async_embeddings_client(url, key=KEY, **kwargs):
    from azure.ai.inference.aio import EmbeddingsClient as AsyncEmbeddingsClient
    return AsyncEmbeddingsClient(endpoint=url, credential=AzureKeyCredential(key), **{**NO_RETRY, **kwargs})
