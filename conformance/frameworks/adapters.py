"""Each Azure client framework, driven through the proxy the way its users write it.

An adapter turns one framework's calls into the few things test_frameworks.py checks: the text of
a chat answer, the pieces of a stream, the tool calls the model asked for, the answer after a tool
result, a parsed structured answer, embedding vectors, and the error a wrong key raises. Each
method uses the framework's own objects and checks their types; what it returns is read from what
the framework returned, never from the wire.

`Stack` is conftest's: an engine (mock or real) and the proxy in front of it, with the key KEY.
"""

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from harness import KEY, WRONG_KEY

AZURE_OPENAI_API_VERSION = "2024-10-21"
CHAT_PROMPT = "Say hello"
STREAM_PROMPT = "Count to three"
TOOL_PROMPT = "What is the weather in Paris?"
TOOL_RESULT = "sunny, 21 C"
STRUCTURED_PROMPT = "Say hi"
EMBED_TEXTS = ["first phrase", "second phrase"]
MAX_TOKENS = 16
# Enough for the schema below: the engine's grammar closes the object within 24 characters.
STRUCTURED_MAX_TOKENS = 128
TIMEOUT = 60


def lookup_weather(text: str) -> str:
    """Weather for the place named in the text."""
    return TOOL_RESULT


# The mock engine calls the first tool with {"text": <the user's words>}: the tool takes `text`.
TOOL_SCHEMA = {"type": "function", "function": {
    "name": "lookup_weather", "description": "Weather for the place named in the text.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}
# The call put in history when the model did not make one (the real engine's tiny model).
HISTORY_CALL = {"id": "call_1", "name": "lookup_weather", "args": {"text": "Paris"}}


class Echo(BaseModel):
    """The user's words, echoed."""
    echo: str = Field(max_length=24)


ECHO_SCHEMA = {"name": "Echo", "strict": True, "schema": {
    "type": "object", "properties": {"echo": {"type": "string", "maxLength": 24}}, "required": ["echo"],
    "additionalProperties": False}}


@dataclass
class Reply:
    text: str
    finish_reason: str | None = None
    model: str | None = None


@dataclass
class Streamed:
    pieces: list
    finish_reason: str | None = None
    total_tokens: int | None = None  # when the framework reports the stream's usage

    @property
    def text(self):
        return "".join(self.pieces)


@dataclass
class Call:
    name: str
    args: dict
    id: str


@dataclass
class Asked:
    """The model's answer to TOOL_PROMPT with the tool offered: its calls, and the framework's own
    message (or conversation) to put back in history."""
    calls: list
    state: object = None


@dataclass
class AuthFailure:
    error: object
    status_code: int | None


class Framework:
    """One framework (or one way of using it). `skips` maps an aspect (chat, stream, tools,
    structured, embeddings, auth) to why it cannot be tested."""
    id = ""
    modules = ()
    skips: dict = {}
    has_async = False
    needs_litellm = False
    # Whether the stream's Streamed.finish_reason is read from the framework (else always None).
    stream_reports_finish = True
    # Whether the stream test's request carries stream_options.include_usage.
    sends_include_usage = False

    def unavailable(self):
        import importlib
        for name in self.modules:
            try:
                importlib.import_module(name)
            except ImportError as e:
                return f"{self.id}: {name} is not installed ({e}); conformance/requirements.txt pins it"
        return None

    def __repr__(self):
        return self.id


# ---- LangChain --------------------------------------------------------------------------------

def _lc_tool():
    from langchain_core.tools import tool
    return tool(lookup_weather)


class _LangChain(Framework):
    """The LangChain chat-model and embeddings interfaces (invoke, stream, bind_tools,
    with_structured_output, embed_documents / embed_query)."""
    has_async = True
    auth_errors = ()

    def model(self, stack, key=KEY, max_tokens=MAX_TOKENS):
        raise NotImplementedError

    def embeddings(self, stack, key=KEY):
        raise NotImplementedError

    def _reply(self, message):
        from langchain_core.messages import AIMessage
        assert isinstance(message, AIMessage), type(message)
        assert isinstance(message.content, str), message.content
        meta = message.response_metadata
        return Reply(message.content, meta.get("finish_reason"), meta.get("model_name") or meta.get("model"))

    def chat(self, stack):
        return self._reply(self.model(stack).invoke(CHAT_PROMPT))

    def achat(self, stack):
        return self._reply(asyncio.run(self.model(stack).ainvoke(CHAT_PROMPT)))

    def stream(self, stack):
        from langchain_core.messages import AIMessageChunk
        chunks = list(self.model(stack).stream(STREAM_PROMPT))
        assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks), chunks
        whole = chunks[0]
        for c in chunks[1:]:
            whole = whole + c
        usage = whole.usage_metadata
        return Streamed([c.content for c in chunks if c.content], whole.response_metadata.get("finish_reason"),
                        usage["total_tokens"] if usage else None)

    def ask_for_tool(self, stack):
        message = self.model(stack).bind_tools([_lc_tool()]).invoke(TOOL_PROMPT)
        return Asked([Call(c["name"], c["args"], c["id"]) for c in message.tool_calls], message)

    def answer_tool(self, stack, asked):
        from langchain_core.messages import AIMessage, HumanMessage
        weather = _lc_tool()
        if asked is None:
            call = {**HISTORY_CALL, "type": "tool_call"}
            assistant = AIMessage(content="", tool_calls=[call])
        else:
            assistant = asked.state
            call = assistant.tool_calls[0]
        # A tool invoked with the model's ToolCall answers the ToolMessage for it.
        tool_message = weather.invoke(call)
        history = [HumanMessage(TOOL_PROMPT), assistant, tool_message]
        return self._reply(self.model(stack).bind_tools([weather]).invoke(history))

    def structured(self, stack):
        runnable = self.model(stack, max_tokens=STRUCTURED_MAX_TOKENS).with_structured_output(Echo, method="json_schema")
        result = runnable.invoke(STRUCTURED_PROMPT)
        assert isinstance(result, Echo), result
        return result

    def embed(self, stack):
        model = self.embeddings(stack)
        docs = model.embed_documents(EMBED_TEXTS)
        query = model.embed_query(EMBED_TEXTS[0])
        return docs, query

    def wrong_key(self, stack):
        import pytest
        with pytest.raises(self.auth_errors) as caught:
            self.model(stack, key=WRONG_KEY).invoke(CHAT_PROMPT)
        return AuthFailure(caught.value, getattr(caught.value, "status_code", None))

    def wrong_key_embeddings(self, stack):
        import pytest
        with pytest.raises(self.auth_errors) as caught:
            self.embeddings(stack, key=WRONG_KEY).embed_query("hello")
        return AuthFailure(caught.value, getattr(caught.value, "status_code", None))


class LangChainAzureAIInference(_LangChain):
    """langchain-azure-ai's AzureAIChatCompletionsModel and AzureAIEmbeddingsModel (the
    azure-ai-inference SDK): endpoint = the proxy's root, no model name, so each asks GET /info."""
    id = "langchain-azure-ai-inference"
    modules = ("langchain_azure_ai.chat_models.inference", "langchain_azure_ai.embeddings.inference")

    @property
    def auth_errors(self):
        from azure.core.exceptions import ClientAuthenticationError
        return ClientAuthenticationError

    def model(self, stack, key=KEY, max_tokens=MAX_TOKENS):
        import warnings
        from langchain_azure_ai.chat_models.inference import AzureAIChatCompletionsModel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "the beta SDK is deprecated"
            # temperature 0.0 would be dropped (it is falsy to the class); the seed steadies the answer.
            return AzureAIChatCompletionsModel(endpoint=stack.url, credential=key, max_tokens=max_tokens, seed=7,
                                               client_kwargs={"retry_total": 0, "connection_timeout": TIMEOUT,
                                                              "read_timeout": TIMEOUT})

    def embeddings(self, stack, key=KEY):
        import warnings
        from langchain_azure_ai.embeddings.inference import AzureAIEmbeddingsModel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return AzureAIEmbeddingsModel(endpoint=stack.url, credential=key, client_kwargs={"retry_total": 0})


class LangChainAzureAIOpenAI(_LangChain):
    """langchain-azure-ai's default AzureAIChatCompletionsModel (AzureAIOpenAIApiChatModel, on the
    openai SDK) and AzureAIOpenAIApiEmbeddingsModel at <proxy>/openai/v1, Chat Completions mode
    (use_responses_api=False: its Responses-API mode is tested elsewhere)."""
    id = "langchain-azure-ai-openai-v1"
    modules = ("langchain_azure_ai.chat_models", "langchain_azure_ai.embeddings")

    @property
    def auth_errors(self):
        import openai
        return openai.AuthenticationError

    def model(self, stack, key=KEY, max_tokens=MAX_TOKENS):
        from langchain_azure_ai.chat_models import AzureAIChatCompletionsModel
        return AzureAIChatCompletionsModel(endpoint=f"{stack.url}/openai/v1", credential=key, model=stack.engine.model,
                                           use_responses_api=False, temperature=0.0, max_tokens=max_tokens,
                                           max_retries=0, timeout=TIMEOUT)

    def embeddings(self, stack, key=KEY):
        from langchain_azure_ai.embeddings import AzureAIOpenAIApiEmbeddingsModel
        # check_embedding_ctx_length=False: otherwise tiktoken downloads its tables (no network here).
        return AzureAIOpenAIApiEmbeddingsModel(endpoint=f"{stack.url}/openai/v1", credential=key,
                                               model=stack.engine.model, check_embedding_ctx_length=False,
                                               max_retries=0, timeout=TIMEOUT)


class LangChainOpenAI(_LangChain):
    """langchain-openai's AzureChatOpenAI and AzureOpenAIEmbeddings: the deployment routes with
    api-version. The embeddings send model "text-embedding-ada-002" and encoding_format base64:
    the proxy puts in the deployment's model and encodes base64 itself."""
    id = "langchain-openai"
    modules = ("langchain_openai",)
    sends_include_usage = True  # AzureChatOpenAI's stream_usage is on by default

    @property
    def auth_errors(self):
        import openai
        return openai.AuthenticationError

    def model(self, stack, key=KEY, max_tokens=MAX_TOKENS):
        from langchain_openai import AzureChatOpenAI
        return AzureChatOpenAI(azure_endpoint=stack.url, azure_deployment=stack.engine.model,
                               api_version=AZURE_OPENAI_API_VERSION, api_key=key, temperature=0.0,
                               max_tokens=max_tokens, max_retries=0, timeout=TIMEOUT)

    def embeddings(self, stack, key=KEY):
        from langchain_openai import AzureOpenAIEmbeddings
        return AzureOpenAIEmbeddings(azure_endpoint=stack.url, azure_deployment=stack.engine.model,
                                     api_version=AZURE_OPENAI_API_VERSION, api_key=key,
                                     check_embedding_ctx_length=False, max_retries=0, timeout=TIMEOUT)


# ---- LlamaIndex -------------------------------------------------------------------------------

class LlamaIndexAzureInference(Framework):
    """llama-index-llms-azure-inference's AzureAICompletionsModel and
    llama-index-embeddings-azure-inference's AzureAIEmbeddingsModel (the azure-ai-inference SDK),
    endpoint = the proxy's root.

    Structured output: this LLM does not declare function calling, so LlamaIndex's
    structured_predict falls back to asking for JSON in the prompt and parsing free text, which
    neither the mock nor a 135M model answers; the test passes the Azure SDK's JsonSchemaFormat as
    `response_format` through chat()'s keyword arguments (LlamaIndex forwards them to the SDK).
    """
    id = "llama-index-azure-inference"
    modules = ("llama_index.llms.azure_inference", "llama_index.embeddings.azure_inference")
    has_async = True
    stream_reports_finish = False  # stream_chat yields the pieces with text only

    def model(self, stack, key=KEY, max_tokens=MAX_TOKENS):
        from llama_index.llms.azure_inference import AzureAICompletionsModel
        return AzureAICompletionsModel(endpoint=stack.url, credential=key, temperature=0.0, max_tokens=max_tokens,
                                       client_kwargs={"retry_total": 0})

    def _tool(self):
        from llama_index.core.tools import FunctionTool
        return FunctionTool.from_defaults(fn=lookup_weather)

    def _reply(self, response):
        from llama_index.core.base.llms.types import ChatResponse, MessageRole
        assert isinstance(response, ChatResponse), type(response)
        assert response.message.role == MessageRole.ASSISTANT
        raw = response.raw or {}
        choice = (raw.get("choices") or [{}])[0]
        return Reply(response.message.content or "", choice.get("finish_reason"), raw.get("model"))

    def _user(self, text):
        from llama_index.core.llms import ChatMessage
        return ChatMessage(role="user", content=text)

    def chat(self, stack):
        return self._reply(self.model(stack).chat([self._user(CHAT_PROMPT)]))

    def achat(self, stack):
        return self._reply(asyncio.run(self.model(stack).achat([self._user(CHAT_PROMPT)])))

    def stream(self, stack):
        responses = list(self.model(stack).stream_chat([self._user(STREAM_PROMPT)]))
        streamed = Streamed([r.delta for r in responses if r.delta])
        if responses:
            assert responses[-1].message.content == streamed.text
        return streamed

    def ask_for_tool(self, stack):
        llm = self.model(stack)
        response = llm.chat_with_tools([self._tool()], user_msg=TOOL_PROMPT)
        selections = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        return Asked([Call(s.tool_name, s.tool_kwargs, s.tool_id) for s in selections], response.message)

    def answer_tool(self, stack, asked):
        from azure.ai.inference.models import ChatCompletionsToolCall, FunctionCall
        from llama_index.core.llms import ChatMessage
        tool = self._tool()
        if asked is None:
            call = ChatCompletionsToolCall(id=HISTORY_CALL["id"], function=FunctionCall(
                name=HISTORY_CALL["name"], arguments=json.dumps(HISTORY_CALL["args"])))
            assistant = ChatMessage(role="assistant", content=None, additional_kwargs={"tool_calls": [call]})
        else:
            assistant = asked.state
            call = assistant.additional_kwargs["tool_calls"][0]
        output = tool.call(**json.loads(call.function.arguments))
        history = [self._user(TOOL_PROMPT), assistant,
                   ChatMessage(role="tool", content=str(output),
                               additional_kwargs={"tool_call_id": call.id, "name": call.function.name})]
        return self._reply(self.model(stack).chat_with_tools([tool], chat_history=history))

    def structured(self, stack):
        from azure.ai.inference.models import JsonSchemaFormat
        fmt = JsonSchemaFormat(name="Echo", schema=Echo.model_json_schema(), strict=True)
        reply = self._reply(self.model(stack, max_tokens=STRUCTURED_MAX_TOKENS).chat(
            [self._user(STRUCTURED_PROMPT)], response_format=fmt))
        return Echo.model_validate_json(reply.text)

    def embed(self, stack):
        from llama_index.embeddings.azure_inference import AzureAIEmbeddingsModel
        model = AzureAIEmbeddingsModel(endpoint=stack.url, credential=KEY, client_kwargs={"retry_total": 0})
        assert model.model_name == stack.engine.model, "the model name comes from GET /info"
        return model.get_text_embedding_batch(EMBED_TEXTS), model.get_query_embedding(EMBED_TEXTS[0])

    def wrong_key(self, stack):
        import pytest
        from azure.core.exceptions import ClientAuthenticationError
        with pytest.raises(ClientAuthenticationError) as caught:
            self.model(stack, key=WRONG_KEY).chat([self._user(CHAT_PROMPT)])
        return AuthFailure(caught.value, caught.value.status_code)

    def wrong_key_embeddings(self, stack):
        import pytest
        from azure.core.exceptions import ClientAuthenticationError
        from llama_index.embeddings.azure_inference import AzureAIEmbeddingsModel
        # With a model name: without one, the constructor's GET /info fails with the wrong key and
        # its error handler raises AttributeError (it reads self._client before setting it), a
        # bug of llama-index-embeddings-azure-inference 0.6.0 whatever the endpoint.
        model = AzureAIEmbeddingsModel(endpoint=stack.url, credential=WRONG_KEY, model_name=stack.engine.model,
                                       client_kwargs={"retry_total": 0})
        with pytest.raises(ClientAuthenticationError) as caught:
            model.get_query_embedding("hello")
        return AuthFailure(caught.value, caught.value.status_code)


# ---- lm-deluge --------------------------------------------------------------------------------

@contextlib.contextmanager
def _env(name, value):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class LmDeluge(Framework):
    """lm-deluge's Azure provider: its Azure models are chat-completions models ("api_spec"
    openai) at the AZURE_URL read once at import (<resource>/openai/v1), keyed by AZURE_API_KEY, and
    naming a deployment. The test registers one such model per proxy, as the Azure provider's
    entries are made (provider "azure", AZURE_API_KEY), naming the engine's model."""
    id = "lm-deluge-azure"
    modules = ("lm_deluge",)
    skips = {
        "stream": "lm-deluge 0.0.168: LLMClient.stream() raises AttributeError before any request "
                  "(its stream_chat passes a SimpleNamespace without validate_request_config to "
                  "_build_oa_chat_request), and on_text_delta streams only the 'openai' provider: "
                  "the Azure provider does not stream",
        "embeddings": "lm-deluge 0.0.168's embed API has no Azure provider: its URLs are fixed to "
                      "api.openai.com, api.cohere.com and api.zeroentropy.dev",
    }

    def __init__(self):
        self.registered = {}

    def model_id(self, stack):
        from lm_deluge.models import register_model
        if stack.url not in self.registered:
            model_id = f"{stack.engine.model}-azure-{stack.url.rsplit(':', 1)[-1]}"
            register_model(id=model_id, name=stack.engine.model, api_base=f"{stack.url}/openai/v1",
                           api_key_env_var="AZURE_API_KEY", provider="azure", supports_json=True)
            self.registered[stack.url] = model_id
        return self.registered[stack.url]

    def client(self, stack, max_tokens=MAX_TOKENS):
        from lm_deluge import LLMClient
        return LLMClient(self.model_id(stack), max_new_tokens=max_tokens, temperature=0.0, max_attempts=1,
                         request_timeout=TIMEOUT)

    def _run(self, stack, prompt, key=KEY, max_tokens=MAX_TOKENS, **kwargs):
        from lm_deluge import APIResponse
        with _env("AZURE_API_KEY", key):
            (response,) = self.client(stack, max_tokens).process_prompts_sync([prompt], show_progress=False, **kwargs)
        assert isinstance(response, APIResponse), type(response)
        return response

    def _reply(self, response):
        assert not response.is_error, (response.status_code, response.error_message)
        return Reply(response.completion or "", response.finish_reason, response.model_external)

    def chat(self, stack):
        return self._reply(self._run(stack, CHAT_PROMPT))

    def _tool(self):
        from lm_deluge import Tool
        return Tool.from_function(lookup_weather)

    def ask_for_tool(self, stack):
        from lm_deluge import Conversation
        conversation = Conversation().user(TOOL_PROMPT)
        response = self._run(stack, conversation, tools=[self._tool()])
        assert not response.is_error, response.error_message
        calls = response.content.tool_calls if response.content else []
        return Asked([Call(c.name, c.arguments, c.id) for c in calls], conversation.with_response(response))

    def answer_tool(self, stack, asked):
        from lm_deluge import Conversation, Message, execute_tool_calls
        tool = self._tool()
        if asked is None:
            conversation = Conversation().user(TOOL_PROMPT)
            conversation.add(Message.ai().with_tool_call(HISTORY_CALL["id"], HISTORY_CALL["name"], HISTORY_CALL["args"]))
        else:
            conversation = asked.state
        calls = conversation.messages[-1].tool_calls
        conversation.with_tool_results(asyncio.run(execute_tool_calls(calls, [tool])))
        return self._reply(self._run(stack, conversation, tools=[tool]))

    def structured(self, stack):
        reply = self._reply(self._run(stack, STRUCTURED_PROMPT, max_tokens=STRUCTURED_MAX_TOKENS, output_schema=Echo))
        return Echo.model_validate_json(reply.text)

    def wrong_key(self, stack):
        response = self._run(stack, CHAT_PROMPT, key=WRONG_KEY)
        assert response.is_error and response.completion is None, response
        return AuthFailure(response.error_message, response.status_code)


# ---- litellm ----------------------------------------------------------------------------------

class LitellmWorker:
    """litellm_worker.py running in litellm's venv; call() sends one request, waits for its answer."""

    def __init__(self, python, log_dir):
        self.log = open(Path(log_dir) / "litellm-worker.log", "wb")
        from .litellm_venv import WORKER_ENV
        self.proc = subprocess.Popen([str(python), str(Path(__file__).with_name("litellm_worker.py"))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, **WORKER_ENV}, start_new_session=True)
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._answer(timeout=120)  # litellm imported

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def _answer(self, timeout):
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"litellm worker: no answer in {timeout} s (log: {self.log.name})") from None
        if answer is None:
            raise AssertionError(f"litellm worker exited with {self.proc.wait()} (log: {self.log.name})")
        return answer

    def call(self, op, **kwargs):
        self.proc.stdin.write(json.dumps({"op": op, "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._answer(timeout=TIMEOUT * 2)

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@dataclass
class LitellmError:
    type: str
    classes: list  # the exception's classes, most derived first
    status_code: int | None
    message: str


class _Litellm(Framework):
    """The litellm SDK (litellm.completion / litellm.embedding), in its own venv through
    litellm_worker.py: what it returns is litellm's response, model_dump()'d."""
    modules = ()
    needs_litellm = True
    worker: LitellmWorker = None

    def target(self, stack, key):
        raise NotImplementedError

    def completion(self, stack, key=KEY, **kwargs):
        answer = self.worker.call("completion", **self.target(stack, key), num_retries=0, timeout=TIMEOUT, **kwargs)
        if not answer["ok"]:
            raise_litellm(answer["error"])
        return answer["result"]

    def _reply(self, response):
        assert response["object"] == "chat.completion", response
        choice = response["choices"][0]
        assert choice["message"]["role"] == "assistant"
        return Reply(choice["message"]["content"] or "", choice["finish_reason"], response["model"])

    def chat(self, stack):
        return self._reply(self.completion(stack, messages=[{"role": "user", "content": CHAT_PROMPT}],
                                           max_tokens=MAX_TOKENS, temperature=0.0))

    def stream(self, stack):
        chunks = self.completion(stack, messages=[{"role": "user", "content": STREAM_PROMPT}], max_tokens=MAX_TOKENS,
                                 temperature=0.0, stream=True, stream_options={"include_usage": True})
        assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks), chunks
        pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
        usage = [c["usage"] for c in chunks if c.get("usage")]
        return Streamed([p for p in pieces if p], next((f for f in reversed(finishes) if f), None),
                        usage[-1]["total_tokens"] if usage else None)

    def ask_for_tool(self, stack):
        response = self.completion(stack, messages=[{"role": "user", "content": TOOL_PROMPT}], tools=[TOOL_SCHEMA],
                                   max_tokens=MAX_TOKENS)
        message = response["choices"][0]["message"]
        calls = [Call(c["function"]["name"], json.loads(c["function"]["arguments"]), c["id"])
                 for c in message.get("tool_calls") or []]
        return Asked(calls, message)

    def answer_tool(self, stack, asked):
        if asked is None:
            assistant = {"role": "assistant", "content": None, "tool_calls": [{
                "id": HISTORY_CALL["id"], "type": "function",
                "function": {"name": HISTORY_CALL["name"], "arguments": json.dumps(HISTORY_CALL["args"])}}]}
        else:
            assistant = asked.state  # litellm's Message, as returned
        call = assistant["tool_calls"][0]
        result = lookup_weather(**json.loads(call["function"]["arguments"]))
        messages = [{"role": "user", "content": TOOL_PROMPT}, assistant,
                    {"role": "tool", "tool_call_id": call["id"], "content": result}]
        return self._reply(self.completion(stack, messages=messages, tools=[TOOL_SCHEMA], max_tokens=MAX_TOKENS))

    def structured(self, stack):
        reply = self._reply(self.completion(stack, messages=[{"role": "user", "content": STRUCTURED_PROMPT}],
                                            response_format={"type": "json_schema", "json_schema": ECHO_SCHEMA},
                                            max_tokens=STRUCTURED_MAX_TOKENS, temperature=0.0))
        return Echo.model_validate_json(reply.text)

    def embed(self, stack):
        answer = self.worker.call("embedding", **self.target(stack, KEY), input=EMBED_TEXTS, timeout=TIMEOUT,
                                  num_retries=0)
        if not answer["ok"]:
            raise_litellm(answer["error"])
        response = answer["result"]
        assert response["object"] == "list", response
        docs = [item["embedding"] for item in sorted(response["data"], key=lambda d: d["index"])]
        return docs, None

    def _wrong(self, stack, call):
        try:
            call()
        except LitellmFailure as failure:
            error = failure.error
        else:
            raise AssertionError("litellm accepted the wrong key")
        assert "litellm.exceptions.AuthenticationError" in error.classes, error
        return AuthFailure(error, error.status_code)

    def wrong_key(self, stack):
        return self._wrong(stack, lambda: self.completion(stack, key=WRONG_KEY, messages=[
            {"role": "user", "content": CHAT_PROMPT}]))

    def wrong_key_embeddings(self, stack):
        def call():
            answer = self.worker.call("embedding", **self.target(stack, WRONG_KEY), input=["hello"], num_retries=0)
            if not answer["ok"]:
                raise_litellm(answer["error"])
        return self._wrong(stack, call)


class LitellmFailure(Exception):
    def __init__(self, error):
        super().__init__(f"{error.type} ({error.status_code}): {error.message}")
        self.error = error


def raise_litellm(error):
    raise LitellmFailure(LitellmError(error["type"], error["mro"], error["status_code"], error["message"]))


class LitellmAzureAI(_Litellm):
    """litellm's azure_ai provider: model "azure_ai/<model>", api_base = the proxy's root."""
    id = "litellm-azure_ai"

    def target(self, stack, key):
        return {"model": f"azure_ai/{stack.engine.model}", "api_base": stack.url, "api_key": key}


class LitellmAzure(_Litellm):
    """litellm's azure provider: model "azure/<deployment>", api_base and api_version."""
    id = "litellm-azure"
    sends_include_usage = True  # litellm's azure provider passes stream_options on (azure_ai drops it)

    def target(self, stack, key):
        return {"model": f"azure/{stack.engine.model}", "api_base": stack.url, "api_key": key,
                "api_version": AZURE_OPENAI_API_VERSION}


FRAMEWORKS = [
    LangChainAzureAIInference(),
    LangChainAzureAIOpenAI(),
    LangChainOpenAI(),
    LitellmAzureAI(),
    LitellmAzure(),
    LmDeluge(),
    LlamaIndexAzureInference(),
]
