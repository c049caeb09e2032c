#!/usr/bin/env bash
# The runs behind docs/results/report.md (issue 21): one run per modality at short CPU budgets (the pages are
# what is shown, not the models' best numbers), and the IWAE table's trainings (10 epochs each,
# 1 and 2 layers), evaluated with k = 1000 on the first 500 test images.
# Two streams, one thread each: `bash docs/results/issue21/train_runs.sh a` and `... b`; a finished run
# (its model.json) is not trained again.
set -euo pipefail
V=${VAEKIT:-vaekit}
R=${RUNS:-runs/report}
mkdir -p "$R"
export OMP_NUM_THREADS=1
train() {  # train OUT ARGS...: skip a finished run, start an unfinished one again
  local out=$1; shift
  [ -f "$out/model.json" ] && return 0
  rm -rf "$out"
  $V train "$@" --out "$out"
}
iwae() {  # iwae LAYERS EPOCHS
  for spec in vae:1 vae:5 vae:50 iwae:5 iwae:50; do
    obj=${spec%%:*}; k=${spec##*:}; name=elbo_k; [ "$obj" = iwae ] && name=iwae
    train "$R/iwae/l$1_${obj}_k${k}" configs/iwae_table1_$1layer.yaml --set objective.name=$name --set objective.k=$k \
      --set train.max_epochs=$2 --set train.progress=false --set eval.num_samples=1000 --set eval.subset=500
  done
}
case "${1:-a}" in
a)
  train "$R/fashion_conv_vae" configs/fashion_conv_vae.yaml
  train "$R/speech_vae" configs/fsdd_speech_vae.yaml --set train.max_time=900
  train "$R/musicvae" configs/chorale_musicvae_flat.yaml --set train.max_time=420
  train "$R/cwvae" configs/mmnist_cwvae_L1.yaml --set train.max_time=500
  train "$R/vq_ema" configs/vqvae_mnist_ema.yaml
  train "$R/text_vae_free_bits" configs/ptb_text_vae_free_bits.yaml --set train.max_time=1200 --set eval.subset=100
  ;;
b)
  iwae 1 10
  train "$R/text_vae" configs/ptb_text_vae.yaml --set train.max_time=540 --set eval.subset=100
  iwae 2 10
  ;;
esac
