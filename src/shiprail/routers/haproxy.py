"""HAProxy router: server weights changed through the runtime API, without a reload.

Each command goes over its own connection to the admin socket (a unix socket path or
``host:port``): ``set weight BACKEND/SERVER N`` for both servers, then ``get weight`` to confirm.
The two servers' weights always add up to ``TOTAL``, so the canary's share is ``canary / TOTAL``.
"""

from __future__ import annotations

import math
import re
import socket
from typing import Literal

from pydantic import Field

from shiprail.routers.base import MAX_PORT, RouterError
from shiprail.schema.base import Duration, StrictModel
from shiprail.text import is_digits

TOTAL = 200
"""stable + canary server weights. HAProxy accepts 0..256, so 200 gives steps of 0.5 %."""

_GET_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)\s*$")


class HaproxyRouterConfig(StrictModel):
    """The admin socket (a path or ``host:port``) and the backend's two servers."""

    type: Literal["haproxy"] = Field(description="`haproxy`.")
    socket: str = Field(description="The runtime API socket: a path or host:port.")
    backend: str = Field(description="The backend holding both servers.")
    stable_server: str = Field(description="The stable version's server name in the backend.")
    canary_server: str = Field(description="The canary version's server name in the backend.")
    timeout: Duration = Field(5, description="The longest one runtime API command may take.")


def server_weights(weight: float) -> tuple[int, int]:
    """``(stable, canary)`` HAProxy weights for a canary percentage; ``RouterError`` if not representable."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise RouterError(f"a canary weight must be a number between 0 and 100, got {weight!r}")
    if not 0 <= weight <= 100:
        raise RouterError(f"a canary weight must be between 0 and 100, got {weight:g}")
    canary = round(weight * TOTAL / 100)
    if abs(canary * 100 / TOTAL - weight) > 1e-9:
        raise RouterError(f"HAProxy weights go in steps of {100 / TOTAL:g}%, so {weight:g} cannot be applied exactly")
    return TOTAL - canary, canary


def share(stable: int, canary: int) -> float:
    """The canary's percentage of traffic for two server weights."""
    if stable + canary == 0:
        raise RouterError("both servers have weight 0, so the backend sends traffic to neither")
    return round(100 * canary / (stable + canary), 6)


def parse_get_weight(reply: str, what: str) -> int:
    """The current weight from a ``get weight`` reply such as ``10 (initial 1)``."""
    match = _GET_WEIGHT.match(reply.strip())
    if not match:
        raise RouterError(f"HAProxy did not return a weight for {what}: {_one_line(reply)}")
    return int(match.group(1))


def parse_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """``(family, address)`` for a socket path, ``unix@path``, ``host:port`` or ``ipv4@host:port``."""
    text = address
    for prefix, kind in (("unix@", "unix"), ("ipv4@", "tcp"), ("ipv6@", "tcp")):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            if kind == "unix":
                return socket.AF_UNIX, text
            break
    else:
        if "/" in text or ":" not in text:
            return socket.AF_UNIX, text
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not is_digits(port):
        raise RouterError(f"the HAProxy socket {address!r} is neither a path nor host:port")
    if not 1 <= int(port) <= MAX_PORT:
        # Else socket.connect's OverflowError, at every pass of the controller, with a traceback.
        raise RouterError(
            f"the HAProxy socket {address!r} has port {port}, which no TCP port can have (1 to {MAX_PORT})"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


def socket_problem(config: HaproxyRouterConfig) -> str | None:
    """Why no connection could reach the runtime API at ``config.socket`` (checked when a service file is
    loaded: the controller would fail at the release's first step, and retry while it lived); else None."""
    try:
        parse_address(config.socket)
    except RouterError as exc:
        return f"{exc}; the controller could not reach its runtime API at the first step"
    return None


def _one_line(reply: str) -> str:
    text = " ".join(reply.split())
    return text[:500] if text else "an empty reply"


class HaproxyRouter:
    """Splits one service's traffic between two servers of a HAProxy backend."""

    def __init__(self, config: HaproxyRouterConfig) -> None:
        self.config = config
        self._family, self._address = parse_address(config.socket)

    def command(self, line: str) -> str:
        """Send one runtime API command on a fresh connection and return the whole reply."""
        try:
            with socket.socket(self._family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.config.timeout)
                sock.connect(self._address)
                sock.sendall(line.encode() + b"\n")
                chunks: list[bytes] = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise RouterError(
                f"the HAProxy runtime API at {self.config.socket} did not answer {line!r} within {self.config.timeout}s"
            ) from exc
        except OSError as exc:
            raise RouterError(
                f"cannot reach the HAProxy runtime API at {self.config.socket}: {exc.strerror or exc}"
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def _server(self, server: str) -> str:
        return f"{self.config.backend}/{server}"

    def get_server_weight(self, server: str) -> int:
        """A server's current weight, from ``get weight``."""
        target = self._server(server)
        return parse_get_weight(self.command(f"get weight {target}"), target)

    def set_server_weight(self, server: str, weight: int) -> None:
        """``set weight`` on one server; HAProxy answers nothing when it accepts it."""
        target = self._server(server)
        reply = self.command(f"set weight {target} {weight}")
        if reply.strip():
            raise RouterError(f"HAProxy refused weight {weight} for {target}: {_one_line(reply)}")

    @property
    def calls_end_with_caller(self) -> bool:
        """Whether nothing of a call can land once its controller is gone: over a unix socket only.

        A command written to a unix socket is in HAProxy's queue before the write returns, and is
        applied as HAProxy reads it (a half-set pair of weights reads back as such). Over TCP the
        kernel keeps a killed process's unacknowledged bytes and retransmits them for minutes
        (tcp_orphan_retries): a `set weight` sent into a network that lost it can reach a remote
        HAProxy after another controller has taken the release over and set its own, so that call
        is fenced like a command router's.
        """
        return self._family == socket.AF_UNIX

    @property
    def call_timeout_s(self) -> float:
        """The longest one call may take: ``set_weight`` sends up to six runtime API commands."""
        return 6 * float(self.config.timeout)

    def weights(self) -> tuple[int, int]:
        """``(stable, canary)`` weights as HAProxy has them now."""
        return self.get_server_weight(self.config.stable_server), self.get_server_weight(self.config.canary_server)

    def current_weight(self) -> float:
        """The canary's share from the two servers' current weights."""
        return share(*self.weights())

    def set_weight(self, weight: float) -> None:
        """Set both servers' weights (the one that rises first), then read them back."""
        stable, canary = server_weights(weight)
        old_stable, old_canary = self.weights()
        if (old_stable, old_canary) == (stable, canary):
            return
        # Raising one server first keeps the in-between share between the old and the new one, and
        # never leaves both at 0 (going from 0 to 100 lowering first would send traffic nowhere).
        if canary > old_canary:
            order = [(self.config.canary_server, canary), (self.config.stable_server, stable)]
        else:
            order = [(self.config.stable_server, stable), (self.config.canary_server, canary)]
        for server, value in order:
            self.set_server_weight(server, value)
        now = self.weights()
        if now != (stable, canary):
            raise RouterError(
                f"HAProxy reports weights stable={now[0]} canary={now[1]} after setting "
                f"stable={stable} canary={canary} in {self.config.backend}"
            )
