"""Notification channels named in ``shiprail.yaml`` and used by communication plans."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from shiprail.schema.base import Flag, StrictModel


class SlackChannel(StrictModel):
    """A Slack-compatible incoming webhook; ``url_env`` names the variable holding the URL."""

    type: Literal["slack"] = Field(description="`slack`.")
    url_env: str = Field(description="The environment variable holding the webhook URL.")


class WebhookChannel(StrictModel):
    """A generic JSON webhook signed with HMAC-SHA256 using the secret in ``secret_env``."""

    type: Literal["webhook"] = Field(description="`webhook`.")
    url: str = Field(description="The webhook URL: http:// or https://.")
    secret_env: str | None = Field(None, description="The environment variable holding the HMAC-SHA256 signing secret.")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")) or not url.split("://", 1)[1].strip():
            raise ValueError(f"an http:// or https:// URL is required, got {url!r}")
        return url


class EmailChannel(StrictModel):
    """Email over SMTP."""

    type: Literal["email"] = Field(description="`email`.")
    to: list[str] = Field(description="The recipients' addresses.")
    smtp_host: str = Field("127.0.0.1", description="The SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="The SMTP server's port.")
    sender: str = Field("shiprail@localhost", description="The From address.")
    starttls: Flag = Field(False, description="Whether to use STARTTLS.")
    username: str | None = Field(
        None, description="Log in to the SMTP server as this user (SMTP AUTH, after STARTTLS: needs `starttls: true`)."
    )
    password_env: str | None = Field(
        None, description="The environment variable holding the SMTP password, read where the notifier runs."
    )

    @model_validator(mode="after")
    def _login_only_encrypted(self) -> EmailChannel:
        if self.username is not None and not self.password_env:
            raise ValueError("username needs password_env: the environment variable holding the SMTP password")
        if self.password_env and self.username is None:
            raise ValueError("password_env needs username: the user to log in to the SMTP server as")
        if self.username is not None and not self.starttls:
            raise ValueError("username needs starttls: true (shiprail never sends a password unencrypted)")
        return self


ChannelConfig = Annotated[
    SlackChannel | WebhookChannel | EmailChannel,
    Field(discriminator="type"),
]
