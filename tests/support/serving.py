"""Run an ASGI app with a real uvicorn server on 127.0.0.1, in a thread, for a test."""

from shiprail.serve.server import serve_in_thread as serving

__all__ = ["serving"]
