"""LakeStats around the metrics: tenants, the manifest as the only truth, the user's Spark
session left as it was, and `bizchat stats ... --lake` (parity itself: test_lake_parity)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from stats_world import build_campaigns

import bizchat
from bizchat.cli import main
from bizchat.errors import InvalidValue, LakeError, NotFound
from bizchat.lake.stats import LakeStats

PY4J_SOCKETS = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def two(tmp_path_factory, empty_template):
    """The hand-built campaigns exported twice into one lake, as tenants shop_a and shop_b
    (shop_b without broadcast 3)."""
    root = tmp_path_factory.mktemp("lake_two")
    spaces = {}
    for tenant in ("shop_a", "shop_b"):
        (root / tenant).mkdir()
        path = root / tenant / "ws.duckdb"
        shutil.copy(empty_template, path)
        for extra in empty_template.parent.glob(empty_template.name + ".*"):
            shutil.copy(extra, root / tenant / extra.name)
        ws = bizchat.open(path)
        build_campaigns(ws)
        if tenant == "shop_b":
            with ws.transaction() as con:
                con.execute("DELETE FROM broadcast_recipients WHERE broadcast_id = 3")
                con.execute("DELETE FROM broadcasts WHERE broadcast_id = 3")
        ws.lake.export(root / "lake", tenant=tenant)
        spaces[tenant] = ws
    return root / "lake", spaces


def test_a_lake_of_several_tenants_needs_one_named(two):
    lake, spaces = two
    with pytest.raises(LakeError, match="2 tenants .shop_a, shop_b.; name one .--tenant NAME."):
        LakeStats(lake)
    with pytest.raises(NotFound, match="no tenant 'shop_c'.*shop_a, shop_b"):
        LakeStats(lake, "shop_c")
    a, b = LakeStats(lake, "shop_a").open_rates(), LakeStats(lake, "shop_b").open_rates()
    assert list(a["broadcast_id"]) == [1, 2, 3] and list(b["broadcast_id"]) == [1, 2]
    pd.testing.assert_frame_equal(b, spaces["shop_b"].stats.open_rates())


def test_a_folder_without_a_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(LakeError, match="no manifest.*bizchat lake export --out"):
        LakeStats(tmp_path)
    with pytest.raises(InvalidValue, match="Unknown engine 'presto'; choose duckdb or spark"):
        LakeStats(tmp_path, engine="presto")


def test_files_the_manifest_does_not_list_are_never_read(two, tmp_path):
    """An export that died before publishing leaves files on disk: they stay invisible."""
    lake, spaces = two
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    before = LakeStats(copy, "shop_a").funnel()
    for path in list((copy / "broadcast_recipients").rglob("*.parquet")):
        shutil.copy(path, path.with_name("unpublished-" + path.name))
    staging = copy / "_staging" / "run1" / "messages"
    staging.mkdir(parents=True)
    for path in (copy / "messages").rglob("*.parquet"):
        shutil.copy(path, staging / path.name)
    pd.testing.assert_frame_equal(LakeStats(copy, "shop_a").funnel(), before)


def test_a_listed_file_that_is_gone_is_a_clear_error(two, tmp_path):
    lake, _ = two
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    victim = next((copy / "broadcasts").rglob("*.parquet"))
    victim.unlink()
    with pytest.raises(LakeError, match="missing.*bizchat lake verify"):
        LakeStats(copy, "shop_a").open_rates()


def test_accounts_are_named_by_id_on_the_lake(two):
    lake, spaces = two
    stats = LakeStats(lake, "shop_a")
    pd.testing.assert_frame_equal(stats.open_rates(account=2),
                                  spaces["shop_a"].stats.open_rates(account=2))
    with pytest.raises(NotFound, match="by account_id.*phone numbers are not exported"):
        stats.open_rates(account="+491700000001")


def test_a_new_export_shows_at_the_next_call(tmp_path, empty_template):
    path = tmp_path / "ws.duckdb"
    shutil.copy(empty_template, path)
    for extra in empty_template.parent.glob(empty_template.name + ".*"):
        shutil.copy(extra, tmp_path / extra.name)
    ws = bizchat.open(path)
    build_campaigns(ws)
    ws.lake.export(tmp_path / "lake")
    stats = LakeStats(tmp_path / "lake")
    assert len(stats.open_rates()) == 3
    with ws.transaction() as con:
        con.execute("DELETE FROM broadcast_recipients WHERE broadcast_id = 3")
        con.execute("DELETE FROM broadcasts WHERE broadcast_id = 3")
    ws.lake.export(tmp_path / "lake")
    pd.testing.assert_frame_equal(stats.open_rates(), ws.stats.open_rates())


# --- Spark: the user's own session --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.xdist_group("spark")
@PY4J_SOCKETS
def test_spark_leaves_the_users_session_as_it_was(two, spark):
    """ibis.pyspark.connect pins the session time zone to UTC for good; LakeStats pins it
    only while a call runs. With the user's zone New York, the answers are still UTC's,
    and afterwards the user's settings are back."""
    lake, spaces = two
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    spark.conf.unset("spark.sql.mapKeyDedupPolicy")
    dedup = spark.conf.get("spark.sql.mapKeyDedupPolicy")
    try:
        stats = LakeStats(lake, "shop_a", engine="spark", spark=spark)
        got = stats.open_rates(["day", "hour"], tz="Europe/Berlin")
        assert spark.conf.get("spark.sql.session.timeZone") == "America/New_York"
        assert spark.conf.get("spark.sql.mapKeyDedupPolicy") == dedup
        pd.testing.assert_frame_equal(
            got, spaces["shop_a"].stats.open_rates(["day", "hour"], tz="Europe/Berlin"))
        # Our own query in the user's zone still reads the lake's naive UTC as UTC.
        assert spark.sql("SELECT hour(timestamp'2025-01-31 23:30:00') AS h").first()["h"] == 23
        stats.close()  # a session it was given is not stopped
        assert spark.sql("SELECT 1 AS one").first()["one"] == 1
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


