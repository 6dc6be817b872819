"""Mutated import files for fuzzing, and the outcome of reading one.

Two hypothesis strategies build the inputs: ``exports()`` takes one of our sample chat
exports (tests/fixtures/exports) and damages it the ways real files get damaged (invisible
characters anywhere, flipped, cut or inserted bytes, a UTF-16 re-encoding cut short, a zip
wrapper that may be broken); ``contact_csvs()`` writes a contact CSV whose cells come from
good values, hostile values and arbitrary text, then damages it the same way.

``export_outcome`` / ``contact_outcome`` read one file and say what happened: "parsed"
(a frame that keeps the contract / an import whose good and bad rows add up), "clean
error" (an ImportFormatError or another BizchatError: one clear message) or
"crash: ..." (anything else). The tests in test_fuzz_imports.py assert no crash; run
this module for the figures of a bigger run::

    .venv/bin/python tests/fuzzing.py [--cases 2000] [--seed 1]
"""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
from hypothesis import strategies as st

from bizchat.errors import BizchatError, ImportFormatError

SAMPLES = Path(__file__).parent / "fixtures" / "exports"
EXPORTS = sorted(p for p in SAMPLES.glob("*.txt") if p.stat().st_size)
INVISIBLE = ("\ufeff", "\u200e", "\u200f", "\u202a", "\u202c", "\u202e", "\u2066", "\u2068",
             "\u2069", "\u00a0", "\u202f", "\u200b", "\u2028", "\r", "\x00", "\u2013", "\ud800")


# --- damage --------------------------------------------------------------------------------

