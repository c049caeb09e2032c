#!/usr/bin/env bash
# The runs behind docs/results/vq.md, on the 2-core CPU: two lanes at a time, one thread each.
# Run from the repository root with VAEKIT_DATA pointing at the data sets.
set -euo pipefail
export OMP_NUM_THREADS=1
V=.venv/bin/vaekit

# MNIST (dynamically binarized, Bernoulli): VQ-VAE, its class-conditional gated PixelCNN prior, CAS
$V train configs/vqvae_mnist.yaml --out runs/vq-mnist
$V fit-prior runs/vq-mnist --epochs 6
$V evaluate runs/vq-mnist --metrics cas
# the same VQ-VAE with neither EMA nor restarts: the codebook trained by its loss alone
$V train configs/vqvae_mnist.yaml --set model.ema=false --set model.restart_threshold=0 --out runs/vq-mnist-plain
# VQ-VAE-2: a 7x7 bottom and a 3x3 top map; a top prior, and a bottom prior conditioned on the top codes
$V train configs/vqvae2_mnist.yaml --out runs/vq2-mnist
$V fit-prior runs/vq2-mnist --epochs 6
$V evaluate runs/vq2-mnist --metrics cas
# a Gaussian VAE on the same data and likelihood, same epochs: IS-NLL with k=1000 on the 10k test images
$V train vae --data mnist --set data.binarize=dynamic --set "model.hidden=[512,256]" --set model.latent_dim=32 \
    --set model.likelihood=bernoulli --set train.max_epochs=5 --set eval.num_samples=1000 --out runs/vae-mnist-mlp

# Fashion-MNIST (8-bit, discretized logistic)
$V train configs/vqvae_fashion.yaml --out runs/vq-fashion
$V fit-prior runs/vq-fashion --epochs 6
$V evaluate runs/vq-fashion --metrics cas
# the demo's conv VAE for the same 5 epochs: IS-NLL with k=100 on the 10k test images
$V train configs/fashion_conv_vae.yaml --set train.max_epochs=5 --set eval.subset=null --set eval.num_samples=100 \
    --out runs/vae-fashion-conv

.venv/bin/python docs/results/issue5/collect.py   # docs/results/issue5/*.json and the figures
