"""elbo.metrics against the NumPy references of bench/disentanglement_reference.py, written from the papers."""
import importlib.util
import os
import subprocess

import numpy as np
import pytest

from conftest import interrupted
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
    # Nor 32: 12 bins hold two positions and 8 one, so x and y score H(bins) / ln 32 ≈ 0.85, and the five true
    # factors of dSprites (shape and scale at 1) about 0.90 on average, as the README says.
    xy = rng.integers(0, 32, (20000, 1))
    h = -(12 * (2 / 32) * np.log(2 / 32) + 8 * (1 / 32) * np.log(1 / 32))
    assert metrics.mig(xy, xy) == pytest.approx(h / np.log(32), abs=0.01)
    five = np.stack([rng.integers(0, s, 20000) for s in (3, 6, 40, 32, 32)], 1)
    assert metrics.mig(five, five) == pytest.approx(0.90, abs=0.01)
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
    big[:, 0] = np.where(big[:, 0] == 1, metrics.MAX_CLASS, big[:, 0])
    assert metrics.sap(z, big, z, big) == pytest.approx(metrics.sap(z, f, z, f), abs=1e-12)
    with pytest.raises(ValueError, match="finite"):
        bad = z.copy()
        bad[0, 0] = np.inf
        metrics.active_units(bad)
    with pytest.raises(ValueError, match="columns"):
        metrics.dci(z, f, z[:, :2], f)
    with pytest.raises(ValueError, match="shape"):
        metrics.active_units(z[:, 0])


def test_a_factor_column_of_one_value_is_left_out_as_the_command_leaves_it_out():
    z, f = fixed_case(2)
    zt, ft = fixed_case(102, n=300)
    # dSprites' color: one value throughout, first among the columns.
    with_color = np.hstack([np.zeros((len(f), 1), dtype=int), f])
    with_color_t = np.hstack([np.zeros((len(ft), 1), dtype=int), ft])
    assert metrics.mig(z, with_color) == metrics.mig(z, f) > 0.05
    assert metrics.sap(z, with_color, zt, with_color_t) == metrics.sap(z, f, zt, ft) > 0.05
    assert metrics.dci(z, with_color, zt, with_color_t) == metrics.dci(z, f, zt, ft)
    with pytest.raises(ValueError, match="nothing to disentangle"):
        metrics.mig(z, np.zeros((len(z), 2), dtype=int))
    with pytest.raises(ValueError, match="no columns"):
        metrics.mig(z, np.zeros((len(z), 0), dtype=int))
    # A code that is tiny wherever one factor is fixed, but reaches 1 elsewhere, is scored, not refused.
    assert 0 <= metrics.factor_vae(lambda c: np.exp(-400.0 * c[:, 1:3]), (1, 2, 2), points=50) <= 1


def test_refusals_name_their_limits_and_stay_short():
    z, f = fixed_case(1)
    big = f.astype(np.uint64)
    big[0, 0] = metrics.MAX_CLASS + 1
    with pytest.raises(ValueError, match="from 0 to 1000000"):
        metrics.mig(z, big)
    big[0, 0] = 2**64 - 1
    with pytest.raises(ValueError, match="from 0 to 1000000"):
        metrics.mig(z, big)
    # The largest class is taken, as elbo disentanglement takes it from an .npz.
    big[0, 0] = metrics.MAX_CLASS
    assert 0 <= metrics.mig(z, big) <= 1
    # Codes scaled by 1e-200 have squares that underflow: refused, not scored as constant.
    with pytest.raises(ValueError, match="must reach 1e-150"):
        metrics.mig(z * 1e-200, f)
    with pytest.raises(ValueError, match="must reach 1e-150"):
        metrics.beta_vae(lambda c: c * 1e-200 + 0.0, SIZES, points=20)
    # A huge value is shown as 2e151, not as its 152 digits.
    with pytest.raises(ValueError, match=r"hold 2e151 at row 0, code 0") as e:
        metrics.mig(np.vstack([[2e151] * 5, z]), np.vstack([f[:1], f]))
    assert len(str(e.value)) < 300
    with pytest.raises(ValueError, match="factor_sizes has 5000 entries") as e:
        metrics.beta_vae(lambda c: c * 1.0, [2] * 5000)
    assert len(str(e.value)) < 200


SIZES = (1, 3, 6, 10, 8)


def recording_represent(seed):
    """Noisy, mixed codes of factor classes, recording every batch asked for (factors and codes)."""
    rng = np.random.default_rng(seed)
    calls = []

    def represent(f):
        f = np.array(f)
        n = len(f)
        z = np.stack([f[:, 1] + 1.6 * rng.standard_normal(n),
                      0.5 * f[:, 2] + 0.3 * f[:, 3] + 3.2 * rng.standard_normal(n),
                      np.sin(f[:, 3]) + 1.2 * rng.standard_normal(n),
                      rng.standard_normal(n),
                      0.1 * f[:, 4] ** 2 + 2.0 * rng.standard_normal(n)], 1)
        calls.append((f, z))
        return z

    return represent, calls


