"""The Python package against the CLI and against hostile input: same numbers as `elbo train`, runs shared both
ways, clear exceptions for what cannot work, the GIL released, Ctrl-C and early stopping ending cleanly."""

import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import elbo
from conftest import ROOT, interruptible, interrupted, run_cli

SMALL = dict(hidden=[64], latent=4, seed=1, batch_size=100, threads=2)


def metrics_rows(run_dir):
    """metrics.csv without its timing column, which differs between any two runs."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("seconds", None)
    return rows


def test_fit_matches_the_cli_bit_for_bit(small, elbo_bin, tmp_path):
    x = small[0]
    np.save(tmp_path / "x.npy", x)
    cli = tmp_path / "cli"
    r = run_cli(elbo_bin, "train", "--data", tmp_path / "x.npy", "--seed", 1, "--epochs", 2, "--hidden", 64,
                "--latent", 4, "--batch-size", 100, "--threads", 2, "--out", cli)
    assert r.returncode == 0, r.stderr
    vae = elbo.VAE(**SMALL)
    history = vae.fit(x, epochs=2, out=tmp_path / "py", verbose=0)
    a, b = elbo.load(cli).state_dict(), vae.state_dict()
    assert sorted(a) == sorted(b) and len(a) > 0
    for name in a:
        assert a[name].shape == b[name].shape
        assert np.array_equal(a[name], b[name]), name
    assert metrics_rows(cli) == metrics_rows(tmp_path / "py")
    assert history.epoch == [1, 2]
    cli_rows = metrics_rows(cli)
    assert history.history["neg_elbo"][1] == pytest.approx(float(cli_rows[1]["train_neg_elbo"]), rel=1e-6)


def test_runs_cross_between_python_and_the_cli(small, elbo_bin, tmp_path):
    x = small[0]
    vae = elbo.VAE(**SMALL)
    # A data folder would not be read by a run on arrays: refused, and no run is left behind.
    with pytest.raises(ValueError, match="data_dir .* this run reads its own data"):
        elbo.VAE(**SMALL, data_dir=tmp_path).fit(x, epochs=1, out=tmp_path / "refused", verbose=0)
    assert not (tmp_path / "refused").exists()
    vae.fit(x, epochs=1, out=tmp_path / "py", verbose=0)
    # The CLI evaluates a run made from Python, on the data the run kept in its folder.
    r = run_cli(elbo_bin, "eval", tmp_path / "py", "--k", 5, "--json")
    assert r.returncode == 0, r.stderr
    cli_eval = json.loads(r.stdout)
    assert np.isfinite(cli_eval["nll"])
    # The CLI continues it, and Python reads the result.
    r = run_cli(elbo_bin, "train", "--resume", tmp_path / "py", "--epochs", 2)
    assert r.returncode == 0, r.stderr
    again = elbo.load(tmp_path / "py")
    assert again.model.epoch == 2
    z = np.zeros((3, 4), dtype=np.float32)
    out = again.decode(z)
    assert out.shape == (3, 28, 28) and 0 <= out.min() and out.max() <= 1


def test_encode_decode_sample_score_evaluate(small, tmp_path):
    x, y, xt, _ = small
    vae = elbo.VAE(**SMALL)
    vae.fit(x, epochs=1, out=tmp_path / "r", verbose=0)
    mu, logvar = vae.encode(xt[:10])
    assert mu.shape == (10, 4) and logvar.shape == (10, 4) and mu.dtype == np.float32
    assert vae.decode(mu).shape == (10, 28, 28)
    # One code alone is one row.
    assert vae.decode(mu[0]).shape == (1, 28, 28)
    s1, s2 = vae.sample(5, seed=3), vae.sample(5, seed=3)
    assert s1.shape == (5, 28, 28) and np.array_equal(s1, s2)
    assert not np.array_equal(s1, vae.sample(5, seed=4))
    rec = vae.reconstruct(xt[:4])
    assert rec.shape == (4, 28, 28)
    sc = vae.score(xt[:20], k=10)
    assert sc["neg_elbo"].shape == (20,) and np.all(sc["nll"] <= sc["neg_elbo"] + 1e-6)
    # Noise is less likely than digits under a model of digits.
    noise = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    assert np.median(vae.score(noise, k=10)["nll"]) > np.median(sc["nll"])
    ev = vae.evaluate(xt[:50], k=10)
    assert set(ev) >= {"neg_elbo", "nll", "bits_per_dim"} and ev["n"] == 50
    # The same items from a path read the same as from memory.
    np.save(tmp_path / "t.npy", xt[:10])
    mu2, _ = vae.encode(str(tmp_path / "t.npy"))
    assert np.array_equal(mu, mu2)


def test_every_array_kind_reads(small, tmp_path):
    x = small[0][:300]
    vae = elbo.VAE(**SMALL)
    vae.fit(x, epochs=1, out=tmp_path / "r", verbose=0)
    base, _ = vae.encode(x[:5])
    # float32 intensities, non-contiguous views, Python lists and a 4-D NHWC/NCHW array all mean the same images.
    assert np.allclose(vae.encode(x[:5].astype(np.float32) / 255)[0], base, atol=1e-5)
    wide = np.zeros((5, 28, 56), dtype=np.uint8)
    wide[:, :, ::2] = x[:5]
    assert np.array_equal(vae.encode(wide[:, :, ::2])[0], base)
    assert np.array_equal(vae.encode(x[:5].tolist())[0], base)
    assert np.array_equal(vae.encode(x[:5, :, :, None])[0], base)
    assert np.array_equal(vae.encode(x[:5, None, :, :], layout="nchw")[0], base)
    # A layout names the order of four axes: given for three, it is refused, as fit refuses it.
    with pytest.raises(ValueError, match="layout nchw applies to 4-D arrays"):
        vae.encode(x[:5], layout="nchw")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        assert np.array_equal(vae.encode(torch.from_numpy(x[:5]))[0], base)


def test_a_learned_mixture_prior_from_keywords(small, tmp_path):
    vae = elbo.VAE(**SMALL, prior="mog", prior_components=6)
    history = vae.fit(small[0], epochs=1, out=tmp_path / "mog", verbose=0)
    assert np.isfinite(history.history["neg_elbo"][0])
    state = vae.state_dict()
    assert state["prior.means"].shape == (6, 4) and state["prior.logits"].shape == (6,)
    assert vae.sample(5, seed=1).shape[0] == 5
    assert np.all(np.isfinite(vae.score(small[2][:20], k=10)["nll"]))
    with pytest.raises(ValueError, match="prior_components goes with prior=mog"):
        elbo.VAE(**SMALL, prior_components=6).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)


def test_disentangling_objectives_from_keywords(small, tmp_path):
    vae = elbo.VAE(**SMALL, factor_vae=35.0, discriminator=[16, 16], discriminator_lr=1e-3)
    history = vae.fit(small[0], epochs=2, out=tmp_path / "factor", verbose=0)
    for k in ("discriminator_loss", "discriminator_accuracy", "discriminator_total_correlation"):
        assert len(history.history[k]) == 2 and np.isfinite(history.history[k][1]), k
    assert vae.state_dict()["discriminator.out.weight"].shape[0] == 2
    tc = elbo.VAE(**SMALL, tc=6.0, tc_sampling="mss").fit(small[0], epochs=1, out=tmp_path / "tc", verbose=0)
    assert np.isfinite(tc.history["neg_elbo"][0]) and "discriminator_loss" not in tc.history
    with pytest.raises(ValueError, match="discriminator=: 'abc' is not widths separated by commas"):
        elbo.VAE(**SMALL, factor_vae=3.0, discriminator="abc").fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)
    with pytest.raises(ValueError, match="tc_alpha applies to tc only"):
        elbo.VAE(**SMALL, tc_alpha=0.5).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)
    with pytest.raises(ValueError, match="batch_size needs at least 2"):
        elbo.VAE(**{**SMALL, "batch_size": 1}, tc=6.0).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)


def test_a_vamp_prior_from_keywords(small, tmp_path):
    vae = elbo.VAE(**SMALL, prior="vamp", prior_components=7)
    vae.fit(small[0], epochs=1, out=tmp_path / "vamp", verbose=0)
    assert vae.state_dict()["prior.pseudo_inputs"].shape == (7, 784)
    assert vae.sample(3, seed=1).shape[0] == 3
    result = vae.evaluate(small[2][:50], k=20)
    assert result["nll"] < result["neg_elbo"]
    with pytest.raises(ValueError, match="conditional does not allow"):
        elbo.VAE(**SMALL, prior="vamp", conditional=True).fit(small[0], small[1], epochs=1, out=tmp_path / "no",
                                                              verbose=0)


def test_stacked_latent_layers_from_keywords(small, tmp_path):
    settings = {**SMALL, "latent": [6, 3], "hidden": [[32], [8]], "activation": "tanh"}
    vae = elbo.VAE(**settings)
    vae.fit(small[0], epochs=1, out=tmp_path / "two", verbose=0)
    assert (vae.latent, vae.depth) == (3, 2)
    assert vae.config["model"]["upper"] == [{"latent": 3, "hidden": [8]}]
    assert vae.state_dict()["q2.0.weight"].shape[1] == 6
    mu, logvar = vae.encode(small[2][:5])
    assert mu.shape == (5, 3) and logvar.shape == (5, 3)
    assert vae.decode(mu).shape[0] == 5 and vae.sample(4, seed=2).shape[0] == 4
    result = vae.evaluate(small[2][:50], k=20)
    assert result["nll"] < result["neg_elbo"]
    with pytest.raises(NotImplementedError, match="2 stacked latent layers"):
        vae.to_torch()
    for bad, says in [({"latent": [4, -2]}, "-2: expected a whole number, 1 or more"),
                      ({"hidden": [[8], ["x"]]}, "expected a whole number"),
                      ({"hidden": [[8], [[4]]]}, "a list inside the list"),
                      ({"hidden": "8/"}, "'8/' is not widths")]:
        with pytest.raises(ValueError, match=says):
            elbo.VAE(**{**settings, **bad})
    with pytest.raises(ValueError, match="latent gives 2 latent layers but hidden gives 1 group of widths: give one group of widths per latent layer"):
        elbo.VAE(**{**settings, "hidden": [32]}).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)


def test_flow_posteriors_from_keywords(small, tmp_path):
    for flow, weight in [("planar:3", "flow.2.u"), ("iaf:2:16", "flow.1.head.weight")]:
        vae = elbo.VAE(**SMALL, flow=flow)
        vae.fit(small[0], epochs=1, out=tmp_path / flow.replace(":", "-"), verbose=0)
        assert weight in vae.state_dict()
        mu, logvar = vae.encode(small[2][:5])
        assert mu.shape == (5, 4) and logvar.shape == (5, 4)
        assert vae.decode(mu).shape[0] == 5 and vae.sample(4, seed=2).shape[0] == 4
        result = vae.evaluate(small[2][:50], k=20)
        assert result["nll"] < result["neg_elbo"]
        with pytest.raises(NotImplementedError, match="a flow posterior"):
            vae.to_torch()
    cfg = tmp_path / "flow.toml"
    cfg.write_text('flow = "planar:2"\nhidden = [64]\nlatent = 4\nthreads = 2\n')
    for given, kept in [({"flow": None}, {"kind": "planar", "layers": 2}), ({"flow": "none"}, None)]:
        vae = elbo.VAE.from_config(cfg, **given)
        vae.fit(small[0], epochs=1, out=tmp_path / f"from-config-{kept is None}", verbose=0)
        assert vae.config["model"].get("flow") == kept
    with pytest.raises(ValueError, match="'maf:2' is not a flow: give planar:K"):
        elbo.VAE(**SMALL, flow="maf:2")
    with pytest.raises(ValueError, match="free_bits holds each dimension's KL at a floor"):
        elbo.VAE(**SMALL, flow="planar", free_bits=0.5).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)


def test_tables_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(50, 10, size=(400, 6))
    kinds = np.array(["a", "b"])[rng.integers(0, 2, size=400)]
    vae = elbo.VAE(hidden=[16], latent=2, seed=1, conditional=True)
    vae.fit(x, kinds, epochs=2, out=tmp_path / "t", verbose=0)
    assert vae.classes == ["a", "b"]
    assert vae.model.kind == "table"
    out = vae.decode(np.zeros((2, 2)), labels=["a", "b"])
    # Back in the table's own units, not standardised ones.
    assert out.shape == (2, 6) and 20 < out.mean() < 80
    sc = vae.score(x[:5], kinds[:5], k=5)
    assert sc["label"] == list(kinds[:5])
    # A run without labels scores items with the labels as given, ints or names, never as the library numbers them;
    # and its encode and reconstruct refuse labels they would not use.
    plain = elbo.VAE(hidden=[16], latent=2, seed=1)
    plain.fit(x, epochs=1, out=tmp_path / "plain", verbose=0)
    assert plain.score(x[:5], [7, 7, 3, 3, 9], k=2)["label"] == [7, 7, 3, 3, 9]
    assert plain.score(x[:3], ["cat", "dog", "cat"], k=2)["label"] == ["cat", "dog", "cat"]
    for call in (plain.encode, plain.reconstruct, plain.evaluate):
        with pytest.raises(ValueError, match="y= needs a conditional model"):
            call(x[:5], [1] * 5)
    with pytest.raises(ValueError, match="conditional.*labels="):
        vae.decode(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not one of the run's classes"):
        vae.sample(2, labels="c")
    # Rows of the wrong width are counted in features, not as images one pixel high.
    with pytest.raises(ValueError, match="rows of 7 features, but this run's model reads 6"):
        plain.score(np.zeros((2, 7)))


def test_validation_data_and_history(small, tmp_path):
    x, y, xt, yt = small
    vae = elbo.VAE(**SMALL)
    h = vae.fit(x, epochs=2, validation_data=xt, out=tmp_path / "v", verbose=0)
    assert set(h.history) >= {"neg_elbo", "recon", "kl", "val_neg_elbo", "val_recon", "val_kl", "lr"}
    assert len(h.history["val_neg_elbo"]) == 2
    # The validation set is what the run holds out: its -ELBO is the CLI's test metric.
    ev = vae.evaluate(xt, k=1)
    assert np.isfinite(ev["neg_elbo"])
    # fit again continues the run.
    h2 = vae.fit(epochs=1, verbose=0)
    assert h2.epoch == [3] and vae.model.epoch == 3
    with pytest.raises(ValueError, match="other data"):
        vae.fit(xt, epochs=1, verbose=0)


def test_early_stopping_and_callbacks(small, tmp_path):
    x = small[0]
    seen = []

    def record(epoch, logs):
        seen.append((epoch, logs["neg_elbo"]))

    stopper = elbo.EarlyStopping(monitor="neg_elbo", min_delta=1e9)  # never improves enough
    vae = elbo.VAE(**SMALL)
    h = vae.fit(x, epochs=6, out=tmp_path / "e", callbacks=[record, stopper], verbose=0)
    # The first epoch sets the best value; the second fails to improve by min_delta and stops.
    assert h.epoch == [1, 2] and stopper.stopped_epoch == 2
    assert [e for e, _ in seen] == [1, 2]
    assert vae.model.epoch == 2

    class Boom(Exception):
        pass

    def explode(epoch, logs):
        if epoch == 2:
            raise Boom("from the callback")

    vae2 = elbo.VAE(**SMALL)
    with pytest.raises(Boom):
        vae2.fit(x, epochs=5, out=tmp_path / "b", callbacks=[explode], verbose=0)
    # Epoch 2 finished and was saved before the callback ran.
    assert elbo.load(tmp_path / "b").model.epoch == 2

    def stop_now(epoch, logs):
        raise elbo.StopTraining()

    vae3 = elbo.VAE(**SMALL)
    assert vae3.fit(x, epochs=5, out=tmp_path / "s", callbacks=[stop_now], verbose=0).epoch == [1]


def test_the_gil_is_released_while_training(small, tmp_path):
    x = small[0]
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    t = threading.Thread(target=tick)
    vae = elbo.VAE(**SMALL)
    t.start()
    started = time.monotonic()
    vae.fit(x, epochs=3, out=tmp_path / "g", verbose=0)
    ended = time.monotonic()
    stop.set()
    t.join()
    during = [s for s in ticks if started < s < ended]
    # A thread starved by a held GIL would tick a handful of times; a free one every few milliseconds.
    assert len(during) > 0.3 * (ended - started) / 0.005, (len(during), ended - started)


def test_bad_input_is_a_clear_exception(small, tmp_path):
    x = small[0][:300]
    with pytest.raises(TypeError, match="did you mean 'latent'"):
        elbo.VAE(lattent=3)
    with pytest.raises(TypeError, match="did you mean 'batch_size'"):
        elbo.VAE(batchsize=3)
    with pytest.raises(ValueError, match="lr="):
        elbo.VAE(lr="fast")
    with pytest.raises(ValueError, match="likelihood"):
        elbo.VAE(likelihood="poisson")
    vae = elbo.VAE(**SMALL)
    for bad, what in [
        ([[1, 2], [3]], "same shape"),
        (np.array(["a", "b"]), "dtype"),
        (np.array([[1 + 2j]]), "dtype"),
        (np.full((10, 5), np.nan), "non-finite"),
        (np.array([1e300, 1.0]).reshape(2, 1), "float32"),
        # Named by its index, the same in Fortran order as in C order.
        (np.asfortranarray(np.array([[1.0, 2.0], [1e300, 1.0]])), r"holds 1e\+300 at \[1, 0\]"),
        (np.zeros((0, 28, 28), dtype=np.uint8), "no items"),
    ]:
        with pytest.raises(ValueError, match=what):
            vae.fit(bad, epochs=1, out=tmp_path / "never", verbose=0)
        assert not (tmp_path / "never").exists()
    with pytest.raises(RuntimeError, match="not trained"):
        vae.encode(x)
    vae.fit(x, epochs=1, out=tmp_path / "ok", verbose=0)
    for z, what in [
        (np.zeros((2, 5)), r"\(n, 4\)"),
        (np.zeros((2, 4, 1)), r"\(n, 4\)"),
        (np.full((2, 4), np.inf), "non-finite"),
    ]:
        with pytest.raises(ValueError, match=what):
            vae.decode(z)
    with pytest.raises(ValueError, match="28x28"):
        vae.encode(np.zeros((2, 14, 14), dtype=np.uint8))
    with pytest.raises(ValueError, match="conditional"):
        vae.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="k=0: give a whole number"):
        vae.score(x[:2], k=0)
    with pytest.raises(ValueError, match="k 2000000 must be between 1 and 1000000"):
        vae.score(x[:2], k=2_000_000)
    # A folder that holds no run, a file that is not a folder, a path that does not exist.
    (tmp_path / "empty").mkdir()
    with pytest.raises((ValueError, OSError)):
        elbo.load(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        elbo.load(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="a file, not a run directory"):
        elbo.load(tmp_path / "afile")
    # Said in Python's terms, not the command line's --force and --resume.
    with pytest.raises(ValueError, match=r"already holds a run: pass force=True .* elbo.load\(") as e:
        elbo.VAE(**SMALL).fit(x, epochs=1, out=tmp_path / "ok", verbose=0)
    assert "--" not in str(e.value)
    # A bytes path is a path, as a setting too.
    again = elbo.VAE(**SMALL, out=os.fsencode(tmp_path / "bytes"))
    again.fit(x[:200], epochs=1, verbose=0)
    assert again.run_dir == str(tmp_path / "bytes")


def test_from_config_and_state_dict_forward(small, tmp_path):
    x = small[0][:500]
    cfg = tmp_path / "c.toml"
    cfg.write_text("latent = 3\nhidden = [32]\nactivation = \"tanh\"\n")
    vae = elbo.VAE.from_config(cfg, seed=2)
    # The file is read once, when the VAE is made: fit trains what was checked, whatever happens to the file.
    cfg.write_text("latent = 9\n")
    vae.fit(x, epochs=1, out=tmp_path / "c", verbose=0)
    assert vae.latent == 3
    sd = vae.state_dict()
    # A NumPy forward pass of the decoder from the state dict reproduces decode.
    z = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    dec = sorted(k for k in sd if k.startswith("decoder") and k.endswith(".weight"))
    h = z
    for i, wname in enumerate(dec):
        w, b = sd[wname], sd[wname[: -len("weight")] + "bias"]
        h = h @ w.T + b
        h = np.tanh(h) if i < len(dec) - 1 else 1 / (1 + np.exp(-h))
    assert np.abs(h.reshape(7, 28, 28) - vae.decode(z)).max() < 1e-5


def test_ctrl_c_stops_cleanly_and_resumes_bit_identically(mnist, tmp_path):
    # All 60 000 images, one thread, small batches: an epoch lasts long enough to be interrupted in.
    x = mnist[0]
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, elbo, sys
        x = np.load({str(tmp_path / 'x.npy')!r})
        vae = elbo.VAE(hidden=[64], latent=4, seed=1, batch_size=20, threads=1)
        try:
            vae.fit(x, epochs=40, out={str(tmp_path / 'int')!r}, verbose=2)
        except KeyboardInterrupt as e:
            print("KeyboardInterrupt:", e, file=sys.stderr, flush=True)
            sys.exit(7)
    """))
    p = interruptible([sys.executable, str(script)])
    lines = []
    for line in p.stderr:
        lines.append(line)
        if re.match(r"epoch +1/", line):
            time.sleep(0.05)
            p.send_signal(signal.SIGINT)
            break
    try:
        _, rest = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("the interrupt was not honoured within 60 s: " + "".join(lines))
    assert p.returncode == 7, "".join(lines) + rest
    assert "KeyboardInterrupt" in rest
    # What to do next, said for Python: not the shell's `elbo train --resume`.
    assert "fit again" in rest and "elbo train" not in rest, rest
    vae = elbo.load(tmp_path / "int")
    kept = vae.model.epoch
    assert 1 <= kept < 40
    vae.fit(epochs=2, verbose=0)
    whole = elbo.VAE(hidden=[64], latent=4, seed=1, batch_size=20, threads=1)
    whole.fit(x, epochs=kept + 2, out=tmp_path / "whole", verbose=0)
    a, b = vae.state_dict(), whole.state_dict()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_ctrl_c_stops_scoring_and_evaluating(small, tmp_path):
    x = small[0]
    vae = elbo.VAE(**SMALL)
    vae.fit(x[:500], epochs=1, out=tmp_path / "r", verbose=0)
    np.save(tmp_path / "x.npy", x)
    for method in ("score", "evaluate"):
        script = tmp_path / f"{method}.py"
        # Thousands of importance samples for every item: minutes of work unless the interrupt stops it.
        script.write_text(textwrap.dedent(f"""
            import numpy as np, elbo, sys, time
            vae = elbo.load({str(tmp_path / 'r')!r})
            x = np.load({str(tmp_path / 'x.npy')!r})
            print("start", file=sys.stderr, flush=True)
            try:
                vae.{method}(x, k=5000)
            except KeyboardInterrupt as e:
                print("KeyboardInterrupt:", e, file=sys.stderr, flush=True)
                sys.exit(7)
        """))
        rest = interrupted(script)
        assert "stopped before it finished" in rest, rest


