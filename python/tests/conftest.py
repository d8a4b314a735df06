"""Shared fixtures: real MNIST from ELBO_DATA_DIR (or ../shared/data/mnist beside the clone), and the `elbo`
binary built by the README's test command, to compare Python runs with CLI runs."""

import gzip
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def mnist_dir():
    d = os.environ.get("ELBO_DATA_DIR") or str(ROOT.parent / "shared" / "data" / "mnist")
    return pathlib.Path(d)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@pytest.fixture(scope="session")
def mnist():
    d = mnist_dir()
    if not (d / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST not found in {d}: set ELBO_DATA_DIR to the folder with the four .gz files")
    x = read_idx(d / "train-images-idx3-ubyte.gz")
    y = read_idx(d / "train-labels-idx1-ubyte.gz")
    xt = read_idx(d / "t10k-images-idx3-ubyte.gz")
    yt = read_idx(d / "t10k-labels-idx1-ubyte.gz")
    return x, y, xt, yt


@pytest.fixture(scope="session")
def small(mnist):
    """2000 training and 500 test images: enough to train in a second or two."""
    x, y, xt, yt = mnist
    return x[:2000].copy(), y[:2000].copy(), xt[:500].copy(), yt[:500].copy()


@pytest.fixture(scope="session")
def elbo_bin():
    """The `elbo` binary: ELBO_BIN, else the tests' build (target/ci), else the release build, else PATH."""
    env = os.environ.get("ELBO_BIN")
    candidates = [env] if env else []
    candidates += [str(ROOT / "target" / "ci" / "elbo"), str(ROOT / "target" / "release" / "elbo")]
    for c in candidates:
        if c and os.path.isfile(c):
            return c
    found = shutil.which("elbo")
    if found:
        return found
    pytest.fail("no elbo binary: run `cargo build --profile ci` first (or set ELBO_BIN)")


def run_cli(binary, *args, cwd=None):
    r = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return r


def _default_sigint():
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interruptible(args):
    """Starts `args` with stderr piped and Ctrl-C delivered as a terminal delivers it: a suite started as a background
    job of a script inherits SIGINT ignored, and Python then installs no KeyboardInterrupt, so the interruption
    tests would hang instead of testing."""
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def interrupted(script, wait=1.0):
    """Runs the Python `script` (which prints "start" to stderr when its long call begins, and exits 7 on
    KeyboardInterrupt), sends SIGINT `wait` seconds after "start", checks the interrupt was honoured within 20 s,
    and returns the rest of its stderr."""
    import signal
    import sys
    import time

    p = interruptible([sys.executable, str(script)])
    assert p.stderr.readline().startswith("start")
    time.sleep(wait)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        _, rest = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("the interrupt was not honoured within 60 s")
    assert p.returncode == 7, rest
    assert time.monotonic() - sent < 20, "the interrupt was not honoured promptly"
    return rest
