#!/usr/bin/env bash
# Issue 20, the remedy: the fixed-palette colorizer with the I(z; x) reward (configs/colour_mnist_fixed_colorizer_mi.yaml),
# and the collapsed configuration again with another seed (is the collapse the seed's luck?). Then colour_table.py.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
train() {  # run-name config args...
  local run=runs/$1; shift
  [ -f "$run/model.json" ] && { echo "have $run"; return; }
  "$VAEKIT" train "$@" --set train.progress=false --out "$run" > "$run.log" 2>&1
}
train colour_mnist_fixed_colorizer_mi configs/colour_mnist_fixed_colorizer_mi.yaml
train colour_mnist_fixed_colorizer_s1 configs/colour_mnist_fixed_colorizer.yaml --set train.seed=1
${PYTHON:-.venv/bin/python} docs/results/issue20/colour_table.py
