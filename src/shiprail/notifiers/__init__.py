"""Notification channels named in ``shiprail.yaml`` and used by communication plans."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shiprail.schema.base import StrictModel


class SlackChannel(StrictModel):
    """A Slack-compatible incoming webhook; ``url_env`` names the variable holding the URL."""

    type: Literal["slack"]
    url_env: str


class WebhookChannel(StrictModel):
    """A generic JSON webhook signed with HMAC-SHA256 using the secret in ``secret_env``."""

    type: Literal["webhook"]
    url: str
    secret_env: str | None = None


class EmailChannel(StrictModel):
    """Email over SMTP."""

    type: Literal["email"]
    to: list[str]
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    sender: str = "shiprail@localhost"
    starttls: bool = False


ChannelConfig = Annotated[
    SlackChannel | WebhookChannel | EmailChannel,
    Field(discriminator="type"),
]
