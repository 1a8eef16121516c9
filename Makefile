# `make demo` and `make test` each work as the first command on a fresh machine with Python 3.11:
# they create (or reuse) .venv, install the project and its test dependencies when missing, then run.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aekit-installed
# The CPU build of torch keeps the install small; pip takes it from the local wheel cache when present.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint docs install clean bench browser sanitize

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/aekit demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/hooks

# The feature-report test drives a real headless browser: Debian's chromium and its driver, installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

# The documentation site in site/: pages from docs/, tables from benchmarks/results/*.json, the CLI reference from
# the real parser, the API reference from docstrings. Strict: a broken link, anchor or reference is an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

test: lint browser docs
	$(BIN)/python -m pytest

# The native kernels' tests with AddressSanitizer and UBSan compiled in (gcc's runtimes preloaded into Python).
SANITIZERS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize: $(STAMP)
	AEKIT_NATIVE_CFLAGS="$(SANITIZERS)" ASAN_OPTIONS=detect_leaks=0 \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so):$$(gcc -print-file-name=libubsan.so)" \
	  $(BIN)/python -m pytest -q tests/test_native.py tests/test_screening.py tests/test_speed_paths.py

clean:
	rm -rf $(VENV) demo-out site .pytest_cache .ruff_cache
