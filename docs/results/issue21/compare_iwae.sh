#!/usr/bin/env bash
# Paired IS-NLL differences of the IWAE-table runs (same 500 test images, k = 1000, seed 0), saved in each run
# A's eval/ for the comparison page; then every run's page and the comparison page of all ten.
# `bash docs/results/issue21/compare_iwae.sh` (after train_runs.sh b); `SKIP_L1=1` skips the 1-layer pairs.
set -euo pipefail
V=${VAEKIT:-vaekit}
R=${RUNS:-runs/report}/iwae
export OMP_NUM_THREADS=1
for l in 1 2; do
  [ "$l" = 1 ] && [ -n "${SKIP_L1:-}" ] && continue
  $V compare $R/l${l}_vae_k50 $R/l${l}_iwae_k50 -k 1000 --subset 500
  $V compare $R/l${l}_vae_k5 $R/l${l}_iwae_k5 -k 1000 --subset 500
  $V compare $R/l${l}_vae_k1 $R/l${l}_iwae_k50 -k 1000 --subset 500
done
$V compare $R/l1_iwae_k50 $R/l2_iwae_k50 -k 1000 --subset 500
$V report $R/l1_vae_k1 $R/l1_vae_k5 $R/l1_vae_k50 $R/l1_iwae_k5 $R/l1_iwae_k50 \
  $R/l2_vae_k1 $R/l2_vae_k5 $R/l2_vae_k50 $R/l2_iwae_k5 $R/l2_iwae_k50 --out $R/comparison.html
