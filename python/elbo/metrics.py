"""Disentanglement metrics of any encoder's codes against known factors, computed by elbo's library (the same
functions ``elbo disentanglement`` and :meth:`elbo.VAE` runs use), so codes from a PyTorch or JAX model are scored
the same way.

    >>> from elbo import metrics
    >>> metrics.mig(codes, factors)                       # codes (n, d) floats, factors (n, k) class indices
    >>> metrics.dci(codes, factors, codes_test, factors_test)
    {'disentanglement': ..., 'completeness': ..., 'informativeness': ...}

Definitions (and where they differ from ``disentanglement_lib``) are in the README's "Disentanglement" section.
"""

import numpy as np

from . import _elbo

__all__ = ["mig", "sap", "dci", "active_units"]

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
    if a.size and (a.max() > np.iinfo(np.int64).max or a.min() < 0):
        raise ValueError(f"{name} holds {a.min()}: factors are class indices, integers from 0")
    return np.ascontiguousarray(a, dtype=np.int64)


def mig(codes, factors, *, bins=20):
    """Chen et al.'s mutual information gap: codes binned into ``bins`` equal-width bins, per factor the gap
    between its two most informative codes over its entropy, averaged over factors. In [0, 1]."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins={bins!r}: give a whole number of bins from 1 to {MAX_BINS}")
    return _elbo.metric_mig(_codes(codes, "codes"), _factors(factors, "factors"), int(bins))


def sap(codes, factors, codes_test, factors_test):
    """Kumar et al.'s SAP: each factor predicted from each single code (nearest class mean, fitted on
    ``codes``/``factors``, accuracy on the test pair), the gap between the two best codes, averaged."""
    return _elbo.metric_sap(_codes(codes, "codes"), _factors(factors, "factors"),
                            _codes(codes_test, "codes_test"), _factors(factors_test, "factors_test"))


def dci(codes, factors, codes_test, factors_test):
    """Eastwood & Williams' DCI from least-squares regressions of each standardised factor on the standardised
    codes: ``disentanglement``, ``completeness`` and ``informativeness`` (held-out R², averaged)."""
    d, c, i = _elbo.metric_dci(_codes(codes, "codes"), _factors(factors, "factors"),
                               _codes(codes_test, "codes_test"), _factors(factors_test, "factors_test"))
    return {"disentanglement": d, "completeness": c, "informativeness": i}


def active_units(mu):
    """Burda et al.'s active units: how many columns of posterior means ``mu`` (n, d) vary by more than 0.01."""
    return _elbo.metric_active_units(_codes(mu, "mu"))
