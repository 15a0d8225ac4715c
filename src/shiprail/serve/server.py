"""uvicorn for shiprail's app: long-polls answered at once when the server shuts down."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from shiprail.serve.hub import FlagHub

# Seconds uvicorn lets requests finish at shutdown; long-polls are released first, so this is ample.
GRACEFUL_SHUTDOWN_SECONDS = 2


class Server(uvicorn.Server):
    """A uvicorn server whose shutdown first answers the SDK long-polls it holds (304, "nothing new").

    Without this, uvicorn waits for each held long-poll (up to a minute) until its graceful timeout
    and then cancels them, and SDKs see a dropped connection instead of an answer.
    """

    def __init__(self, app: FastAPI) -> None:
        super().__init__(
            uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
        )
        self.hub: FlagHub = app.state.hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.release_waiters()
        await super().shutdown(sockets)
