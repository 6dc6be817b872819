"""Build webhook bodies in the Cloud API's shape for tests and benchmarks, and read the
sample bodies in tests/fixtures/webhooks (see the README there)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"

PNID = "555000111"           # phone_number_id of the test account
DISPLAY = "4930901820"       # its display number (+49 30 901820)


def envelope(value: dict, field: str = "messages", pnid: str = PNID, display: str = DISPLAY) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": display, "phone_number_id": pnid}, **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA1", "changes": [{"field": field, "value": value}]}]}


def text_message(wa_id: str, message_id: str, body: str, ts: int, name: str = "Kundin",
                 user_id: str | None = None, **kw) -> dict:
    contact = {"profile": {"name": name}, "wa_id": wa_id}
    message = {"from": wa_id, "id": message_id, "timestamp": str(ts), "type": "text",
               "text": {"body": body}}
    if user_id:
        contact["user_id"] = user_id
        message["from_user_id"] = user_id
    return envelope({"contacts": [contact], "messages": [message]}, **kw)


def status(message_id: str, state: str, ts: int, recipient: str = "491701234567",
           error_code: int | None = None, callback: str | None = None, **kw) -> dict:
    item = {"id": message_id, "status": state, "timestamp": str(ts), "recipient_id": recipient}
    if error_code:
        item["errors"] = [{"code": error_code, "title": f"error {error_code}",
                           "message": f"error {error_code}"}]
    if callback:
        item["biz_opaque_callback_data"] = callback
    return envelope({"statuses": [item]}, **kw)


def statuses(items: list[tuple[str, str, int]], recipient: str = "491701234567") -> dict:
    return envelope({"statuses": [
        {"id": mid, "status": st, "timestamp": str(ts), "recipient_id": recipient}
        for mid, st, ts in items]})


def dumps(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


# The business numbers of the sample files (tests/fixtures/webhooks/README.md).
SAMPLE_PNID = {"messages": "106000000000001", "statuses": "106000000000002",
               "current_shape": "106000000000003", "preferences": "106000000000001"}


def scenarios(name: str) -> dict[str, dict]:
    """The named sample bodies of tests/fixtures/webhooks/<name>.json."""
    return json.loads((FIXTURES / "webhooks" / f"{name}.json").read_text(encoding="utf-8"))
