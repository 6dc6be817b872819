"""Report runs: papermill notebooks executed, kept, rendered as HTML and recorded.

The report notebooks ship inside the package (``bizchat/reports/notebooks``);
``$BIZCHAT_REPORTS_DIR`` adds a folder of the user's own, whose notebooks win over a
built-in one of the same name. A run writes, in ``<output dir>/<NAME>/<run date>/``, the
executed notebook (the record of the run: parameters, outputs, where it failed) and an
HTML rendering without code cells whose charts draw offline (``reports.html``); the
output folder's ``index.html`` lists every run (``reports.archive``). Outputs go to
``reports/`` beside the workspace (``data/reports/`` for the default one) unless
``output_dir`` says otherwise.

Each run is a ``report_runs`` row (running -> ok / failed, with the notebook and HTML
paths and the first line of the error) and an ``audit_log`` entry. Secrets never are
parameters and are cut out of every output, the error text included (``reports.secrets``).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .. import store
from ..errors import NotFound, ParameterError, ReportError
from ..people import pseudonym
from ..store import audit
from . import archive
from .secrets import check_params, known_secrets, scrub

REPORTS_ENV = "BIZCHAT_REPORTS_DIR"
BUILTIN = Path(__file__).resolve().parent / "notebooks"
# Parameters bizchat fills in when the notebook declares them.
AUTOMATIC = ("workspace", "output_stem")


# --- finding reports ---------------------------------------------------------------------------

def report_folders(folder: str | os.PathLike | None = None) -> list[Path]:
    """Where report notebooks are looked up, first match wins: ``folder`` alone when
    given, else ``$BIZCHAT_REPORTS_DIR`` (the user's own) and then the built-in ones."""
    if folder is not None:
        return [Path(folder)]
    extra = os.environ.get(REPORTS_ENV)
    return [Path(extra), BUILTIN] if extra else [BUILTIN]


def notebook_path(name: str, folder=None) -> Path:
    """The notebook of the report ``name`` (NotFound lists the known reports)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", str(name)):
        raise NotFound(f"{name!r} is not a report name (letters, digits, _ and - only). "
                       "`bizchat report list` shows the reports.", input=name)
    for base in report_folders(folder):
        path = base / f"{name}.ipynb"
        if path.is_file():
            return path
    known = ", ".join(sorted(_all_notebooks(folder))) or "none"
    raise NotFound(f"No report {name!r} (reports: {known}).", input=name)


def _all_notebooks(folder=None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for base in report_folders(folder):
        for path in sorted(base.glob("*.ipynb")):
            found.setdefault(path.stem, path)
    return found


def parameters(name: str, folder=None) -> dict:
    """The notebook's declared parameters: name -> {inferred_type_name, default, help}."""
    import papermill

    return papermill.inspect_notebook(str(notebook_path(name, folder)))


def list_reports(folder=None) -> pd.DataFrame:
    """Every report notebook with its title, parameters and folder."""
    import nbformat
    import papermill

    rows = []
    for name, path in sorted(_all_notebooks(folder).items()):
        nb = nbformat.read(path, as_version=4)
        title = next((c.source.strip().splitlines()[0].lstrip("# ") for c in nb.cells
                      if c.cell_type == "markdown" and c.source.strip()), "")
        params = papermill.inspect_notebook(str(path))
        rows.append((name, title, ", ".join(p for p in params if p not in AUTOMATIC),
                     "built-in" if path.parent == BUILTIN else str(path.parent)))
    return pd.DataFrame(rows, columns=["report", "title", "parameters", "folder"])


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

def _scrub_file(path: Path, secrets: list[str]) -> bool:
    """Cut any secret out of a written output; True when one was there."""
    text = path.read_text(encoding="utf-8")
    clean = scrub(text, secrets)
    if clean != text:
        path.write_text(clean, encoding="utf-8")
    return clean != text


def output_root(ws, output_dir=None) -> Path:
    """The folder holding every report's outputs and the archive's index.html."""
    return (Path(output_dir) if output_dir else Path(ws.path).parent / "reports").resolve()


def run_report(ws, name: str, params: dict | None = None, *, output_dir=None, folder=None,
               kernel_name: str | None = None, actor: str = "bizchat",
               timeout: float | None = None, schedule: str | None = None,
               slot: datetime | None = None) -> Path:
    """Execute the report notebook ``name`` with ``params`` and return the executed copy
    (its HTML rendering lies beside it, ``.html``).

    Unknown parameters and secret-looking ones are refused before anything runs. A failed
    notebook raises ReportError (the run is recorded as failed, the partial notebook and
    its HTML kept). ``schedule`` and ``slot`` record which scheduled slot ran it.
    """
    import papermill

    from . import html

    source = notebook_path(name, folder)
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
    root = output_root(ws, output_dir)
    started = datetime.now(UTC)
    run_dir = root / name / f"{started:%Y-%m-%d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with ws.transaction() as con:
        run_id = store.next_id(con, "report_runs", "run_id")
        output = run_dir / f"{name}-{started:%H%M%SZ}-r{run_id}.ipynb"
        page = output.with_suffix(".html")
        for auto, value in (("workspace", str(Path(ws.path).resolve())),
                            ("output_stem", str(output.with_suffix("")))):
            if auto in declared and auto not in params:
                params[auto] = value
        con.execute("""INSERT INTO report_runs (run_id, report, params, started_at, status,
                                                output_path, schedule, slot)
                       VALUES (?, ?, ?, ?, 'running', ?, ?, ?)""",
                    [run_id, name, json.dumps(params, default=str), started, str(output),
                     schedule, slot])
        pseudonym.refresh(con)       # analyst views in the report see every contact
    error = None
    try:
        papermill.execute_notebook(str(source), str(output), parameters=params,
                                   kernel_name=kernel_name, progress_bar=False, log_output=False,
                                   cwd=str(source.parent), execution_timeout=timeout)
    except Exception as exc:  # the notebook's own error: record it, then raise ours
        error = scrub((str(exc).strip().splitlines() or [type(exc).__name__])[-1][:500], secrets)
    html_path = None
    if output.exists():
        if _scrub_file(output, secrets):
            error = error or "a secret appeared in the output and was removed; fix the notebook"
        try:
            html_path = str(html.render(output, page, secrets))
        except Exception as exc:  # a broken output must not hide the run's own result
            error = error or scrub(f"the HTML could not be written: {exc}", secrets)[:500]
        for side in run_dir.glob(f"{output.stem}*"):     # the notebook's own files (CSV ...)
            if side.suffix not in (".ipynb", ".html") and side.is_file():
                _scrub_file(side, secrets)
    status = "failed" if error else "ok"
    with ws.transaction() as con:
        con.execute("""UPDATE report_runs SET status = ?, finished_at = ?, error = ?, html_path = ?
                       WHERE run_id = ?""", [status, datetime.now(UTC), error, html_path, run_id])
        audit.record(con, actor, "report.run", None,
                     {"run_id": run_id, "report": name, "status": status})
    archive.write_index(root, runs(ws))
    if error:
        raise ReportError(f"The report {name!r} failed: {error}. The executed notebook {output} "
                          "shows where.", run_id=run_id, path=str(output), html=html_path)
    return output


def runs(ws, report: str | None = None) -> pd.DataFrame:
    """Past runs, newest first."""
    with ws.connect(read_only=True) as con:
        return con.execute("""SELECT run_id, report, status, started_at, finished_at, html_path,
                                     output_path, schedule, slot, error
                              FROM report_runs WHERE ? IS NULL OR report = ?
                              ORDER BY started_at DESC, run_id DESC""", [report, report]).df()
