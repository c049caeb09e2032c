#!/usr/bin/env bash
# Paired IS-NLL differences of the 1-layer IWAE-table runs (same 500 test images, k = 1000, seed 0), saved in
# each run A's eval/ for the comparison page; then the pages.
set -euo pipefail
V=${VAEKIT:-vaekit}
R=${RUNS:-runs/report}/iwae
export OMP_NUM_THREADS=1
$V compare $R/l1_vae_k50 $R/l1_iwae_k50 -k 1000 --subset 500
$V compare $R/l1_vae_k5 $R/l1_iwae_k5 -k 1000 --subset 500
$V compare $R/l1_vae_k1 $R/l1_iwae_k50 -k 1000 --subset 500
$V report $R/l1_vae_k1 $R/l1_vae_k5 $R/l1_vae_k50 $R/l1_iwae_k5 $R/l1_iwae_k50 --out $R/comparison.html