def test_second_tryout_messages(small, tmp_path):
    x = small[0][:300]
    with pytest.raises(ValueError, match=r"^fit: epochs=-1: give a whole number"):
        elbo.VAE(**SMALL).fit(x, epochs=-1, out=tmp_path / "a", verbose=0)
    with pytest.raises(ValueError, match="latent=: 'a' is not dimensions separated by commas"):
        elbo.VAE(latent="a")
    with pytest.raises(ValueError, match="expected a whole number"):
        elbo.VAE(batch_size="a")
    # A keyword far from every setting gets no wild guess; a near one gets its correction.
    with pytest.raises(TypeError, match=r"'foo'; elbo.setting_names\(\) lists them"):
        elbo.VAE(foo=1)
    with pytest.raises(TypeError, match="did you mean 'latent'"):
        elbo.VAE(lattent=1)
    # NumPy arrays are lists; settings of one's own data wait for fit's array.
    vae = elbo.VAE(hidden=np.array([16]), latent=np.int64(2), seed=1, test_fraction=0.25)
    vae.fit(x, epochs=1, out=tmp_path / "b", verbose=0)
    assert vae.history.history["val_neg_elbo"]
    assert elbo.load(os.fsencode(tmp_path / "b")).model.epoch == 1
    mu, _ = vae.encode(x[:2])
    assert mu.shape == (2, 2)
    # Convolutions as the stubs promise: channels, "C:K:S:P" text and dicts, in one list.
    conv = elbo.VAE(conv=[4, "8:3:2:1", {"channels": 8, "kernel": 3, "stride": 2, "padding": 1}], hidden=[8],
                    latent=2, seed=1)
    conv.fit(x[:100], epochs=1, out=tmp_path / "conv", verbose=0)
    assert [c["channels"] for c in conv.config["model"]["conv"]] == [4, 8, 8]
    with pytest.raises(ValueError, match="conv"):
        elbo.VAE(conv=["8:x"])
    # Flattened images: the message says the values are all there and what shape to give.
    with pytest.raises(ValueError, match="reshape each item to 28x28x1"):
        vae.encode(x[:5].reshape(5, 784))
    # An array is named once, as the caller named it.
    bad = np.random.default_rng(0).random((50, 5))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"^x: item 3 holds a non-finite value"):
        elbo.VAE(hidden=[8], latent=2).fit(bad, epochs=1, out=tmp_path / "c", verbose=0)
    images = np.zeros((4, 28, 28), dtype=np.float32)
    images[3, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"^x: item 3 holds a non-finite value"):
        vae.encode(images)


