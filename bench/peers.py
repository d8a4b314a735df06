"""elbo against every peer on every speed workload, in one run: eager PyTorch, torch.compile (inductor) and JAX
(jax.jit + optax), one process at a time.

Rounds are interleaved (in each round every workload runs in elbo, then in each peer, in turn), so drift of a shared
machine reaches all of them alike. Prints, as Markdown, the CPU model and its SIMD flags, the medians over rounds,
the best peer by median, and elbo's time over the best peer's two ways: the ratio of medians and the median of the
per-round ratios (elbo's round r over the best peer's round r).

Workloads (all training workloads time one epoch, training only; compile time is excluded for torch.compile and JAX):
  default  PyTorch's examples/vae 784-400-20, batch 128 (elbo's default run; bench/pytorch_vae.py)
  iwae     IWAE k = 50, 784-200-200-50 tanh, batch 20 (configs/iwae-paper-iwae50.toml)
  two-layer  the IWAE paper's two stochastic layers, k = 50, batch 20 (configs/iwae-paper-iwae50-2layer.toml)
  conv     the Keras example's conv VAE, batch 128 (configs/keras-conv.toml)
  eval     importance-sampled log p(x) of 784-400-20, K samples per test image (µs per sample, each peer at its
           best chunk size)
  celeba   PyTorch-VAE's VanillaVAE on 64x64 colour photos, batch 64 (ms/image; needs bench/data/photos64 from
           bench/photos.py; no JAX reference)
  btcvae   disentanglement_lib's conv β-TC-VAE on 64x64 dSprites, batch 64, on --dsprites-images training images
           (s/epoch; needs --dsprites, which `elbo make-dsprites --subsample 20000 --seed 1 --out
           bench/data/dsprites.npz` makes; no JAX reference: XLA's CPU convolutions ran the Keras conv VAE 6-10x
           slower than PyTorch's, so JAX is not the peer to beat on a conv model)

With the default and IWAE workloads on all 60 000 images, each round also times one epoch's matrix products alone
in elbo (examples/gemm_floor.rs) and through PyTorch's SGEMM at the same shapes (bench/sgemm_floor.py).

The -ftz peers run PyTorch with torch.set_flush_denormal(True), as elbo (and XLA) run: on Intel CPUs, subnormal
floats made eager PyTorch several times slower on the IWAE models, and a user who cares about speed sets it.

Usage: bench/run.sh --peers [--workloads default iwae two-layer conv eval celeba btcvae] [--peers torch torch-ftz compile compile-ftz jax]
       [--rounds 3]
       [--limit N] [--threads 2]
"""
import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from bench import peak_rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELBO = os.path.join(ROOT, "target", "release", "elbo")
BENCH = os.path.join(ROOT, "bench")
UNITS = {"default": "s/epoch", "iwae": "s/epoch", "two-layer": "s/epoch", "conv": "s/epoch", "eval": "µs/sample",
         "celeba": "ms/image", "btcvae": "s/epoch"}
LABELS = {"default": "PyTorch example 784-400-20, batch 128", "iwae": "IWAE k = 50, 784-200-200-50, batch 20",
          "conv": "Keras conv VAE, batch 128", "eval": "importance-sampled eval 784-400-20",
          "celeba": "PyTorch-VAE VanillaVAE 64x64x3, batch 64",
          "two-layer": "IWAE k = 50, two stochastic layers (100, 50), batch 20",
          "btcvae": "β-TC-VAE (β = 6, MWS), dSprites conv, batch 64"}
CONFIGS = {"default": None, "iwae": "configs/iwae-paper-iwae50.toml", "conv": "configs/keras-conv.toml",
           "two-layer": "configs/iwae-paper-iwae50-2layer.toml", "btcvae": "configs/dsprites-beta-tcvae.toml"}
# Workloads on MNIST that --limit cuts short.
MNIST_TRAINING = ("iwae", "two-layer", "conv")
PEER_NAMES = {"torch": "PyTorch", "torch-ftz": "PyTorch, denormals flushed", "compile": "torch.compile",
              "compile-ftz": "torch.compile, denormals flushed", "jax": "JAX jit"}


