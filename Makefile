# A newcomer's one screen:
#   make demo    the whole marketplace end to end on the embedded defaults (trains on CPU/GPU)
#   make test    the test suite (SQLite; PostgreSQL too when DCM_TEST_DATABASE_URL is set)
#   make run     the node alone on the embedded defaults
#   make engines the optional test engines (Hardhat node, js-ipfs) CI provisions
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
EXTRAS  ?= dev,train
comma   := ,
STAMP   := $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS))

.PHONY: install run demo test engines lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

install: $(STAMP)

run:                    ## the node alone: REST API, content store, in-process chain
	$(MAKE) install EXTRAS=dev
	$(BIN)/dcm db upgrade
	$(BIN)/dcm serve

demo:                   ## node + provider + requester, upload to payout, prints a summary
	$(MAKE) install EXTRAS=train
	$(BIN)/dcm demo

test: install           ## whole suite on SQLite, then the DB-bound suites on PostgreSQL if configured
	bash scripts/test.sh

engines:                ## npm engines for the chain and IPFS adapter tests (as CI does)
	bash -c 'set -euo pipefail; for s in .ci/provision.d/30-*.sh .ci/provision.d/40-*.sh; do source $$s; done'

lint: install
	$(BIN)/ruff check node marketplace worker dcm tests bench
	$(BIN)/ruff format --check node marketplace worker dcm tests bench

fmt: install
	$(BIN)/ruff format node marketplace worker dcm tests bench
	$(BIN)/ruff check --fix node marketplace worker dcm tests bench

clean:
	rm -rf $(VENV) .dcm .pytest_cache
