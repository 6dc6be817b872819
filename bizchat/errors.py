"""One root exception for everything bizchat raises on purpose.

Each subclass also derives from the matching builtin, so callers that only know Python
(`except ValueError`) still catch it. Messages say what was wrong *and* what to do; the
structured fields (``input``, ``line``, ``path`` ...) let code react without parsing text.
"""

from __future__ import annotations


class BizchatError(Exception):
    """Root of bizchat's errors. ``fields`` holds the structured details."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message


class WorkspaceBusy(BizchatError, TimeoutError):
    """Another process held the workspace file for longer than the timeout."""


class NoWorkspace(BizchatError, FileNotFoundError):
    """No workspace at the path: only ``bizchat init`` and ``demo`` (and ``bizchat.open``
    with ``create=True``) make one."""


class NotAWorkspace(BizchatError, ValueError):
    """A file that is something else: another format (SQLite, zip, text ...), or a DuckDB
    database without bizchat's tables (``tables`` names what it holds)."""


class WorkspaceDamaged(BizchatError, OSError):
    """A DuckDB file that cannot be read: cut off, damaged, or from a newer DuckDB."""


class ReadOnlyWorkspace(BizchatError, PermissionError):
    """A change through a workspace that was opened read-only."""


class SchemaError(BizchatError, RuntimeError):
    """The workspace file's schema is newer than this bizchat, or a migration failed."""


class NotFound(BizchatError, LookupError):
    """An account, contact, label, broadcast ... that does not exist."""


class InvalidPhoneNumber(BizchatError, ValueError):
    """A phone number that phonenumbers cannot parse or that is not a valid number."""


class ConsentRequired(BizchatError, PermissionError):
    """A marketing (or service) message to a contact without a current opt-in."""


class ImportFormatError(BizchatError, ValueError):
    """A file to import that cannot be read: names the file and the first bad line."""


class TemplateError(BizchatError, ValueError):
    """A template or quick reply with unsafe syntax or an unknown placeholder."""


class LimitExceeded(BizchatError, ValueError):
    """A per-account limit (labels, quick replies ...) would be exceeded."""


class InvalidValue(BizchatError, ValueError):
    """A field value that bizchat cannot accept (time zone, hours, purpose, e-mail ...)."""


class Conflict(BizchatError, ValueError):
    """A name or number that already exists where it must be unique."""


class ReadOnlyQuery(BizchatError, PermissionError):
    """A query given to the read-only SQL entry point tried to write or reach files."""


class WorkspaceUnusable(BizchatError, RuntimeError):
    """A workspace the webhook receiver could never store into (a newer schema, a file that
    is not a DuckDB database): it refuses to start rather than accept bodies it cannot keep."""


class FlushFailed(BizchatError, RuntimeError):
    """The webhook receiver stopped with bodies still in its spool (they stay there and are
    ingested at the next start)."""


# Raised by the domain packages (each also derives from the matching builtin).

class PayloadError(BizchatError, ValueError):
    """A body that is JSON but not a WhatsApp Business webhook."""


class MalformedField(PayloadError):
    """A field of a webhook body of the wrong type or out of range."""

class ReportError(BizchatError, RuntimeError):
    """A report notebook failed; the executed notebook shows where."""

class ParameterError(BizchatError, ValueError):
    """A report parameter the notebook does not declare, or of the wrong type."""

class UnsafeParameter(ParameterError):
    """A report parameter that is, or looks like, a secret."""

class ScheduleError(BizchatError, ValueError):
    """A schedule file (``schedule.toml``) that cannot be read: bad TOML, an unknown
    key, a wrong cron expression or time zone (``path``, ``entry``, ``input``)."""

class DeliveryError(BizchatError, ConnectionError):
    """A report could not be mailed: SMTP configuration missing or wrong, the server
    refused or could not be reached (``input``: the setting or address)."""

class CompactionPending(BizchatError, RuntimeError):
    """The erasure or purge is committed, but the file could not be compacted yet."""

class CompactionError(BizchatError, RuntimeError):
    """The copy did not match the workspace; the workspace was left as it was."""

class TransportError(BizchatError, RuntimeError):
    """A transport that cannot work at all (missing configuration, unreachable API)."""

class SendRefused(Conflict):
    """A broadcast that cannot be sent (draft, cancelled)."""

class MissingPseudonymKey(BizchatError, LookupError):
    """No key in the environment, no key file, and none may be made here."""

class TombstoneKeyMismatch(BizchatError, RuntimeError):
    """Tombstones were made with another pseudonymisation key than the current one."""

class LakeError(BizchatError, ValueError):
    """A lake folder that cannot be used: no manifest, another format, a tenant it does not
    hold, a listed file that is missing or does not match its checksum (``path``, ``input``)."""

class LakeBusy(BizchatError, TimeoutError):
    """Another export held the lake's manifest lock for longer than the timeout."""
