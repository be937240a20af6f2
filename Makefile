# `make demo`: set up .venv (when missing) and run the default suite offline on the embedded model.
# `make test`: set up .venv (when missing) and run every test, slow ones included.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test bench setup clean browser

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

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/overhead.py
	$(PY) bench/generation.py
	$(PY) bench/quickstart.py
	$(PY) bench/finetune_cpu.py
	$(PY) bench/rag_index.py
	$(PY) bench/rag_judge.py
	$(PY) bench/report_load.py
	$(PY) bench/api_concurrency.py

clean:
	rm -rf $(VENV) runs .pytest_cache