def test_what_the_tryout_found(small, tmp_path):
    x, y = small[0][:600], small[1][:600]
    # Integer labels mean the classes fit's y gave them, in sample as in encode: 1-based labels stay 1-based.
    c = elbo.VAE(hidden=[32], latent=2, seed=1, conditional=True)
    c.fit(x, y.astype(np.int64) + 1, epochs=1, out=tmp_path / "c", verbose=0)
    assert np.array_equal(c.sample(3, labels=1, seed=0), c.sample(3, labels="1", seed=0))
    with pytest.raises(ValueError, match="not one of the run's classes"):
        c.sample(2, labels=0)
    # A folder of the user's own files is never written into.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for force in (False, True):
        with pytest.raises(ValueError, match="holds other files"):
            elbo.VAE(**SMALL).fit(x, epochs=1, out=mine, force=force, verbose=0)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # Nor is one whose file only shares a run file's name (a web project's config.json).
    web = tmp_path / "webapp"
    web.mkdir()
    for mine in ('{"port": 8080}', '{"model": {"name": "resnet50"}, "train": {"lr": 0.1}, "data": {}}'):
        (web / "config.json").write_text(mine)
        for force in (False, True):
            with pytest.raises(ValueError, match="holds other files"):
                elbo.VAE(**SMALL).fit(x, epochs=1, out=web, force=force, verbose=0)
        assert (web / "config.json").read_text() == mine
    # A failed fit into another run does not adopt that run.
    v = elbo.VAE(hidden=[16], latent=3)
    with pytest.raises(ValueError, match="already holds a run"):
        v.fit(x, epochs=1, out=tmp_path / "c", verbose=0)
    with pytest.raises(RuntimeError, match="not trained"):
        v.sample(1)
    # A moved run trains on, from its own copy of the arrays.
    os.rename(tmp_path / "c", tmp_path / "moved")
    moved = elbo.load(tmp_path / "moved")
    moved.fit(epochs=1, verbose=0)
    assert moved.model.epoch == 2
    # More output than can be allocated is an exception, not an abort of the interpreter.
    with pytest.raises(ValueError, match="at a time"):
        moved.sample(10**7, labels="1")
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="whole number"):
            moved.sample(bad, labels="1")
    # Validation data on another scale than x is refused, not scored on it.
    with pytest.raises(ValueError, match="validation_data is float32 but x is uint8"):
        elbo.VAE(**SMALL).fit(x, validation_data=x[:50].astype(np.float32), epochs=1, out=tmp_path / "w", verbose=0)
    with pytest.raises(ValueError, match="beyond them"):
        elbo.VAE(**SMALL).fit(x / 255.0, validation_data=x[:50] * 1.0, epochs=1, out=tmp_path / "w", verbose=0)
    assert not (tmp_path / "w").exists()
    with pytest.raises(ValueError, match="verbose"):
        elbo.VAE(**SMALL).fit(x, epochs=1, out=tmp_path / "v", verbose=5)


