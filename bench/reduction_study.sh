#!/usr/bin/env bash
# Quality of the IWAE paper's VAE (configs/iwae-paper-vae.toml) on the 35-epoch schedule (--stage-growth 1.4)
# under three optimiser settings, over seeds: the loss summed over the batch (the paper's code), its per-image
# mean (PyTorch's default), and the sum with Adam beta1 = 0.99 (the paper code's default). Prints one line per
# run: arm, seed, -log p(x) with K = 1000 on the first 1000 test images, and the test -ELBO of the last epoch.
#
# Usage: bench/reduction_study.sh [SEEDS...]   (default 1 2 3; about 80 s per run on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
ELBO=target/release/elbo
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
seeds=("${@:-1 2 3}")
for seed in ${seeds[@]}; do
  for arm in sum mean beta1-0.99; do
    case $arm in
      sum) extra=() ;;
      mean) extra=(--loss-reduction mean) ;;
      beta1-0.99) extra=(--adam-beta1 0.99) ;;
    esac
    run="$out/$arm-$seed"
    "$ELBO" train --config configs/iwae-paper-vae.toml --stage-growth 1.4 --seed "$seed" "${extra[@]}" \
      --out "$run" >/dev/null 2>&1
    nll=$("$ELBO" eval "$run" --k 1000 --limit 1000 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nll"])')
    test_elbo=$(tail -1 "$run/metrics.csv" | cut -d, -f5)
    echo "$arm seed=$seed nll_k1000=$nll test_neg_elbo=$test_elbo"
  done
done
