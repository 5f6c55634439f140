# Set-up is part of every target: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# SecantusDB, the MongoDB-wire server the tests' MongoDB leg runs against: a test tool in its
# own venv (GPL-2.0), never a dependency of the package. The stamp names the pinned version.
SECANTUS_VERSION := 0.7.0b3
SECANTUS_VENV ?= .venv-secantus
SECANTUS_STAMP := $(SECANTUS_VENV)/.installed-$(SECANTUS_VERSION)

# Node packages some tests drive ChatAPI with (playwright-core, socket.io-client), pinned by lock.
NODE_DIRS := tests/browser bench/loadgen
NODE_STAMPS := $(addsuffix /node_modules/.package-lock.json,$(NODE_DIRS))

.PHONY: install node-deps secantus run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(SECANTUS_STAMP):
	rm -rf $(SECANTUS_VENV)
	$(PYTHON) -m venv $(SECANTUS_VENV)
	$(SECANTUS_VENV)/bin/python -m pip install -q 'secantusdb==$(SECANTUS_VERSION)'
	touch $(SECANTUS_STAMP)

secantus: $(SECANTUS_STAMP)

%/node_modules/.package-lock.json: %/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $* --no-audit --no-fund --silent; \
	else echo "npm not found: the tests that need Node packages will skip"; fi

node-deps: $(NODE_STAMPS)

run: install
	$(VENV)/bin/chatapi serve

test: install node-deps secantus
	$(VENV)/bin/ruff check .
	CHATAPI_TEST_REQUIRE_MONGODB=1 $(PY) -m pytest -q -n auto --dist loadfile

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(SECANTUS_VENV) build *.egg-info .pytest_cache .ruff_cache $(addsuffix /node_modules,$(NODE_DIRS))
