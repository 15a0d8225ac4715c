"""A receiver that answers a byte at a time: each read is quick, the whole answer is not.

The channel's timeout bounds the whole send (connecting, the answer, the SMTP conversation), so
a slow receiver can neither hold the channel's sender nor outlast the claim on its delivery.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shiprail.notifiers import EmailChannel, WebhookChannel
from shiprail.notifiers.channels import DeliveryError, send, slack_escape
from shiprail.notifiers.messages import Message

NOW = dt.datetime(2026, 3, 2, 14, 5, tzinfo=dt.UTC)
MESSAGE = Message(
    1,
    "checkout-2.4.0",
    "checkout",
    "2.4.0",
    "2.3.1",
    "retry loop",
    "started",
    "eng",
    "hook",
    1,
    "k",
    "alice",
    NOW,
    "rolling_out",
)


def dribble(conn: socket.socket, text: bytes) -> None:
    # 0.1 s a byte: the HTTP answer takes 4.1 s in all, so a send cut off under 3 s was cut off by
    # the channel's timeout, with room for a loaded machine (1.61 s seen on CI against 1 s).
    for byte in text:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def http_dribbler(conn: socket.socket) -> None:
    conn.recv(65536)
    dribble(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def smtp_dribbler(conn: socket.socket) -> None:
    reader = conn.makefile("rb")
    dribble(conn, b"220 slow.example ESMTP\r\n")
    while line := reader.readline():
        dribble(conn, b"221 bye\r\n" if line.upper().startswith(b"QUIT") else b"250 OK\r\n")


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    sockets: list[socket.socket] = []

    def start(handler: Callable[[socket.socket], None]) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        sockets.append(listener)

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                handler(conn)
            except OSError:
                pass  # shiprail hung up, as it should
            finally:
                conn.close()

        threading.Thread(target=accept, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield start
    for listener in sockets:
        listener.close()


@pytest.mark.parametrize("kind", ["webhook", "email"])
def test_a_receiver_answering_a_byte_at_a_time_times_out_at_the_channels_timeout(
    server: Callable[[Callable[[socket.socket], None]], int], kind: str
) -> None:
    if kind == "webhook":
        port = server(http_dribbler)
        channel: WebhookChannel | EmailChannel = WebhookChannel(type="webhook", url=f"http://127.0.0.1:{port}/hook")
        expected = "did not answer within 1s"
    else:
        port = server(smtp_dribbler)
        channel = EmailChannel(type="email", to=["oncall@example.com"], smtp_port=port)
        expected = f"the SMTP server 127.0.0.1:{port} did not answer within 1s"
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        send(channel, MESSAGE, env={}, now=NOW, timeout_s=1.0)
    took = time.monotonic() - started
    assert expected in str(caught.value)
    assert took < 3.0, f"took {took:.2f}s with a 1 s timeout"


def test_slack_text_from_people_cannot_ping_a_channel_or_hide_a_link() -> None:
    assert slack_escape("<!channel> see <https://evil.example|the runbook> & fix") == (
        "&lt;!channel&gt; see &lt;https://evil.example|the runbook&gt; &amp; fix"
    )


def test_a_deadline_passed_while_still_connecting_is_kept(
    server: Callable[[Callable[[socket.socket], None]], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow name lookup uses up the timeout before there is a socket for the watchdog to cut."""
    port = server(smtp_dribbler)
    lookup = socket.getaddrinfo

    def slow_lookup(*args: object, **kwargs: object) -> object:
        time.sleep(1.2)
        return lookup(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="did not answer within 1s"):
        send(
            EmailChannel(type="email", to=["oncall@example.com"], smtp_port=port),
            MESSAGE,
            env={},
            now=NOW,
            timeout_s=1.0,
        )
    assert time.monotonic() - started < 2.0
