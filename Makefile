# `make demo`: set up .venv (when missing) and run the default suite offline on the embedded model.
# `make test`: set up .venv (when missing), check lint and types, and run every test, slow ones included.
# `make quick`: the quick loop, tests not marked slow (a few minutes); `make lint`: ruff and mypy alone.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test quick lint bench setup clean browser autotrain-env

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build on our machines; an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[local,rag,openai,eval,report,dev]"
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(VENV)/bin/harness compare suites/quickstart/suite.yaml

# The report's browser test drives Debian's chromium (headless); installed here when missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "install chromium (Debian: apt-get install chromium) for the report's browser test"; exit 1; }

# AutoTrain Advanced in its own environment (its pinned transformers/trl/peft clash with ours), for the autotrain
# tuner's test. torch 2.5.1 is pinned because AutoTrain 0.8.36 pins bitsandbytes 0.45, which cannot import with the
# triton of later torch builds (no triton.ops); unpinned, pip picks the newest torch. About 3 minutes, 7 GB.
AUTOTRAIN_ENV ?= .venv-autotrain
autotrain-env: $(AUTOTRAIN_ENV)/bin/autotrain

$(AUTOTRAIN_ENV)/bin/autotrain:
	test -x $(AUTOTRAIN_ENV)/bin/python || python3 -m venv $(AUTOTRAIN_ENV)
	$(AUTOTRAIN_ENV)/bin/python -m pip install --quiet --no-cache-dir "torch==2.5.1" "autotrain-advanced==0.8.36"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) browser autotrain-env lint
	$(PY) -m pytest

quick: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/generation.py
	$(PY) bench/quickstart.py
	$(PY) bench/finetune_cpu.py
	$(PY) bench/finetune_gpu.py --device cpu
	$(PY) bench/finetune_search.py
	$(PY) bench/rag_index.py
	$(PY) bench/rag_judge.py
	$(PY) bench/report_load.py
	$(PY) bench/api_concurrency.py

clean:
	rm -rf $(VENV) $(AUTOTRAIN_ENV) runs .pytest_cache
