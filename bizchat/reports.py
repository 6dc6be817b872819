"""Report runs: papermill notebooks from ``notebooks/reports/``, executed and kept.

The executed notebook is the record of a run, and papermill writes every parameter into
it (the injected cell and the notebook metadata). So a secret must never be a parameter:
``run_report`` refuses parameters whose *name* looks like a secret (token, secret,
password, api_key ...) or whose *value* is one of the workspace's secrets (the app secret,
access token, verify token, pseudonymisation key) or looks like a token. Notebooks that
need a secret read it from the environment inside the kernel and never print it; after
the run the output is scanned for the secrets once more, and a run whose output contains
one is marked failed and the secret is cut out of the file.

Each run is a ``report_runs`` row (running -> ok / failed, with the output path and the
first line of the error) and an ``audit_log`` entry. Outputs go to ``reports/`` beside
the workspace (``data/reports/`` for the default workspace) or to ``output_dir``.
Scheduling is cron's job: ``bizchat report run NAME -p key value`` in a crontab.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from . import store
from .errors import NotFound, ParameterError, ReportError, UnsafeParameter
from .people import pseudonym
from .store import audit

REPORTS_ENV = "BIZCHAT_REPORTS_DIR"
SECRET_ENV = ("BIZCHAT_APP_SECRET", "BIZCHAT_ACCESS_TOKEN", "BIZCHAT_VERIFY_TOKEN", pseudonym.ENV)
# Parameters bizchat fills in when the notebook declares them.
AUTOMATIC = ("workspace", "output_stem")
_SECRET_NAME = re.compile(
    r"(secret|token|passw|pwd|credential|auth|api_?key|private_?key|access_?key|signing|"
    r"pseudonym_?key|salt|cookie|session)", re.I)
_SECRET_ENV_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
_TOKEN_SHAPED = re.compile(r"^[A-Za-z0-9_\-+=]{32,}$")
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{32,}$")


# --- finding reports ---------------------------------------------------------------------------

def reports_dir(folder: str | os.PathLike | None = None) -> Path:
    """Where report notebooks are: ``folder``, else ``$BIZCHAT_REPORTS_DIR``, else
    ``notebooks/reports`` of this checkout."""
    if folder is None:
        folder = os.environ.get(REPORTS_ENV) or Path(__file__).resolve().parents[1] / "notebooks" / "reports"
    return Path(folder)


def _notebook(name: str, folder=None) -> Path:
    base = reports_dir(folder)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", str(name)):
        raise NotFound(f"{name!r} is not a report name (letters, digits, _ and - only). "
                       "`bizchat report list` shows the reports.", input=name)
    path = base / f"{name}.ipynb"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in base.glob("*.ipynb"))) or "none"
        raise NotFound(f"No report {name!r} in {base} (reports: {known}).", input=name)
    return path


def parameters(name: str, folder=None) -> dict:
    """The notebook's declared parameters: name -> {inferred_type_name, default, help}."""
    import papermill

    return papermill.inspect_notebook(str(_notebook(name, folder)))


def list_reports(folder=None) -> pd.DataFrame:
    """Every report notebook with its title and parameters."""
    import nbformat
    import papermill

    rows = []
    for path in sorted(reports_dir(folder).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        title = next((c.source.strip().splitlines()[0].lstrip("# ") for c in nb.cells
                      if c.cell_type == "markdown" and c.source.strip()), "")
        params = papermill.inspect_notebook(str(path))
        rows.append((path.stem, title, ", ".join(p for p in params if p not in AUTOMATIC)))
    return pd.DataFrame(rows, columns=["report", "title", "parameters"])


# --- secrets ---------------------------------------------------------------------------------

def known_secrets(ws=None) -> list[str]:
    """The secret values a report output must never contain: bizchat's secret variables,
    other secret-looking environment variables, and the workspace's stored key."""
    found = {os.environ.get(name) for name in SECRET_ENV}
    found |= {v for k, v in os.environ.items() if _SECRET_ENV_NAME.search(k)}
    if ws is not None:
        key = pseudonym.stored_secret(ws.path)
        found |= {key.decode("utf-8", "replace")} if key else set()
    return sorted(v for v in found if v and len(v) >= 8)


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


def _coerce(name: str, value, declared: dict):
    """CLI values are text: turn them into the declared int, float or bool."""
    if not isinstance(value, str):
        return value
    kind = (declared.get("inferred_type_name") or "").lower()
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "ja", "on"):
                return True
            if lowered in ("0", "false", "no", "nein", "off"):
                return False
            raise ValueError(value)
    except ValueError:
        raise ParameterError(f"The report parameter {name!r} must be a {kind}, not {value!r}.",
                             input=name) from None
    return value


