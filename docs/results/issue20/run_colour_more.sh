#!/usr/bin/env bash
# Issue 20: the colorizer (no grey context, exact marginal) on the other two synthetic colour sets,
# configs/colour_{fashion_mnist,dsprites}_colorizer.yaml, two at a time; then colour_table.py.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
for d in fashion_mnist dsprites; do
  run=runs/colour_${d}_colorizer
  if [ ! -f "$run/model.json" ]; then
    "$VAEKIT" train configs/colour_${d}_colorizer.yaml --set train.progress=false --out "$run" > "$run.log" 2>&1 &
  fi
done
wait
${PYTHON:-.venv/bin/python} docs/results/issue20/colour_table.py
