"""Chat-export parsing: ``bizchat.ingest.chat_export.parse_export`` against whatstk.

Writes a WhatsApp export of 1,000,000 messages (100,000 in quick mode) to a temporary
file in two layouts, Android English (``12/31/20, 23:59 - Name: text``) and German iOS
(``[31.12.20, 23:59:59] Name: text``), and times both parsers on that file, each
detecting the header format itself. About 1 in 20 messages spans several lines and 1 in
2,000 is a system line. Before reporting, it checks that both found the same messages:
the same count (whatstk drops Android system lines, which carry no name) and the same
timestamp, author and text on an even sample plus every system line.

A second row per layout times the same file against ``parse_export`` as it was before
issue 14 (commit ``BEFORE``, loaded from git history), run alternately with ours in the
same process, so a change to the parser shows its cost beside the code it replaced
(ratio = before / ours; the aim is within 10 %).

Runner contract: ``run(quick) -> list[dict]`` with benchmark, ours_s, reference_s,
ratio (reference_s / ours_s) and note. ``python -m benchmarks.bench_parse_export
[--quick]`` prints the rows.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
import types
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from bizchat.ingest.chat_export import parse_export

NAMES = ["Anna Müller", "Ben", "+49 170 1234567", "Clara Schmidt", "Dilek Yılmaz", "Emil 🚲"]
WORDS = ("hallo ok danke termin morgen rechnung bestellung lieferung paket frage preis "
         "angebot gerne bitte super genau wann heute woche adresse nummer foto grüße").split()
GROUP = "Bäckerei Kunden"  # iOS writes the chat's name before its system texts
SAMPLE = 2_000  # rows compared field by field
LAYOUTS = ("android_en", "ios_de")
BEFORE = "19eea3c"  # main before issue 14 (clean imports): the parser it changed
ROOT = Path(__file__).resolve().parents[1]


def _messages(n: int, seed: int):
    """(timestamp, author or None, text) for n messages."""
    rng = random.Random(seed)
    at = datetime(2020, 1, 1, 8, 0, 0)
    for i in range(n):
        at += timedelta(seconds=rng.randint(1, 120))
        if i % 2000 == 0:
            yield at, None, f"{rng.choice(NAMES)} added {rng.choice(NAMES)}"
            continue
        words = rng.choices(WORDS, k=rng.randint(1, 14))
        if rng.random() < 0.05:
            cut = rng.randint(1, len(words))
            text = " ".join(words[:cut]) + "\n" + " ".join(words[cut:]) + "\n\nGruß"
        else:
            text = " ".join(words)
        yield at, rng.choice(NAMES), text


def write_export(path: Path, n: int, layout: str, seed: int = 7) -> None:
    lines = []
    for at, author, text in _messages(n, seed):
        if layout == "android_en":
            head = f"{at.month}/{at.day}/{at:%y}, {at:%H:%M} - "
            lines.append(head + (f"{author}: {text}" if author else text))
        else:
            head = f"[{at:%d.%m.%y, %H:%M:%S}] "
            lines.append(head + (f"{author}: {text}" if author else f"{GROUP}: \u200e{text}"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_same_messages(ours, theirs, n: int, layout: str) -> int:
    """Assert both parsers found the same messages; return how many rows were compared."""
    assert len(ours) == n, f"bizchat found {len(ours)} messages in {n}"
    system = ours["kind"].eq("system").to_numpy()
    if layout == "android_en":  # whatstk skips lines without "Name: "
        ours, system = ours[~system], system[~system]
    assert len(theirs) == len(ours), f"whatstk found {len(theirs)}, bizchat {len(ours)}"
    sample = np.union1d(np.linspace(0, len(ours) - 1, SAMPLE).astype(int), np.flatnonzero(system))
    mine, other = ours.iloc[sample], theirs.iloc[sample]
    assert (mine["timestamp"].to_numpy() == other["date"].to_numpy().astype("datetime64[us]")).all()
    expected_authors = mine["author"].fillna(GROUP).tolist()  # iOS system lines: the chat name
    assert expected_authors == other["username"].tolist()
    assert mine["text"].tolist() == other["message"].tolist()
    return len(sample)


def _timed(fn, repeat: int) -> tuple[list[float], float, object]:
    """Wall times of each run, the least CPU time of a run, and the last result. The CPU
    time says more than the wall time on a machine that other jobs keep busy."""
    times, cpu, result = [], float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return times, cpu, result


def parser_at(commit: str):
    """``parse_export`` as it was at ``commit`` (from git history), or None without git."""
    try:
        source = subprocess.run(["git", "show", f"{commit}:bizchat/chat_export.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType(f"bizchat._chat_export_{commit}")
    module.__package__ = "bizchat"  # its relative imports (errors) resolve to ours
    exec(compile(source, f"chat_export.py@{commit}", "exec"), module.__dict__)
    return module.parse_export


def _alternating(ours, before, path: Path, repeat: int) -> tuple[float, float, float, float]:
    """Best wall and CPU seconds of each parser, run in turns so load hits both alike."""
    best = {"ours": [float("inf"), float("inf")], "before": [float("inf"), float("inf")]}
    for _ in range(repeat):
        for key, fn in (("ours", ours), ("before", before)):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(path)
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            best[key] = [min(best[key][0], wall), min(best[key][1], cpu)]
    return (*best["ours"], *best["before"])


def run(quick: bool) -> list[dict]:
    import whatstk
    from whatstk.whatsapp.objects import WhatsAppChat

    n = 100_000 if quick else 1_000_000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in LAYOUTS:
            path = Path(tmp) / f"{layout}.txt"
            write_export(path, n, layout)
            ours_times, ours_cpu, ours = _timed(lambda p=path: parse_export(p), repeat=3)
            # whatstk reads at most 50 MB unless told otherwise; its header detection is on.
            ref_times, ref_cpu, chat = _timed(
                lambda p=path: WhatsAppChat.from_source(filepath=str(p), max_size=None), repeat=1)
            compared = check_same_messages(ours, chat.df, n, layout)
            ours_s, ref_s = min(ours_times), min(ref_times)
            rows.append({
                "benchmark": f"parse_export {layout} {n:,} messages",
                "ours_s": round(ours_s, 3),
                "reference_s": round(ref_s, 3),
                "ratio": round(ref_s / ours_s, 1),
                "note": (f"whatstk {whatstk.__version__} WhatsAppChat.from_source (auto header, "
                         f"max_size=None), 1 run; ours best of 3 (first run "
                         f"{ours_times[0]:.2f} s); CPU s ours {ours_cpu:.2f}, whatstk "
                         f"{ref_cpu:.2f} (ratio {ref_cpu / ours_cpu:.0f}); "
                         f"{path.stat().st_size / 1e6:.0f} MB file; same count, {compared} rows "
                         "compared field by field"),
            })
            before = parser_at(BEFORE)
            if before is None:
                continue
            assert before(path).equals(ours), f"{layout}: the parser before {BEFORE} reads it differently"
            wall, cpu, wall_before, cpu_before = _alternating(parse_export, before, path, repeat=5)
            rows.append({
                "benchmark": f"parse_export {layout} {n:,} messages, before issue 14",
                "ours_s": round(wall, 3),
                "reference_s": round(wall_before, 3),
                "ratio": round(wall_before / wall, 2),
                "note": (f"reference: parse_export at {BEFORE} (git history); both best of 5, "
                         f"run in turns; CPU s ours {cpu:.2f}, before {cpu_before:.2f} "
                         f"(ratio {cpu_before / cpu:.2f}); same frame"),
            })
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
