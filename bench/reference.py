"""Independent PyTorch reference for elbo's loss and gradients on one fixed batch.

Reads the file written by `cargo run --release --example fixed_batch -- FILE`, rebuilds the model in PyTorch
from the stored config and weights, recomputes -ELBO = BCE + KL on the stored batch and noise with autograd,
and compares elbo's numbers. Exits 1 when any relative difference exceeds the tolerance.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--json-out", help="also write PyTorch's recon, kl and loss here (the test suite's golden file)")
    args = ap.parse_args()
    with safe_open(args.file, "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k).double() for k in f.keys()}
    cfg = json.loads(meta["config"])
    if cfg["likelihood"]["kind"] != "bernoulli" or cfg["activation"] != "relu":
        sys.exit("reference.py covers the Bernoulli/ReLU models only")
    params = {k: v.clone().requires_grad_(True) for k, v in t.items() if not k.startswith("grad.") and k not in ("x", "eps")}
    x, eps = t["x"], t["eps"]
    nh, latent = len(cfg["hidden"]), cfg["latent"]

    def linear(h, name):
        return F.linear(h, params[name + ".weight"], params[name + ".bias"])

    h = x
    for i in range(nh):
        h = F.relu(linear(h, f"encoder.{i}"))
    head = linear(h, "encoder.head")
    mu, logvar = head[:, :latent], head[:, latent:]
    z = mu + torch.exp(0.5 * logvar) * eps
    h = z
    for i in range(nh):
        h = F.relu(linear(h, f"decoder.{i}"))
    logits = linear(h, "decoder.out")
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = recon + kl
    loss.backward()

    ours = {"recon": float(meta["recon"]), "kl": float(meta["kl"])}
    ours["loss"] = ours["recon"] + ours["kl"]
    ref = {"recon": recon.item(), "kl": kl.item(), "loss": loss.item()}
    worst = 0.0
    report = {}
    for k in ("recon", "kl", "loss"):
        rel = abs(ours[k] - ref[k]) / abs(ref[k])
        report[k] = {"elbo": ours[k], "pytorch": ref[k], "rel_diff": rel}
        worst = max(worst, rel)
    for name, p in params.items():
        g_ref, g_ours = p.grad, t["grad." + name]
        rel = (torch.linalg.norm(g_ours - g_ref) / torch.linalg.norm(g_ref)).item()
        report["grad." + name] = {"rel_diff_norm": rel}
        worst = max(worst, rel)
    report["worst_rel_diff"] = worst
    report["tolerance"] = args.tol
    print(json.dumps(report, indent=1))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"source": "bench/reference.py (PyTorch %s, float64)" % torch.__version__, **ref}, f, indent=1)
            f.write("\n")
    sys.exit(0 if worst <= args.tol else 1)


if __name__ == "__main__":
    main()
