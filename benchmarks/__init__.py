"""Speed checks, each beside a reference implementation: ``make bench``.

Run them with ``python -m benchmarks [--quick] [NAME ...]`` (see ``__main__``): every
module ``benchmarks/bench_<name>.py`` is discovered, run, and its rows printed in one
aligned table. A NAME runs only the modules whose <name> contains it (``demo``).

The contract for a benchmark module, kept small on purpose:

- It is named ``bench_<name>.py`` and defines ``run(quick: bool) -> list[dict]``.
  ``quick`` asks for small sizes (seconds, for a smoke run); otherwise use the sizes the
  issue names. Helpers that are not benchmarks live in modules without the prefix.
- Each dict is one row of the table with these keys:
    ``benchmark``    what was measured, with its size ("demo.build 20,000 contacts")
    ``ours_s``       seconds for bizchat's implementation (float)
    ``reference_s``  seconds for the reference, e.g. a plain DuckDB Arrow insert of the
                     same rows, or another project's implementation (float, or None)
    ``ratio``        reference_s / ours_s unless the note says otherwise: above 1 means
                     bizchat is faster, 0.5 means it takes twice as long (float, or None)
    ``note``         how it was measured: sizes, repeats (best of n), rows/s, targets
- It measures and reports; it asserts nothing about speed (machines differ, and a
  benchmark that fails on a busy machine tells nobody anything). It may raise when the
  results are wrong (e.g. rows missing): the runner shows that as a failed row.
- Temporary files go under ``tempfile`` directories and are removed afterwards; the
  module prints nothing on stdout (progress on stderr is fine).

Machine: 2 cores, shared with whatever else runs; compare ratios rather than seconds.
"""
