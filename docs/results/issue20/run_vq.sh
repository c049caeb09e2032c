#!/usr/bin/env bash
# Issue 20, "VQ codebook: soft EM vs EMA vs the codebook loss": configs/vqvae_mnist_{codebook_loss,ema,soft_em}.yaml
# trained to runs/vq_<update>, each evaluated on the 10,000 test images (`vaekit evaluate RUN`: codes used,
# perplexity, distortion and the bound with a uniform code prior); then docs/results/issue20/vq_table.py.
# About 15 minutes on one CPU core. VAEKIT_DATA must point at the data.
set -euo pipefail
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
for update in codebook_loss ema soft_em; do
  run=runs/vq_${update}
  if [ ! -f "$run/model.json" ]; then
    "$VAEKIT" train configs/vqvae_mnist_${update}.yaml --set train.progress=false --out "$run"
  fi
done
${PYTHON:-.venv/bin/python} docs/results/issue20/vq_table.py
