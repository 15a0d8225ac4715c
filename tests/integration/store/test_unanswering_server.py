"""A PostgreSQL address that accepts connections but never answers fails an opening, never hangs it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shiprail import defaults
from shiprail.errors import StoreError
from shiprail.store.db import Store


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener completes TCP handshakes (the kernel does) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _open_in_thread(url: str) -> tuple[threading.Thread, list[BaseException | Store]]:
    outcome: list[BaseException | Store] = []

    def run() -> None:
        try:
            outcome.append(Store(url))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_server_that_never_answers_fails_the_opening_after_the_connect_timeout(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(defaults.PG_CONNECT_ARGS, "connect_timeout", 2)  # libpq's least
    began = time.monotonic()
    thread, outcome = _open_in_thread(f"postgresql+psycopg://nobody@127.0.0.1:{silent_port}/x")
    thread.join(20)
    assert not thread.is_alive(), "opening the store hung on a server that never answers"
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError)
    opened = f"postgresql+psycopg://nobody@127.0.0.1:{silent_port}/x"
    assert str(outcome[0]).startswith(f"cannot open the database {opened}: ")
    assert "timeout" in str(outcome[0])
    assert time.monotonic() - began < 15


def test_the_urls_own_connect_timeout_wins(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(defaults.PG_CONNECT_ARGS, "connect_timeout", 600)
    thread, outcome = _open_in_thread(f"postgresql+psycopg://nobody@127.0.0.1:{silent_port}/x?connect_timeout=2")
    thread.join(20)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StoreError)
    assert "timeout" in str(outcome[0])
