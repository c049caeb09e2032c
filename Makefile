# The two commands: `make demo` (the main job end to end) and `make test` (the test suite).
# Each creates or refreshes .venv: CPU torch from this machine's disk first, then vaekit itself.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vaekit-installed
SHARED ?= $(abspath ../shared/data)
export VAEKIT_DATA ?= $(SHARED)

.PHONY: setup test demo chromium bench-explorer bench bench-paper bench-text bench-music bench-temporal fashion-mnist clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) fashion-mnist

# Debian ships Fashion-MNIST; install it where a test or the demo needs it and we may.
fashion-mnist:
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q dataset-fashion-mnist >/dev/null || \
	      (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null) || \
	      echo "warning: could not install dataset-fashion-mnist"; \
	  else echo "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"; fi; \
	fi

# Debian's Chromium for the browser tests (Playwright drives it; tests/browser.py finds it): installed when root.
chromium:
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || \
	      (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || \
	      echo "warning: could not install chromium (the browser tests will say they skip)"; \
	  else echo "note: chromium not installed (apt-get install chromium); the browser tests will skip"; fi; \
	fi

test: setup chromium
	$(PY) -m pytest -x

# Convolutional VAE on Fashion-MNIST: train, importance-sampled NLL (k=1000, first 1000 test images),
# figures, then the run's report.html (its path printed last). About 10 minutes on 2 CPU cores.
demo: setup
	@out=runs/demo-$$(date +%Y%m%d-%H%M%S) && \
	  $(VENV)/bin/vaekit train configs/fashion_conv_vae.yaml --out $$out && \
	  $(VENV)/bin/vaekit report $$out

# Side-by-side benchmarks (vaekit vs its peers, pythae 0.1.2 and wavenet_vocoder 0.1.1, each in its own venv
# benchmarks/.venv-<peer>, and the machine's matmul roofline); results in benchmarks/results/. The harness is
# benchmarks/harness.py, run from this checkout (not installed with vaekit). The IWAE paper table is a
# separate, longer target.
bench: setup
	$(PY) -m benchmarks.harness

bench-paper: setup
	$(PY) -m benchmarks.harness iwae_table1

bench-music: setup  # issue 18: MusicVAE training events/s, denormals flushed or not, vaekit's loop vs a plain one
	$(PY) -m benchmarks.harness music

bench-temporal: setup  # issue 19: HM-LSTM with COPY rows skipped or computed, char models at equal size, CW-VAE at the official size
	$(PY) -m benchmarks.harness temporal

bench-explorer: setup  # issue 21: the explorer's decode latency over 200 slider moves (needs docs/results/issue21/train_runs.sh a)
	$(PY) -m benchmarks.harness explorer

bench-text: setup  # issue 17: PTB training tokens/s against a plain PyTorch LSTM LM loop, IS-NLL time
	$(PY) -m benchmarks.harness text

clean:
	rm -rf $(VENV) runs demo_run