# --- the CLI ------------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_reads_the_lake_like_the_workspace(two):
    lake, spaces = two
    for command in (["open-rates", "--by", "month", "--tz", "Europe/Berlin"], ["funnel"],
                    ["chats", "--by", "day"], ["cohorts"], ["time-to-read"]):
        on_file = run("-w", str(spaces["shop_a"].path), "stats", *command, "--csv")
        on_lake = run("stats", *command, "--csv", "--lake", str(lake), "--tenant", "shop_a")
        assert on_file.exit_code == 0 and on_lake.exit_code == 0, on_lake.output
        if command[0] != "chats":  # chats: pending turns depend on now
            assert on_lake.output == on_file.output


def test_cli_lake_errors_are_one_line(two, tmp_path):
    lake, _ = two
    result = CliRunner().invoke(main, ["stats", "open-rates", "--lake", str(lake)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        line for line in result.output.strip().splitlines() if line.startswith("Error: ")]
    assert "shop_a, shop_b" in result.output
    result = CliRunner().invoke(main, ["stats", "open-rates", "--tenant", "shop_a"])
    assert result.exit_code == 2 and "go with --lake" in result.output


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
@PY4J_SOCKETS
def test_cli_reads_the_lake_with_spark(two, spark):
    """In-process, so it uses the active shared session (a new process would start its own)."""
    lake, spaces = two
    on_file = run("-w", str(spaces["shop_b"].path), "stats", "open-rates", "--by", "weekday",
                  "--csv")
    on_lake = run("stats", "open-rates", "--by", "weekday", "--csv", "--lake", str(lake),
                  "--tenant", "shop_b", "--engine", "spark")
    assert on_lake.exit_code == 0, on_lake.output
    assert on_lake.stdout == on_file.output
    assert spark.sql("SELECT 1 AS one").first()["one"] == 1   # not stopped: not ours


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
@PY4J_SOCKETS
def test_spark_reads_a_lake_by_url(two, spark):
    """A lake on object storage is a URL (s3a://, gs://): Spark reads the manifest and the
    files through Hadoop's file systems. file:// takes the same path here."""
    lake, spaces = two
    stats = LakeStats(lake.as_uri(), "shop_b", engine="spark", spark=spark)
    pd.testing.assert_frame_equal(stats.funnel(), spaces["shop_b"].stats.funnel())
    with pytest.raises(InvalidValue, match="engine 'spark'"):
        LakeStats(lake.as_uri(), "shop_b")
    with pytest.raises(LakeError, match="Cannot read the manifest"):
        LakeStats(lake.as_uri() + "-nowhere", engine="spark", spark=spark)


def test_a_manifest_with_a_foreign_column_type_is_refused(two, tmp_path):
    """Column types of empty tables go into SQL text: a manifest that carries anything but
    a type name is not bizchat's, and is refused before any SQL runs."""
    import json

    lake, _ = two
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    manifest = json.loads((copy / "_manifest.json").read_text())
    manifest["tenants"]["shop_a"]["tables"]["labels"]["columns"][0][1] = \
        "INTEGER) AS x FROM read_text('/etc/passwd') --"
    (copy / "_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LakeError, match="not a column type"):
        LakeStats(copy, "shop_a").open_rates()
