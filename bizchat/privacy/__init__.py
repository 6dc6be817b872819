"""Data protection built in (GDPR/DSGVO, UWG §7): ``ws.privacy``.

* consent proof per contact and consent coverage per account (consent_proof.py);
* subject access and portability exports, JSON or a CSV folder (subject.py);
* erasure of a person everywhere: tables, raw webhook bodies, the webhook spool, report
  outputs, then compaction of the file (erasure.py, sweep.py, spool_redact.py,
  outputs.py, compaction.py), with a tombstone against re-import (tombstones.py);
* retention policies and the purge that applies them (retention.py);
* pseudonymous keys for analysts (bizchat.people.pseudonym) and the audit log (bizchat.store.audit).

docs/privacy.md says what is stored, why, for how long, and how to answer each request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..errors import BizchatError, CompactionPending
from ..people import pseudonym
from ..store import audit, faults
from . import (
    compaction,
    consent_proof,
    erasure,
    outputs,
    payloads,
    quarantine,
    retention,
    subject,
    subjects,
)
from .erasure import ErasureResult
from .retention import PurgeResult
from .spool_redact import redact_spool


@dataclass
class ExportResult:
    subject_keys: list[str]
    path: Path | None
    csv_dir: Path | None
    rows: dict[str, int]

    def summary(self) -> str:
        where = " and ".join(str(p) for p in (self.path, self.csv_dir) if p)
        total = sum(self.rows.values())
        return f"Wrote {total} rows about {len(self.subject_keys)} contact(s) to {where}."


class Privacy:
    """Answers data protection requests for one workspace (``ws.privacy``)."""

    def __init__(self, ws):
        self.ws = ws

    # --- who -----------------------------------------------------------------------------

    def subject(self, ref, *, account=None) -> subjects.Subject:
        """The contacts ``ref`` names (in ``account``, or in every account)."""
        with self.ws.connect(read_only=True) as con:
            return subjects.find(con, ref, account)

    def subject_keys(self, ref, *, account=None) -> list[str]:
        """The pseudonymous keys of those contacts."""
        with self.ws.transaction() as con:
            found = subjects.find(con, ref, account)
            secret = pseudonym.workspace_secret(con)
            return [pseudonym.contact_key(secret, c) for c in found.contact_ids]

    def new_key(self) -> None:
        """The key file is lost: start a new pseudonymisation key (every key changes)."""
        pseudonym.new_key(self.ws)

    def refresh_keys(self) -> int:
        """Bring the keys behind the analyst views up to date; returns how many were added."""
        with self.ws.transaction() as con:
            return pseudonym.refresh(con)

    def analyst_view(self, name: str = "analyst_contacts") -> pd.DataFrame:
        """``analyst_contacts`` or ``analyst_messages`` with fresh keys."""
        if name not in ("analyst_contacts", "analyst_messages"):
            raise BizchatError(f"{name!r} is not an analyst view; use analyst_contacts or "
                               "analyst_messages.", input=name)
        with self.ws.transaction() as con:
            pseudonym.refresh(con)
            return con.execute(f"SELECT * FROM {name}").df()

    # --- consent -------------------------------------------------------------------------

    def consent_proof(self, ref, *, account) -> consent_proof.ConsentProof:
        """The full consent history of one contact of ``account``, with who recorded it."""
        with self.ws.connect(read_only=True) as con:
            found = subjects.find(con, ref, account)
            return consent_proof.proof(con, found.contacts[0])

    def coverage(self, account=None) -> pd.DataFrame:
        """Consent coverage per account (all accounts without ``account``)."""
        with self.ws.connect(read_only=True) as con:
            return consent_proof.coverage(con, account)

    def coverage_by_source(self, account=None) -> pd.DataFrame:
        """Current marketing opt-ins per account and the source that recorded them."""
        with self.ws.connect(read_only=True) as con:
            return consent_proof.coverage_by_source(con, account)

    # --- access and portability ----------------------------------------------------------

    def export(self, ref, *, account=None, out=None, csv_dir=None, actor: str = "bizchat") -> ExportResult:
        """Write every row about the person to ``out`` (JSON; default
        ``exports/subject-<key>-<time>.json`` beside the workspace) and/or ``csv_dir``."""
        with self.ws.transaction() as con:
            found = subjects.find(con, ref, account)
            secret = pseudonym.workspace_secret(con)
            keys = [pseudonym.contact_key(secret, c) for c in found.contact_ids]
            tables = subject.collect(con, found)
            doc = subject.document(found, tables, keys)
            if out is None and csv_dir is None:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                out = self.ws.path.parent / "exports" / f"subject-{keys[0][:12]}-{stamp}.json"
            path = subject.write_json(doc, out) if out is not None else None
            files = subject.write_csv_dir(doc, csv_dir) if csv_dir is not None else []
            rows = {name: len(frame) for name, frame in tables.items()}
            # The files are named in the audit log so an erasure can delete them later.
            audit.record_many(con, actor, "privacy.export", keys, {
                "accounts": found.account_ids, "rows": sum(rows.values()),
                "files": [str(Path(p).resolve()) for p in ([path] if path else []) + files]})
        return ExportResult(keys, path, Path(csv_dir) if csv_dir is not None else None, rows)

    # --- erasure -------------------------------------------------------------------------

    def preview_erasure(self, ref, *, account=None) -> pd.DataFrame:
        """What an erasure of ``ref`` would touch, per contact (for a confirmation prompt)."""
        with self.ws.transaction() as con:
            found = subjects.find(con, ref, account)
            keys = pseudonym.contact_keys(con, found.contact_ids)
            frame = con.execute("""
                SELECT c.contact_id, a.phone_e164 AS account, c.phone_e164, c.name,
                       (SELECT count(*) FROM messages m WHERE m.contact_id = c.contact_id) AS messages,
                       (SELECT count(*) FROM consent_events e WHERE e.contact_id = c.contact_id) AS consent_events,
                       (SELECT count(*) FROM broadcast_recipients r WHERE r.contact_id = c.contact_id) AS broadcasts
                FROM contacts c JOIN accounts a USING (account_id)
                WHERE list_contains(?::BIGINT[], c.contact_id) ORDER BY c.contact_id""",
                                [found.contact_ids]).df()
        frame.insert(1, "subject_key", keys.to_numpy())
        return frame

    def erase(self, ref, *, account=None, actor: str = "bizchat", compact: bool = True) -> ErasureResult:
        """Erase the person ``ref`` names (in ``account`` or in every account): see erasure.py.

        Everything in the database, the spool and the report outputs happens in one
        transaction (a failure leaves the workspace as it was, and erasing again is safe);
        then the file is compacted. If compaction cannot run (the file is busy),
        CompactionPending is raised with ``result``: the erasure itself is done.
        """
        with self.ws.transaction() as con:
            found = subjects.find(con, ref, account)
            result = self._erase(con, found.contacts, "request", actor)
            faults.point("erase.before_commit")
        if compact:
            self._compact_after(result)
        return result

    def _erase(self, con, contacts, reason, actor) -> ErasureResult:
        result, in_accounts, anywhere = erasure.erase_in(con, contacts, reason=reason, actor=actor)
        self._outside(con, result, in_accounts, anywhere)
        return result

    def _outside(self, con, result: ErasureResult, in_accounts, anywhere) -> None:
        """The spool and report outputs, while this transaction holds the workspace."""
        result.spool = redact_spool(self.ws.path, in_accounts,
                                    payloads.account_scope(con, result.accounts), con=con)
        result.report_files = outputs.redact_files(outputs.report_folders(con, self.ws.path), anywhere)
        result.report_files += outputs.remove_exports(con, self.ws.path, result.subject_keys, anywhere)
        if result.report_files:
            audit.record(con, "bizchat", "privacy.erase.outputs", None,
                         {"files": [Path(f).name for f in result.report_files]})

    def _compact_after(self, result) -> None:
        try:
            done = self.compact()
        except BizchatError as exc:
            raise CompactionPending(
                f"The erasure is committed, but the workspace could not be compacted ({exc}). "
                "Old values stay in the file until `bizchat privacy compact` succeeds.",
                result=result) from exc
        result.compacted = True
        result.file_bytes = (done.bytes_before, done.bytes_after)

    def compact(self, *, actor: str = "bizchat") -> compaction.CompactionResult:
        """Rewrite the workspace file so deleted values are physically gone."""
        done = compaction.compact(self.ws.path, timeout=self.ws.timeout)
        with self.ws.transaction() as con:
            audit.record(con, actor, "privacy.compact", None,
                         {"bytes_before": done.bytes_before, "bytes_after": done.bytes_after})
        return done

    def compaction_pending(self) -> str | None:
        """Why the file still waits for a compaction (after an erasure or purge that could
        not compact it), or None."""
        with self.ws.connect(read_only=True) as con:
            return compaction.pending(con)

    # --- retention -----------------------------------------------------------------------

    def retention(self) -> pd.DataFrame:
        """The effective retention policy per account and kind."""
        with self.ws.connect(read_only=True) as con:
            return retention.policies(con)

    def set_retention(self, kind: str, days: int | None, *, account=None, actor: str = "bizchat") -> pd.DataFrame:
        """Set a policy (``days`` None keeps forever) for ``account`` or the default."""
        with self.ws.transaction() as con:
            retention.set_policy(con, kind, days, account=account, actor=actor)
            return retention.policies(con)

    def purge(self, *, dry_run: bool = False, as_of: datetime | None = None, actor: str = "bizchat",
              compact: bool = True) -> PurgeResult:
        """Apply the retention policies (``dry_run``: only say what would go), to the
        workspace and to the spool's quarantine file (damaged lines, raw bodies too)."""
        as_of = as_of or datetime.now(UTC)
        if not dry_run and as_of > datetime.now(UTC):
            raise BizchatError("A purge cannot run as of a future date (it would remove data "
                               "before its time); use it with --dry-run to look ahead.")
        if dry_run:  # only reads: also on a workspace opened read-only
            with self.ws.connect(read_only=True) as con:
                the_plan, inactive = retention.plan(con, as_of)
                the_plan = quarantine.with_quarantine(the_plan, self.ws.path, as_of)
                return PurgeResult(dry_run=True, as_of=as_of, plan=the_plan, contacts=inactive)
        with self.ws.transaction() as con:
            the_plan, inactive = retention.plan(con, as_of)
            the_plan = quarantine.with_quarantine(the_plan, self.ws.path, as_of)
            result = PurgeResult(dry_run=dry_run, as_of=as_of, plan=the_plan, contacts=inactive)
            result.done = retention.apply_bodies(con, the_plan)
            if len(inactive):
                contacts = subjects.contacts_by_id(con, inactive["contact_id"])
                result.erasure = self._erase(con, contacts, "retention", actor)
            changed = any(result.done.values()) or len(inactive) > 0
            if (the_plan["what"] == quarantine.WHAT).any():   # a file: no compaction needed
                result.done[quarantine.WHAT] = quarantine.purge(self.ws.path, the_plan)
            audit.record(con, actor, "privacy.purge", None, {
                "as_of": as_of.isoformat(), **result.done, "inactive_contacts": len(inactive)})
            if changed:
                con.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                            [erasure.PENDING, as_of.isoformat()])
            result.done["changed"] = int(changed)
        if compact and result.done["changed"]:
            try:
                self.compact(actor=actor)
                result.compacted = True
            except BizchatError as exc:
                raise CompactionPending(
                    f"The purge is committed, but the workspace could not be compacted ({exc}). "
                    "Run `bizchat privacy compact`.", result=result) from exc
        return result


__all__ = ["CompactionPending", "ErasureResult", "ExportResult", "Privacy", "PurgeResult"]
