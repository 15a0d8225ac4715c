"""Sending one message through one channel: Slack-compatible webhook, signed JSON webhook, SMTP.

``send`` raises ``DeliveryError`` (one sentence, never a secret such as the Slack URL) when the
channel did not take the message; the notifier records that as a failed attempt and retries.

Email to several recipients can half succeed: the server takes the message for some and refuses
others (``550 no such user``, a ``451`` greylisting). That is a failed attempt too, but one that
says who has the message (``DeliveryError.delivered``); the notifier keeps that list with the
delivery, and a retry is sent only to those who do not have it yet (``Message.delivered``).

Signed webhooks
---------------
Each webhook request carries ``X-Shiprail-Timestamp: <unix seconds>``, the time of this attempt,
``X-Shiprail-Event`` and ``X-Shiprail-Delivery``. When the channel has ``secret_env``, it also
carries ``X-Shiprail-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the secret, of
``<timestamp>.<raw body>`` (the timestamp header's value, a full stop, then the body bytes exactly
as received).

The timestamp is part of what is signed (as Slack's ``v0:{timestamp}:{body}`` and Stripe's
``{t}.{payload}`` do), so a captured request cannot be replayed later under a fresh timestamp: a
receiver recomputes the HMAC over the timestamp it got and the raw body, compares in constant
time, and refuses a timestamp more than five minutes from its own clock (``verify_signature``
does all three). Each retry is signed anew with its own timestamp. Receivers that must not act
twice on one notification deduplicate on ``X-Shiprail-Delivery`` (also ``delivery_id`` in the
body): a send that timed out on shiprail's side may have arrived.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import httpx

from shiprail import defaults
from shiprail.notifiers import ChannelConfig, EmailChannel, SlackChannel, WebhookChannel
from shiprail.notifiers.messages import (
    Message,
    email_body,
    headline,
    slack_context,
    slack_text,
    subject,
    webhook_body,
)
from shiprail.providers.common import one_line
from shiprail.providers.http import request_within
from shiprail.text import is_digits

USER_AGENT = "shiprail-notifier/1"


class DeliveryError(Exception):
    """A channel did not take a message; the text says why in one sentence.

    ``retry_after_s``: how long the receiver asked to be left alone before the next attempt (an
    HTTP 429 or 503 with ``Retry-After``), or None when it did not say. ``delivered``: the email
    recipients that did take it in this attempt; ``refused``: those that did not, each with the
    server's answer (``550 5.1.1 no such user``).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        delivered: Sequence[str] = (),
        refused: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.delivered = tuple(delivered)
        self.refused = dict(refused or {})


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 or 503 response's ``Retry-After`` asks for (RFC 9110 §10.2.3); None if it asks nothing.

    The header is either a number of seconds or an HTTP date; a date is taken relative to the
    response's own ``Date`` (the receiver's clock against itself: shiprail's is not read here),
    and ignored without one.
    """
    value = response.headers.get("retry-after")
    if value is None or response.status_code not in (429, 503):
        return None
    value = value.strip()
    if is_digits(value):
        return float(value)
    date = response.headers.get("date")
    try:
        delay = (parsedate_to_datetime(value) - parsedate_to_datetime(date)).total_seconds() if date else None
    except (TypeError, ValueError):
        return None
    return None if delay is None else max(0.0, delay)


# ------------------------------------------------------------------------------------ signing


def signed_content(timestamp: str, body: bytes) -> bytes:
    """What the signature covers: ``<timestamp>.<raw body>``."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Shiprail-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the signed content."""
    mac = hmac.new(secret.encode("utf-8"), signed_content(timestamp, body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    now: datetime,
    tolerance_s: float = defaults.NOTIFY_SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within ``tolerance_s`` of ``now``."""
    # Both headers come from whoever sent the request: a timestamp of "²" (isdigit() but not
    # int()) or a signature with a non-ASCII character (compare_digest refuses such str) must be
    # a refusal, not an exception in the receiver.
    if not timestamp or not signature or not is_digits(timestamp):
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"), signature.encode("utf-8", "replace"))


# ------------------------------------------------------------------------------------ sending


def send(
    channel: ChannelConfig,
    message: Message,
    *,
    env: Mapping[str, str],
    now: datetime,
    timeout_s: float = defaults.NOTIFY_TIMEOUT_SECONDS,
    tls: ssl.SSLContext | None = None,
    http: httpx.Client | None = None,
) -> tuple[str, ...]:
    """Deliver ``message`` through ``channel``; ``DeliveryError`` when it was not taken.

    Returns the email recipients this attempt reached (none for a webhook). ``env`` holds the
    variables the channel names (URL, secret); ``now`` stamps signed webhooks; ``tls`` is the
    context for SMTP STARTTLS (by default the system's trusted CAs); ``http`` is a client to reuse
    (making one costs tens of milliseconds of CPU: it loads the CA bundle).
    """
    if isinstance(channel, SlackChannel):
        _send_slack(channel, message, env, timeout_s, http)
    elif isinstance(channel, WebhookChannel):
        _send_webhook(channel, message, env, now, timeout_s, http)
    elif isinstance(channel, EmailChannel):
        return _send_email(channel, message, env, timeout_s, tls)
    else:  # pragma: no cover - the config union is closed
        raise DeliveryError(f"channel type {type(channel).__name__} cannot send")
    return ()


def http_client() -> httpx.Client:
    """A client for ``send`` to reuse: no redirects followed (a webhook that moved is an error)."""
    return httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})


def _post(
    url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, what: str, http: httpx.Client | None
) -> None:
    """POST and require a 2xx within ``timeout_s`` for the whole answer; errors name ``what``, never
    the URL (a Slack URL is a secret).

    One deadline for connecting, the headers and the body (``request_within``): a receiver
    answering a byte at a time would otherwise hold the channel's sender, and outlast the claim
    on the delivery so that another notifier sent it again meanwhile.
    """
    try:
        if http is not None:
            answer = request_within(http, "POST", url, content=body, headers=headers, timeout_s=timeout_s)
        else:
            with http_client() as client:
                answer = request_within(client, "POST", url, content=body, headers=headers, timeout_s=timeout_s)
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{what} did not answer within {timeout_s:g}s ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise DeliveryError(f"{what} could not be reached: {reason}") from None
    if not 200 <= answer.status < 300:
        said = answer.text.strip().replace("\n", " ")[:200]
        wait = retry_after(httpx.Response(answer.status, headers=answer.headers))
        raise DeliveryError(
            f"{what} answered HTTP {answer.status}"
            + (f": {said}" if said else "")
            + (f" (retry after {wait:g}s)" if wait is not None else ""),
            retry_after_s=wait,
        )


def slack_escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as Slack's entities, as its docs require of any text not meant as markup.

    A reason is written by a person (``--reason``) or a plugin (a probe's URL): ``<!channel>`` in
    it would page a whole channel, and ``<https://…|the runbook>`` show a link as something else.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_document(message: Message) -> dict[str, Any]:
    """The JSON a Slack incoming webhook takes: the plain text, and blocks for the headline and its context.

    The context is built on its own, not cut from the text at its first line break: a reason
    written over several lines would otherwise put its second line in the context.
    """
    return {
        "text": slack_escape(slack_text(message)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{slack_escape(headline(message))}*"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(slack_context(message))}]},
        ],
    }


def _send_slack(
    channel: SlackChannel, message: Message, env: Mapping[str, str], timeout_s: float, http: httpx.Client | None
) -> None:
    url = env.get(channel.url_env)
    if not url:
        raise DeliveryError(
            f"the Slack webhook URL is missing: set {channel.url_env} where the notifier runs "
            f"(channel {message.channel})"
        )
    body = json.dumps(slack_document(message), ensure_ascii=False).encode("utf-8")
    what = f"the Slack webhook (${channel.url_env})"
    _post(url, body, {"Content-Type": "application/json"}, timeout_s, what, http)


def _send_webhook(
    channel: WebhookChannel,
    message: Message,
    env: Mapping[str, str],
    now: datetime,
    timeout_s: float,
    http: httpx.Client | None,
) -> None:
    body = json.dumps(webhook_body(message), ensure_ascii=False, sort_keys=True).encode("utf-8")
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "X-Shiprail-Event": message.event,
        "X-Shiprail-Delivery": str(message.delivery_id),
        defaults.NOTIFY_TIMESTAMP_HEADER: timestamp,
    }
    if channel.secret_env:
        secret = env.get(channel.secret_env)
        if not secret:
            raise DeliveryError(
                f"the webhook signing secret is missing: set {channel.secret_env} where the notifier runs "
                f"(channel {message.channel})"
            )
        headers[defaults.NOTIFY_SIGNATURE_HEADER] = sign(secret, timestamp, body)
    host = httpx.URL(channel.url).host or channel.url
    _post(channel.url, body, headers, timeout_s, f"the webhook at {host}", http)


def email_message(channel: EmailChannel, message: Message) -> EmailMessage:
    """The email for ``message``: subject, plain-text body, and a Message-ID stable per delivery."""
    mail = EmailMessage()
    mail["Subject"] = subject(message)
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail["Date"] = format_datetime(message.at.astimezone(UTC))
    # The same delivery retried keeps its Message-ID, so a mail client shows it once.
    mail["Message-ID"] = f"<shiprail.{message.delivery_id}.{message.seq}@{message.release_id}>"
    mail["X-Shiprail-Event"] = message.event
    mail["X-Shiprail-Delivery"] = str(message.delivery_id)
    mail.set_content(email_body(message))
    return mail


def _answer(code: int, text: bytes | str) -> str:
    """An SMTP answer as one line: ``550 5.1.1 no such user``."""
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return one_line(f"{code} {said.strip()}", 200)


def _refusal(where: str, refused: Mapping[str, str], tried: int, reached: Sequence[str]) -> str:
    """``… refused 1 of 2 recipients: bob@x (550 no such user); it reached alice@x``."""
    named = "; ".join(f"{address} ({answer})" for address, answer in refused.items())
    said = f"{where} refused {len(refused)} of {tried} recipient{'s' if tried != 1 else ''}: {named}"
    return said + (f"; it reached {', '.join(reached)}" if reached else "")


class _Smtp(smtplib.SMTP):
    """smtplib's client, connected after it is built, so that a watchdog can reach its socket.

    ``cut`` is the watchdog's: set, the deadline passed. Set before the socket existed (a slow
    name lookup), the socket is refused as soon as it is made, before the greeting is read.
    """

    def __init__(self, host: str, timeout: float, cut: threading.Event) -> None:
        super().__init__(timeout=timeout)
        # What STARTTLS checks the certificate against: smtplib keeps it only when it connects at once.
        self._host = host
        self._cut = cut

    # smtplib's own subclass hook (SMTP_SSL overrides it too); typeshed does not declare it.
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        if self._cut.is_set():
            sock.close()
            raise TimeoutError
        return sock


def _send_email(
    channel: EmailChannel, message: Message, env: Mapping[str, str], timeout_s: float, tls: ssl.SSLContext | None
) -> tuple[str, ...]:
    where = f"the SMTP server {channel.smtp_host}:{channel.smtp_port}"
    if not channel.to:
        raise DeliveryError(f"channel {message.channel} has no recipients: give it `to`")
    # A retry after some recipients took the message goes only to the others: nobody gets it twice.
    remaining = [address for address in channel.to if address not in message.delivered]
    if not remaining:
        return ()
    mail = email_message(channel, message)
    password = None
    if channel.username is not None and channel.password_env:
        password = env.get(channel.password_env)
        if not password:
            raise DeliveryError(
                f"the SMTP password is missing: set {channel.password_env} where the notifier runs "
                f"(channel {message.channel})"
            )
    # One deadline for the whole conversation: smtplib's timeout bounds each read, so a server
    # answering a byte at a time never timed out. At the deadline the socket is shut down, which
    # wakes the blocked read (closing it would not).
    cut = threading.Event()
    smtp = _Smtp(channel.smtp_host, timeout_s, cut)

    def hang_up() -> None:
        cut.set()
        if smtp.sock is not None:
            with contextlib.suppress(OSError):
                smtp.sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout_s, hang_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            smtp.connect(channel.smtp_host, channel.smtp_port)
            smtp.ehlo()
            if channel.starttls:
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(f"{where} does not offer STARTTLS, and channel {message.channel} requires it")
                smtp.starttls(context=tls or ssl.create_default_context())
                smtp.ehlo()
            if channel.username is not None and password is not None:
                # Only reached after STARTTLS: the schema refuses a username without it.
                smtp.login(channel.username, password)
            # The To header names every recipient; the envelope only those still to be reached.
            refused_now = smtp.send_message(mail, to_addrs=remaining)
        except BaseException as exc:
            smtp.close()
            if cut.is_set() and not isinstance(exc, DeliveryError):
                raise TimeoutError from None  # hung up on at the deadline: said so below
            raise
        finally:
            watchdog.cancel()
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where} refused the login of {channel.username} ({exc.smtp_code})") from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{where} does not offer SMTP AUTH, and channel {message.channel} has a username") from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused = {address: _answer(*answer) for address, answer in exc.recipients.items()}
        raise DeliveryError(_refusal(where, refused, len(remaining), ()), refused=refused) from None
    except smtplib.SMTPResponseException as exc:
        said = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(f"{where} answered {exc.smtp_code}: {said.strip()[:200]}") from None
    except TimeoutError:
        raise DeliveryError(f"{where} did not answer within {timeout_s:g}s") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise DeliveryError(f"{where} could not take the message: {reason}") from None
    # The server has taken the message: a QUIT that goes wrong now must not fail the attempt, or
    # its retry would send the message again.
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()
    smtp.close()
    reached = tuple(address for address in remaining if address not in refused_now)
    if refused_now:
        refused = {address: _answer(*answer) for address, answer in refused_now.items()}
        raise DeliveryError(_refusal(where, refused, len(remaining), reached), delivered=reached, refused=refused)
    return reached
