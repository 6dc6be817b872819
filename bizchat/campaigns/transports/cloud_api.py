"""CloudApiTransport: messages to the WhatsApp Cloud API over httpx.

``POST {BIZCHAT_GRAPH_URL}/{BIZCHAT_GRAPH_VERSION}/{phone_number_id}/messages`` with
``Authorization: Bearer $BIZCHAT_ACCESS_TOKEN``; templates with named parameters
(``parameter_name``) and free-form text in the documented shapes, and the outbox's
idempotency key as ``biz_opaque_callback_data`` so every status webhook echoes it.

Behaviour:

* at most ``rate`` requests per second per number (the outbox passes the account's
  ``send_rate``), shared by all worker threads, retries included; a message is not sent
  before its paced ``send_at``;
* HTTP 429, 5xx and the throughput codes (130429, 80007, 4) and "service unavailable"
  codes (131016, 133004) are retried with exponential backoff, honouring ``Retry-After``;
  while one request backs off, all workers hold (the limit is the number's, not the
  request's). A wait longer than ``max_backoff`` is not slept here: the result carries
  ``retry_after`` and the outbox defers the recipient;
* any other error answer becomes a failed result with the Cloud API code and message;
* a request that may have reached the API but got no answer (read timeout, connection
  dropped mid-request) is reported ``unknown``, so the outbox never resends it blindly;
* the access token is kept out of reprs, logs and exception texts.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from .base import OutboundMessage, SendResult, Transport, TransportError

log = logging.getLogger("bizchat.campaigns.transports.cloud_api")

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
THROTTLE_CODES = {4, 80007, 130429}          # the number's throughput: every worker holds
RETRY_CODES = THROTTLE_CODES | {131016, 133004}  # plus "service unavailable"


class _Secret:
    """A value that never shows itself in repr(), str() or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value

    def reveal(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<secret>" if self._value else "<unset>"

    __str__ = __repr__


class _Pacer:
    """At most ``rate`` request starts per second across threads; ``hold`` pauses all."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._hold = 0.0
        self._lock = threading.Lock()

    def wait(self, not_before: datetime | None = None) -> None:
        with self._lock:
            now = time.monotonic()
            earliest = now
            if not_before is not None:
                earliest += max(0.0, (not_before - datetime.now(UTC)).total_seconds())
            slot = max(earliest, self._next, self._hold)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._hold = max(self._hold, time.monotonic() + seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """The ``Retry-After`` header as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def build_payload(message: OutboundMessage) -> dict:
    """The Cloud API request body for one message."""
    payload: dict[str, object] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                  "to": message.to}
    if message.kind == "text":
        payload.update(type="text", text={"preview_url": False, "body": message.body or ""})
    elif message.kind == "template":
        if not message.template_name:
            raise TransportError(
                f"Message {message.idempotency_key} is a template send without a template "
                "name; give the broadcast a registered template.", key=message.idempotency_key)
        # The Cloud API writes language codes with an underscore: de-AT -> de_AT.
        language = (message.language or "de").replace("-", "_")
        template: dict[str, object] = {"name": message.template_name,
                                       "language": {"code": language}}
        components = _components(message.params or {})
        if components:
            template["components"] = components
        payload.update(type="template", template=template)
    else:
        raise TransportError(f"Cannot send a message of kind {message.kind!r}; use template "
                             "or text.", kind=message.kind)
    payload["biz_opaque_callback_data"] = message.idempotency_key
    return payload


def _named(values: dict) -> list[dict]:
    return [{"type": "text", "parameter_name": str(k), "text": str(v)} for k, v in values.items()]


def _components(params: dict) -> list[dict]:
    """Named parameters: a flat dict fills the body; ``{"header": {...}, "body": {...},
    "buttons": [{"index": 0, "sub_type": "url", "text": "..."}]}`` fills the parts."""
    parts = {"header", "body", "buttons"}
    structured = params and set(params) <= parts and all(
        isinstance(v, (dict, list)) for v in params.values())
    if not structured:
        return [{"type": "body", "parameters": _named(params)}] if params else []
    out = []
    for part in ("header", "body"):
        if params.get(part):
            out.append({"type": part, "parameters": _named(params[part])})
    for i, button in enumerate(params.get("buttons") or []):
        out.append({"type": "button", "sub_type": button.get("sub_type", "url"),
                    "index": str(button.get("index", i)),
                    "parameters": [{"type": "text", "text": str(button.get("text", ""))}]})
    return out


