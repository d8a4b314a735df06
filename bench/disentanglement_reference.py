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
  beta_vae  Higgins et al. 2017: features |z_a - z_b| averaged over a batch of pairs sharing one factor's value,
        labelled by that factor; features standardised by the training features' mean and deviation; held-out
        accuracy of scikit-learn's default multinomial LogisticRegression (L2, C = 1, intercepts
        unpenalised), here fitted by Newton's method (elbo uses L-BFGS: two solvers, one optimum).
  factor_vae  Kim & Mnih 2018: codes divided by their global standard deviation (ddof 1; codes of zero variance
        left out), per batch with one factor fixed the code of least variance votes for that factor; each code
        predicts its majority factor (ties to the first); held-out accuracy.
  The last two take the batches a metric encoded (python/tests/test_metrics.py records them), so the draws are
  elbo's and the scoring is this file's.
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


def _fixed_factor(rows_a, rows_b, scored):
    """The scored factor a batch (or a pair of batches) holds at one value: its label among the scored ones."""
    same = [j for j in scored if np.all(rows_a[:, j] == rows_b[:, j]) and np.all(rows_a[:, j] == rows_a[0, j])]
    assert len(same) == 1, same
    return scored.index(same[0])


def beta_vae_features(batches, sizes):
    """The β-VAE metric's points from consecutive (factors, codes) batches, two per point (a, then b)."""
    scored = [j for j, s in enumerate(sizes) if s > 1]
    feats, labels = [], []
    for (fa, za), (fb, zb) in zip(batches[0::2], batches[1::2]):
        same = [j for j in scored if np.all(fa[:, j] == fb[:, j])]
        assert len(same) == 1, same
        labels.append(scored.index(same[0]))
        feats.append(np.abs(za - zb).mean(0))
    return np.array(feats), np.array(labels)


def _logistic_fit(x, y, classes, c=1.0, iters=100):
    n, d = x.shape
    xe = np.hstack([x, np.ones((n, 1))])
    reg = np.ones(d + 1)
    reg[-1] = 1e-9
    reg = np.tile(reg, classes)
    onehot = np.eye(classes)[y]
    w = np.zeros(classes * (d + 1))

    def objective(w):
        logits = xe @ w.reshape(classes, d + 1).T
        m = logits.max(1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(1, keepdims=True)))[:, 0]
        return c * (lse - logits[np.arange(n), y]).sum() + 0.5 * (reg * w * w).sum()

    f = objective(w)
    for _ in range(iters):
        logits = xe @ w.reshape(classes, d + 1).T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (c * (p - onehot).T @ xe).reshape(-1) + reg * w
        h = np.zeros((classes * (d + 1), classes * (d + 1)))
        for a in range(classes):
            for b in range(classes):
                s = c * p[:, a] * ((a == b) - p[:, b])
                h[a * (d + 1):(a + 1) * (d + 1), b * (d + 1):(b + 1) * (d + 1)] = (xe * s[:, None]).T @ xe
        h += np.diag(reg)
        if np.abs(g).max() < 1e-9 * x.size:
            break
        step = np.linalg.solve(h, g)
        t = 1.0
        while True:
            trial = w - t * step
            ft = objective(trial)
            if ft <= f or t < 1e-10:
                done = f - ft < 1e-12 * max(abs(f), 1.0)
                w, f = trial, ft
                break
            t *= 0.5
        if done:
            break
    return w.reshape(classes, d + 1)


def beta_vae(train_batches, eval_batches, sizes):
    classes = sum(1 for s in sizes if s > 1)
    xtr, ytr = beta_vae_features(train_batches, sizes)
    xte, yte = beta_vae_features(eval_batches, sizes)
    # Standardised by the training features, so that rescaling a code changes nothing (the penalty of
    # disentanglement_lib's unscaled fit would).
    mean, sd = xtr.mean(0), xtr.std(0)
    sd_safe = np.where(sd > 0, sd, 1.0)
    xtr = np.where(sd > 0, (xtr - mean) / sd_safe, 0.0)
    xte = np.where(sd > 0, (xte - mean) / sd_safe, 0.0)
    w = _logistic_fit(xtr, ytr, classes)
    pred = np.argmax(np.hstack([xte, np.ones((len(xte), 1))]) @ w.T, 1)
    return float((pred == yte).mean())


def factor_vae(variance_codes, train_batches, eval_batches, sizes):
    scored = [j for j, s in enumerate(sizes) if s > 1]
    glob = variance_codes.var(0, ddof=1)
    keep = np.flatnonzero(glob > 0)

    def votes(batches):
        out = []
        for f, z in batches:
            label = _fixed_factor(f, f, scored)
            local = z.var(0, ddof=1)
            out.append((label, keep[np.argmin(local[keep] / glob[keep])]))
        return out

    train, held = votes(train_batches), votes(eval_batches)
    counts = np.zeros((variance_codes.shape[1], len(scored)), dtype=int)
    for label, code in train:
        counts[code, label] += 1
    predict = counts.argmax(1)
    return float(np.mean([predict[code] == label for label, code in held]))
