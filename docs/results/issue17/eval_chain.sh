#!/bin/bash
# The evaluations of one PTB run for docs/results/text.md (one thread; waits for its training to end):
#   bash docs/results/issue17/eval_chain.sh ptb_text_vae    (or ptb_paragraph_ml_vae, ptb_paragraph_flat_vae)
run=$1
export VAEKIT_DATA=${VAEKIT_DATA:-../shared/data} OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive MKL_NUM_THREADS=1
while [ -f runs/$run.pid ] && kill -0 $(cat runs/$run.pid) 2>/dev/null; do sleep 10; done  # a training started with its PID in runs/<run>.pid
echo "start $(date)"
if [[ "$run" == ptb_paragraph_* ]]; then  # k = 500 on the first 100 paragraphs ran at the end of training (eval: in the config)
  .venv/bin/vaekit evaluate runs/$run -k 1 --subset 0
elif [ "$run" = ptb_lm ]; then
  .venv/bin/vaekit evaluate runs/$run --subset 300 && .venv/bin/vaekit evaluate runs/$run --subset 0
else
  .venv/bin/vaekit evaluate runs/$run -k 500 --subset 300 && .venv/bin/vaekit evaluate runs/$run -k 1 --subset 0
fi
.venv/bin/vaekit evaluate runs/$run --metrics text
echo "done $(date)"