@pytest.mark.parametrize("seed", [1, 2])
def test_beta_vae_and_factor_vae_metrics_equal_the_numpy_references(seed):
    points = 300
    represent, calls = recording_represent(seed)
    ours = metrics.beta_vae(represent, SIZES, points=points, seed=seed)
    assert len(calls) == 2 * (points + points // 2) and all(len(f) == 64 for f, _ in calls)
    theirs = reference.beta_vae(calls[:2 * points], calls[2 * points:], SIZES)
    assert ours == pytest.approx(theirs, abs=1e-12)
    represent, calls = recording_represent(seed)
    ours_f = metrics.factor_vae(represent, SIZES, points=points, seed=seed)
    assert len(calls) == 1 + points + points // 2 and len(calls[0][0]) == points
    theirs_f = reference.factor_vae(calls[0][1], calls[1:1 + points], calls[1 + points:], SIZES)
    assert ours_f == pytest.approx(theirs_f, abs=1e-12)
    # Neither case is degenerate.
    assert 0.4 < ours < 0.9 and 0.4 < ours_f < 0.9, (ours, ours_f)


def test_function_metrics_score_true_factors_one_and_noise_near_chance():
    scored = [j for j, s in enumerate(SIZES) if s > 1]
    true = metrics.disentanglement(lambda f: f[:, scored] * 3.0 - 1, SIZES, points=200)
    assert true["beta_vae"] == 1.0 and true["factor_vae"] == 1.0, true
    # MIG's entropies are estimated from 200 items, which leaves it a little below 1.
    assert true["mig"] > 0.9 and true["dci_disentanglement"] > 0.98, true
    rng = np.random.default_rng(3)
    noise = metrics.disentanglement(lambda f: rng.standard_normal((len(f), 6)), SIZES, points=400)
    # Chance is 1/4 for the four scored factors.
    assert noise["beta_vae"] < 0.45 and noise["factor_vae"] < 0.45 and noise["mig"] < 0.05, noise
    # DCI's importances of noise are uneven in a finite sample, so not 0 either (the README's "a little above 0").
    assert noise["dci_disentanglement"] < 0.35 and noise["dci_completeness"] < 0.35, noise
    # Permuting and rescaling the codes changes no score.
    perm = metrics.disentanglement(lambda f: (f[:, scored] * 3.0 - 1)[:, ::-1] * 0.25, SIZES, points=200)
    assert perm == pytest.approx(true, abs=1e-9)


def test_function_metrics_refuse_bad_functions_and_grids():
    class Mine(Exception):
        pass

    def raises(f):
        raise Mine("from represent")

    with pytest.raises(Mine, match="from represent"):
        metrics.beta_vae(raises, SIZES, points=20)
    with pytest.raises(ValueError, match="one row of codes per row"):
        metrics.factor_vae(lambda f: np.zeros((len(f) + 1, 2)), SIZES, points=20)
    widths = iter([3, 4] + [4] * 10_000)
    with pytest.raises(ValueError, match="same width"):
        metrics.disentanglement(lambda f: np.ones((len(f), next(widths))), SIZES, points=20)
    with pytest.raises(ValueError, match="finite"):
        metrics.beta_vae(lambda f: np.full((len(f), 2), np.nan), SIZES, points=20)
    with pytest.raises(TypeError, match="numbers"):
        metrics.beta_vae(lambda f: np.array([["a"]] * len(f)), SIZES, points=20)
    with pytest.raises(TypeError, match="function"):
        metrics.beta_vae(np.zeros(3), SIZES)
    with pytest.raises(ValueError, match="nothing to disentangle"):
        metrics.beta_vae(lambda f: f * 1.0, (1, 1))
    for bad in [None, {3: 1, 6: 1}, "36", 7]:
        with pytest.raises(TypeError, match="factor_sizes"):
            metrics.beta_vae(lambda f: f * 1.0, bad)
    # Too wide, too large: refused by name before any long computation.
    with pytest.raises(ValueError, match="at most 1024"):
        metrics.beta_vae(lambda f: np.zeros((len(f), 1025)), SIZES, points=20)
    with pytest.raises(ValueError, match="magnitude"):
        metrics.disentanglement(lambda f: f * 1e300 + 1e200, SIZES, points=20)
    with pytest.raises(ValueError, match="at most 1024"):
        f = np.arange(10)[:, None]
        metrics.dci(np.zeros((10, 2000)), f, np.zeros((10, 2000)), f)
    for bad in [(), (3, 0), (3, -1), (3, 2.5)]:
        with pytest.raises(ValueError, match="factor_sizes"):
            metrics.beta_vae(lambda f: f * 1.0, bad)
    for points in [0, 9, 10**7, True, 2**70]:
        # One range, the command line's, whatever the number.
        with pytest.raises(ValueError, match="points=.*from 10 to 1000000"):
            metrics.factor_vae(lambda f: f * 1.0, SIZES, points=points)
    # Classes stop at MAX_CLASS in grids as in data files; seeds at the command line's largest.
    with pytest.raises(ValueError, match="factor_sizes"):
        metrics.beta_vae(lambda f: f * 1.0, (metrics.MAX_CLASS + 2, 3), points=20)
    for seed in [2**63, 2**64 - 1]:
        with pytest.raises(ValueError, match="seed"):
            metrics.disentanglement(lambda f: f * 1.0, SIZES, points=20, seed=seed)


def test_dsprites_images_are_the_generators(elbo_bin, tmp_path):
    out = tmp_path / "gen.npz"
    subprocess.run([elbo_bin, "make-dsprites", "--out", str(out), "--subsample", "50", "--seed", "4"],
                   check=True, capture_output=True)
    with np.load(out) as z:
        imgs, classes = z["imgs"], z["latents_classes"]
    ours = metrics.dsprites_images(classes)
    assert ours.dtype == np.float32 and ours.shape == (50, 64, 64)
    assert np.array_equal(ours, imgs.astype(np.float32))
    assert metrics.DSPRITES_SIZES == (1, 3, 6, 40, 32, 32) and metrics.DSPRITES_NAMES[3] == "orientation"
    bad = classes[:2].copy()
    bad[1, 3] = 40
    with pytest.raises(ValueError, match=r"factors\[1, 3\] is 40: orientation takes classes 0 to 39"):
        metrics.dsprites_images(bad)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        metrics.dsprites_images(classes[:, :5])


KEYS = ["beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"]


def test_a_models_metrics_are_the_command_lines_and_a_function_of_its_encoder(elbo_bin, tmp_path):
    import json

    import elbo

    npz, run = tmp_path / "d.npz", tmp_path / "run"
    subprocess.run([elbo_bin, "make-dsprites", "--out", str(npz), "--subsample", "3000", "--seed", "1"],
                   check=True, capture_output=True)
    subprocess.run([elbo_bin, "train", "--data", str(npz), "--latent", "4", "--hidden", "64", "--epochs", "1",
                    "--out", str(run)], check=True, capture_output=True)
    cli = json.loads(subprocess.run([elbo_bin, "disentanglement", str(run), "--points", "40", "--seed", "3",
                                     "--json"], check=True, capture_output=True, text=True).stdout)
    vae = elbo.load(run)
    ours = vae.disentanglement(points=40, seed=3)
    assert {k: ours[k] for k in KEYS + ["factors", "observations"]} == \
        {k: cli[k] for k in KEYS + ["factors", "observations"]}
    assert "drawn by" in ours["observations"] or "generat" in ours["observations"], ours["observations"]
    # The same scores from the encoder as a function of factor classes, through the generator's images.
    via = metrics.disentanglement(lambda f: vae.encode(metrics.dsprites_images(f))[0], metrics.DSPRITES_SIZES,
                                  points=40, seed=3)
    assert via == pytest.approx({k: cli[k] for k in KEYS}, abs=1e-9)
    with pytest.raises(ValueError, match="points=5: give a whole number from 10 to 1000000"):
        vae.disentanglement(points=5)
    with pytest.raises(ValueError, match="seed=9223372036854775808"):
        vae.disentanglement(points=40, seed=2**63)
    # A data folder would be ignored by a run on its own file: refused, naming the keyword and the file.
    with pytest.raises(ValueError, match=r"data_dir .* this run reads its own data .*d\.npz"):
        vae.disentanglement(points=40, data_dir=tmp_path)


def test_ctrl_c_stops_measuring_a_models_disentanglement(elbo_bin, tmp_path):
    import textwrap

    npz, run = tmp_path / "d.npz", tmp_path / "run"
    subprocess.run([elbo_bin, "make-dsprites", "--out", str(npz), "--subsample", "2000", "--seed", "1"],
                   check=True, capture_output=True)
    subprocess.run([elbo_bin, "train", "--data", str(npz), "--latent", "4", "--hidden", "32", "--epochs", "1",
                    "--out", str(run)], check=True, capture_output=True)
    script = tmp_path / "measure.py"
    # A million points: an hour of encoding unless the interrupt stops it.
    script.write_text(textwrap.dedent(f"""
        import elbo, sys
        vae = elbo.load({str(run)!r})
        print("start", file=sys.stderr, flush=True)
        try:
            vae.disentanglement(points=1_000_000)
        except KeyboardInterrupt as e:
            print("KeyboardInterrupt:", e, file=sys.stderr, flush=True)
            sys.exit(7)
    """))
    rest = interrupted(script)
    assert "measuring disentanglement stopped before it finished" in rest, rest


def test_metrics_are_reached_from_a_plain_import_elbo():
    # A fresh interpreter: this one imported elbo.metrics above.
    import sys

    code = "import elbo, numpy as np; print(elbo.metrics.mig(np.eye(4)[:, :2].repeat(5, 0), np.arange(4).repeat(5)[:, None]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    float(out.stdout)
