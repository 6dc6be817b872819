"""`bizchat lake ...`: the Parquet lake of many workspaces (docs/lake.md).

    bizchat -w shop.duckdb lake export --out /data/lake [--tenant shop] [--with-bodies]
    bizchat -w shop.duckdb lake erase-pending /data/lake
    bizchat lake show /data/lake
    bizchat lake verify /data/lake
"""

from __future__ import annotations

import logging

import click

from ._common import echo_frame, pass_workspace

log = logging.getLogger("bizchat.lake")

_dir = click.Path(file_okay=True, dir_okay=True)
_tenant = click.option("--tenant", default=None, metavar="NAME",
                       help="The tenant in the lake (a-z, 0-9, _ and -; default: the "
                            "workspace file's name).")


@click.group(name="lake")
def lake_group() -> None:
    """A pseudonymous Parquet copy of workspaces, one tenant each (docs/lake.md)."""


@lake_group.command(name="export")
@click.option("--out", "out", required=True, type=_dir, metavar="DIR",
              help="The lake folder (made if missing; other tenants in it are left alone).")
@_tenant
@click.option("--with-bodies", "bodies", is_flag=True, default=False,
              help="Also export message texts. They are personal data (names, numbers, "
                   "anything customers wrote) and go into the lake with this flag.")
@click.option("--replace-tenant", "replace", is_flag=True, default=False,
              help="Replace the tenant even when another workspace (another pseudonymisation "
                   "key) exported it.")
@pass_workspace(read_only=True)
def export(ws, out: str, tenant: str | None, bodies: bool, replace: bool) -> None:
    """Export the workspace into the lake DIR: only what changed since the last export is
    written, then published in one atomic step."""
    result = ws.lake.export(out, tenant=tenant, bodies=bodies, replace=replace,
                            progress=log.info)
    click.echo(result.summary())


@lake_group.command(name="erase-pending")
@click.argument("out", type=_dir, metavar="DIR")
@_tenant
@pass_workspace(read_only=True)
def erase_pending(ws, out: str, tenant: str | None) -> None:
    """Rewrite every file of the workspace's tenant in DIR that still holds a person the
    workspace erased (after `bizchat privacy erase`)."""
    done = ws.lake.erase_pending(out, tenant=tenant, progress=log.info)
    click.echo(f"Tenant {done['tenant']!r}: {done['erased_keys']} erased person(s) on record; "
               f"{done['files']} file(s) rewritten without {done['rows']} row(s).")


@lake_group.command(name="show")
@click.argument("out", type=_dir, metavar="DIR")
def lake_show(out: str) -> None:
    """Tenants and tables of the lake DIR: files, rows, bytes, last export."""
    from ..lake import Lake

    echo_frame(Lake.show(out))


@lake_group.command(name="verify")
@click.argument("out", type=_dir, metavar="DIR")
def lake_verify(out: str) -> None:
    """Check every file the lake DIR lists: present, size, sha256 and rows as listed.
    Exits 1 when any differs."""
    from ..lake import Lake

    result = Lake.verify(out)
    click.echo(result.summary())
    if not result.ok:
        raise SystemExit(1)


COMMANDS = [lake_group]
