"""The router interface: set the canary's share of traffic, and read it back."""

from __future__ import annotations

from typing import Protocol

from shiprail.errors import ShiprailError

# The highest TCP port: a router's address with a port above it (or 0) is one no connection reaches.
MAX_PORT = 65535


class RouterError(ShiprailError):
    """The router could not apply or read a weight; the controller retries and reports it."""


class Router(Protocol):
    """Splits one service's traffic between its stable and canary versions.

    Both calls are idempotent: setting the weight it already has is harmless. ``weight`` is the
    canary's percentage, 0 to 100; 0 is a complete rollback.

    A router may also say how long one call can take at most, as a ``call_timeout_s`` attribute
    (its own timeouts: nginx's lock, test, reload and new workers, the command's, the runtime API's). The
    controller keeps its lease on the release renewed that long (plus a margin) while a call runs,
    so no other controller applies a weight underneath it; a router that does not say gets
    ``defaults.ROUTER_CALL_TIMEOUT_SECONDS``.

    A router whose calls end with the process that makes them says so with a true
    ``calls_end_with_caller`` attribute: nothing it started (a script's process group, a job
    elsewhere) goes on to change the router once its controller is killed. Only then is a
    controller killed mid-call replaced at once on its host, or when its lease runs out elsewhere;
    a router that does not say (a command router, a plugin) fences the release until the call's
    deadline, since its call may still land.
    """

    def set_weight(self, weight: float) -> None:
        """Apply ``weight`` and return once the router has accepted it; raise ``RouterError``."""
        ...

    def current_weight(self) -> float:
        """The weight the router is applying now, read back from the router itself."""
        ...
