"""JAX references of elbo's speed workloads: one `jax.jit` step per workload with optax's Adam, written the way a
careful JAX user would (whole data in one array, the step compiled once per batch shape, random keys split inside
the step), so the comparison does not flatter elbo. The models, losses and optimisers are those of
bench/pytorch_vae.py and bench/pytorch_family.py:

  default  PyTorch's examples/vae/main.py: 784-400-20 ReLU, Bernoulli, Adam 1e-3, batch 128, continuous MNIST;
           one JSON line per epoch with the training time and the test -ELBO.
  iwae     IWAE k = 50 (configs/iwae-paper-iwae50.toml): 784-200-200-50 tanh, dynamic binarisation, batch 20,
           Adam (lr 1e-3, eps 1e-4), the bound summed over the batch.
  conv     The Keras example's conv VAE (configs/keras-conv.toml): Conv 32, 64 (3x3, stride 2, padding 1),
           Dense 16, 2-D latent, Dense 7*7*64, ConvTranspose 64, 32 (stride 2), ConvTranspose 1; NHWC (XLA's CPU
           layout), ReLU, Bernoulli, Adam 1e-3, batch 128.
  two-layer  Burda et al.'s two stochastic layers with the IWAE bound, k = 50 (configs/iwae-paper-iwae50-2layer.toml):
           q x-200-200-z1(100)-100-100-z2(50), p mirrors it, tanh, diagonal Gaussians, dynamic binarisation,
           batch 20, Adam (lr 1e-3, eps 1e-4), the bound summed over the batch (bench/pytorch_family.py's TwoLayer).
  eval     Importance-sampled log p(x) of the 784-400-20 model with K samples per test image, a chunk of samples
           of one image per call; every chunk size given is timed and reported.

Compile time is excluded: every step is compiled ahead of time (`jit(...).lower(...).compile()`) for each batch
shape an epoch meets, before the clock starts. Weights start as PyTorch's nn.Linear/Conv2d defaults
(U(±1/sqrt(fan_in))). XLA is held to --threads threads: `XLA_FLAGS=--xla_cpu_multi_thread_eigen=true
intra_op_parallelism_threads=N`, and the process is bound to N cores when the machine has more.
"""
import argparse
import json
import math
import os
import sys
import time


def setup_threads(threads):
    """Must run before jax is imported."""
    if threads:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}")
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["default", "iwae", "two-layer", "conv", "eval"])
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--images", type=int, default=200, help="eval: test images")
    ap.add_argument("--k", type=int, default=5000, help="eval: importance samples per image")
    ap.add_argument("--chunks", type=int, nargs="+", default=[500, 1000, 2500, 5000], help="eval: chunk sizes")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args()


args = parse() if __name__ == "__main__" else None
if args:
    setup_threads(args.threads)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_vae import idx  # noqa: E402


