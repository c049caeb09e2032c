#!/usr/bin/env bash
# Issue 20, colorization: the colorizer on colour_mnist with each training method (exact marginal, EM with an
# E-step every 50 steps, hard EM likewise, the VAE) and each colour context (none, local), then the photos
# (K = 8 colorizer and the K = 1 deterministic baseline); each run evaluated by `vaekit train` itself on its
# test split (eval/test_colour_*.json); then docs/results/issue20/colour_table.py. Runs go to runs/colour_*.
# PARALLEL=2 runs two at a time. VAEKIT_DATA must point at the data.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
train() {  # run-name config args...
  local run=runs/$1; shift
  if [ -f "$run/model.json" ]; then echo "have $run"; return; fi
  "$VAEKIT" train "$@" --set train.progress=false --out "$run" > "$run.log" 2>&1
}
jobs_=()
for context in none local; do
  cfg=configs/colour_mnist_colorizer.yaml
  [ "$context" = local ] && cfg=configs/colour_mnist_colorizer_local.yaml
  for method in marginal em hard_em vae; do
    extra=()
    case $method in em|hard_em) extra=(--set objective.e_step_every=50);; esac
    train colour_mnist_${context}_${method} "$cfg" --set objective.method=$method "${extra[@]}" &
    jobs_+=($!)
    if [ "${#jobs_[@]}" -ge "${PARALLEL:-2}" ]; then wait "${jobs_[0]}"; jobs_=("${jobs_[@]:1}"); fi
  done
done
train colour_photos configs/colour_photos_colorizer.yaml &
train colour_photos_baseline configs/colour_photos_baseline.yaml &
wait
${PYTHON:-.venv/bin/python} docs/results/issue20/colour_table.py
