"""The GEMM-only floor of one training epoch through PyTorch's SGEMM (its CPU BLAS, oneDNN/MKL or OpenBLAS): the
same products, shapes, transpositions and order as examples/gemm_floor.rs, so the two measure elbo's products
against the best BLAS on the machine at exactly elbo's shapes. Prints one JSON line per epoch. With BLAS numpy, the
same products go through NumPy's SGEMM instead (OpenBLAS in PyPI's wheels; threads set by OPENBLAS_NUM_THREADS,
which this script sets from THREADS before importing NumPy).

Usage: bench/.venv/bin/python bench/sgemm_floor.py [EPOCHS] [THREADS] [WORKLOAD: default | iwae] [BLAS: torch | numpy]
"""
import json
import os
import sys
import time

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
    blas = sys.argv[4] if len(sys.argv) > 4 else "torch"
    if blas == "numpy":
        if threads:
            os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
        import numpy as np
        mm = numpy_products(np, layers)
        used = threads
    else:
        import torch
        if threads:
            torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        mm = torch_products(torch, layers)
        used = torch.get_num_threads()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for b in steps:
            mm(b, steps[0])
        secs = time.perf_counter() - start
        flops = sum(2.0 * (r * b // steps[0]) * fi * fo * (3 if need_dx else 2)
                    for b in steps for r, fi, fo, need_dx in layers)
        print(json.dumps({"epoch": epoch, "seconds": secs, "gflop": flops / 1e9, "gflops_per_s": flops / 1e9 / secs,
                          "threads": used, "blas": blas}), flush=True)


def torch_products(torch, layers):
    """One step's products through torch.mm, into preallocated outputs."""
    big = max(r * max(fi, fo) for r, fi, fo, _ in layers)
    x = torch.full((big,), 0.5)
    y = torch.empty(big)
    dx = torch.empty(big)
    w = [torch.full((fo, fi), 0.01) for _, fi, fo, _ in layers]
    gw = [torch.zeros(fo, fi) for _, fi, fo, _ in layers]

    def step(b, full):
        for l, (r, fi, fo, _) in enumerate(layers):
            r = r * b // full
            torch.mm(x[: r * fi].view(r, fi), w[l].t(), out=y[: r * fo].view(r, fo))
        for l, (r, fi, fo, need_dx) in reversed(list(enumerate(layers))):
            r = r * b // full
            if need_dx:
                torch.mm(y[: r * fo].view(r, fo), w[l], out=dx[: r * fi].view(r, fi))
            gw[l].addmm_(y[: r * fo].view(r, fo).t(), x[: r * fi].view(r, fi))
    return step


def numpy_products(np, layers):
    """The same products through np.matmul, into preallocated outputs (the weight gradient accumulated)."""
    big = max(r * max(fi, fo) for r, fi, fo, _ in layers)
    x = np.full(big, 0.5, dtype=np.float32)
    y = np.empty(big, dtype=np.float32)
    dx = np.empty(big, dtype=np.float32)
    w = [np.full((fo, fi), 0.01, dtype=np.float32) for _, fi, fo, _ in layers]
    gw = [np.zeros((fo, fi), dtype=np.float32) for _, fi, fo, _ in layers]
    tmp = [np.zeros((fo, fi), dtype=np.float32) for _, fi, fo, _ in layers]

    def step(b, full):
        for l, (r, fi, fo, _) in enumerate(layers):
            r = r * b // full
            np.matmul(x[: r * fi].reshape(r, fi), w[l].T, out=y[: r * fo].reshape(r, fo))
        for l, (r, fi, fo, need_dx) in reversed(list(enumerate(layers))):
            r = r * b // full
            if need_dx:
                np.matmul(y[: r * fo].reshape(r, fo), w[l], out=dx[: r * fi].reshape(r, fi))
            np.matmul(y[: r * fo].reshape(r, fo).T, x[: r * fi].reshape(r, fi), out=tmp[l])
            gw[l] += tmp[l]
    return step


if __name__ == "__main__":
    main()