def mnist(data_dir, name):
    return idx(os.path.join(data_dir, f"{name}-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255.0


def linear(key, fan_in, fan_out):
    kw, kb = jax.random.split(key)
    bound = 1 / math.sqrt(fan_in)
    return {"w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)}


def conv_weights(key, k, cin, cout, fan_in):
    kw, kb = jax.random.split(key)
    bound = 1 / math.sqrt(fan_in)
    return {"w": jax.random.uniform(kw, (k, k, cin, cout), jnp.float32, -bound, bound),
            "b": jax.random.uniform(kb, (cout,), jnp.float32, -bound, bound)}


def dense(p, x):
    return x @ p["w"] + p["b"]


def mlp(hidden, latent, key):
    """Encoder layers ending in one [mu, logvar] head, decoder layers ending in 784 logits."""
    dims = [784] + hidden
    keys = iter(jax.random.split(key, 2 * len(hidden) + 2))
    enc = [linear(next(keys), a, b) for a, b in zip(dims, dims[1:])] + [linear(next(keys), dims[-1], 2 * latent)]
    dims = [latent] + hidden[::-1]
    dec = [linear(next(keys), a, b) for a, b in zip(dims, dims[1:])] + [linear(next(keys), dims[-1], 784)]
    return {"enc": enc, "dec": dec}


def run(layers, x, act):
    for p in layers[:-1]:
        x = act(dense(p, x))
    return dense(layers[-1], x)


def bce_logits(logits, x):
    """Bernoulli log-likelihood of x given logits, per element."""
    return x * logits - jnp.logaddexp(0.0, logits)


def log_weights(params, x, eps, act):
    """log p(x, z) - log q(z | x) for draws eps [k, B, d]: [k, B]."""
    mu, logvar = jnp.split(run(params["enc"], x, act), 2, axis=-1)
    z = mu + jnp.exp(0.5 * logvar) * eps
    logits = run(params["dec"], z, act)
    log_px = bce_logits(logits, x).sum(-1)
    return log_px - 0.5 * (z * z).sum(-1) + 0.5 * (eps * eps).sum(-1) + 0.5 * logvar.sum(-1)


def neg_elbo(params, x, key, act):
    """PyTorch's example: the summed BCE and the analytic KL, one draw."""
    mu, logvar = jnp.split(run(params["enc"], x, act), 2, axis=-1)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
    rec = -bce_logits(run(params["dec"], z, act), x).sum()
    kl = -0.5 * jnp.sum(1 + logvar - mu * mu - jnp.exp(logvar))
    return rec + kl


def neg_iwae(params, x, key, k):
    kb, ke = jax.random.split(key)
    x = (jax.random.uniform(kb, x.shape) < x).astype(jnp.float32)
    mu_shape = (k, x.shape[0], params["enc"][-1]["b"].shape[0] // 2)
    lw = log_weights(params, x, jax.random.normal(ke, mu_shape), jnp.tanh)
    return -(jax.nn.logsumexp(lw, 0) - math.log(k)).sum()


def two_layer(key):
    """TwoLayer's four nets, each a list of dense layers whose last has no activation."""
    keys = iter(jax.random.split(key, 12))

    def net(dims, out):
        return [linear(next(keys), a, b) for a, b in zip(dims, dims[1:])] + [linear(next(keys), dims[-1], out)]

    return {"q1": net([784, 200, 200], 200), "q2": net([100, 100, 100], 100),
            "p2": net([50, 100, 100], 200), "p1": net([100, 200, 200], 784)}


def neg_iwae_two_layer(params, x, key, k):
    """The IWAE bound of TwoLayer: log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1), k draws."""
    kb, k1, k2 = jax.random.split(key, 3)
    x = (jax.random.uniform(kb, x.shape) < x).astype(jnp.float32)
    mu1, lv1 = jnp.split(run(params["q1"], x, jnp.tanh), 2, axis=-1)
    e1 = jax.random.normal(k1, (k,) + mu1.shape)
    z1 = mu1 + jnp.exp(0.5 * lv1) * e1
    mu2, lv2 = jnp.split(run(params["q2"], z1, jnp.tanh), 2, axis=-1)
    e2 = jax.random.normal(k2, mu2.shape)
    z2 = mu2 + jnp.exp(0.5 * lv2) * e2
    pm, plv = jnp.split(run(params["p2"], z2, jnp.tanh), 2, axis=-1)
    log_px = bce_logits(run(params["p1"], z1, jnp.tanh), x).sum(-1)
    log_pz1 = -0.5 * (((z1 - pm) ** 2) * jnp.exp(-plv) + plv).sum(-1)
    log_pz2 = -0.5 * (z2 * z2).sum(-1)
    log_q = -0.5 * (e1 * e1 + lv1).sum(-1) - 0.5 * (e2 * e2 + lv2).sum(-1)
    lw = log_px + log_pz1 + log_pz2 - log_q
    return -(jax.nn.logsumexp(lw, 0) - math.log(k)).sum()


def keras_conv(key):
    ks = jax.random.split(key, 8)
    return {"c1": conv_weights(ks[0], 3, 1, 32, 9), "c2": conv_weights(ks[1], 3, 32, 64, 9 * 32),
            "fc": linear(ks[2], 7 * 7 * 64, 16), "head": linear(ks[3], 16, 4), "d0": linear(ks[4], 2, 7 * 7 * 64),
            # ConvTranspose2d's fan_in, as PyTorch computes it, is out_channels * k * k.
            "t1": conv_weights(ks[5], 3, 64, 64, 64 * 9), "t2": conv_weights(ks[6], 3, 64, 32, 32 * 9),
            "t3": conv_weights(ks[7], 3, 32, 1, 9)}


DN = ("NHWC", "HWIO", "NHWC")


def conv2d(p, x, stride):
    y = jax.lax.conv_general_dilated(x, p["w"], (stride, stride), ((1, 1), (1, 1)), dimension_numbers=DN)
    return y + p["b"]


def conv_t(p, x, stride):
    """ConvTranspose2d(k 3, padding 1, output_padding stride - 1): a convolution of the input dilated by stride."""
    pad = ((1, stride), (1, stride)) if stride > 1 else ((1, 1), (1, 1))
    y = jax.lax.conv_general_dilated(x, p["w"], (1, 1), pad, lhs_dilation=(stride, stride), dimension_numbers=DN)
    return y + p["b"]


def conv_loss(params, x, key):
    n = x.shape[0]
    h = jax.nn.relu(conv2d(params["c2"], jax.nn.relu(conv2d(params["c1"], x.reshape(n, 28, 28, 1), 2)), 2))
    mu, logvar = jnp.split(dense(params["head"], jax.nn.relu(dense(params["fc"], h.reshape(n, -1)))), 2, axis=-1)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
    h = jax.nn.relu(dense(params["d0"], z)).reshape(n, 7, 7, 64)
    logits = conv_t(params["t3"], jax.nn.relu(conv_t(params["t2"], jax.nn.relu(conv_t(params["t1"], h, 2)), 2)), 1)
    rec = -bce_logits(logits.reshape(n, 784), x).sum()
    kl = -0.5 * jnp.sum(1 + logvar - mu * mu - jnp.exp(logvar))
    return rec + kl


def trainer(loss, opt):
    """One jitted step: the loss's gradient, Adam's update, the next key."""
    def step(params, state, x, key):
        key, sub = jax.random.split(key)
        value, grads = jax.value_and_grad(loss)(params, x, sub)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, key, value
    return jax.jit(step, donate_argnums=(0, 1))


def compiled_for(step, params, state, key, shapes):
    """The step compiled ahead of time for every batch shape an epoch meets."""
    return {s: step.lower(params, state, jax.ShapeDtypeStruct(s, jnp.float32), key).compile() for s in shapes}


def train(args, name, params, loss, opt, batch):
    data = mnist(args.data_dir, "train")[: args.limit or None]
    n = len(data)
    state = opt.init(params)
    key = jax.random.PRNGKey(args.seed)
    shapes = {(min(batch, n), 784)} | ({(n % batch, 784)} if n % batch else set())
    steps = compiled_for(trainer(loss, opt), params, state, key, shapes)
    rng = np.random.default_rng(args.seed)
    test = mnist(args.data_dir, "t10k") if name == "default" else None
    eval_loss = jax.jit(loss)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        values = []
        order = rng.permutation(n)
        for at in range(0, n, batch):
            x = data[order[at: at + batch]]
            params, state, key, value = steps[x.shape](params, state, x, key)
            # Kept on the device: reading each loss would wait for its step and end the dispatch's overlap.
            values.append(value)
        jax.block_until_ready(params)
        seconds = time.perf_counter() - start
        total = float(jnp.sum(jnp.stack(values)))
        line = {"workload": name, "epoch": epoch, "seconds": seconds, "train_loss": total / n,
                "jax": jax.__version__}
        if test is not None:
            line["test_neg_elbo"] = sum(float(eval_loss(params, test[i: i + 500], jax.random.PRNGKey(i)))
                                        for i in range(0, len(test), 500)) / len(test)
        print(json.dumps(line), flush=True)


def evaluate(args):
    test = mnist(args.data_dir, "t10k")[: args.images]
    params = mlp([400], 20, jax.random.PRNGKey(args.seed))
    k = args.k

    def chunk_weights(params, x, key, size):
        return log_weights(params, x[None], jax.random.normal(key, (size, 1, 20)), jax.nn.relu)[:, 0]

    for chunk in args.chunks:
        sizes = {min(chunk, k - done) for done in range(0, k, chunk)}
        fns = {s: jax.jit(chunk_weights, static_argnums=3).lower(
            params, jax.ShapeDtypeStruct((784,), jnp.float32), jax.random.PRNGKey(0), s).compile() for s in sizes}
        for s, fn in fns.items():  # the first calls set up XLA's threads: outside the clock
            jax.block_until_ready(fn(params, test[0], jax.random.PRNGKey(0)))
        key = jax.random.PRNGKey(args.seed)
        start = time.perf_counter()
        total = 0.0
        for x in test:
            parts = []
            for done in range(0, k, chunk):
                key, sub = jax.random.split(key)
                parts.append(fns[min(chunk, k - done)](params, x, sub))
            total += float(jax.nn.logsumexp(jnp.concatenate(parts)) - math.log(k))
        seconds = time.perf_counter() - start
        print(json.dumps({"workload": "eval", "chunk": chunk, "seconds": seconds,
                          "us_per_sample": seconds / (len(test) * k) * 1e6, "log_px": total / len(test)}),
              flush=True)


def main():
    key = jax.random.PRNGKey(args.seed)
    if args.workload == "default":
        train(args, "default", mlp([400], 20, key), lambda p, x, k: neg_elbo(p, x, k, jax.nn.relu),
              optax.adam(1e-3), 128)
    elif args.workload == "iwae":
        train(args, "iwae", mlp([200, 200], 50, key), lambda p, x, k: neg_iwae(p, x, k, 50),
              optax.adam(1e-3, eps=1e-4), 20)
    elif args.workload == "two-layer":
        train(args, "two-layer", two_layer(key), lambda p, x, k: neg_iwae_two_layer(p, x, k, 50),
              optax.adam(1e-3, eps=1e-4), 20)
    elif args.workload == "conv":
        train(args, "conv", keras_conv(key), conv_loss, optax.adam(1e-3), 128)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
