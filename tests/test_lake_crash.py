"""A `bizchat lake export` killed at any point leaves the lake reading exactly as before
(or, killed after the manifest swap, as after), and the next run completes and cleans up.

The export runs as a real subprocess; ``BIZCHAT_FAULT=<point>[@n]`` has it SIGKILLed there
(bizchat/store/faults.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workspace
from lake_helpers import folder_state, lake_table
from test_lake_export import _new_data

import bizchat
from bizchat.lake import read_manifest
from bizchat.lake.tables import SPECS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base(demo_template, tmp_path_factory):
    """A workspace exported once, then given new data: the next export has work to do."""
    folder = tmp_path_factory.mktemp("crash_base")
    ws = bizchat.open(copy_workspace(demo_template, folder))
    ws.lake.export(folder / "lake")
    _new_data(ws)
    return folder


def run_export(path: Path, lake: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("BIZCHAT_FAULT", None)
    if fault:
        env["BIZCHAT_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "bizchat.cli", "-w", str(path), "lake", "export",
                           "--out", str(lake)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def tables(lake: Path) -> dict:
    return {t: lake_table(lake, "demo", t) for t in SPECS}


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["lake.file@3", "lake.before_publish",
                                   "lake.published"])
def test_a_killed_export_leaves_the_lake_as_it_was_and_the_next_run_completes(base, tmp_path, fault):
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    path, lake = tmp_path / "demo.duckdb", tmp_path / "lake"
    manifest_before = (lake / "_manifest.json").read_bytes()
    before = tables(lake)
    killed = run_export(path, lake, fault)
    assert killed.returncode == -9, killed.stderr
    assert bizchat.open(path, read_only=True).lake.verify(lake).ok
    if fault == "lake.published":
        # killed after the swap: the new lake is visible, the old files linger unlisted
        assert (lake / "_manifest.json").read_bytes() != manifest_before
    else:
        assert (lake / "_manifest.json").read_bytes() == manifest_before
        after = tables(lake)
        for table in SPECS:
            assert after[table].equals(before[table]), table
    leftovers = {p for p in lake.rglob("*.parquet")} - {lake / e.path for e in read_manifest(lake).all_entries()}
    assert leftovers    # the dead run's files are on disk, just not listed

    done = run_export(path, lake)
    assert done.returncode == 0, done.stderr
    listed = {lake / e.path for e in read_manifest(lake).all_entries()}
    assert set(lake.rglob("*.parquet")) == listed
    assert not any((lake / "_staging").rglob("*.parquet"))
    fresh = tmp_path / "fresh"
    bizchat.open(path, read_only=True).lake.export(fresh)
    expected = tables(fresh)
    for table, frame in tables(lake).items():
        assert frame.equals(expected[table]), table
    # and a third run has nothing to do
    state = folder_state(lake)
    assert not bizchat.open(path, read_only=True).lake.export(lake).published
    assert folder_state(lake) == state
