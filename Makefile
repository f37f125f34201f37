# A newcomer's one screen: `make install`, `make run`, `make demo`, `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXTRAS  ?= dev

.PHONY: install run demo test lint fmt clean

$(BIN)/dcm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $(BIN)/dcm

install: $(BIN)/dcm

run: install            ## the node on embedded defaults (SQLite, built-in IPFS store, in-process EVM)
	$(BIN)/dcm serve

test: install           ## whole suite on SQLite, then the DB-bound suites on PostgreSQL if configured
	bash scripts/test.sh

lint: install
	$(BIN)/ruff check node marketplace worker dcm tests bench
	$(BIN)/ruff format --check node marketplace worker dcm tests bench

fmt: install
	$(BIN)/ruff format node marketplace worker dcm tests bench
	$(BIN)/ruff check --fix node marketplace worker dcm tests bench

clean:
	rm -rf $(VENV) .dcm .pytest_cache