def cpu():
    """The CPU's model name and the SIMD flags that matter here."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile"]
    return model, [f for f in wanted if f in flags]


def kernels(flags):
    """What src/core/simd.rs's dispatch picks for elbo's element-wise kernels on these flags (the gemm crate
    picks its own micro-kernels the same way)."""
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags):
        return "AVX-512"
    return "AVX2+FMA" if {"avx2", "fma"} <= set(flags) else "scalar"


def json_lines(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def photos_train(photos):
    files = sum(len(fs) for _, _, fs in os.walk(photos))
    return files - round(0.1 * files)  # elbo holds out a tenth as the test split


def elbo_run(w, args, seed, env, eval_run):
    if w == "eval":
        out, rss = peak_rss_mb([ELBO, "eval", eval_run, "--k", str(args.k), "--limit", str(args.images),
                                "--threads", str(args.threads), "--seed", str(seed), "--json"], env)
        return json.loads(out)["seconds"] / (args.images * args.k) * 1e6, rss
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ELBO, "train", "--epochs", "1", "--threads", str(args.threads), "--seed", str(seed),
               "--out", os.path.join(tmp, "run")]
        if w == "celeba":
            cmd += ["--config", "configs/pytorch-vae-celeba64.toml", "--data", args.photos, "--crop", "64"]
            env = dict(env, ELBO_CACHE_DIR=os.path.join(tmp, "cache"))
        elif w == "btcvae":
            cmd += ["--config", CONFIGS[w], "--data", args.dsprites, "--limit", str(args.dsprites_images)]
        else:
            if CONFIGS[w]:
                cmd += ["--config", CONFIGS[w]]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
        _, rss = peak_rss_mb(cmd, env)
        with open(os.path.join(tmp, "run", "metrics.csv")) as f:
            seconds = float(next(csv.DictReader(f))["seconds"])
    return (seconds / photos_train(args.photos) * 1e3 if w == "celeba" else seconds), rss


def peer_run(peer, w, args, seed, env):
    common = ["--threads", str(args.threads), "--seed", str(seed)]
    if peer == "jax":
        cmd = [sys.executable, os.path.join(BENCH, "jax_family.py"), w, *common, "--data-dir", args.data_dir]
    elif w == "default":
        cmd = [sys.executable, os.path.join(BENCH, "pytorch_vae.py"), *common, "--data-dir", args.data_dir]
    else:
        cmd = [sys.executable, os.path.join(BENCH, "pytorch_family.py"), w, *common, "--data-dir", args.data_dir]
        if w == "celeba":
            cmd += ["--photos", args.photos, "--limit", str(photos_train(args.photos))]
        elif w == "btcvae":
            cmd += ["--npz", args.dsprites, "--limit", str(args.dsprites_images)]
        elif w == "two-layer":
            cmd += ["--k-train", "50", "--images", "0"]
    if w == "eval":
        cmd += ["--images", str(args.images), "--k", str(args.k)]
    else:
        cmd += ["--epochs", "1"]
    if w in MNIST_TRAINING and args.limit:
        cmd += ["--limit", str(args.limit)]
    if peer.startswith("compile"):
        cmd.append("--compile")
    if peer.endswith("-ftz"):
        cmd.append("--flush-denormal")
    out, rss = peak_rss_mb(cmd, env)
    lines = json_lines(out)
    if w == "eval":
        return min(l["us_per_sample"] for l in lines), rss
    if w == "celeba":
        return lines[0]["seconds"] / lines[0]["images"] * 1e3, rss
    return lines[0]["seconds"], rss


def floors(w, args, env):
    """Seconds of one epoch's matrix products alone (the second of two epochs): elbo's (examples/gemm_floor.rs)
    and PyTorch's SGEMM at the same shapes (bench/sgemm_floor.py)."""
    floor_bin = os.path.join(ROOT, "target", "release", "examples", "gemm_floor")
    e, _ = peak_rss_mb([floor_bin, "2", str(args.threads), w], env)
    t, _ = peak_rss_mb([sys.executable, os.path.join(BENCH, "sgemm_floor.py"), "2", str(args.threads), w], env)
    return json_lines(e)[-1]["seconds"], json_lines(t)[-1]["seconds"]


