"""Notification channels named in ``shiprail.yaml`` and used by communication plans."""

from __future__ import annotations

from email.utils import getaddresses
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


def _address(value: str) -> None:
    """Refuse what is not one email address (``oncall@example.com`` or ``On-call <oncall@example.com>``).

    A line break would be refused by the email library at every send; a missing ``@`` or a list
    in one string would be refused by the SMTP server at every send.
    """
    if any(ch in value for ch in "\r\n\t\0"):
        raise ValueError(f"{value!r} is not an email address: it holds a line break or control character")
    # getaddresses, not parseaddr: parseaddr reads "a@x, b@y" as a@x alone.
    found = getaddresses([value])
    if len(found) > 1:
        raise ValueError(f"{value!r} holds more than one address; give each as an item of its own")
    addr = found[0][1] if found else ""
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() or ch in ",;<>" for ch in addr):
        raise ValueError(f"{value!r} is not an email address, e.g. oncall@example.com")


class EmailChannel(StrictModel):
    """Email over SMTP."""

    type: Literal["email"] = Field(description="`email`.")
    to: list[str] = Field(description="The recipients' addresses, at least one, one per item.")
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

    @field_validator("to")
    @classmethod
    def _recipients(cls, to: list[str]) -> list[str]:
        # Checked when shiprail.yaml is read: otherwise `to: []` or a mistyped address failed
        # only at delivery, eight times over a quarter of an hour, long after the config was written.
        if not to:
            raise ValueError("at least one recipient is required, e.g. [oncall@example.com]")
        for address in to:
            _address(address)
        return to

    @field_validator("sender")
    @classmethod
    def _sender(cls, sender: str) -> str:
        _address(sender)
        return sender

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
