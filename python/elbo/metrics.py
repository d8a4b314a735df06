"""Disentanglement metrics of any encoder's codes against known factors, computed by elbo's library (the same
functions ``elbo disentanglement`` and :meth:`elbo.VAE` runs use), so codes from a PyTorch or JAX model are scored
the same way.

    >>> from elbo import metrics
    >>> metrics.mig(codes, factors)                       # codes (n, d) floats, factors (n, k) class indices
    >>> metrics.dci(codes, factors, codes_test, factors_test)
    {'disentanglement': ..., 'completeness': ..., 'informativeness': ...}

The β-VAE and FactorVAE metrics fix one factor and vary the others, so they need codes of chosen factor values:
give them ``represent``, a function from factor classes (n, k) to codes (n, d). For dSprites,
:func:`dsprites_images` draws the images of any classes with elbo's generator:

    >>> def represent(factors):                        # a PyTorch encoder's means of generated dSprites
    ...     with torch.no_grad():
    ...         x = torch.from_numpy(metrics.dsprites_images(factors))[:, None]
    ...         return encoder(x)[0].double().numpy()
    >>> metrics.disentanglement(represent, metrics.DSPRITES_SIZES)
    {'beta_vae': ..., 'factor_vae': ..., 'mig': ..., 'sap': ..., 'dci_disentanglement': ..., ...}

Definitions (and where they differ from ``disentanglement_lib``) are in the README's "Disentanglement" section.
"""

import numpy as np

from . import _elbo

__all__ = ["mig", "sap", "dci", "active_units", "beta_vae", "factor_vae", "disentanglement", "dsprites_images",
           "DSPRITES_SIZES", "DSPRITES_NAMES"]

#: How many values each of dSprites' factors takes (color, shape, scale, orientation, posX, posY).
DSPRITES_SIZES = tuple(_elbo.DSPRITES_SIZES)
#: dSprites' factors, in its files' column order.
DSPRITES_NAMES = tuple(_elbo.DSPRITES_NAMES)

#: The largest factor class the metrics take, as ``elbo disentanglement`` reads from an .npz.
MAX_CLASS = int(_elbo.MAX_CLASS)

#: Most histogram bins per code :func:`mig` takes (disentanglement_lib uses 20).
MAX_BINS = 65536


def _codes(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} of dtype {a.dtype}: give numbers")
    return np.ascontiguousarray(a, dtype=np.float64)


def _factors(a, name):
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} holds non-integers: factors are class indices (0, 1, …) per column")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"{name} of dtype {a.dtype}: give integer class indices")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} holds {a.min()}: factors are class indices, integers from 0")
    if a.size and a.max() > MAX_CLASS:
        raise ValueError(f"{name} holds {a.max()}: factors are class indices, integers from 0 to {MAX_CLASS}")
    return np.ascontiguousarray(a, dtype=np.int64)


def _varying(factors, *others):
    """``factors`` and ``others`` (held-out factors) without the columns that hold one value in ``factors``:
    a factor that never changes (dSprites' color) has nothing to disentangle, and ``elbo disentanglement`` and
    :func:`disentanglement` leave it out too, so all of them average over the same factors."""
    if factors.ndim == 2 and factors.shape[1] == 0:
        raise ValueError("factors has no columns: give one column of class indices per factor")
    if len(factors) == 0 or any(a.ndim != 2 or a.shape[1] != factors.shape[1] for a in (factors, *others)):
        return (factors, *others)  # elbo's own check says what is wrong with these shapes
    keep = np.flatnonzero(factors.min(0) != factors.max(0))
    if len(keep) == 0:
        raise ValueError(f"every column of factors holds one value over its {len(factors)} rows: there is nothing "
                         "to disentangle")
    return tuple(a[:, keep] for a in (factors, *others))


