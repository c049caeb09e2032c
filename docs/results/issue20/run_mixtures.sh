#!/usr/bin/env bash
# Issue 20, "EM, hard EM and the VAE": every method x K in {10, 50} x seeds 0-2 on binarised MNIST
# (configs/mnist_mixture_{em,hard_em,em_gradient,vae}.yaml), each run then scored by
# `vaekit evaluate RUN --metrics clusters`; then `python docs/results/issue20/mixture_table.py`.
# Runs go to runs/mix_<method>_K<K>_s<seed>; about 25 minutes on 2 CPU cores. VAEKIT_DATA must point at the data.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
for k in 10 50; do
  for seed in 0 1 2; do
    for method in em hard_em em_gradient vae; do
      run=runs/mix_${method}_K${k}_s${seed}
      if [ -f "$run/model.json" ]; then echo "have $run"; continue; fi
      figures=--no-figures
      [ "$seed" = 0 ] && figures=--figures
      "$VAEKIT" train configs/mnist_mixture_${method}.yaml --set model.components=$k --set train.seed=$seed \
        $figures --out "$run"
      "$VAEKIT" evaluate "$run" --metrics clusters > /dev/null
    done
  done
done
${PYTHON:-.venv/bin/python} docs/results/issue20/mixture_table.py
