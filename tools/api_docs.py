"""docs/api.md from the docstrings: ``bizchat.open``, the Workspace and every service.

Run ``python -m tools.api_docs`` after changing a public method or its docstring;
``tests/test_docs.py`` fails while docs/api.md differs from what this writes.
"""

from __future__ import annotations

import inspect
import re
import sys
import tempfile
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "api.md"

_QUOTED = re.compile(r": '([^']*)'")

HEADER = """# The Python API

Everything a user can do is a method reachable from the Workspace that `bizchat.open`
returns; the command line, the webhook receiver, reports and notebooks call these
methods. Generated from the docstrings by `python -m tools.api_docs`: edit the
docstrings, not this file (a test fails while it is stale).
"""


def _signature(func, name: str) -> str:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    text = str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))
    return name + _QUOTED.sub(r": \1", text)   # annotations without their quotes


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else "(undocumented)"


def _methods(cls) -> list[tuple[str, object]]:
    out = []
    for name, value in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            out.append((name, value))
    return out


def render() -> str:
    import bizchat
    from bizchat.workspace import Workspace

    lines = [HEADER, "## Opening a workspace", "",
             f"### `bizchat.{_signature(bizchat.open, 'open')}`", "", _doc(bizchat.open), "",
             "## The Workspace", "", _doc(sys.modules[Workspace.__module__]), ""]
    for name, func in _methods(Workspace):
        lines += [f"### `ws.{_signature(func, name)}`", "", _doc(func), ""]
    services = [(n, v) for n, v in Workspace.__dict__.items() if isinstance(v, cached_property)]
    with tempfile.TemporaryDirectory() as tmp:
        ws = bizchat.open(Path(tmp) / "api.duckdb")
        for name, prop in services:
            cls = type(getattr(ws, name))
            lines += [f"## `ws.{name}`: {cls.__name__} (`{cls.__module__}`)", "",
                      _doc(prop.func) if prop.func.__doc__ else _doc(cls), ""]
            for method, func in _methods(cls):
                lines += [f"### `ws.{name}.{_signature(func, method)}`", "", _doc(func), ""]
    # The stats on a Parquet lake: no workspace needed, the methods of ws.stats.
    from bizchat.lake.stats import LakeStats

    lines += [f"## `bizchat.lake.stats.{_signature(LakeStats, 'LakeStats')}`", "",
              _doc(LakeStats), "", "Every metric method of `ws.stats` above, with the same "
              "arguments and results, plus:", ""]
    for method, func in _methods(LakeStats):
        lines += [f"### `lake_stats.{_signature(func, method)}`", "", _doc(func), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
