"""chromedb_client.Client against a scripted transport: what it retries, what it raises."""

import httpx
import pytest

from chromedb_client import ApiError, Client


def scripted(*answers: httpx.Response | type[httpx.TransportError]) -> tuple[Client, list[httpx.Request]]:
    """A client whose requests get `answers` in order; returns it and the requests it sent."""
    sent: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = queue.pop(0)
        if isinstance(answer, type):
            raise answer("refused", request=request)
        return answer

    return Client("http://tenant", api_key="k" * 16, transport=httpx.MockTransport(handle), retries=3), sent


COUNT = httpx.Response(200, json={"count": 3, "quota": 10})


def test_429_and_503_are_waited_out_then_the_answer_returned():
    client, sent = scripted(
        httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "rate_limited", "message": "slow"}),
        httpx.Response(503, headers={"Retry-After": "0"}, text="Request dropped due to backpressure"),
        COUNT,
    )
    assert client.count() == (3, 10)
    assert len(sent) == 3 and client.retried == 2
    assert sent[0].headers["Authorization"] == "Bearer " + "k" * 16


def test_a_refused_connection_is_retried():
    client, sent = scripted(httpx.ConnectError, COUNT)
    client._wait = lambda attempt, retry_after: None  # type: ignore[method-assign]
    assert client.count() == (3, 10) and len(sent) == 2


def test_a_4xx_raises_the_services_own_error_at_once():
    client, sent = scripted(
        httpx.Response(422, json={"error": "validation_error", "message": "top_k: too big", "field": "top_k"})
    )
    with pytest.raises(ApiError) as raised:
        client.search("x", top_k=999)
    assert (raised.value.status, raised.value.error, raised.value.field) == (422, "validation_error", "top_k")
    assert len(sent) == 1
    assert sent[0].read() == b'{"top_k":999,"mode":"semantic","query":"x"}'


def test_it_gives_up_after_its_retries():
    busy = httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "unavailable", "message": "busy"})
    client, sent = scripted(busy, busy, busy, busy)
    with pytest.raises(ApiError, match="503 unavailable"):
        client.count()
    assert len(sent) == 4


def test_results_come_back_typed():
    hit = {"id": "a", "text": "t", "metadata": {"k": 1}, "score": 0.5, "span": [0, 1]}
    client, _ = scripted(httpx.Response(200, json={"results": [hit]}))
    (found,) = client.search("t", mode="hybrid")
    assert (found.id, found.score, found.metadata, found.span) == ("a", 0.5, {"k": 1}, [0, 1])


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    import datetime
    import email.utils

    from chromedb_client.client import retry_after_seconds

    in_a_minute = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    assert retry_after_seconds("2") == 2.0
    assert 55 < retry_after_seconds(email.utils.format_datetime(in_a_minute, usegmt=True)) <= 60
    assert retry_after_seconds(None, default=0.5) == 0.5
    assert retry_after_seconds("soon", default=0.5) == 0.5
    assert retry_after_seconds("-3") == 0.0