def mig(codes, factors, *, bins=20):
    """Chen et al.'s mutual information gap: codes binned into ``bins`` equal-width bins, per factor the gap
    between its two most informative codes over its entropy, averaged over the factors that vary (a column of
    one value is left out). In [0, 1]."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins={bins!r}: give a whole number of bins from 1 to {MAX_BINS}")
    (factors,) = _varying(_factors(factors, "factors"))
    return _elbo.metric_mig(_codes(codes, "codes"), np.ascontiguousarray(factors), int(bins))


def _split(codes, factors, codes_test, factors_test):
    factors, factors_test = _varying(_factors(factors, "factors"), _factors(factors_test, "factors_test"))
    return (_codes(codes, "codes"), np.ascontiguousarray(factors),
            _codes(codes_test, "codes_test"), np.ascontiguousarray(factors_test))


def sap(codes, factors, codes_test, factors_test):
    """Kumar et al.'s SAP: each factor predicted from each single code (nearest class mean, fitted on
    ``codes``/``factors``, accuracy on the test pair), the gap between the two best codes, averaged over the
    factors that vary in ``factors``."""
    return _elbo.metric_sap(*_split(codes, factors, codes_test, factors_test))


def dci(codes, factors, codes_test, factors_test):
    """Eastwood & Williams' DCI from least-squares regressions of each standardised factor on the standardised
    codes: ``disentanglement``, ``completeness`` and ``informativeness`` (held-out R², averaged), over the
    factors that vary in ``factors``."""
    d, c, i = _elbo.metric_dci(*_split(codes, factors, codes_test, factors_test))
    return {"disentanglement": d, "completeness": c, "informativeness": i}


def active_units(mu):
    """Burda et al.'s active units: how many columns of posterior means ``mu`` (n, d) vary by more than 0.01."""
    return _elbo.metric_active_units(_codes(mu, "mu"))


def _whole(v, name, least, most):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not least <= v <= most:
        raise ValueError(f"{name}={v!r}: give a whole number from {least} to {most}")
    return int(v)


def _function_metric(represent, factor_sizes, points, seed, which):
    if not callable(represent):
        raise TypeError(f"represent is {type(represent).__name__}: give a function from factor classes (n, k) "
                        "to codes (n, d)")
    if isinstance(factor_sizes, (str, bytes, dict)) or not hasattr(factor_sizes, "__iter__"):
        raise TypeError(f"factor_sizes={factor_sizes!r}: give how many values each factor takes, as a sequence "
                        "such as metrics.DSPRITES_SIZES or (3, 6, 40)")
    # Classes go from 0 to MAX_CLASS here as in data files; seeds and points as `elbo disentanglement` takes them.
    sizes = [_whole(s, "factor_sizes", 1, MAX_CLASS + 1) for s in factor_sizes]
    points = _whole(points, "points", int(_elbo.MIN_POINTS), int(_elbo.MAX_POINTS))
    seed = _whole(seed, "seed", 0, 2**63 - 1)

    def codes(factors):
        z = represent(factors)
        if hasattr(z, "detach"):  # a torch tensor
            z = z.detach().cpu().numpy()
        z = np.asarray(z)
        if z.dtype.kind not in "fiub":
            raise TypeError(f"represent returned an array of dtype {z.dtype}: return numbers")
        return np.ascontiguousarray(z, dtype=np.float64)

    return _elbo.metric_of_function(codes, sizes, points, seed, which)


def beta_vae(represent, factor_sizes, *, points=10000, seed=1):
    """Higgins et al.'s β-VAE metric of ``represent`` (factor classes (n, k) → codes (n, d)) over the grid of
    ``factor_sizes``: held-out accuracy of a logistic regression telling, from the mean |z₁ − z₂| of 64 pairs
    sharing one factor's value, which factor they share. ``points`` training points, half as many held out."""
    return _function_metric(represent, factor_sizes, points, seed, "beta_vae")


def factor_vae(represent, factor_sizes, *, points=10000, seed=1):
    """Kim & Mnih's FactorVAE metric of ``represent``: held-out accuracy of a majority vote from the code of
    least variance (over its global variance) in batches of 64 that hold one factor fixed."""
    return _function_metric(represent, factor_sizes, points, seed, "factor_vae")


def disentanglement(represent, factor_sizes, *, points=10000, seed=1):
    """All five metrics of ``represent`` as ``elbo disentanglement --json`` computes them (the same draws for the
    same ``seed`` and ``points``), as a dict: ``beta_vae``, ``factor_vae``, ``mig``, ``sap``,
    ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness``."""
    return _function_metric(represent, factor_sizes, points, seed, "all")


def dsprites_images(factors):
    """dSprites' images of factor classes (n, 6) (columns as :data:`DSPRITES_NAMES`), drawn by elbo's generator
    (``elbo make-dsprites``, not DeepMind's pixels): float32 (n, 64, 64), 1 inside the shape and 0 outside."""
    return _elbo.render_dsprites(_factors(factors, "factors"))