def supported(peer, w):
    return not (peer == "jax" and w in ("celeba", "btcvae"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", nargs="+", default=["default", "iwae", "conv", "eval"],
                    choices=["default", "iwae", "two-layer", "conv", "eval", "celeba", "btcvae"])
    ap.add_argument("--peers", nargs="+", default=["torch", "torch-ftz", "compile", "compile-ftz", "jax"],
                    choices=list(PEER_NAMES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all 60000)")
    ap.add_argument("--images", type=int, default=200, help="eval: test images")
    ap.add_argument("--k", type=int, default=5000, help="eval: importance samples per image")
    ap.add_argument("--photos", default=os.path.join(ROOT, "bench", "data", "photos64"))
    ap.add_argument("--dsprites", default=os.path.join(ROOT, "bench", "data", "dsprites.npz"),
                    help="btcvae: dSprites in DeepMind's layout")
    ap.add_argument("--dsprites-images", type=int, default=16000, help="btcvae: training images per epoch")
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")))
    args = ap.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)
    env = dict(os.environ, ELBO_DATA_DIR=args.data_dir)
    if args.limit and "default" in args.workloads:
        sys.exit("--limit: the default workload's PyTorch reference trains on all 60 000 images")
    subprocess.run(["cargo", "build", "--release", "--bin", "elbo", "--example", "gemm_floor"], cwd=ROOT,
                   check=True)
    res, rss = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        eval_run = os.path.join(tmp, "eval-run")
        if "eval" in args.workloads:
            # The 784-400-20 model; its weights do not change the cost of evaluating it.
            peak_rss_mb([ELBO, "train", "--epochs", "1", "--limit", "1000", "--out", eval_run], env)
        for r in range(args.rounds):
            seed = r + 1
            for w in args.workloads:
                for who in ["elbo"] + [p for p in args.peers if supported(p, w)]:
                    v, m = (elbo_run(w, args, seed, env, eval_run) if who == "elbo"
                            else peer_run(who, w, args, seed, env))
                    res.setdefault((w, who), []).append(v)
                    rss[(w, who)] = max(rss.get((w, who), 0), m)
                if w in ("default", "iwae") and not args.limit:
                    e, t = floors(w, args, env)
                    res.setdefault((w, "floor-elbo"), []).append(e)
                    res.setdefault((w, "floor-torch"), []).append(t)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    import jax
    import torch
    model, flags = cpu()
    print(f"CPU: {model}; {os.cpu_count()} cores; flags: {' '.join(flags) or 'none of avx2/avx512'} "
          f"(elbo's kernels: {kernels(flags)}); "
          f"threads {args.threads}; PyTorch {torch.__version__}, JAX {jax.__version__}; {time.strftime('%Y-%m-%d')}")
    print(f"Rounds: {args.rounds}, interleaved; training on {args.limit or 60000} images per epoch; eval "
          f"K = {args.k} on {args.images} test images. Medians over rounds.\n")
    peers = [PEER_NAMES[p] for p in args.peers]
    floor_lines = []
    print("| workload | unit | elbo | " + " | ".join(peers) + " | best peer | elbo / best (medians) | "
          "elbo / best (median of rounds) | peak RSS MB elbo / best |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in peers) + " | --- | --- | --- | --- |")
    for w in args.workloads:
        med = {who: statistics.median(v) for (ww, who), v in res.items() if ww == w}
        best = min((p for p in args.peers if p in med), key=lambda p: med[p])
        if "floor-elbo" in med:
            floor_lines.append(
                f"| {LABELS[w]} | {med['elbo']:.3f} | {med['floor-elbo']:.3f} | {med['floor-torch']:.3f} | "
                f"{med['floor-elbo'] / med['floor-torch']:.2f} | {med['elbo'] / med['floor-elbo']:.2f} |")
        per_round = statistics.median(e / b for e, b in zip(res[(w, "elbo")], res[(w, best)]))
        cells = [f"{med[p]:.3f}" if p in med else "" for p in args.peers]
        print(f"| {LABELS[w]} | {UNITS[w]} | {med['elbo']:.3f} | " + " | ".join(cells) +
              f" | {PEER_NAMES[best]} | **{med['elbo'] / med[best]:.2f}** | {per_round:.2f} | "
              f"{rss[(w, 'elbo')]:.0f} / {rss[(w, best)]:.0f} |")
    if floor_lines:
        print("\nMatrix products alone (one epoch's, the same shapes and order): elbo's (examples/gemm_floor.rs) "
              "and PyTorch's SGEMM (bench/sgemm_floor.py).\n")
        print("| workload | elbo epoch s | elbo products s | PyTorch SGEMM s | elbo / SGEMM products | "
              "epoch / elbo products |")
        print("| --- | --- | --- | --- | --- | --- |")
        print("\n".join(floor_lines))
    print("\nPer round: " + "; ".join(f"{w} {who} " + ", ".join(f"{v:.3f}" for v in vs)
                                      for (w, who), vs in res.items()))


if __name__ == "__main__":
    main()
