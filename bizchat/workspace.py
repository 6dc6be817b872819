"""The Workspace: one DuckDB file and the domain services that work on it.

``bizchat.open(path)`` creates or upgrades the schema and returns a Workspace. It holds
no connection: every service method connects for its unit of work and closes again, so
a notebook, the webhook receiver and a scheduled report can take turns on one file.

``bizchat.open(path, read_only=True)`` opens an existing workspace for reading only: it
never creates, migrates or changes the file (its connections are read-only, so several
readers share the file), and ``create=False`` refuses to make a new one. Only a DuckDB
file holding bizchat's tables (or nothing yet) is a workspace: another application's
database becomes one only with ``adopt=True`` (``bizchat init`` asks first).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from . import store
from .errors import (
    BizchatError,
    NotAWorkspace,
    NoWorkspace,
    ReadOnlyQuery,
    ReadOnlyWorkspace,
    SchemaError,
    WorkspaceDamaged,
)

if TYPE_CHECKING:   # the services' classes, for annotations only (imported per use)
    from .analytics.stats import Stats
    from .campaigns.broadcasts import Broadcasts
    from .campaigns.conversation import Conversations
    from .campaigns.templates import Templates
    from .ingest.services import Imports, Webhooks
    from .lake import Lake
    from .messaging.automations import Automations
    from .messaging.chats import Chats
    from .messaging.replies import QuickReplies
    from .people.accounts import Accounts
    from .people.consent import Consent
    from .people.contacts import Contacts
    from .people.labels import Labels
    from .privacy import Privacy
    from .reports import Reports
    from .scheduling import Schedule

# Migration 0006 moved the pseudonymisation key out of the file (see _after_key_moved).
KEY_FILE_VERSION = 6


class Workspace:
    read_only = False

    def __init__(self, path: str | os.PathLike | None = None, *,
                 timeout: float = store.DEFAULT_TIMEOUT, create: bool = True,
                 read_only: bool = False, adopt: bool = False):
        self.path = store.resolve_path(path)
        self.timeout = timeout
        self.read_only = read_only
        if self.path.exists() and self.path.is_dir():
            raise BizchatError(
                f"The workspace path {self.path} is a folder. Give the path of a .duckdb "
                "file (it is created if missing), e.g. data/bizchat.duckdb.",
                path=str(self.path),
            )
        kind = store.check_duckdb(self.path)  # other formats: refused before DuckDB opens them
        creating = kind in ("missing", "empty")
        if creating and (read_only or not create):
            raise self._no_workspace("is an empty file" if kind == "empty" else None)
        if creating:
            self._make_room(kind)
        elif not read_only:
            # A current file needs no change: look read-only first, so that opening for
            # work does not wait for (or lock out) other processes that are reading it.
            with self.connect(read_only=True) as con:
                version = store.schema_version(con)
            if version == store.latest_version():
                self.schema_version = version
                return
        with self.connect() as con:
            before = store.schema_version(con)
            self.schema_version = self._check_schema(con, create=create, adopt=adopt)
        if not read_only and before < KEY_FILE_VERSION <= self.schema_version:
            self._after_key_moved(created=before == 0)

    def _after_key_moved(self, *, created: bool) -> None:
        """A new workspace gets its key file now (commands that only read never make one).
        An upgraded one had its key deleted from settings by migration 0006: the file is
        rewritten so the old value is physically gone, like after an erasure. When another
        process holds the file that waits for `bizchat privacy compact` (marked pending)."""
        import logging

        from .people import pseudonym
        from .privacy import compaction
        from .store import keyfile

        pseudonym.ensure_key(self)
        if created:
            return
        with self.connect() as con:
            pending = compaction.pending(con)
        if pending:
            log = logging.getLogger("bizchat")
            log.info("Compacting %s: the pseudonymisation key moved to %s", self.path,
                     keyfile.key_path(self.path))
            try:
                compaction.compact(self.path, timeout=min(self.timeout, 5.0))
            except BizchatError as exc:
                log.warning("%s; the old key stays in the file until `bizchat privacy "
                            "compact` succeeds", exc)

    def _no_workspace(self, what: str | None = None) -> NoWorkspace:
        sentence = f"{self.path} {what}, not a workspace" if what else f"no workspace at {self.path}"
        return NoWorkspace(f"{sentence} (create one with bizchat init)", path=str(self.path))

    def _make_room(self, kind: str) -> None:
        """The folder of a new workspace; a zero-byte file (``touch``) gives way to it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "empty":
                self.path.unlink()
        except OSError as exc:
            raise BizchatError(
                f"Cannot create the workspace {self.path}: {exc.strerror}. Choose a path in "
                "a folder you can write to (--workspace or $BIZCHAT_WORKSPACE).",
                path=str(self.path),
            ) from None

    def _check_schema(self, con, *, create: bool, adopt: bool) -> int:
        """The schema version, after migrating when allowed; refuses foreign databases."""
        version = store.schema_version(con)
        if version == 0:
            others = store.user_tables(con)
            if others and not adopt:
                listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                how = ("Only `bizchat init` makes it one, after asking; check the path."
                       if self.read_only or not create else
                       "Pass adopt=True (`bizchat init` asks) to add bizchat's tables beside "
                       "them, or choose another path.")
                raise NotAWorkspace(
                    f"{self.path} is a DuckDB database but not a bizchat workspace: it holds "
                    f"{len(others)} other table(s) ({listed}). {how}",
                    path=str(self.path), tables=others)
            if self.read_only or not create:
                raise self._no_workspace("is an empty DuckDB database")
        store.refuse_newer(version)
        latest = store.latest_version()
        if self.read_only and version != latest:
            raise SchemaError(
                f"The workspace {self.path} has schema version {version}; this bizchat uses "
                f"{latest}. Reading never changes a file: upgrade it once with `bizchat init` "
                "(or any command that writes), then try again.", version=version)
        if not self.read_only:
            store.migrate(con)
        return store.schema_version(con)

    def __repr__(self) -> str:
        return f"<bizchat.Workspace {str(self.path)!r}>"

    # --- units of work --------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed afterwards (autocommit). Read-only when
        asked, or always when the workspace was opened read-only."""
        read_only = read_only or self.read_only
        con = self._open(read_only=read_only)
        try:
            yield con
        except duckdb.Error as exc:
            if read_only and "read-only" in str(exc):
                raise self._read_only_error() from exc
            raise
        finally:
            con.close()

    @contextlib.contextmanager
    def while_busy(self, callback: Callable[[], object]) -> Iterator[None]:
        """Within the block, ``callback()`` is called (once per connection) when another
        process holds the file and this one starts waiting for it. Per thread, so a widget's
        timer and its clicks each report their own wait."""
        hooks = self.__dict__.setdefault("_busy_hooks", threading.local())
        before = getattr(hooks, "callback", None)
        hooks.callback = callback
        try:
            yield
        finally:
            hooks.callback = before

    def _open(self, *, read_only: bool, external_access: bool = True) -> duckdb.DuckDBPyConnection:
        """store.connect with a clear error for a file DuckDB cannot read."""
        hooks = self.__dict__.get("_busy_hooks")
        try:
            return store.connect(self.path, read_only=read_only, timeout=self.timeout,
                                 external_access=external_access,
                                 on_wait=getattr(hooks, "callback", None))
        except (BizchatError, duckdb.ConnectionException):
            raise
        except duckdb.Error as exc:
            detail = str(exc).splitlines()[0]
            if "ermission denied" in detail and not self.path.exists():
                raise BizchatError(
                    f"Cannot create the workspace {self.path}: permission denied. Choose a "
                    "path in a folder you can write to (--workspace or $BIZCHAT_WORKSPACE).",
                    path=str(self.path)) from None
            if "ermission denied" in detail:
                raise BizchatError(
                    f"Cannot open the workspace {self.path}: permission denied. Check that you "
                    f"may read{'' if read_only else ' and write'} the file and its folder.",
                    path=str(self.path)) from None
            if not self.path.exists():
                raise self._no_workspace() from None
            raise WorkspaceDamaged(
                f"Cannot read the workspace {self.path}: {detail}. The file is damaged, cut "
                "off or written by a newer DuckDB; it was left as it was. Restore it from a "
                "backup, or check the path.", path=str(self.path)) from None

    def _read_only_error(self) -> ReadOnlyWorkspace:
        return ReadOnlyWorkspace(
            f"The workspace {self.path} was opened read-only, so nothing was changed. Open it "
            "without read_only=True to change it.", path=str(self.path))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside one transaction: all of the work lands, or none of it."""
        if self.read_only:
            raise self._read_only_error()
        with self.connect() as con, store.transaction(con):
            yield con

    # --- reading ----------------------------------------------------------------------

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """Run a read-only query and return a DataFrame.

        The connection is read-only and has external access switched off, so a query
        typed by a user can neither change the workspace nor read or write other files.
        """
        con = self._open(read_only=True, external_access=False)
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
        with self.connect(read_only=True) as con:
            tables = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
            ).fetchall()]
            counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
            return {"path": str(self.path), "schema_version": store.schema_version(con), "tables": counts}

    # --- domain services (each connects per call) ---------------------------------------

    @cached_property
    def accounts(self) -> Accounts:
        """Business numbers (mobile or landline), their profiles, hours and sending limits."""
        from .people.accounts import Accounts
        return Accounts(self)

    @cached_property
    def contacts(self) -> Contacts:
        """The customers of each account."""
        from .people.contacts import Contacts
        return Contacts(self)

    @cached_property
    def consent(self) -> Consent:
        """The append-only consent ledger and ``may_send``, the one rule for every send."""
        from .people.consent import Consent
        return Consent(self)

    @cached_property
    def chats(self) -> Chats:
        """Chats, their messages and the 24-hour customer-service window."""
        from .messaging.chats import Chats
        return Chats(self)

    @cached_property
    def labels(self) -> Labels:
        """Coloured labels on contacts and chats, per account."""
        from .people.labels import Labels
        return Labels(self)

    @cached_property
    def replies(self) -> QuickReplies:
        """Quick replies (``/danke``) per account."""
        from .messaging.replies import QuickReplies
        return QuickReplies(self)

    @cached_property
    def automations(self) -> Automations:
        """Greeting and away messages per account."""
        from .messaging.automations import Automations
        return Automations(self)

    @cached_property
    def templates(self) -> Templates:
        """Message templates, checked when composed."""
        from .campaigns.templates import Templates
        return Templates(self)

    @cached_property
    def broadcasts(self) -> Broadcasts:
        """Compose, plan, freeze, send (through the crash-safe outbox) and follow broadcasts."""
        from .campaigns.broadcasts import Broadcasts
        return Broadcasts(self)

    @cached_property
    def conversations(self) -> Conversations:
        """Replies from the inbox: free text inside the 24-hour window, templates outside."""
        from .campaigns.conversation import Conversations
        return Conversations(self)

    @cached_property
    def webhooks(self) -> Webhooks:
        """Webhook bodies from saved files or kept rows: ingest, reprocess."""
        from .ingest.services import Webhooks
        return Webhooks(self)

    @cached_property
    def imports(self) -> Imports:
        """Contact CSVs with consent evidence and WhatsApp chat exports."""
        from .ingest.services import Imports
        return Imports(self)

    @cached_property
    def stats(self) -> Stats:
        """Campaign and chat analytics as DataFrames (open rates, funnels, timing, A/B)."""
        from .analytics.stats import Stats
        return Stats(self)

    @cached_property
    def privacy(self) -> Privacy:
        """Consent proof, subject export, erasure, retention, pseudonymous keys."""
        from .privacy import Privacy
        return Privacy(self)

    @cached_property
    def lake(self) -> Lake:
        """The Parquet lake: export this workspace under its tenant, erase, show, verify."""
        from .lake import Lake
        return Lake(self)

    @cached_property
    def reports(self) -> Reports:
        """Report notebooks run with papermill and their recorded runs."""
        from .reports import Reports
        return Reports(self)

    @cached_property
    def schedule(self) -> Schedule:
        """Timed work: scheduled reports (schedule.toml) and due broadcasts, one scheduler."""
        from .scheduling import Schedule
        return Schedule(self)


def open(path: str | os.PathLike | None = None, *, timeout: float = store.DEFAULT_TIMEOUT,  # noqa: A001
         create: bool = True, read_only: bool = False, adopt: bool = False) -> Workspace:
    """Open the workspace at ``path``, creating or upgrading it unless told otherwise.

    ``path`` defaults to ``$BIZCHAT_WORKSPACE``, else ``data/bizchat.duckdb``. ``timeout``
    is how long to wait for another process that holds the file before ``WorkspaceBusy``.

    * ``read_only=True``: the workspace must exist with the current schema; nothing is
      created, migrated or changed (``ReadOnlyWorkspace`` on a write).
    * ``create=False``: a missing file is ``NoWorkspace`` instead of a new workspace.
    * ``adopt=True``: a DuckDB file holding other tables gets bizchat's tables beside them
      (without it, ``NotAWorkspace``).

    Files of other formats (SQLite, text ...), damaged files (``WorkspaceDamaged``) and
    newer schemas (``SchemaError``) are refused and left as they were.
    """
    return Workspace(path, timeout=timeout, create=create, read_only=read_only, adopt=adopt)


def workspace_path(path: str | os.PathLike | None = None) -> Path:
    return store.resolve_path(path)
