"""Every error a client can meet, as the SDK raises it and as raw HTTP shows it."""

import json

import pytest
import requests
from azure.ai.inference.models import UserMessage
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from clients import chat_client, embeddings_client
from harness import KEY, WRONG_KEY

API = "api-version=2024-05-01-preview"
HELLO = [UserMessage("hello")]


def azure_error(response, status, code):
    """Asserts Azure's error shape and returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("status") == status
    assert response.headers.get("x-ms-error-code") == code
    return error


def post(url, path, payload, key=KEY, query=API, headers=None, raw=None):
    hdrs = {"content-type": "application/json"}
    if key:
        hdrs["api-key"] = key
    hdrs.update(headers or {})
    data = raw if raw is not None else json.dumps(payload)
    return requests.post(f"{url}{path}{'?' + query if query else ''}", data=data, headers=hdrs, timeout=30)


# ---- keys ----------------------------------------------------------------------------------

def test_wrong_key_chat(mock_chat):
    with chat_client(mock_chat.url, key=WRONG_KEY) as client:
        with pytest.raises(ClientAuthenticationError) as caught:
            client.complete(messages=HELLO)
    e = caught.value
    assert e.status_code == 401 and e.error.code == "401"
    assert "invalid subscription key" in e.message
    assert mock_chat.engine.requests() == [], "a refused request never reaches the engine"


def test_wrong_key_embeddings_and_info(mock_embed):
    with embeddings_client(mock_embed.url, key=WRONG_KEY) as client:
        with pytest.raises(ClientAuthenticationError) as caught:
            client.embed(input=["x"])
        assert caught.value.status_code == 401
        with pytest.raises(ClientAuthenticationError) as caught:
            client.get_model_info()
        assert caught.value.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"api-key": WRONG_KEY}, {"Authorization": f"Bearer {WRONG_KEY}"},
                                     {"Authorization": KEY}, {"api-key": ""}])
def test_raw_missing_or_wrong_key(mock_chat, headers):
    r = post(mock_chat.url, "/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, key=None,
             headers=headers)
    azure_error(r, 401, "401")


@pytest.mark.parametrize("headers", [{"api-key": KEY}, {"Authorization": f"Bearer {KEY}"}])
def test_raw_either_key_header_works(mock_chat, headers):
    r = post(mock_chat.url, "/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, key=None,
             headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: x"


def test_health_and_ready_need_no_key(mock_chat):
    for path in ("/health", "/ready"):
        assert requests.get(mock_chat.url + path, timeout=10).status_code == 200


def test_open_proxy_takes_any_or_no_credential(mock_chat, proxy_factory):
    proxy = proxy_factory(mock_chat.engine.url, key=None)
    with chat_client(proxy.url, key="anything") as client:
        assert client.complete(messages=HELLO).choices[0].message.content == "echo: hello"
    r = post(proxy.url, "/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, key=None)
    assert r.status_code == 200, r.text


# ---- api-version ---------------------------------------------------------------------------

def test_unsupported_api_version(mock_chat):
    with chat_client(mock_chat.url, api_version="2023-01-01") as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=HELLO)
    e = caught.value
    assert e.status_code == 400 and e.error.code == "UnsupportedApiVersion"
    assert "2023-01-01" in e.message and "2024-05-01-preview" in e.message


def test_unsupported_api_version_embeddings(mock_embed):
    with embeddings_client(mock_embed.url, api_version="2023-01-01") as client:
        with pytest.raises(HttpResponseError) as caught:
            client.embed(input=["x"])
    assert caught.value.status_code == 400 and caught.value.error.code == "UnsupportedApiVersion"


CHAT_BODY = {"messages": [{"role": "user", "content": "x"}]}
EMBED_BODY = {"input": ["x"]}


@pytest.mark.parametrize("prefix", ["/models", "/api/models"])
def test_missing_api_version_under_foundry_prefixes(mock_chat, mock_embed, prefix):
    """Under /models/ and /api/models/ the proxy acts as a Foundry resource: api-version is required."""
    for stack, path, body in ((mock_chat, "/chat/completions", CHAT_BODY), (mock_embed, "/embeddings", EMBED_BODY)):
        error = azure_error(post(stack.url, prefix + path, body, query=""), 400, "MissingApiVersionParameter")
        assert "api-version" in error["message"]
    r = requests.get(f"{mock_chat.url}{prefix}/info", headers={"api-key": KEY}, timeout=10)
    azure_error(r, 400, "MissingApiVersionParameter")
    assert mock_chat.engine.requests() == [] and mock_embed.engine.requests() == []


def test_missing_api_version_at_the_root_means_the_default(mock_chat, mock_embed):
    """At the root the proxy acts as a serverless endpoint: no api-version is the default one."""
    r = post(mock_chat.url, "/chat/completions", CHAT_BODY, query="")
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: x"
    r = post(mock_embed.url, "/embeddings", EMBED_BODY, query="")
    assert r.status_code == 200, r.text
    r = requests.get(f"{mock_chat.url}/info", headers={"api-key": KEY}, timeout=10)
    assert r.status_code == 200 and r.json()["model_name"] == "mock-chat"


def test_missing_api_version_with_require_api_version(mock_chat, proxy_factory):
    proxy = proxy_factory(mock_chat.engine.url, extra_args=["--require-api-version"])
    azure_error(post(proxy.url, "/chat/completions", CHAT_BODY, query=""), 400, "MissingApiVersionParameter")
    r = requests.get(f"{proxy.url}/info", headers={"api-key": KEY}, timeout=10)
    azure_error(r, 400, "MissingApiVersionParameter")
    with chat_client(proxy.url) as client:  # the SDK always sends one
        assert client.complete(messages=HELLO).choices[0].message.content == "echo: hello"


def test_unsupported_api_version_raw(mock_chat):
    r = post(mock_chat.url, "/chat/completions", {"messages": []}, query="api-version=2099-01-01")
    azure_error(r, 400, "UnsupportedApiVersion")


# ---- bodies --------------------------------------------------------------------------------

@pytest.mark.parametrize("body,names", [
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}, "max_tokens"),
    ({}, "messages"),
])
def test_bad_body(mock_chat, body, names):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(body=body)
    e = caught.value
    assert e.status_code == 400, e.message
    assert e.error.code == "BadRequest"
    assert names in e.message
    assert mock_chat.engine.requests() == []


def test_body_not_json(mock_chat):
    r = post(mock_chat.url, "/chat/completions", None, raw="{not json")
    azure_error(r, 400, "BadRequest")


def test_unknown_field_without_pass_through(mock_chat):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(body={"messages": [{"role": "user", "content": "x"}], "top_k": 3})
    e = caught.value
    assert e.status_code == 400 and e.error.code == "extra_parameters_not_allowed"
    assert "top_k" in e.message and "pass-through" in e.message
    assert mock_chat.engine.requests() == []


def test_unknown_field_dropped(mock_chat):
    with chat_client(mock_chat.url) as client:
        client.complete(body={"messages": [{"role": "user", "content": "x"}], "top_k": 3},
                        headers={"extra-parameters": "drop"})
    sent = mock_chat.engine.last_request()["body"]
    assert "top_k" not in sent and sent["messages"] == [{"role": "user", "content": "x"}]


def test_invalid_extra_parameters_header(mock_chat):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=HELLO, headers={"extra-parameters": "sometimes"})
    assert caught.value.status_code == 400 and caught.value.error.code == "InvalidHeaderValue"


def test_body_too_large(mock_chat, proxy_factory):
    proxy = proxy_factory(mock_chat.engine.url, extra_args=["--max-body-size", "1024"])
    with chat_client(proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage("x" * 4096)])
    assert caught.value.status_code == 413


def test_unknown_route_and_wrong_method(mock_chat):
    r = requests.post(f"{mock_chat.url}/completions?{API}", headers={"api-key": KEY}, json={}, timeout=10)
    azure_error(r, 404, "404")
    r = requests.get(f"{mock_chat.url}/chat/completions?{API}", headers={"api-key": KEY}, timeout=10)
    azure_error(r, 405, "MethodNotAllowed")


# ---- the engine's own errors -----------------------------------------------------------------

def test_engine_error_keeps_status_and_message(chat):
    """An engine 400 (the mock's magic word; llama.cpp's context overflow) reaches the client as is."""
    prompt = "MOCK_ERROR_400" if chat.is_mock else "hello " * 3000
    with chat_client(chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage(prompt)], max_tokens=8)
    e = caught.value
    assert e.status_code == 400
    if chat.is_mock:
        assert "MOCK_ERROR_400" in e.message
    else:
        assert e.error.code == "context_length_exceeded" and "context" in e.message


@pytest.mark.parametrize("magic,status,text", [
    ("MOCK_ERROR_500", 500, "mock engine failure"),
    ("MOCK_ERROR_TEXT", 503, "engine overloaded"),
])
def test_engine_failure(mock_chat, magic, status, text):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage(magic)])
    assert caught.value.status_code == status
    assert text in caught.value.message
    r = post(mock_chat.url, "/chat/completions", {"messages": [{"role": "user", "content": magic}]})
    azure_error(r, status, r.json()["error"]["code"])


def test_engine_failure_on_a_stream_request(mock_chat):
    """The engine fails before the stream starts: a plain error, not a stream."""
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            list(client.complete(messages=[UserMessage("MOCK_ERROR_500")], stream=True))
    assert caught.value.status_code == 500


def test_engine_embeddings_failure(mock_embed):
    with embeddings_client(mock_embed.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.embed(input=["MOCK_ERROR_500"])
    assert caught.value.status_code == 500 and "mock engine failure" in caught.value.message


def test_engine_closes_the_connection(mock_chat):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage("MOCK_CLOSE")])
    assert caught.value.status_code == 502
    assert caught.value.error.code in ("UpstreamUnreachable", "UpstreamInvalidResponse")


def test_engine_breaks_off_mid_stream(mock_chat):
    """The SDK skips events without choices, so it sees a stream that stops without a
    finish_reason; on the wire the proxy ends it with an error event and [DONE]."""
    with chat_client(mock_chat.url) as client:
        updates = list(client.complete(messages=[UserMessage("a b c MOCK_BREAK_STREAM")], stream=True))
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "echo: a"
    assert not [u for u in updates if u.choices and u.choices[0].finish_reason]

    r = post(mock_chat.url, "/chat/completions",
             {"messages": [{"role": "user", "content": "a b c MOCK_BREAK_STREAM"}], "stream": True})
    assert r.status_code == 200
    events = [line[len("data: "):] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] and error["message"] and error["status"] >= 500


def test_engine_too_slow(mock_chat, proxy_factory):
    proxy = proxy_factory(mock_chat.engine.url, extra_args=["--upstream-headers-timeout", "1"])
    with chat_client(proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage("MOCK_SLOW")])
    assert caught.value.status_code == 504 and caught.value.error.code == "UpstreamTimeout"


# ---- engine down ---------------------------------------------------------------------------

def test_upstream_down_chat(dead_proxy):
    with chat_client(dead_proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=HELLO)
    # A refused connection (an engine still loading) is retried briefly, then 503 + Retry-After.
    e = caught.value
    assert e.status_code == 503 and e.error.code == "ServiceUnavailable"
    assert "refuses connections" in e.message
    assert e.response.headers["retry-after"] == "5"


def test_upstream_down_stream(dead_proxy):
    with chat_client(dead_proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            list(client.complete(messages=HELLO, stream=True))
    assert caught.value.status_code == 503 and caught.value.error.code == "ServiceUnavailable"


def test_upstream_down_embeddings(dead_proxy):
    with embeddings_client(dead_proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.embed(input=["x"])
    assert caught.value.status_code == 503 and caught.value.error.code == "ServiceUnavailable"


def test_upstream_down_info(dead_proxy):
    with chat_client(dead_proxy.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.get_model_info()
    assert caught.value.status_code == 503
    assert caught.value.error.code == "ServiceUnavailable"


def test_upstream_down_health_and_ready(dead_proxy):
    assert requests.get(dead_proxy.url + "/health", timeout=10).status_code == 200
    r = requests.get(dead_proxy.url + "/ready", timeout=10)
    assert r.status_code == 503
    assert r.headers.get("retry-after")


def test_missing_route_via_sdk_is_resource_not_found(mock_chat):
    """An endpoint with a wrong path prefix: the SDK raises ResourceNotFoundError."""
    with chat_client(mock_chat.url + "/nowhere") as client:
        with pytest.raises(ResourceNotFoundError) as caught:
            client.complete(messages=HELLO)
    assert caught.value.status_code == 404


# ---- engine misbehaviour -------------------------------------------------------------------

def test_engine_answers_garbage(mock_chat):
    with chat_client(mock_chat.url) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage("MOCK_BAD_JSON")])
    assert caught.value.status_code == 502 and caught.value.error.code == "UpstreamInvalidResponse"


def test_engine_answers_json_to_a_stream_request(mock_chat):
    """Either the proxy turns the completion into a stream, or it says the answer was invalid;
    an empty stream without an error must not happen."""
    with chat_client(mock_chat.url) as client:
        try:
            updates = list(client.complete(messages=[UserMessage("MOCK_JSON_FOR_STREAM")], stream=True))
        except HttpResponseError as e:
            assert e.status_code == 502
            return
    assert "".join(u.choices[0].delta.content or "" for u in updates if u.choices) == "echo: MOCK_JSON_FOR_STREAM"


def test_client_hanging_up_stops_the_engine_stream(mock_chat):
    """A client that closes a stream early: the proxy drops its engine connection at once, so the
    engine stops generating (the mock records the broken pipe)."""
    import time

    with chat_client(mock_chat.url) as client:
        stream = client.complete(messages=[UserMessage("MOCK_LONG_STREAM")], stream=True)
        updates = iter(stream)
        next(updates)
        next(updates)
        stream.close()
    deadline = time.monotonic() + 3  # the whole answer would take 4 s more
    while time.monotonic() < deadline:
        if any(r["path"] == "/mock/aborted" for r in mock_chat.engine.requests()):
            return
        time.sleep(0.1)
    pytest.fail("the engine kept streaming after the client hung up")


def test_ready_follows_the_engine(mock_chat):
    """/ready is 503 with Retry-After while the engine's model list fails (loading), 200 after."""
    from harness import http_post_json

    http_post_json(mock_chat.engine.url + "/mock/config", {"models_status": 503})
    try:
        r = requests.get(mock_chat.url + "/ready", timeout=10)
        error = azure_error(r, 503, "ServiceUnavailable")
        assert "not ready" in error["message"] and r.headers.get("retry-after")
    finally:
        mock_chat.engine.reset()
    assert requests.get(mock_chat.url + "/ready", timeout=10).status_code == 200
