"""bizchat: an open workbench for business messaging, on one DuckDB file."""

from .chat_export import parse_export
from .errors import (
    BizchatError,
    ConsentRequired,
    ImportFormatError,
    InvalidPhoneNumber,
    NotFound,
    WorkspaceBusy,
)
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
