#!/usr/bin/env bash
# Fingerprints of today's models on fixed seeds, to show that a refactor changes no bit: trains the default,
# IWAE, CVAE, convolutional and batch-norm models briefly, then evaluates, samples, encodes and traverses each,
# and prints one sha256 per output. Run it before and after a change with the same binary profile and compare:
#   bench/same_bits.sh target/ci/elbo /tmp/before > before.txt; ... ; diff before.txt after.txt
# Bits depend on the CPU's SIMD paths, so compare runs on one machine.
set -euo pipefail
elbo=${1:?usage: same_bits.sh ELBO_BINARY WORK_DIR}
work=${2:?usage: same_bits.sh ELBO_BINARY WORK_DIR}
mkdir -p "$work"
common=(--limit 3000 --epochs 2 --seed 7 --threads 2 --force)
declare -A models=(
  [default]=""
  [iwae]="--objective iwae --samples 5"
  [cvae]="--conditional"
  [conv]="--arch keras-conv"
  [batchnorm]="--batch-norm"
)
for name in default iwae cvae conv batchnorm; do
  run="$work/$name"
  rm -rf "$run"
  # shellcheck disable=SC2086
  "$elbo" train "${common[@]}" ${models[$name]} --out "$run" > /dev/null 2>&1
  "$elbo" eval "$run" --k 20 --limit 200 --json --threads 2 2>/dev/null | sed "s/,\"seconds\":[0-9.e-]*//" > "$run/eval.json"
  "$elbo" sample "$run" -n 16 --seed 3 --out "$run/s.png" > /dev/null 2>&1
  "$elbo" sample "$run" -n 4 --seed 3 --out "$run/s.csv" > /dev/null 2>&1
  "$elbo" traverse "$run" --out "$run/t.png" > /dev/null 2>&1 || true
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i } { s = ""; for (i = 1; i <= NF; i++) if (i != c) s = s $i ","; print s }' "$run/metrics.csv" > "$run/metrics.cut"
  # The checkpoint's tensors, without its header (which holds the run's folder and times).
  hlen=$(od -An -t u8 -N 8 "$run/checkpoint.safetensors" | tr -d ' ')
  tail -c +$((9 + hlen)) "$run/checkpoint.safetensors" > "$run/tensors.bin"
  for f in tensors.bin metrics.cut eval.json s.png s.csv t.png samples.png reconstructions.png; do
    if [ -f "$run/$f" ]; then
      echo "$name $f $(sha256sum < "$run/$f" | cut -c1-16)"
    fi
  done
done
