# clawdesk: `make up` runs the whole system on embedded parts; `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: up test install lint bench eval clean system-test-deps

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls several GB of CUDA wheels
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev,mpnet]"
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/clawdesk up

# Debian tools some tests drive: docker-compose (validates compose.yaml, no engine needed)
# promtool (from the prometheus package: checks and unit-tests the alert rules) and
# headless Chromium + ChromeDriver (the web chat page is tested in a real browser), and
# wrk (the load generator of `clawdesk bench webhooks`).
system-test-deps:
	@{ command -v docker-compose && command -v promtool && command -v chromedriver && command -v wrk; } >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && \
	    (apt-get install -y -q docker-compose prometheus chromium chromium-driver wrk >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q docker-compose prometheus chromium chromium-driver wrk >/dev/null 2>&1)) || \
	    echo "warning: could not install docker-compose; compose tests will fail"; }

test: install system-test-deps
	HF_HUB_OFFLINE=1 $(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy agents topics schemas connectors clawdesk

bench: install
	$(VENV)/bin/clawdesk bench

clean:
	rm -rf .data
