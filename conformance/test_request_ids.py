"""Request ids as Azure clients see them: x-request-id / apim-request-id on every answer, the
SDK's x-ms-client-request-id echoed, and the same id (plus trace context) sent to the engine."""

import pytest
from azure.ai.inference.models import UserMessage
from azure.core.exceptions import HttpResponseError

from clients import chat_client
from harness import WRONG_KEY

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_ids_on_a_success(mock_chat):
    seen = {}

    def hook(response):
        seen["request"] = dict(response.http_request.headers)
        seen["response"] = dict(response.http_response.headers)

    with chat_client(mock_chat.url) as client:
        client.complete(messages=[UserMessage("x")], raw_response_hook=hook, headers={"traceparent": TRACEPARENT})
    answer = {k.lower(): v for k, v in seen["response"].items()}
    sent = {k.lower(): v for k, v in seen["request"].items()}
    assert answer["x-request-id"] and answer["apim-request-id"] == answer["x-request-id"]
    assert answer["x-ms-client-request-id"] == sent["x-ms-client-request-id"]
    engine = mock_chat.engine.last_request()["headers"]
    assert engine["x-request-id"] == answer["x-request-id"]
    assert engine["traceparent"] == TRACEPARENT


@pytest.mark.parametrize("key,api_version,status", [(WRONG_KEY, "2024-05-01-preview", 401),
                                                    (None, "2023-01-01", 400)])
def test_ids_on_an_error(mock_chat, key, api_version, status):
    with chat_client(mock_chat.url, key=key or mock_chat.key, api_version=api_version) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.complete(messages=[UserMessage("x")], headers={"x-ms-client-request-id": "conformance-1"})
    headers = caught.value.response.headers
    assert caught.value.status_code == status
    assert headers.get("x-request-id") and headers.get("apim-request-id") == headers.get("x-request-id")
    assert headers.get("x-ms-client-request-id") == "conformance-1"
