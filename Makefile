# The front door: `make run` starts the demo IDE, `make test` sets up and runs the
# tests. Everything installs into .venv; nothing is installed globally except
# Debian's chromium for the browser tests (when run as root and missing).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Tests find their server in MBASIC_TRACKING_TEST_DATABASE_URL. When it is unset
# and a server answers on 127.0.0.1:3306, that one is used (root, no password);
# otherwise the tests try Docker (testcontainers) and else explain what to set.
ifeq ($(origin MBASIC_TRACKING_TEST_DATABASE_URL), undefined)
  LOCAL_SERVER := $(shell $(PYTHON) -c "import socket; s=socket.socket(); s.settimeout(1); print(s.connect_ex(('127.0.0.1', 3306)) == 0)" 2>/dev/null)
  ifeq ($(LOCAL_SERVER),True)
    export MBASIC_TRACKING_TEST_DATABASE_URL := mysql://root@127.0.0.1:3306/test
  endif
endif

.PHONY: run test test-fast lint typecheck bench soak chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m mbasic_tracking.demo

test: $(STAMP) chromium
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not browser and not slow"

lint: $(STAMP)
	$(BIN)/ruff check mbasic_tracking tests bench
	$(BIN)/ruff format --check mbasic_tracking tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 30

# Browser tests drive Debian's chromium; Playwright's own download does not work
# on machines without general network access.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "browser tests need /usr/bin/chromium: sudo apt-get install chromium"; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
