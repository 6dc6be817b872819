"""``python -m benchmarks [--quick] [NAME ...]``: run the bench_* modules, print one table.

Each module's ``run(quick)`` returns rows (see the package docstring for the contract).
The table has one line per row; notes longer than a column are printed below it as
numbered footnotes. A module that raises is shown as a failed row, the others still run,
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import sys
import textwrap
import time
import traceback

import benchmarks

KEYS = ("benchmark", "ours_s", "reference_s", "ratio", "note")
NOTE_INLINE = 48   # longer notes become footnotes


def discover() -> list[str]:
    """The <name> of every benchmarks/bench_<name>.py, sorted."""
    return sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith("bench_"))


def run_module(name: str, quick: bool) -> list[dict]:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    rows = module.run(quick=quick)
    if not isinstance(rows, list) or not rows:
        raise TypeError(f"bench_{name}.run() must return a non-empty list of dicts, got {rows!r}")
    for row in rows:
        missing = [k for k in KEYS if k not in row]
        if missing:
            raise TypeError(f"bench_{name}.run() returned a row without {missing}: {row!r}")
    return rows


def _number(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def render(rows: list[dict]) -> str:
    """One aligned table; long notes as footnotes below it."""
    notes = []
    cells = []
    for row in rows:
        note = str(row["note"] or "")
        if len(note) > NOTE_INLINE:
            notes.append(note)
            note = f"[{len(notes)}]"
        cells.append((str(row["benchmark"]), _number(row["ours_s"], 3),
                      _number(row["reference_s"], 3), _number(row["ratio"], 2), note))
    head = ("benchmark", "ours_s", "reference_s", "ratio", "note")
    widths = [max(len(r[i]) for r in [head, *cells]) for i in range(len(head))]
    right = (False, True, True, True, False)

    def line(r):
        return "  ".join(c.rjust(w) if rj else c.ljust(w)
                         for c, w, rj in zip(r, widths, right, strict=True)).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in cells)]
    for i, note in enumerate(notes, start=1):
        out.append("")
        out.append(textwrap.fill(note, width=100, initial_indent=f"[{i}] ",
                                 subsequent_indent=" " * (len(str(i)) + 3)))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run bizchat's benchmarks beside their references and print one table "
                    "(ratio = reference_s / ours_s unless a note says otherwise).")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="run only benchmarks whose module name contains NAME (e.g. demo)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    chosen = [n for n in available if not args.names or any(f in n for f in args.names)]
    if not chosen:
        print(f"No benchmark matches {' '.join(args.names)}; available: {', '.join(available)}.",
              file=sys.stderr)
        return 2
    rows, failed = [], False
    for name in chosen:
        print(f"bench_{name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            rows.extend(run_module(name, args.quick))
        except Exception as exc:   # one broken benchmark must not hide the others
            failed = True
            traceback.print_exc()
            rows.append({"benchmark": f"bench_{name}", "ours_s": None, "reference_s": None,
                         "ratio": None, "note": f"FAILED: {type(exc).__name__}: {exc}"})
        print(f"bench_{name} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(render(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