def test_early_stopping_patience_counts_as_keras_does():
    s = elbo.EarlyStopping(monitor="val_neg_elbo", patience=1)
    stops = [s.on_epoch_end(e, {"val_neg_elbo": v}) for e, v in enumerate([10, 9, 8, 9, 7], 1)]
    assert stops == [False, False, False, True, False][: len(stops)] and s.stopped_epoch == 4
    s2 = elbo.EarlyStopping(monitor="val_neg_elbo", patience=2)
    stops = [s2.on_epoch_end(e, {"val_neg_elbo": v}) for e, v in enumerate([10, 11, 12], 1)]
    assert stops == [False, False, True]
    s2.on_train_begin()
    assert s2.wait == 0 and s2.stopped_epoch == 0


def test_a_bad_value_in_a_config_file_is_named_as_its_key(small, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("lr = -1.0\n")
    # Refused as the VAE is made, as a keyword would be.
    with pytest.raises(ValueError) as e:
        elbo.VAE.from_config(cfg, **{k: v for k, v in SMALL.items() if k != "lr"})
    assert f"lr = -1 must be a positive number (lr is set in {cfg})" in str(e.value)
    assert "lr=" not in str(e.value)
    # A key is named as the file spells it.
    cfg.write_text("batch_size = 0\n")
    with pytest.raises(ValueError) as e:
        elbo.VAE.from_config(cfg).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)
    assert f"batch_size = 0 must be between 1 and 65536 (batch_size is set in {cfg})" in str(e.value)
    # A seed is a whole number up to 2^63 - 1 here, in a config file and on the command line alike.
    with pytest.raises(ValueError, match="seed=9223372036854775808: too large"):
        elbo.VAE(seed=2**63)
    # The same mistake as a keyword over the file is named as the keyword.
    with pytest.raises(ValueError, match=r"lr=-2 must be a positive number$"):
        elbo.VAE.from_config(cfg, **{**SMALL, "lr": -2.0}).fit(small[0], epochs=1, out=tmp_path / "no", verbose=0)


