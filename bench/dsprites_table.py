#!/usr/bin/env python3
"""Issue 26's table: the rows of bench/dsprites_evidence.sh, one line per model, the mean over its seeds and, with
more than one seed, the lowest and highest in brackets.

Usage: bench/dsprites_table.py [bench/results/dsprites_evidence.jsonl]

Rows that differ in data, epochs or metric points from the first row are refused rather than averaged together.
"""
import json
import sys

MODELS = ["beta-vae", "capacity", "beta-tcvae", "factorvae", "dip-vae"]
NAMES = {"beta-vae": "β-VAE, β = 4", "capacity": "capacity VAE, C → 25, γ = 1000",
         "beta-tcvae": "β-TC-VAE, β = 6", "factorvae": "FactorVAE, γ = 35", "dip-vae": "DIP-VAE-II, λ_od = 10"}
COLUMNS = [("test_recon", "recon (nats)", 1), ("test_kl", "KL (nats)", 1), ("nll_k100", "−log p(x), K = 100", 1),
           ("active_units", "active units", 0), ("beta_vae", "β-VAE metric", 2), ("factor_vae", "FactorVAE metric", 2),
           ("mig", "MIG", 3), ("sap", "SAP", 3), ("dci_disentanglement", "DCI dis.", 2),
           ("dci_completeness", "DCI compl.", 2), ("dci_informativeness", "DCI inf. (R²)", 2)]
SAME = ("data", "epochs", "points")


def cell(values, digits):
    mean = sum(values) / len(values)
    text = f"{mean:.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}–{max(values):.{digits}f})"
    return text


def main(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    if not rows:
        sys.exit(f"{path} has no rows yet")
    for r in rows:
        for key in SAME:
            if r[key] != rows[0][key]:
                sys.exit(f"{path}: {r['model']} seed {r['seed']} has {key} = {r[key]!r}, the first row "
                         f"{rows[0][key]!r}: tabulate runs of one budget at a time")
    print(f"{rows[0]['data']} data, {rows[0]['epochs']} epoch(s), metrics from {rows[0]['points']} points; "
          "mean over seeds (lowest–highest)\n")
    print("| model | seeds | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |")
    for model in MODELS:
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["seed"])
        if not mine:
            continue
        seeds = " · ".join(str(r["seed"]) for r in mine)
        cells = [cell([float(r[key]) for r in mine], digits) for key, _, digits in COLUMNS]
        print(f"| {NAMES[model]} | {seeds} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/dsprites_evidence.jsonl")
