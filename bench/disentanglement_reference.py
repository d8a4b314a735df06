"""NumPy references of elbo's disentanglement metrics, written from the papers' definitions (and the choices
README's "Disentanglement" section states), for python/tests/test_metrics.py to compare with elbo's own.

  mig   Chen et al. 2018: codes binned into equal-width bins over their range (np.histogram's edges,
        np.digitize), mutual information with each factor in nats, per factor (top1 - top2) / H(factor), mean.
  sap   Kumar et al. 2018: for each (code, factor), the test accuracy of predicting the factor from that code alone
        by the nearest class mean of the training items; per factor top1 - top2, mean.
  dci   Eastwood & Williams 2018: per factor, least squares of the standardised factor on the standardised codes
        (training items); importances |w|; disentanglement = sum_i rho_i (1 - H_k(P_i.)), completeness = mean_j
        (1 - H_d(P_.j)), informativeness = mean held-out R^2.
  active_units  Burda et al. 2016: columns of the means whose variance exceeds 0.01.
"""
import numpy as np


def _mi(a, b):
    """Mutual information (nats) of two discrete labelings, from their contingency table."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    p = table / table.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return max(0.0, float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum()))


def mig(codes, factors, bins=20):
    binned = []
    for z in codes.T:
        edges = np.histogram(z, bins)[1]
        binned.append(np.digitize(z, edges[:-1]))
    gaps = []
    for v in factors.T:
        m = sorted((_mi(b, v) for b in binned), reverse=True) + [0.0]
        h = _mi(v, v)
        gaps.append((m[0] - m[1]) / h if h > 0 else 0.0)
    return float(np.mean(gaps))


def sap(codes, factors, codes_test, factors_test):
    gaps = []
    for j in range(factors.shape[1]):
        acc = []
        for i in range(codes.shape[1]):
            classes = np.unique(factors[:, j])
            means = np.array([codes[factors[:, j] == c, i].mean() for c in classes])
            pred = classes[np.argmin(np.abs(codes_test[:, i, None] - means[None, :]), axis=1)]
            acc.append(np.mean(pred == factors_test[:, j]))
        acc = sorted(acc, reverse=True) + [0.0]
        gaps.append(acc[0] - acc[1])
    return float(np.mean(gaps))


def dci(codes, factors, codes_test, factors_test):
    mean, sd = codes.mean(0), codes.std(0)
    sd_safe = np.where(sd > 0, sd, 1.0)
    x = np.where(sd > 0, (codes - mean) / sd_safe, 0.0)
    xt = np.where(sd > 0, (codes_test - mean) / sd_safe, 0.0)
    n, d = x.shape
    k = factors.shape[1]
    r = np.zeros((d, k))
    r2 = []
    for j in range(k):
        v, vt = factors[:, j].astype(float), factors_test[:, j].astype(float)
        m, s = v.mean(), v.std()
        s = s if s > 0 else 1.0
        w = np.linalg.solve(x.T @ x + 1e-9 * n * np.eye(d), x.T @ ((v - m) / s))
        r[:, j] = np.abs(w)
        pred = m + s * (xt @ w)
        sst = ((vt - vt.mean()) ** 2).sum()
        r2.append(1 - ((vt - pred) ** 2).sum() / sst if sst > 0 else 0.0)

    def h(p, base):
        if base < 2:
            return 0.0
        if p.sum() <= 0:
            return 1.0
        p = p / p.sum()
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / np.log(base))

    total = r.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(np.mean(r2))}
    dis = sum(r[i].sum() / total * (1 - h(r[i], k)) for i in range(d))
    comp = np.mean([1 - h(r[:, j], d) if r[:, j].sum() > 0 else 0.0 for j in range(k)])
    return {"disentanglement": float(dis), "completeness": float(comp), "informativeness": float(np.mean(r2))}


def active_units(mu):
    return int((mu.var(0) > 0.01).sum())
