"""Mailing a report's HTML over SMTP, configured by the environment.

``BIZCHAT_SMTP_URL``: ``smtp://user@host:port`` (plain), ``smtp+starttls://...`` or
``smtp://...?starttls=1`` (upgrade with STARTTLS), ``smtps://...`` (TLS from the start);
``from=`` sets the sender (default ``bizchat@<host>``). The password comes only from
``BIZCHAT_SMTP_PASSWORD``: a URL carrying one is refused, so it never lands in a shell
history, a crontab or a log. The mail and any error text are scanned for secrets.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DeliveryError

URL_ENV = "BIZCHAT_SMTP_URL"
PASSWORD_ENV = "BIZCHAT_SMTP_PASSWORD"
CA_ENV = "BIZCHAT_SMTP_CAFILE"   # a CA bundle for a server with its own certificate


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send (never the password: that is read at send time)."""

    host: str
    port: int
    user: str | None
    starttls: bool
    tls: bool
    sender: str


def settings(url: str | None = None) -> SmtpSettings:
    """Parse ``BIZCHAT_SMTP_URL`` (or ``url``)."""
    url = url if url is not None else os.environ.get(URL_ENV, "")
    if not url:
        raise DeliveryError(f"Mail delivery needs ${URL_ENV}, e.g. "
                            "smtp+starttls://reports@mail.example:587 (the password in "
                            f"${PASSWORD_ENV}).", input=URL_ENV)
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtp+starttls", "smtps"):
        raise DeliveryError(f"${URL_ENV} starts with smtp://, smtp+starttls:// or smtps://, "
                            f"not {parts.scheme!r}://.", input=URL_ENV)
    if parts.password:
        raise DeliveryError(f"${URL_ENV} must not contain the password; put it in "
                            f"${PASSWORD_ENV}.", input=URL_ENV)
    if not parts.hostname:
        raise DeliveryError(f"${URL_ENV} names no host.", input=URL_ENV)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    tls = parts.scheme == "smtps"
    starttls = parts.scheme == "smtp+starttls" or query.get("starttls", "") in ("1", "true", "yes")
    try:
        port = parts.port or (465 if tls else 587 if starttls else 25)
    except ValueError:
        raise DeliveryError(f"${URL_ENV} has a port that is not a number.", input=URL_ENV) from None
    return SmtpSettings(host=parts.hostname, port=port,
                        user=unquote(parts.username) if parts.username else None,
                        starttls=starttls, tls=tls,
                        sender=query.get("from") or f"bizchat@{parts.hostname}")


def build_message(cfg: SmtpSettings, to: list[str], subject: str, text: str,
                  html_path: Path) -> EmailMessage:
    """A mail with a short text and the report's HTML attached."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = cfg.sender, ", ".join(to), subject
    msg.set_content(text)
    msg.add_attachment(Path(html_path).read_text(encoding="utf-8"), subtype="html",
                       charset="utf-8", filename=Path(html_path).name)
    return msg


def send(cfg: SmtpSettings, msg: EmailMessage, *, timeout: float = 30.0) -> None:
    """Hand the mail to the SMTP server; DeliveryError on any failure."""
    password = os.environ.get(PASSWORD_ENV) or None
    context = ssl.create_default_context(cafile=os.environ.get(CA_ENV) or None)
    try:
        client: smtplib.SMTP
        if cfg.tls:
            client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
        with client:
            if cfg.starttls:
                client.starttls(context=context)
            if cfg.user:
                if password is None:
                    raise DeliveryError(f"The SMTP user {cfg.user!r} needs a password in "
                                        f"${PASSWORD_ENV}.", input=PASSWORD_ENV)
                client.login(cfg.user, password)
            client.send_message(msg)
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"The mail to {msg['To']} via {cfg.host}:{cfg.port} failed: "
                            f"{exc}", input=msg["To"]) from None