def _error(response: httpx.Response) -> tuple[int | None, str]:
    """(code, readable message) of a Cloud API error answer."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    text = error.get("message") or f"HTTP {response.status_code} {response.reason_phrase}"
    details = (error.get("error_data") or {}).get("details")
    if details and details not in text:
        text = f"{text}: {details}"
    return (int(code) if code is not None and (isinstance(code, int) or str(code).isdigit())
            else None), text


class CloudApiTransport(Transport):
    """The WhatsApp Cloud API. Configuration comes from arguments, else the environment
    (``BIZCHAT_GRAPH_URL``, ``BIZCHAT_GRAPH_VERSION``, ``BIZCHAT_ACCESS_TOKEN``)."""

    name = "cloud"
    honours_idempotency_key = False

    def __init__(self, *, base_url: str | None = None, version: str | None = None,
                 token: str | None = None, workers: int = 8, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 15.0):
        super().__init__()
        self.base_url = (base_url or os.environ.get("BIZCHAT_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/")
        self.version = (version or os.environ.get("BIZCHAT_GRAPH_VERSION") or DEFAULT_GRAPH_VERSION).strip("/")
        self._token = _Secret(token or os.environ.get("BIZCHAT_ACCESS_TOKEN"))
        self.workers = max(1, int(workers))
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self._client: httpx.Client | None = None
        self._pacer = _Pacer(None)

    def __repr__(self) -> str:
        return f"CloudApiTransport(base_url={self.base_url!r}, version={self.version!r})"

    def attach(self, ws, *, account: dict, rate: float | None = None) -> None:
        """Checks the configuration before anything is marked as sending."""
        if not self._token.reveal():
            raise TransportError(
                "No access token for the Cloud API: set the environment variable "
                "BIZCHAT_ACCESS_TOKEN (a system user token with whatsapp_business_messaging), "
                "or send with the simulated transport.")
        if not account.get("phone_number_id"):
            raise TransportError(
                f"The account {account.get('phone_e164')} has no Cloud API phone_number_id; "
                "set it with `bizchat accounts set <number> --phone-number-id ID`.",
                account_id=account.get("account_id"))
        super().attach(ws, account=account, rate=rate)
        self._pacer = _Pacer(rate)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        if not messages:
            return []
        if not self._token.reveal():
            raise TransportError("No access token for the Cloud API: set BIZCHAT_ACCESS_TOKEN.")
        if self.workers == 1 or len(messages) == 1:
            return [self._send_one(m) for m in messages]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(messages)),
                                thread_name_prefix="bizchat-cloud") as pool:
            return list(pool.map(self._send_one, messages))

    def _send_one(self, message: OutboundMessage) -> SendResult:
        key = message.idempotency_key
        pnid = message.phone_number_id or (self.account or {}).get("phone_number_id")
        try:
            payload = build_payload(message)
        except TransportError as exc:
            return SendResult(key, False, error_title=str(exc))
        url = f"{self.base_url}/{self.version}/{pnid}/messages"
        headers = {"Authorization": f"Bearer {self._token.reveal()}"}
        code, text, wait = None, "", None
        for attempt in range(self.max_retries + 1):
            self._pacer.wait(message.send_at if attempt == 0 else None)
            response = None
            try:
                response = self._http().post(url, json=payload, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing was written to the API: safe to try again.
                code, text, wait = None, f"cannot reach the Cloud API ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                # The request may have arrived: only a status webhook can tell.
                log.warning("no answer for message %s (%s); its outcome is unknown",
                            key, type(exc).__name__)
                return SendResult(key, False, error_title=f"no answer from the Cloud API "
                                  f"({type(exc).__name__}); outcome unknown", unknown=True)
            else:
                if response.is_success:
                    try:
                        message_id = response.json()["messages"][0]["id"]
                    except (ValueError, KeyError, IndexError, TypeError):
                        return SendResult(key, False, error_title="the Cloud API accepted the "
                                          "request but its answer had no message id; outcome "
                                          "unknown", unknown=True)
                    return SendResult(key, True, message_id=message_id, sent_at=datetime.now(UTC))
                code, text = _error(response)
                wait = retry_after_seconds(response.headers.get("retry-after"))
                retryable = (response.status_code == 429 or response.status_code >= 500
                             or code in RETRY_CODES)
                if not retryable:
                    return SendResult(key, False, error_code=code, error_title=text)
            if attempt == self.max_retries:
                break
            delay = wait if wait is not None else min(
                self.max_backoff, self.backoff * 2 ** attempt * (0.5 + random.random() / 2))
            if delay > self.max_backoff:
                break  # longer than we wait here: the outbox defers the recipient
            log.info("Cloud API answered %s for message %s; retry %d/%d in %.1f s",
                     code or text, key, attempt + 1, self.max_retries, delay)
            if code in THROTTLE_CODES or (response is not None and response.status_code == 429):
                self._pacer.hold(delay)
            time.sleep(delay)
        return SendResult(key, False, error_code=code, error_title=text,
                          retry_after=wait if wait is not None else self.backoff * 2 ** self.max_retries)