def test_values_are_checked_when_the_vae_is_made():
    for kwargs, what in [
        ({"lr": -1}, "lr=-1"),
        ({"batch_size": 0}, "batch_size"),
        ({"latent": 0}, "latent"),
        ({"prior_components": 6}, "prior_components goes with prior=mog"),
        ({"tc_alpha": 0.5}, "tc_alpha applies to tc only"),
    ]:
        with pytest.raises(ValueError, match=what):
            elbo.VAE(**kwargs)
    # Seven halving convolutions leave nothing of MNIST's 28x28 but suit a 256x256 photo: that waits for the data.
    elbo.VAE(conv=["16:4:2:1"] * 7, hidden=[])
    with pytest.raises(ValueError, match="lr=-1"):
        elbo.VAE.from_config(os.path.join(ROOT, "configs", "keras-conv.toml"), lr=-1)


def test_a_preset_works_with_what_the_user_changes(small, tmp_path, capfd):
    # A choice changed by a keyword drops the file's settings for the old choice, and says so.
    vamp = os.path.join(ROOT, "configs", "vampprior.toml")
    vae = elbo.VAE.from_config(vamp, prior="normal", hidden=[16], latent=2)
    assert capfd.readouterr().err == "", "said by fit, once"
    vae.fit(small[0][:300], epochs=1, out=tmp_path / "vamp", verbose=2)
    assert capfd.readouterr().err.count("prior-components from") == 1
    # A recipe for photos (a crop, a size) has nothing to act on in arrays: left out, in one line.
    cfg = tmp_path / "photos.toml"
    cfg.write_text("image-size = 64\ncrop = 148\nhidden = [16]\nlatent = 2\n")
    vae = elbo.VAE.from_config(cfg)
    vae.fit(small[0][:300], epochs=1, out=tmp_path / "run", verbose=2)
    err = capfd.readouterr().err
    assert f"image-size, crop from {cfg} left out: arrays are trained on as they are" in err
    assert vae.encode(small[0][:2])[0].shape == (2, 2)
    # The same settings given as keywords are refused, named for what was given: arrays.
    with pytest.raises(ValueError, match="crop does not apply to arrays in memory"):
        elbo.VAE(hidden=[16], latent=2, crop=148).fit(small[0][:300], epochs=1, out=tmp_path / "c", verbose=0)
    # A keyword's type error names the keyword as Python spells it.
    with pytest.raises(ValueError, match="batch_size=: ") as e:
        elbo.VAE(batch_size="x")
    assert "key '" not in str(e.value)