@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` with up to six kinds of damage, at places hypothesis chooses."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(("invisible", "invisible", "flip", "delete", "insert", "cut",
                                     "duplicate")))
        at = draw(st.integers(0, len(data)))
        if kind == "invisible":
            char = draw(st.sampled_from(INVISIBLE))
            data[at:at] = char.encode("utf-8", "surrogatepass")
        elif kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "cut":
            del data[at:]
        elif kind == "duplicate":
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end + 1
            data[end:end] = data[start:end]
    return bytes(data)


@st.composite
def wrapped(draw, data: bytes, zips: bool = True) -> bytes:
    """``data`` as it might arrive: plain, with a BOM, as UTF-16 (maybe cut), or zipped
    (maybe damaged after zipping)."""
    how = draw(st.sampled_from(("plain", "plain", "bom", "utf16", "zip", "zip")[:6 if zips else 4]))
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "utf16":
        text = data.decode("utf-8", "surrogateescape").encode("utf-16", "surrogatepass")
        return text[:draw(st.integers(0, len(text)))] if draw(st.booleans()) else text
    if how == "zip":
        buffer = io.BytesIO()
        method = draw(st.sampled_from((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)))
        with zipfile.ZipFile(buffer, "w", method) as zf:
            zf.writestr("_chat.txt", data)
        archive = buffer.getvalue()
        return draw(damaged(archive)) if draw(st.booleans()) else archive
    return data


@st.composite
def exports(draw) -> bytes:
    sample = draw(st.sampled_from(EXPORTS)).read_bytes()
    return draw(wrapped(draw(damaged(sample))))


HOSTILE_CELLS = (
    "Europe", "Europe/" + "x" * 300, "zone.tab", "../../etc/passwd", "Europe/Berlin",
    "2024-05-31T14:05+02", "2024-05-31T14:05Z", "0001-01-01", "9999-12-31", "31.02.2024",
    "2024-10-27 02:30", "2024-03-31 02:30", "1e309", "-0", "NaN",
    "[" * 5000, "{" * 3000, '{"\\ud800": 1}', '{"a": NaN}', '{"a": Infinity}', '{"a": 1e999}',
    '{"a": "\\u0000"}', '{"a": [1, {"b": null}]}', '{"city": "Graz"}', "[]", "null", '"x"',
    "=cmd|' /C calc'!A0", "+49 170 1234567", "0049 170 1234567", "00000000000000000000000",
    "1" * 300, "yes", "ja", "no", "opt_out", "maybe", "marketing", "service", "utility",
    "de", "de_AT", "x" * 5000, "\u200e0170 1234567", "\ufeffphone", "\x00",
)
COLUMNS = ("phone", "name", "consent", "consent_source", "consent_at", "evidence", "purpose",
           "language", "timezone", "attributes", "labels")
cells = st.one_of(st.sampled_from(HOSTILE_CELLS),
                  st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
                  st.builds(lambda n: f"0170 {n:07d}", st.integers(0, 9_999_999)))


@st.composite
def contact_csvs(draw) -> bytes:
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=8, unique=True))
    if draw(st.integers(0, 9)):          # mostly with a phone column
        header = ["phone", *(c for c in header if c != "phone")]
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header) + 1),
                         max_size=12))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=draw(st.sampled_from((",", ";", "\t")))).writerows([header, *rows])
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    return draw(wrapped(draw(damaged(data)) if draw(st.booleans()) else data, zips=False))


# --- outcomes ------------------------------------------------------------------------------

def _contract_problem(df: pd.DataFrame) -> str | None:
    from bizchat.ingest.chat_export import COLUMNS as CONTRACT
    from bizchat.ingest.chat_export import KINDS

    if tuple(df.columns) != CONTRACT:
        return "columns"
    if str(df["timestamp"].dtype) != "datetime64[us]" or df["timestamp"].isna().any():
        return "timestamps"
    if not set(df["kind"]) <= set(KINDS) or df["text"].isna().any():
        return "kinds or texts"
    if not (df["kind"].eq("system") == df["author"].isna()).all():
        return "authors of system lines"
    if not df["line"].is_monotonic_increasing:
        return "line order"
    return None


def export_outcome(data: bytes, parse=None) -> str:
    """"parsed", "clean error" or "crash: <what>" for one export file's bytes."""
    if parse is None:
        from bizchat.ingest.chat_export import parse_export as parse
    try:
        frame = parse(io.BytesIO(data))
    except ImportFormatError:
        return "clean error"
    except Exception as exc:  # noqa: BLE001 - the point is to catch anything
        return f"crash: {type(exc).__name__}: {str(exc)[:80]}"
    problem = _contract_problem(frame)
    return f"crash: contract broken ({problem})" if problem else "parsed"


def contact_outcome(ws, account_id: int, path: Path, data: bytes) -> str:
    """"parsed", "clean error" or "crash: <what>" for one contact CSV's bytes."""
    from bizchat.people.contact_import import import_contacts

    path.write_bytes(data)
    try:
        result = import_contacts(ws, path, account_id)
    except BizchatError:
        return "clean error"
    except Exception as exc:  # noqa: BLE001
        return f"crash: {type(exc).__name__}: {str(exc)[:80]}"
    # Every row is accounted for: stored (new, updated or unchanged) or reported bad.
    kept = result.imported + result.updated + result.unchanged
    if kept + len(result.bad) != result.rows or any(not b["reason"] for b in result.bad):
        return "crash: rows do not add up"
    return "parsed"


def figures(outcomes: Counter) -> str:
    """One line of totals, then the crashes by exception type with one example each."""
    by_type, example = Counter(), {}
    for outcome, n in outcomes.items():
        if outcome.startswith("crash"):
            kind = outcome.split(":")[1].strip()
            by_type[kind] += n
            example.setdefault(kind, outcome)
    lines = [f"cases {sum(outcomes.values())}, parsed {outcomes['parsed']}, "
             f"clean errors {outcomes['clean error']}, crashes {sum(by_type.values())}"]
    lines += [f"  {n:>6}  {kind:<22} e.g. {example[kind][:100]!r}"
              for kind, n in by_type.most_common()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    from hypothesis import HealthCheck, Phase, given, seed, settings

    import bizchat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="inputs per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", metavar="COMMIT",
                        help="also run the exports through parse_export at COMMIT (git)")
    args = parser.parse_args(argv)
    run = settings(max_examples=args.cases, deadline=None, database=None, phases=[Phase.generate],
                   suppress_health_check=list(HealthCheck))

    parsers = {"exports": None}
    if args.before:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from benchmarks.bench_parse_export import parser_at

        parsers[f"exports (parse_export at {args.before})"] = parser_at(args.before)
    for label, parse in parsers.items():
        seen = Counter()

        @seed(args.seed)
        @run
        @given(exports())
        def one(data):
            seen[export_outcome(data, parse)] += 1  # noqa: B023 - runs before the loop moves on

        one()
        print(f"{label}: {figures(seen)}")

    with tempfile.TemporaryDirectory() as tmp:
        ws = bizchat.open(Path(tmp) / "fuzz.duckdb")
        account = ws.accounts.add("+49 30 1234567", name="Laden")["account_id"]
        seen = Counter()

        @seed(args.seed)
        @run
        @given(contact_csvs())
        def one_csv(data):
            seen[contact_outcome(ws, account, Path(tmp) / "contacts.csv", data)] += 1

        one_csv()
        print(f"contact CSVs: {figures(seen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
