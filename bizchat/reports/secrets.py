"""Secrets and report parameters: which values must never be a parameter or an output.

The executed notebook is the record of a run, and papermill writes every parameter into
it (the injected cell and the notebook metadata). So a secret must never be a parameter:
``check_params`` refuses parameters whose *name* looks like a secret (token, secret,
password, api_key ...) or whose *value* is one of the workspace's secrets (the app secret,
access token, verify token, pseudonymisation key, the SMTP password) or looks like a
token. Everything a run produces (the notebook, its HTML, the error text, a mail) passes
``scrub`` before it is stored or shown.
"""

from __future__ import annotations

import os
import re

from ..errors import UnsafeParameter
from ..people import pseudonym

SECRET_ENV = ("BIZCHAT_APP_SECRET", "BIZCHAT_ACCESS_TOKEN", "BIZCHAT_VERIFY_TOKEN",
              "BIZCHAT_SMTP_PASSWORD", pseudonym.ENV)
REMOVED = "[secret removed]"
_SECRET_NAME = re.compile(
    r"(secret|token|passw|pwd|credential|auth|api_?key|private_?key|access_?key|signing|"
    r"pseudonym_?key|salt|cookie|session)", re.I)
_SECRET_ENV_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
_TOKEN_SHAPED = re.compile(r"^[A-Za-z0-9_\-+=]{32,}$")
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{32,}$")


def known_secrets(ws=None) -> list[str]:
    """The secret values a report output must never contain: bizchat's secret variables,
    other secret-looking environment variables, and the workspace's stored key."""
    found = {os.environ.get(name) for name in SECRET_ENV}
    found |= {v for k, v in os.environ.items() if _SECRET_ENV_NAME.search(k)}
    if ws is not None:
        key = pseudonym.stored_secret(ws.path)
        found |= {key.decode("utf-8", "replace")} if key else set()
    # Longest first, so a secret that contains another is cut out whole.
    return sorted((v for v in found if v and len(v) >= 8), key=lambda v: (-len(v), v))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``[secret removed]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REMOVED)
    return text


def _values(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _values(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            yield from _values(v)
    elif value is not None:
        yield str(value)


def check_params(params: dict, secrets: list[str]) -> None:
    """Refuse parameters that are or look like secrets (see the module docstring)."""
    for name, value in params.items():
        if _SECRET_NAME.search(str(name)):
            raise UnsafeParameter(
                f"The report parameter {name!r} looks like a secret. Parameters are written "
                "into the executed notebook, so secrets never are: let the notebook read it "
                "from the environment (os.environ) instead.", input=name)
        for text in _values(value):
            if any(secret in text for secret in secrets):
                raise UnsafeParameter(
                    f"The value of the report parameter {name!r} contains one of the "
                    "workspace's secrets. It would be stored in the executed notebook; the "
                    "notebook must read secrets from the environment.", input=name)
            token = _TOKEN_SHAPED.match(text) and re.search(r"\d", text) and (
                (re.search(r"[a-z]", text) and re.search(r"[A-Z]", text)) or _HEX_KEY.match(text))
            if token or text.startswith(("EAA", "eyJ")) and len(text) >= 32:
                raise UnsafeParameter(
                    f"The value of the report parameter {name!r} looks like a token or key "
                    "(long random text). Secrets are never report parameters; read them from "
                    "the environment inside the notebook.", input=name)
