# bizchat: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   ?= data/demo.duckdb
DEMO_TODAY := 2026-11-01   # the demo's fixed "today": its weekly report covers the week before

.PHONY: demo test test-fast lab web bench lint clean

# (Re)install when pyproject.toml changes; editable, so code changes need no reinstall.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,spark]'
	touch $(STAMP)

# The demo ends with its weekly campaign report: the last line is the HTML's path.
demo: $(STAMP)
	$(BIN)/bizchat demo --workspace $(DEMO) --replace
	$(BIN)/bizchat --workspace $(DEMO) report run weekly_campaign_report -p end $(DEMO_TODAY)

# The whole suite, what CI runs, on every core (tests are independent: tmp paths, free ports).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto

# The edit loop: everything not marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto -m "not slow"

$(DEMO): | $(STAMP)
	$(BIN)/bizchat demo --workspace $(DEMO)

# JupyterLab on notebooks/ against the demo workspace; PORT=8899 to choose the port, and
# --allow-root when run as root (containers, CI), where jupyter lab refuses to start otherwise.
PORT ?= 8888
lab: $(STAMP) $(DEMO)
	BIZCHAT_WORKSPACE=$(abspath $(DEMO)) $(BIN)/jupyter lab notebooks/ --port=$(PORT) \
		$(if $(filter 0,$(shell id -u)),--allow-root,)

# The same widgets as token-protected web pages (`bizchat web`) on the demo workspace;
# WEBPORT=8870 for another port. Prints the URL (with a new token) to open.
WEBPORT ?= 8866
web: $(STAMP) $(DEMO)
	$(BIN)/bizchat web --workspace $(DEMO) --port $(WEBPORT)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Style and types: ruff on the code and tests, mypy on the package (CI runs this first).
lint: $(STAMP)
	$(BIN)/ruff check bizchat tests benchmarks
	$(BIN)/mypy


clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