def test_what_the_tenth_tryout_found(small, tmp_path, monkeypatch):
    x = small[0][:400]
    # A VAE keeps its own run when the program changes folder, as notebooks do.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    other = elbo.VAE(hidden=[16], latent=2, seed=7)
    other.fit(x, epochs=1, out="runs/same", verbose=0)
    monkeypatch.chdir(tmp_path / "b")
    mine = elbo.VAE(hidden=[16], latent=3)
    mine.fit(x, epochs=1, out="runs/same", verbose=0)
    monkeypatch.chdir(tmp_path / "a")
    mine.fit(epochs=1, verbose=0)
    assert (mine.latent, mine.model.epoch) == (3, 2)
    assert mine.run_dir == str(tmp_path / "b" / "runs" / "same")
    assert elbo.load(tmp_path / "a" / "runs" / "same").model.epoch == 1
    # A callback's answer is a bool: NumPy's True stops, anything but a bool or None is refused.
    v = elbo.VAE(hidden=[16], latent=2)
    v.fit(x, epochs=3, out=tmp_path / "np", verbose=0, callbacks=[lambda e, logs: np.bool_(True)])
    assert v.model.epoch == 1
    with pytest.raises(TypeError, match="returned 1: return True"):
        elbo.VAE(hidden=[16], latent=2).fit(x, epochs=2, out=tmp_path / "one", verbose=0,
                                            callbacks=[lambda e, logs: 1])
    # Epochs saved before a callback's exception keep their history.
    def fail_second(epoch, logs):
        if epoch == 2:
            raise RuntimeError("mine")
    h = elbo.VAE(hidden=[16], latent=2)
    with pytest.raises(RuntimeError, match="mine"):
        h.fit(x, epochs=3, out=tmp_path / "h", verbose=0, callbacks=[fail_second])
    assert h.history.epoch == [1, 2] and h.model.epoch == 2
    # Labels float32 would merge are refused, not merged.
    with pytest.raises(ValueError, match="label 1 is 16777217"):
        elbo.VAE(hidden=[16], latent=2, conditional=True).fit(
            x[:4], np.array([2**24, 2**24 + 1, 2**24, 1]), epochs=1, out=tmp_path / "big", verbose=0)
    # A thread count after the process's pool is sized is said not to apply (in a process of its own, whose pool
    # no other test sized).
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import numpy as np, elbo
        x = np.load({str(tmp_path / "x.npy")!r})
        for n in (1, 2):
            elbo.VAE(hidden=[16], latent=2, threads=n).fit(x, epochs=1, out={str(tmp_path)!r} + f"/t{{n}}")
    """)
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stderr
    assert "threads=2 does not apply: this process's pool was sized to 1" in err, err
    assert "threads=1" not in err, err
    # A masked array's hidden values are not data; a file named like the default runs folder is not a folder.
    masked = np.ma.masked_array(x[:50], mask=np.zeros_like(x[:50], dtype=bool))
    masked.mask[3, 0, 0] = True
    with pytest.raises(ValueError, match="masked array with 1 masked values"):
        elbo.VAE(hidden=[16], latent=2).fit(masked, epochs=1, out=tmp_path / "m", verbose=0)
    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    pathlib.Path("runs").write_text("mine")
    with pytest.raises(ValueError, match="runs is a file"):
        elbo.VAE(hidden=[16], latent=2).fit(x, epochs=1, verbose=0)
    assert pathlib.Path("runs").read_text() == "mine"
    # Labels of the wrong length are named once; one image without its item axis is said to be one.
    with pytest.raises(ValueError, match=r"^labels of x: labels of shape \[2\] do not match 3 items"):
        mine.score(x[:3], y=[1, 2])
    with pytest.raises(ValueError, match=r"give an array of one \(x\[None\]\)"):
        mine.encode(x[0])
    # Masked labels are not labels; on classes named by words an index works, as on the command line.
    y = small[1][:400]
    with pytest.raises(ValueError, match="masked array with 400 masked labels"):
        elbo.VAE(hidden=[16], latent=2, conditional=True).fit(
            x, np.ma.masked_array(y, mask=np.ones_like(y, dtype=bool)), epochs=1, out=tmp_path / "ml", verbose=0)
    words = elbo.VAE(hidden=[16], latent=2, conditional=True)
    words.fit(x, np.where(y % 2 == 1, "odd", "even"), epochs=1, out=tmp_path / "words", verbose=0)
    assert np.array_equal(words.sample(2, labels=0, seed=3), words.sample(2, labels="even", seed=3))
    # A row far outside the training data scores inf, with a warning, never NaN.
    table = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    t = elbo.VAE(hidden=[16], latent=2)
    t.fit(table, epochs=1, out=tmp_path / "table", verbose=0)
    far = np.array([[0.5, 0, -1, 1], [1e30, 0, 0, 0], [3e38, -3e38, 1e20, 1e30]], dtype=np.float32)
    with pytest.warns(UserWarning, match="scored inf, above every finite score"):
        s = t.score(far)
    assert not np.isnan(s["neg_elbo"]).any() and np.isinf(s["neg_elbo"][1:]).all()


def test_notes_name_settings_as_keywords(tmp_path, capsys):
    # A config file's k-train kept under objective="elbo" is said, naming the setting as Python spells it.
    cfg = tmp_path / "c.toml"
    cfg.write_text('k-train = 5\nobjective = "iwae"\n')
    x = (np.random.default_rng(0).random((200, 8)) > 0.5).astype(np.float32)
    vae = elbo.VAE.from_config(cfg, objective="elbo", hidden=[8], latent=2, epochs=1)
    vae.fit(x, out=tmp_path / "run", verbose=1)
    err = capsys.readouterr().err
    assert "k-train = 5 from" in err and "(give k_train=1 for one)" in err, err
    assert "--k-train" not in err, err


def test_the_callers_float_mode_is_left_as_it_was(tmp_path):
    # elbo flushes denormals to zero while it works; NumPy's arithmetic afterwards keeps them.
    tiny = np.array([1e-320])
    assert (tiny * 1e10)[0] > 0
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    vae = elbo.VAE(latent=2, hidden=[4], threads=1)
    vae.fit(x, epochs=1, out=tmp_path / "run", verbose=0)
    assert (tiny * 1e10)[0] > 0, "fit left denormals flushed"
    vae.score(x[:4], k=2)
    vae.sample(2)
    vae.encode(x[:4])
    assert (tiny * 1e10)[0] > 0, "score, sample or encode left denormals flushed"
    # The user's own code that training or a metric calls back computes in the user's float mode too.
    seen = []
    elbo.VAE(latent=2, hidden=[4], threads=1).fit(
        x, epochs=1, out=tmp_path / "cb", verbose=0,
        callbacks=lambda epoch, logs: seen.append((tiny * 1e10)[0]))
    assert seen and seen[0] > 0, f"a callback ran with denormals flushed: {seen}"

    def represent(factors):
        seen.append((tiny * 1e10)[0])
        return factors.astype(np.float64)

    elbo.metrics.factor_vae(represent, (3, 4), points=20)
    assert seen[-1] > 0, "represent ran with denormals flushed"
    assert (tiny * 1e10)[0] > 0
    # So distinct float labels stay distinct, and are refused as floats, as in a fresh process.
    with pytest.raises(ValueError, match="float64"):
        elbo.VAE(latent=2, hidden=[4], conditional=True).fit(
            x, np.array([0.0, 1e-320] * 20), epochs=1, out=tmp_path / "c", verbose=0)


def vm_flags(address):
    """The kernel's flags for this process's mapping that holds `address` (from /proc/self/smaps)."""
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split(" ", 1)[0]
        if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", head):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage"),
                    reason="this kernel has no transparent huge pages")
def test_the_module_advises_huge_pages_for_large_buffers(small, tmp_path):
    # NumPy advises its own large arrays; turned off here, so that only elbo's allocator can have advised this one.
    from numpy._core import multiarray
    was = multiarray._set_madvise_hugepage(False)
    try:
        vae = elbo.VAE(**SMALL)
        vae.fit(small[0][:500], epochs=1, out=tmp_path / "run", verbose=0)
        big = vae.decode(np.zeros((4000, SMALL["latent"]), np.float32))
    finally:
        multiarray._set_madvise_hugepage(was)
    start = big.ctypes.data
    page = (start + (2 << 20) - 1) // (2 << 20) * (2 << 20)
    assert page + (2 << 20) <= start + big.nbytes
    assert "hg" in vm_flags(page), vm_flags(page)
