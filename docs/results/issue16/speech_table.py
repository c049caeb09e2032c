"""Write docs/results/speech.md from the result files committed beside this script (docs/results/issue16/).

    python docs/results/issue16/speech_table.py

Every number in speech.md is read here from a JSON file of this folder, copied from the run that made it
(the commands are in speech.md); nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "speech.md"


def load(name: str) -> dict | None:
    path = HERE / name
    return json.loads(path.read_text()) if path.is_file() else None


def share(r: dict, key: str) -> str:
    return f"{r[f'{key}_share']:.3f} ± {r[f'{key}_share_se']:.3f}"


def conversion_rows(res: dict, made: str, label: str) -> list[str]:
    no = "baseline_no_conversion" if made == "conversion" else "baseline_no_transfer"
    rows = []
    for key, what in ((made, label), (no, "no conversion (the source audio)"),
                      ("baseline_real_target", "real audio of the target speaker (same digit, same take)"),
                      ("reconstruction", "reconstruction (the source's own speaker)")):
        r = res[key]
        rows.append(f"| {what} | {share(r, 'target')} | {share(r, 'kept')} | {r['n']} |")
    return rows


def pair_table(res: dict) -> list[str]:
    names = res["speakers"]
    cells = {(p["source"], p["target"]): p for p in res["pairs"]}
    lines = ["| source \\ target | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for s in names:
        row = [f"{cells[(s, t)]['target_share']:.2f} / {cells[(s, t)]['kept_share']:.2f}"
               if (s, t) in cells else "-" for t in names]
        lines.append(f"| {s} | " + " | ".join(row) + " |")
    return lines


def main() -> None:
    clf = {t: load(f"classifier_{t}.json") for t in ("speaker", "digit")}
    runs = [("audio_vqvae_wave", "configs/fsdd_audio_vqvae.yaml", "runs/avq_mel_v2",
             "the paper's encoder: 6 strided convolutions over the waveform"),
            ("audio_vqvae_mel_encoder", "configs/fsdd_audio_vqvae_mel_encoder.yaml", "runs/avq_mel_enc",
             "the encoder over log-mel frames"),
            ("audio_vqvae_down7", "configs/fsdd_audio_vqvae_down7.yaml", "runs/avq_down7",
             "the paper's encoder with 7 strided convolutions (128x)"),
            ("audio_vqvae_wavenet", "configs/fsdd_audio_vqvae_wavenet.yaml", "runs/avq_wavenet",
             "the paper's encoder and the paper's WaveNet decoder")]
    svae = load("speech_vae.speech.json")
    svae_eval = {name: load(f"{name}.eval.json") for name in
                 ("speech_vae", "speech_vae_no_anneal", "speech_vae_anneal", "speech_vae_free_bits")}
    lines = ["# Speech with latents on FSDD: conversion, style transfer, codes and prior samples", "",
             "Written by `python docs/results/issue16/speech_table.py` from the JSON files in",
             "`docs/results/issue16/` (copied from the runs named below). Machine: CPU (AMD EPYC, 2 cores,",
             "torch 2.13.0+cpu). The models are described in `docs/speech.md`; the scoring protocol there too.", ""]
    lines += ["## The classifiers (trained on the real FSDD training audio)", "",
              "Source: `issue16/classifier_speaker.json`, `issue16/classifier_digit.json` (made by "
              "`vaekit evaluate RUN --metrics speech` on first use: "
              "`vaekit.evaluation.audio_scores.load_or_train_classifier`; their records, copied from "
              "`~/.cache/vaekit/classifiers/fsdd/`). Shares are fractions.",
              "", "| classifier | accuracy on the 300 real test utterances |", "|---|---|"]
    for t, r in clf.items():
        if r:
            lines.append(f"| {t} | {r['test_accuracy']:.4f} |")
    lines += ["", "Every share below is bounded by these accuracies. Griffin-Lim round trips of the real test audio",
              "(`mel_to_audio(log_mel(x))`) are classified as well as the real audio (measured when the",
              "classifiers were made: speaker 100%, digit 99.67%), so Griffin-Lim alone does not cost the scores.", ""]
    for stem, config, run, what in runs:
        vq, vq_codes = load(f"{stem}.speech.json"), load(f"{stem}.eval.json")
        if not vq:
            continue
        c = vq["conversion"]
        flags = (f" --every {vq['every']}" if (vq.get("every") or 1) > 1 else "") + \
            (" --compile" if vq.get("compiled_generation") else "")
        lines += [f"## Audio VQ-VAE, {what}: speaker conversion (all 6 x 5 ordered pairs, FSDD test split)", "",
                  f"Run: `vaekit train {config} --out {run}`, then `vaekit evaluate {run} --metrics speech{flags}` "
                  f"(`issue16/{stem}.speech.json`, commit {vq.get('commit')}; training: `issue16/{stem}.eval.json`, "
                  f"`issue16/{stem}.metrics.csv`). Goal: target speaker >= 0.70 and digit kept >= 0.70.", ""]
        if (vq.get("every") or 1) > 1:
            lines += [f"Every {vq['every']}th test utterance only (`--every {vq['every']}`; {c['utterances']}: one take "
                      f"of each speaker and digit, every ordered pair): generating every sample with the WaveNet "
                      f"decoder costs too much CPU time for all 300.", ""]
        lines += [
                  f"Source: `issue16/{stem}.speech.json` (`vaekit evaluate {run} --metrics speech{flags}`); shares "
                  f"with binomial standard errors.", "",
                  "| audio | target speaker | digit kept | n |", "|---|---|---|---|"]
        lines += conversion_rows(c, "conversion", "**converted** (source codes, target speaker)")
        lines += ["", f"Source: `issue16/{stem}.speech.json` (`vaekit evaluate {run} --metrics speech{flags}`): per "
                  f"ordered pair, target speaker share / digit kept share ({c['pairs'][0]['n']} conversions each).", ""]
        lines += pair_table(c)
        if vq_codes:
            cb = vq_codes["latent_usage"]["codebook"][0]
            lines += ["", f"Codes (`issue16/{stem}.eval.json`, `vaekit evaluate {run}`):", "",
                      f"- rate: {vq_codes['code_rate_hz']:g} code frames/s x log2 {cb['num_codes']} = "
                      f"{vq_codes['rate_uniform_bits_per_second']:.0f} bits per second of audio (uniform prior)"
                      + (f"; {vq_codes['rate_prior_bits_per_second']:.0f} bits/s under the fitted prior"
                         if vq_codes.get("rate_prior_bits_per_second") else ""),
                      f"- codes used on the test set: {cb['codes_used']} of {cb['num_codes']} "
                      f"({100 * cb['fraction_used']:.1f}%; goal >= 90%), perplexity {cb['perplexity']:.1f}",
                      (f"- distortion: {vq_codes['distortion_nats']:.0f} nats per utterance, "
                       f"{vq_codes['distortion_nats_per_frame']:.1f} per frame; log-mel MSE {vq_codes['mel_mse']:.3f}, "
                       f"MAE {vq_codes['mel_mae']:.3f}" if "mel_mse" in vq_codes else
                       f"- distortion: {vq_codes['distortion_nats']:.0f} nats per utterance, "
                       f"{vq_codes['distortion_bits_per_sample']:.2f} bits per 8-bit mu-law sample (WaveNet decoder)")]
        p = vq.get("prior_samples")
        if p:
            s_, r = p["samples"], p["real_test"]
            lines += ["", f"### Samples of the code prior (`vaekit fit-prior {run}`)", "",
                      f"Source: `issue16/{stem}.speech.json` (`vaekit fit-prior {run}`, then `vaekit evaluate {run} "
                      f"--metrics speech`): {p['n']} samples, {p['per_pair']} per speaker and digit, at most "
                      f"{p['max_seconds']} s; FD against the features of {p['frechet_reference']}.", "",
                      "| audio | asked-for speaker | asked-for digit | digit IS | digit FD | speaker FD |",
                      "|---|---|---|---|---|---|",
                      f"| prior samples | {s_['speaker_accuracy']:.3f} | {s_['digit_accuracy']:.3f} | "
                      f"{s_['digit_inception_score']:.2f} | {s_['digit_frechet_distance']:.2f} | "
                      f"{s_['speaker_frechet_distance']:.2f} |",
                      f"| real test audio | {r['speaker_accuracy']:.3f} | {r['digit_accuracy']:.3f} | "
                      f"{r['digit_inception_score']:.2f} | {r['digit_frechet_distance']:.2f} | "
                      f"{r['speaker_frechet_distance']:.2f} |"]
        lines.append("")
    if svae:
        t = svae["style_transfer"]
        lines += ["", "## Speech VAE: style transfer (all 6 x 5 ordered pairs, FSDD test split)", "",
                  "Run: `vaekit train configs/fsdd_speech_vae.yaml --out runs/speech_vae_default`, then "
                  f"`vaekit evaluate runs/speech_vae_default --metrics speech` (`issue16/speech_vae.speech.json`, commit "
                  f"{svae.get('commit')}). The reference is an utterance of the target speaker saying another digit.", "",
                  "Source: `issue16/speech_vae.speech.json` (`vaekit evaluate runs/speech_vae_default --metrics "
                  "speech`); shares with binomial standard errors.", "",
                  "| audio | target speaker | digit kept | n |", "|---|---|---|---|"]
        lines += conversion_rows(t, "transfer", "**transferred** (source digit, reference's z)")
        lines += ["", f"The transferred audio says the *reference's* digit in a share {t['reference_digit_heard']:.3f} "
                  f"of the cases. KL of the style latent on the test split: {t['kl_style_nats']:.2f} nats.", "",
                  ] + (["Source: `issue16/speech_vae.speech.json` (`vaekit evaluate runs/speech_vae_default "
                        "--metrics speech`): per ordered pair, target speaker share / digit kept share.", ""]
                       + pair_table(t) if "pairs" in t else [])
    rows = [(n, r) for n, r in svae_eval.items() if r]
    if rows:
        scored = [f"`issue16/{n}.speech.json`" for n, _ in rows if (HERE / f"{n}.speech.json").is_file()]
        lines += ["", "## Speech VAE: the anti-collapse measures (test split, k = 32)", "",
                  "Source: `issue16/speech_vae*.eval.json` (`vaekit train configs/<config> --out runs/<run>`, which "
                  "evaluates at the end of training) and, for the style transfer columns, " + ", ".join(scored)
                  + " (`vaekit evaluate runs/<run> --metrics speech`; the default's run folder is "
                  "`runs/speech_vae_default`). Columns not from these files: \"config\".", "",
                  "| run | config | KL of z (nats) | active units | -ELBO (nats) | IS-NLL (nats) "
                  "| transfer: target speaker | transfer: digit kept |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in rows:
            cfg = {"speech_vae": "fsdd_speech_vae.yaml (annealing + KL every 10 steps)",
                   "speech_vae_no_anneal": "fsdd_speech_vae_no_anneal.yaml (plain ELBO)",
                   "speech_vae_anneal": "fsdd_speech_vae_anneal.yaml (annealing only)",
                   "speech_vae_free_bits": "fsdd_speech_vae_free_bits.yaml (free bits)"}[name]
            st = (load(f"{name}.speech.json") or {}).get("style_transfer")
            cols = (f"{share(st['transfer'], 'target')} | {share(st['transfer'], 'kept')}" if st else "- | -")
            lines.append(f"| {name} | {cfg} | {r['rate_nats']:.2f} | {r['active_units']} | "
                         f"{r['neg_elbo_nats']:.1f} | {r['nll_nats']:.1f} ± {r['nll_stderr_nats']:.1f} | {cols} |")
    lines += ["", "## Listening and pictures", "",
              "`docs/results/issue16/wav/<model>/` (`audio_vqvae_mel_encoder`, `audio_vqvae_wave`, `audio_vqvae_down7`,",
              "`audio_vqvae_wavenet`, `speech_vae`; the 128x run's folder holds its conversions only): for",
              "each source speaker one conversion or style transfer, `<kind>_<source>_to_<target>_digit<d>.wav`, beside",
              "the source (`source_<speaker>_digit<d>.wav`) and the real target-speaker utterance of that digit",
              "(`real_<speaker>_digit<d>.wav`); `prior_<speaker>_digit<d>.wav` are samples of the code prior.",
              "Spectrograms of source / converted / real target speaker side by side:",
              "`docs/results/figures/fsdd_audio_vqvae_conversion.png` (mel-encoder audio VQ-VAE),",
              "`docs/results/figures/fsdd_audio_vqvae_wavenet_conversion.png` (the WaveNet decoder) and",
              "`docs/results/figures/fsdd_speech_vae_transfer.png`; the codebook's use over training:",
              "`docs/results/figures/fsdd_audio_vqvae_codebook.png` (all from `RUN/figures/`)."]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
