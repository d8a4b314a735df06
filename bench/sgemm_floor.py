"""The GEMM-only floor of one training epoch through PyTorch's SGEMM (its CPU BLAS, oneDNN/MKL or OpenBLAS): the
same products, shapes, transpositions and order as examples/gemm_floor.rs, so the two measure elbo's products
against the best BLAS on the machine at exactly elbo's shapes. Prints one JSON line per epoch.

Usage: bench/.venv/bin/python bench/sgemm_floor.py [EPOCHS] [THREADS] [WORKLOAD: default | iwae]
"""
import json
import sys
import time

import torch

LAYERS = {
    # rows, fan-in, fan-out, whether the input gradient is needed; steps of that many rows
    "default": ([(128, 784, 400, False), (128, 400, 40, True), (128, 20, 400, True), (128, 400, 784, True)],
                [128] * 468 + [96]),
    "iwae": ([(20, 784, 200, False), (20, 200, 200, True), (20, 200, 100, True), (1000, 50, 200, True),
              (1000, 200, 200, True), (1000, 200, 784, True)], [20] * 3000),
}


def main():
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    layers, steps = LAYERS[sys.argv[3] if len(sys.argv) > 3 else "default"]
    if threads:
        torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    big = max(r * max(fi, fo) for r, fi, fo, _ in layers)
    x = torch.full((big,), 0.5)
    y = torch.empty(big)
    dx = torch.empty(big)
    w = [torch.full((fo, fi), 0.01) for _, fi, fo, _ in layers]
    gw = [torch.zeros(fo, fi) for _, fi, fo, _ in layers]
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for b in steps:
            for l, (r, fi, fo, _) in enumerate(layers):
                r = r * b // steps[0]
                torch.mm(x[: r * fi].view(r, fi), w[l].t(), out=y[: r * fo].view(r, fo))
            for l, (r, fi, fo, need_dx) in reversed(list(enumerate(layers))):
                r = r * b // steps[0]
                if need_dx:
                    torch.mm(y[: r * fo].view(r, fo), w[l], out=dx[: r * fi].view(r, fi))
                gw[l].addmm_(y[: r * fo].view(r, fo).t(), x[: r * fi].view(r, fi))
        secs = time.perf_counter() - start
        flops = sum(2.0 * (r * b // steps[0]) * fi * fo * (3 if need_dx else 2)
                    for b in steps for r, fi, fo, need_dx in layers)
        print(json.dumps({"epoch": epoch, "seconds": secs, "gflop": flops / 1e9, "gflops_per_s": flops / 1e9 / secs,
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
