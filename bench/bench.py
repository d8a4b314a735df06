"""Speed, quality and memory of elbo against PyTorch, measured side by side in one run.

Each round trains elbo's default model and the identical PyTorch model (bench/pytorch_vae.py) for --epochs
epochs, one after the other, never at the same time, and runs the GEMM-only floor. Prints the median seconds per
epoch of each, their ratios, the test -ELBO after the last epoch, and each process's peak RSS, as Markdown.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_rss_mb(cmd, env):
    """Runs a command and returns (stdout, its peak RSS in MB) via wait4."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {status}")
    return out, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")))
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data_dir)
    env = dict(os.environ, ELBO_DATA_DIR=data_dir)
    subprocess.run(["cargo", "build", "--release", "--bin", "elbo", "--example", "gemm_floor"], cwd=ROOT, check=True)
    elbo_bin = os.path.join(ROOT, "target", "release", "elbo")
    floor_bin = os.path.join(ROOT, "target", "release", "examples", "gemm_floor")
    res = {"elbo": [], "pytorch": [], "floor": [], "elbo_test": [], "pytorch_test": [], "elbo_rss": [], "pytorch_rss": []}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = os.path.join(tmp, "run")
            _, rss = peak_rss_mb([elbo_bin, "train", "--epochs", str(args.epochs), "--threads", str(args.threads),
                                  "--seed", str(r + 1), "--out", run_dir], env)
            with open(os.path.join(run_dir, "metrics.csv")) as f:
                rows = list(csv.DictReader(f))
            res["elbo"] += [float(row["seconds"]) for row in rows]
            res["elbo_test"].append(float(rows[-1]["test_neg_elbo"]))
            res["elbo_rss"].append(rss)
        out, rss = peak_rss_mb([sys.executable, os.path.join(ROOT, "bench", "pytorch_vae.py"), "--epochs", str(args.epochs),
                                "--threads", str(args.threads), "--seed", str(r + 1), "--data-dir", data_dir], env)
        lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        res["pytorch"] += [l["seconds"] for l in lines]
        res["pytorch_test"].append(lines[-1]["test_neg_elbo"])
        res["pytorch_rss"].append(rss)
        out, _ = peak_rss_mb([floor_bin, "3", str(args.threads)], env)
        res["floor"] += [json.loads(l)["seconds"] for l in out.splitlines()]
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in res.items()}
    import torch
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"PyTorch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    print(f"Rounds: {args.rounds} x {args.epochs} epochs each (round r uses seed r for both), medians over all epochs of all rounds.\n")
    print("| | s/epoch (median) | ratio to PyTorch | test -ELBO after last epoch (per round) | peak RSS MB (max) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| PyTorch | {med['pytorch']:.3f} | 1.00 | {', '.join(f'{v:.2f}' for v in res['pytorch_test'])} | {max(res['pytorch_rss']):.0f} |")
    print(f"| elbo | {med['elbo']:.3f} | {med['elbo'] / med['pytorch']:.2f} | {', '.join(f'{v:.2f}' for v in res['elbo_test'])} | {max(res['elbo_rss']):.0f} |")
    print(f"| GEMM floor (elbo's products only) | {med['floor']:.3f} | {med['floor'] / med['pytorch']:.2f} | | |")
    print(f"\nelbo is {med['pytorch'] / med['elbo']:.2f}x PyTorch's speed; elbo / GEMM floor = {med['elbo'] / med['floor']:.2f}.")
    me, mp = statistics.mean(res["elbo_test"]), statistics.mean(res["pytorch_test"])
    print(f"Mean test -ELBO after epoch {args.epochs}: elbo {me:.2f}, PyTorch {mp:.2f} (difference {me - mp:+.2f} nats).")


if __name__ == "__main__":
    main()
