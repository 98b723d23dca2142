# issueminer: `make demo` runs the main job on the embedded sample, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
DEMO_DB ?= demo.db
TOSEM23 ?= ../shared/tosem23

.PHONY: install demo test lint format study crawl clean refresh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The embedded sample: a fresh database, the sample's issues and labels, the tables.
demo: $(STAMP)
	rm -f $(DEMO_DB)
	$(BIN)/issueminer import issues data/sample/issues.jsonl --db $(DEMO_DB)
	$(BIN)/issueminer import labels data/sample/labels.csv --db $(DEMO_DB)
	$(BIN)/issueminer stats --db $(DEMO_DB)
	$(BIN)/issueminer agree --db $(DEMO_DB)

## The TOSEM 2023 study's real labels, imported and its tables regenerated.
study: $(STAMP)
	$(BIN)/issueminer import replication $(TOSEM23) --db study.db --report study-import-report.csv
	$(BIN)/issueminer stats --db study.db
	$(BIN)/issueminer agree --db study.db

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(DEMO_DB) study.db study-import-report.csv .pytest_cache

## Both crawlers with the study's criteria into the default database (ISSUEMINER_DB or
## issueminer.db). Keys come from STACKEXCHANGE_KEY and GITHUB_TOKEN; the API URLs from
## ISSUEMINER_STACKEXCHANGE_API and ISSUEMINER_GITHUB_API (mirrors, GitHub Enterprise, tests).
crawl: $(STAMP)
	$(BIN)/issueminer crawl stackoverflow
	$(BIN)/issueminer crawl github
	$(BIN)/issueminer crawl status

## The study redone on new issues (README: "Estimate the tables on issues nobody
## labelled"): crawl the study file's `current` group from SINCE into a copy of the study's
## database, hydrate, train on the study's labels, classify, draw the sample to label for
## the estimate, estimate and compare with the study (REFRESH_DIR/then-now.html). Every
## step resumes or is skipped when done: rerun it after labelling the round (the labels
## the annotators agree on become final; adjudicate the rest). With no new labels the
## tables are the quantification estimate, with its (wider) intervals.
SINCE ?= 2024-01-01
STUDY_DB ?= study.db
REFRESH_DB ?= refresh.db
REFRESH_DIR ?= refresh
WIDTH ?= 0.05
ANNOTATORS ?= annotator1,annotator2
REFRESH_TARGETS ?= issue_type stage symptom howto_topic
refresh: $(STAMP)
	test -f $(REFRESH_DB) || cp $(STUDY_DB) $(REFRESH_DB)
	$(BIN)/issueminer crawl github --db $(REFRESH_DB) --group current --since $(SINCE)
	$(BIN)/issueminer crawl hydrate --db $(REFRESH_DB) --source github
	mkdir -p $(REFRESH_DIR)/models
	for target in $(REFRESH_TARGETS); do \
	  ls $(REFRESH_DIR)/models/$$target-*.skops >/dev/null 2>&1 || \
	    $(BIN)/issueminer train --db $(STUDY_DB) --target $$target --folds 0 \
	      --out $(REFRESH_DIR)/models || exit 1; \
	  $(BIN)/issueminer classify --db $(REFRESH_DB) --target $$target \
	    --models $(REFRESH_DIR)/models --format json > /dev/null || exit 1; \
	done
	$(BIN)/issueminer round status --db $(REFRESH_DB) --round estimate-$(SINCE) >/dev/null 2>&1 || \
	  $(BIN)/issueminer round create --db $(REFRESH_DB) --for-estimate --width $(WIDTH) \
	    --group current --since $(SINCE) --annotators $(ANNOTATORS) --name estimate-$(SINCE)
	$(BIN)/issueminer round finalize --db $(REFRESH_DB) --round estimate-$(SINCE) > /dev/null
	$(BIN)/issueminer estimate --db $(REFRESH_DB) --group current --since $(SINCE) \
	  --then $(STUDY_DB) --report $(REFRESH_DIR)/then-now.html

## Annotation app latency: "save and load next" on 100,000 issues in SQLite.
bench-label: $(STAMP)
	$(BIN)/python bench/label_bench.py

## The study's report (report/: HTML, tables/*.tex, figures/*) and its replication package
## (replication-package/, TOSEM 2023 layout), both from study.db (see `make study`).
.PHONY: report
report: study
	$(BIN)/issueminer report --db study.db --out report
	rm -rf replication-package
	$(BIN)/issueminer export --db study.db --out replication-package

## The data-dump scan (crawl so-dump) against grep -c, a per-row ElementTree parse and lxml
## iterparse on one synthetic 1 GB Posts.xml, generated deterministically into bench/data/
## on first use. Not part of `make test`.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

.PHONY: bench-dump
bench-dump: $(BENCH_STAMP)
	$(BIN)/python -m bench.dump_bench

## The data-dump scan's peak memory (/usr/bin/time -v) on dumps with one 10 MB and one
## 50 MB row, plain and gzipped, above the start-up baseline and in rows (target: under 3).
.PHONY: bench-dump-memory
bench-dump-memory: $(STAMP)
	$(BIN)/python -m bench.dump_memory --sizes 10MB,50MB

## The classifier on a generated corpus of 10,000 issues per target: training time and
## prediction throughput (issues/s) beside the majority and keyword baselines'. Budget:
## training under 60 s, prediction 2,000 issues/s or more. Not part of `make test`.
.PHONY: bench-classify
bench-classify: $(STAMP)
	$(BIN)/python -m bench.classify --size 10000

## Start-up time: `issueminer --help` and `issueminer issues list --limit 5` on study.db (made
## by `make study` when missing), each a fresh process timed over 15 runs after a warm-up,
## beside `python -c "import typer"` measured in the same run. Target: under 0.3 s each on
## a quiet machine. Not part of `make test`.
.PHONY: bench-cli
bench-cli: $(STAMP)
	test -f study.db || $(MAKE) study
	$(BIN)/python -m bench.cli_bench --db study.db --runs 15
