"""bizchat: an open workbench for business messaging, on one DuckDB file."""

from . import campaigns  # noqa: F401 - registers campaigns' receipt listener wherever ingestion runs
from .errors import (
    BizchatError,
    ConsentRequired,
    ImportFormatError,
    InvalidPhoneNumber,
    NotFound,
    WorkspaceBusy,
)
from .ingest.chat_export import parse_export
from .workspace import Workspace, open

__version__ = "0.1.0"

__all__ = [
    "BizchatError",
    "ConsentRequired",
    "ImportFormatError",
    "InvalidPhoneNumber",
    "NotFound",
    "Workspace",
    "WorkspaceBusy",
    "open",
    "parse_export",
]