# --- running ---------------------------------------------------------------------------------

def _scrub_output(path: Path, secrets: list[str]) -> bool:
    """Cut any secret out of the executed notebook; True when one was there."""
    text = path.read_text(encoding="utf-8")
    found = [s for s in secrets if s in text]
    for secret in found:
        text = text.replace(secret, "[secret removed]")
    if found:
        path.write_text(text, encoding="utf-8")
    return bool(found)


def run_report(ws, name: str, params: dict | None = None, *, output_dir=None, folder=None,
               kernel_name: str | None = None, actor: str = "bizchat",
               timeout: float | None = None) -> Path:
    """Execute the report notebook ``name`` with ``params`` and return the executed copy.

    Unknown parameters and secret-looking ones are refused before anything runs. A failed
    notebook raises ReportError (the run is recorded as failed, the output kept).
    """
    import papermill

    source = _notebook(name, folder)
    declared = papermill.inspect_notebook(str(source))
    params = dict(params or {})
    secrets = known_secrets(ws)
    check_params(params, secrets)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(
            f"The report {name!r} has no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(p for p in declared if p not in AUTOMATIC) or 'none'}.", input=unknown)
    params = {k: _coerce(k, v, declared[k]) for k, v in params.items()}
    out_dir = Path(output_dir) if output_dir else ws.path.parent / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    with ws.transaction() as con:
        run_id = store.next_id(con, "report_runs", "run_id")
        output = out_dir / f"{name}-{started:%Y%m%dT%H%M%SZ}-r{run_id}.ipynb"
        for auto, value in (("workspace", str(ws.path)), ("output_stem", str(output.with_suffix("")))):
            if auto in declared and auto not in params:
                params[auto] = value
        con.execute("""INSERT INTO report_runs (run_id, report, params, started_at, status, output_path)
                       VALUES (?, ?, ?, ?, 'running', ?)""",
                    [run_id, name, json.dumps(params, default=str), started, str(output)])
        pseudonym.refresh(con)       # analyst views in the report see every contact
    error = None
    try:
        papermill.execute_notebook(str(source), str(output), parameters=params,
                                   kernel_name=kernel_name, progress_bar=False, log_output=False,
                                   cwd=str(source.parent), execution_timeout=timeout)
    except Exception as exc:  # the notebook's own error: record it, then raise ours
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:500]
    if output.exists() and _scrub_output(output, secrets):
        error = error or "a secret appeared in the output and was removed; fix the notebook"
    with ws.transaction() as con:
        con.execute("""UPDATE report_runs SET status = ?, finished_at = ?, error = ?
                       WHERE run_id = ?""", ["failed" if error else "ok", datetime.now(UTC), error, run_id])
        audit.record(con, actor, "report.run", None,
                     {"run_id": run_id, "report": name, "status": "failed" if error else "ok"})
    if error:
        raise ReportError(f"The report {name!r} failed: {error}. The executed notebook {output} "
                          "shows where.", run_id=run_id, path=str(output))
    return output


def runs(ws, report: str | None = None) -> pd.DataFrame:
    """Past runs, newest first."""
    with ws.connect(read_only=True) as con:
        return con.execute("""SELECT run_id, report, status, started_at, finished_at, output_path, error
                              FROM report_runs WHERE ? IS NULL OR report = ?
                              ORDER BY started_at DESC""", [report, report]).df()


__all__ = ["ParameterError", "ReportError", "UnsafeParameter", "check_params", "known_secrets", "list_reports",
           "parameters", "reports_dir", "run_report", "runs"]


class Reports:
    """Report notebooks run against the workspace (``ws.reports``)."""

    def __init__(self, ws):
        self.ws = ws

    def run(self, name: str, params: dict | None = None, *, output_dir=None, folder=None,
            kernel_name: str | None = None, actor: str = "bizchat",
            timeout: float | None = None) -> Path:
        """Execute the report ``name`` with ``params``, record the run, and return the
        executed notebook's path (see ``run_report``)."""
        return run_report(self.ws, name, params, output_dir=output_dir, folder=folder,
                          kernel_name=kernel_name, actor=actor, timeout=timeout)

    def runs(self, report: str | None = None) -> pd.DataFrame:
        """Past runs (of ``report``, or all), newest first."""
        return runs(self.ws, report)

    @staticmethod
    def available(folder=None) -> pd.DataFrame:
        """The report notebooks and their parameters (no workspace needed)."""
        return list_reports(folder)
