"""Reports: papermill notebooks run against the workspace, kept as notebook and offline
HTML, recorded in ``report_runs`` and listed in an archive (``ws.reports``).

``runner`` finds and runs them, ``html`` renders the HTML, ``archive`` writes the index,
``secrets`` keeps secrets out of parameters and outputs. Timed runs are the scheduler's
(``bizchat.scheduling``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import ParameterError, ReportError, UnsafeParameter
from .runner import (
    AUTOMATIC,
    BUILTIN,
    REPORTS_ENV,
    list_reports,
    notebook_path,
    output_root,
    parameters,
    report_folders,
    run_report,
    runs,
)
from .secrets import check_params, known_secrets, scrub

__all__ = ["AUTOMATIC", "BUILTIN", "REPORTS_ENV", "ParameterError", "ReportError", "Reports",
           "UnsafeParameter", "check_params", "known_secrets", "list_reports", "notebook_path",
           "output_root", "parameters", "report_folders", "run_report", "runs", "scrub"]


class Reports:
    """Report notebooks run against the workspace (``ws.reports``)."""

    def __init__(self, ws):
        self.ws = ws

    def run(self, name: str, params: dict | None = None, *, output_dir=None, folder=None,
            kernel_name: str | None = None, actor: str = "bizchat",
            timeout: float | None = None) -> Path:
        """Execute the report ``name`` with ``params``, record the run, write its HTML
        beside it and return the executed notebook's path (see ``run_report``)."""
        return run_report(self.ws, name, params, output_dir=output_dir, folder=folder,
                          kernel_name=kernel_name, actor=actor, timeout=timeout)

    def runs(self, report: str | None = None) -> pd.DataFrame:
        """Past runs (of ``report``, or all), newest first, with their HTML and notebook."""
        return runs(self.ws, report)

    @staticmethod
    def available(folder=None) -> pd.DataFrame:
        """The report notebooks and their parameters (no workspace needed)."""
        return list_reports(folder)
