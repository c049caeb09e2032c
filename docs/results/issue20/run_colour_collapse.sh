#!/usr/bin/env bash
# Issue 20, where the seed expects the collapse: the colorizer on colour_mnist with a fixed palette (colour a
# function of the grey image) with no grey context and with a colour net as wide as the segmenter, and the wide
# colour net on the random palette; exact marginal, same budget as run_colour.sh. Then colour_table.py.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
for name in fixed_colorizer fixed_colorizer_wide colorizer_wide; do
  run=runs/colour_mnist_${name}
  [ -f "$run/model.json" ] && { echo "have $run"; continue; }
  "$VAEKIT" train configs/colour_mnist_${name}.yaml --set train.progress=false --out "$run" > "$run.log" 2>&1
done
${PYTHON:-.venv/bin/python} docs/results/issue20/colour_table.py
