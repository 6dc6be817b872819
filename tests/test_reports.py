"""Report runs with papermill: real kernels, recorded runs, and no secret in any output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

import bizchat
from bizchat import reports
from bizchat.cli import main
from bizchat.errors import NotFound
from bizchat.people import pseudonym
from bizchat.reports import ParameterError, ReportError, UnsafeParameter, run_report

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*(ROOT / "notebooks").rglob("*.ipynb"), *reports.BUILTIN.glob("*.ipynb")])
SECRETS = {"BIZCHAT_APP_SECRET": "app-secret-5d1c0e3b9a",
           "BIZCHAT_ACCESS_TOKEN": "EAAGtokenForTests0123456789abcdefXYZ",
           "BIZCHAT_VERIFY_TOKEN": "verify-me-8f2a"}
PARAM_LINE = re.compile(r"^[a-z_][a-z0-9_]*: (str|int|float|bool) = .+  # .+$")


@pytest.fixture(scope="module")
def kernel():
    """The python3 kernel of this venv (installed into it if missing)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)
    return "python3"


@pytest.fixture
def shop(ws, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(pseudonym.ENV, raising=False)
    acc = ws.accounts.add("+49 30 901820", "Buchladen")
    for i in range(3):
        c = ws.contacts.add(acc["account_id"], f"+49 170 100000{i}", name=f"Kundin {i}")
        if i:
            ws.consent.opt_in(c["contact_id"], source="double_opt_in_form", evidence=f"Formular {i}")
    pseudonym.secret_for(ws)     # the workspace's own key, in its key file
    return ws


def _secrets(ws) -> list[str]:
    return [*SECRETS.values(), pseudonym.secret_for(ws).decode()]


@pytest.mark.slow
def test_consent_report_runs_for_real_and_holds_no_secret(shop, kernel):
    ws = shop
    out = run_report(ws, "consent_report", {"account": "+49 30 901820"}, kernel_name=kernel)
    assert out.parent.parent == (ws.path.parent / "reports" / "consent_report").resolve()
    assert out.suffix == ".ipynb" and out.with_suffix(".html").exists()
    nb = nbformat.read(out, as_version=4)
    text = out.read_text(encoding="utf-8")
    assert "never_asked" in text and "double_opt_in_form" in text   # the tables were rendered
    assert nb.metadata.papermill.parameters["account"] == "+49 30 901820"
    csv = out.with_suffix(".csv")
    assert csv.exists() and "coverage" in csv.read_text(encoding="utf-8")
    for path in out.parent.iterdir():
        content = path.read_text(encoding="utf-8")
        for secret in _secrets(ws):
            assert secret not in content, (path.name, secret[:6])
    run = ws.sql("SELECT * FROM report_runs").iloc[0]
    assert run["status"] == "ok" and run["output_path"] == str(out) and run["finished_at"] is not None
    assert json.loads(run["params"])["workspace"] == str(ws.path.resolve())
    assert run["html_path"] == str(out.with_suffix(".html"))
    assert ws.sql("SELECT count(*) AS n FROM audit_log WHERE action = 'report.run'")["n"][0] == 1


@pytest.mark.slow
def test_a_notebook_that_prints_a_secret_fails_and_is_scrubbed(shop, kernel, tmp_path):
    folder = tmp_path / "my_reports"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('workspace: str = ""  # set by bizchat')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import os\nprint(os.environ['BIZCHAT_ACCESS_TOKEN'])"),
                nbformat.v4.new_code_cell("raise RuntimeError('boom')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "leaky.ipynb")
    with pytest.raises(ReportError, match="boom") as info:
        run_report(shop, "leaky", folder=folder, output_dir=tmp_path / "out", kernel_name=kernel)
    out = Path(info.value.path)
    assert SECRETS["BIZCHAT_ACCESS_TOKEN"] not in out.read_text(encoding="utf-8")
    assert "[secret removed]" in out.read_text(encoding="utf-8")
    run = shop.sql("SELECT status, error FROM report_runs").iloc[0]
    assert run["status"] == "failed" and "boom" in run["error"]


@pytest.mark.parametrize("params, match", [
    ({"access_token": "x"}, "looks like a secret"),
    ({"account": SECRETS["BIZCHAT_APP_SECRET"]}, "secrets"),
    ({"account": "prefix-" + SECRETS["BIZCHAT_VERIFY_TOKEN"]}, "secrets"),
    ({"account": "EAAGm0PZBZCx9ZBvQ1hT2xYqLkR7uZA3eF8sD0"}, "token or key"),
    ({"account": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "token or key"),
    ({"account": ["ok", {"x": SECRETS["BIZCHAT_APP_SECRET"]}]}, "secrets"),
    ({"colour": "red"}, "has no parameter"),
])
def test_secret_and_unknown_parameters_are_refused(shop, params, match):
    with pytest.raises(ParameterError, match=match) as info:
        run_report(shop, "consent_report", params)
    assert isinstance(info.value, UnsafeParameter) == (match != "has no parameter")
    assert shop.sql("SELECT count(*) AS n FROM report_runs")["n"][0] == 0
    assert not (shop.path.parent / "reports").exists()


def test_the_stored_pseudonym_key_is_refused_too(shop):
    key = pseudonym.secret_for(shop).decode()
    with pytest.raises(UnsafeParameter):
        run_report(shop, "consent_report", {"account": key})


def test_ordinary_values_pass():
    """No false alarms on everyday parameters (the check raises UnsafeParameter if it
    mistakes one for a secret); the same call with the secret in a value is refused."""
    params = {"account": "+49 30 901820", "workspace": "/tmp/a_rather_long_path/ws.duckdb",
              "title": "Consent coverage for Q3 2026", "dry_run": True, "n": 30}
    assert reports.check_params(params, ["s3cr3t-value"]) is None
    with pytest.raises(reports.UnsafeParameter):
        reports.check_params({**params, "title": "x s3cr3t-value"}, ["s3cr3t-value"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stripped_with_a_typed_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    if path.parent.name == "reports" or path.name == "06_privacy.ipynb":
        assert len(tagged) == 1
        for line in tagged[0].source.splitlines():
            assert PARAM_LINE.match(line), line


def test_list_reports_and_cli_list(shop):
    listed = reports.list_reports()
    assert {"consent_report", "weekly_campaign_report", "monthly_label_report",
            "retention_purge"} <= set(listed["report"])
    row = listed.set_index("report").loc["consent_report"]
    assert row["title"] == "Consent report" and row["folder"] == "built-in"
    assert row["parameters"] == "account, start, end, labels, timezone"
    res = CliRunner().invoke(main, ["report", "list"])
    assert res.exit_code == 0 and "retention_purge" in res.output


@pytest.mark.slow
def test_cli_runs_the_retention_report_as_a_dry_run(tmp_path, kernel):
    path = tmp_path / "ws.duckdb"
    ws = bizchat.open(path)
    ws.accounts.add("+49 30 901820", "Buchladen")
    res = CliRunner().invoke(main, ["-w", str(path), "report", "run", "retention_purge", "-p", "dry_run", "yes"])
    assert res.exit_code == 0, res.output
    out = Path(res.output.splitlines()[0].removeprefix("notebook: "))
    assert res.output.splitlines()[1] == f"html: {out.with_suffix('.html')}"
    assert out.exists() and "Would remove" in out.read_text(encoding="utf-8")
    assert nbformat.read(out, as_version=4).metadata.papermill.parameters["dry_run"] is True
    runs = CliRunner().invoke(main, ["-w", str(path), "report", "runs"])
    assert "retention_purge" in runs.output and "ok" in runs.output
    bad = CliRunner().invoke(main, ["-w", str(path), "report", "run", "retention_purge", "-p", "dry_run", "vielleicht"])
    assert bad.exit_code == 1 and "must be a bool" in bad.output
    missing = CliRunner().invoke(main, ["-w", str(path), "report", "run", "nope"])
    assert missing.exit_code == 1 and "No report 'nope'" in missing.output


def test_a_folder_of_ones_own_adds_reports_and_wins_over_a_built_in(tmp_path, monkeypatch):
    from schedule_helpers import notebook

    mine = tmp_path / "mine"
    notebook(mine, "hello")
    notebook(mine, "consent_report")
    monkeypatch.setenv("BIZCHAT_REPORTS_DIR", str(mine))
    listed = reports.list_reports().set_index("report")
    assert listed.loc["hello", "folder"] == str(mine)
    assert listed.loc["consent_report", "folder"] == str(mine)
    assert listed.loc["weekly_campaign_report", "folder"] == "built-in"
    assert reports.notebook_path("consent_report") == mine / "consent_report.ipynb"
    monkeypatch.delenv("BIZCHAT_REPORTS_DIR")
    assert reports.notebook_path("consent_report").parent == reports.BUILTIN
    with pytest.raises(NotFound, match="No report .hello."):
        reports.notebook_path("hello")
