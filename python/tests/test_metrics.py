"""elbo.metrics against the NumPy references of bench/disentanglement_reference.py, written from the papers."""
import importlib.util
import os

import numpy as np
import pytest

from elbo import metrics

_spec = importlib.util.spec_from_file_location(
    "reference", os.path.join(os.path.dirname(__file__), "..", "..", "bench", "disentanglement_reference.py"))
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def fixed_case(seed, n=600, d=5, sizes=(3, 6, 10)):
    """Codes that are noisy, mixed functions of the factors, plus a pure-noise code."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in sizes], 1)
    z = np.empty((n, d))
    z[:, 0] = f[:, 0] + 0.3 * rng.standard_normal(n)
    z[:, 1] = 0.5 * f[:, 1] + 0.2 * f[:, 2] + 0.5 * rng.standard_normal(n)
    z[:, 2] = np.sin(f[:, 2]) + 0.1 * rng.standard_normal(n)
    z[:, 3] = rng.standard_normal(n)
    z[:, 4] = f[:, 1] ** 2 * 0.1 + 0.05 * rng.standard_normal(n)
    return z, f


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_equal_the_numpy_references(seed):
    z, f = fixed_case(seed)
    zt, ft = fixed_case(seed + 100, n=300)
    assert metrics.mig(z, f) == pytest.approx(reference.mig(z, f), abs=1e-9)
    assert metrics.mig(z, f, bins=7) == pytest.approx(reference.mig(z, f, 7), abs=1e-9)
    assert metrics.sap(z, f, zt, ft) == pytest.approx(reference.sap(z, f, zt, ft), abs=1e-9)
    ours, theirs = metrics.dci(z, f, zt, ft), reference.dci(z, f, zt, ft)
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-7), key
    assert metrics.active_units(z) == reference.active_units(z)
    # The case is not degenerate: every score is strictly between its ends.
    assert 0.05 < metrics.mig(z, f) < 0.95 and 0.05 < ours["disentanglement"] < 0.95


def test_true_factors_score_one_and_noise_near_zero():
    rng = np.random.default_rng(5)
    f = np.stack([rng.integers(0, s, 2000) for s in (3, 6, 20, 16)], 1)
    ft = np.stack([rng.integers(0, s, 1000) for s in (3, 6, 20, 16)], 1)
    assert metrics.mig(f, f) > 0.98
    # 20 bins cannot tell 40 values apart: the true orientation of dSprites scores about ln 20 / ln 40.
    o = rng.integers(0, 40, (20000, 1))
    assert metrics.mig(o, o) == pytest.approx(np.log(20) / np.log(40), abs=0.01)
    dci = metrics.dci(f * 2.0 + 1, f, ft * 2.0 + 1, ft)
    assert min(dci.values()) > 0.98, dci
    noise, noise_t = rng.standard_normal((2000, 4)), rng.standard_normal((1000, 4))
    assert metrics.mig(noise, f) < 0.05 and metrics.sap(noise, f, noise_t, ft) < 0.05
    assert metrics.dci(noise, f, noise_t, ft)["informativeness"] < 0.05


def test_bad_inputs_raise_errors_naming_the_argument():
    z, f = fixed_case(1)
    with pytest.raises(ValueError, match="factors"):
        metrics.mig(z, f[:10])
    with pytest.raises(ValueError, match="class indices"):
        metrics.mig(z, f - 1)
    with pytest.raises(ValueError, match="non-integers"):
        metrics.mig(z, f + 0.5)
    with pytest.raises(ValueError, match="finite"):
        bad = z.copy()
        bad[3, 1] = np.nan
        metrics.mig(bad, f)
    for bins in [0, 2**40, 2**70, True, 2.5]:
        with pytest.raises(ValueError, match="bins"):
            metrics.mig(z, f, bins=bins)
    # A class index far beyond the number of classes costs nothing more than a small one.
    big = f.copy()
    big[:, 0] = np.where(big[:, 0] == 1, 4_000_000_000, big[:, 0])
    assert metrics.sap(z, big, z, big) == pytest.approx(metrics.sap(z, f, z, f), abs=1e-12)
    with pytest.raises(ValueError, match="finite"):
        bad = z.copy()
        bad[0, 0] = np.inf
        metrics.active_units(bad)
    with pytest.raises(ValueError, match="columns"):
        metrics.dci(z, f, z[:, :2], f)
    with pytest.raises(ValueError, match="shape"):
        metrics.active_units(z[:, 0])
