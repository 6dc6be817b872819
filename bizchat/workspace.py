"""The Workspace: one DuckDB file and the domain services that work on it.

``bizchat.open(path)`` creates or upgrades the schema and returns a Workspace. It holds
no connection: every service method connects for its unit of work and closes again, so
a notebook, the webhook receiver and a scheduled report can take turns on one file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import duckdb
import pandas as pd

from . import store
from .errors import BizchatError, ReadOnlyQuery


class Workspace:
    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = store.DEFAULT_TIMEOUT):
        self.path = store.resolve_path(path)
        self.timeout = timeout
        if self.path.exists() and self.path.is_dir():
            raise BizchatError(
                f"The workspace path {self.path} is a folder. Give the path of a .duckdb "
                "file (it is created if missing), e.g. data/bizchat.duckdb.",
                path=str(self.path),
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BizchatError(
                f"Cannot create the folder for the workspace {self.path}: {exc.strerror}. "
                "Choose a path in a folder you can write to (--workspace or $BIZCHAT_WORKSPACE).",
                path=str(self.path),
            ) from exc
        with self.connect() as con:
            store.migrate(con)

    def __repr__(self) -> str:
        return f"<bizchat.Workspace {str(self.path)!r}>"

    # --- units of work --------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed afterwards (autocommit)."""
        try:
            con = store.connect(self.path, read_only=read_only, timeout=self.timeout)
        except duckdb.IOException as exc:
            raise BizchatError(
                f"Cannot open the workspace {self.path}: {exc}. Check that the path is a "
                "bizchat workspace (a DuckDB file) and that you may read and write it.",
                path=str(self.path),
            ) from exc
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: all of the work lands, or none of it."""
        with self.connect() as con, store.transaction(con):
            yield con

    # --- reading ----------------------------------------------------------------------

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """Run a read-only query and return a DataFrame.

        The connection is read-only and has external access switched off, so a query
        typed by a user can neither change the workspace nor read or write other files.
        """
        try:
            con = store.connect(self.path, read_only=True, timeout=self.timeout, external_access=False)
        except duckdb.IOException as exc:
            raise BizchatError(f"Cannot open the workspace {self.path}: {exc}", path=str(self.path)) from exc
        try:
            return con.execute(query, params).df()
        except duckdb.PermissionException as exc:
            raise ReadOnlyQuery(
                f"The query was refused: {str(exc).splitlines()[0]}. `sql` only reads the "
                "workspace; use the bizchat commands or API to change it.",
                query=query,
            ) from exc
        except duckdb.Error as exc:
            if "read-only mode" in str(exc):
                raise ReadOnlyQuery(
                    "The query tried to change the workspace. `sql` only reads; use the "
                    "bizchat commands or API to change data.", query=query) from exc
            raise BizchatError(f"The query failed: {exc}", query=query) from exc
        finally:
            con.close()

    def info(self) -> dict:
        """Schema version and the row count of every table."""
        with self.connect() as con:
            tables = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
            ).fetchall()]
            counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
            return {"path": str(self.path), "schema_version": store.schema_version(con), "tables": counts}

    # --- domain services (each connects per call) ---------------------------------------

    @cached_property
    def accounts(self):
        from .accounts import Accounts
        return Accounts(self)

    @cached_property
    def contacts(self):
        from .contacts import Contacts
        return Contacts(self)

    @cached_property
    def consent(self):
        from .consent import Consent
        return Consent(self)

    @cached_property
    def chats(self):
        from .conversations import Chats
        return Chats(self)

    @cached_property
    def labels(self):
        from .labels import Labels
        return Labels(self)

    @cached_property
    def replies(self):
        from .replies import QuickReplies
        return QuickReplies(self)

    @cached_property
    def automations(self):
        from .automations import Automations
        return Automations(self)

    @cached_property
    def templates(self):
        from .templates import Templates
        return Templates(self)

    @cached_property
    def broadcasts(self):
        from .broadcasts import Broadcasts
        return Broadcasts(self)

    @cached_property
    def stats(self):
        from .stats import Stats
        return Stats(self)

    @cached_property
    def privacy(self):
        from .privacy import Privacy
        return Privacy(self)


def open(path: str | os.PathLike | None = None, *, timeout: float = store.DEFAULT_TIMEOUT) -> Workspace:  # noqa: A001
    """Open (creating or upgrading) the workspace at ``path``.

    ``path`` defaults to ``$BIZCHAT_WORKSPACE``, else ``data/bizchat.duckdb``. ``timeout``
    is how long to wait for another process that holds the file before ``WorkspaceBusy``.
    """
    return Workspace(path, timeout=timeout)


def workspace_path(path: str | os.PathLike | None = None) -> Path:
    return store.resolve_path(path)
