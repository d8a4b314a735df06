"""VAE.to_torch against elbo itself: for every architecture elbo builds, the PyTorch module decodes and encodes
what elbo's own decode and encode give, and carries elbo's state dict both ways."""

import sys

import numpy as np
import pytest

import elbo

torch = pytest.importorskip("torch", reason="VAE.to_torch needs PyTorch (pip install torch)")

TOL = 1e-5
# Tiny fits: a few hundred items, one epoch, one thread (the comparisons need weights, not good ones).
FIT = dict(epochs=1, batch_size=50, seed=1, threads=1)
N = 300


def fit(tmp_path, x, y=None, **settings):
    vae = elbo.VAE(**{**FIT, **settings})
    vae.fit(x, y, out=tmp_path / "run", verbose=0)
    return vae


def indices(vae, labels):
    """The module's labels (class indices) for labels as elbo.VAE takes them (the values of fit's y)."""
    return None if labels is None else torch.tensor([vae.classes.index(str(v)) for v in labels])


def max_diff(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check(vae, x, y=None, as_float=None):
    """Asserts that the module decodes, encodes and reconstructs as ``vae`` does, and that the state dicts
    match both ways; returns the largest differences seen."""
    module = vae.to_torch()
    assert isinstance(module, torch.nn.Module) and not module.training
    rng = np.random.default_rng(0)
    n = len(x)
    z = rng.normal(size=(n, vae.latent)).astype(np.float32)
    with torch.no_grad():
        got = module.decode(torch.from_numpy(z), indices(vae, y)).numpy()
    diffs = {"decode": max_diff(got, vae.decode(z, labels=y))}

    mu, logvar = vae.encode(x, y)
    items = torch.from_numpy(as_float(x) if as_float else x)
    with torch.no_grad():
        enc = module.encode(items, indices(vae, y))
        if vae.model.is_variational:
            tmu, tlogvar = enc
            diffs["encode"] = max(max_diff(tmu.numpy(), mu), max_diff(tlogvar.numpy(), logvar))
        else:
            assert logvar is None and torch.is_tensor(enc)
            tmu = enc
            diffs["encode"] = max_diff(tmu.numpy(), mu)
        diffs["reconstruct"] = max_diff(module.decode(tmu, indices(vae, y)).numpy(), vae.reconstruct(x, y))

    ours = module.state_dict()
    theirs = {k: v for k, v in vae.state_dict().items() if not k.startswith("discriminator.")}
    assert sorted(ours) == sorted(theirs)
    for k, v in theirs.items():
        assert tuple(ours[k].shape) == v.shape, k
        assert np.array_equal(ours[k].numpy(), v), k
    # Loading elbo's weights into a module whose weights were all changed restores its outputs exactly.
    with torch.no_grad():
        for t in module.state_dict().values():
            t.add_(1.0)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in theirs.items()})
    with torch.no_grad():
        assert np.array_equal(module.decode(torch.from_numpy(z), indices(vae, y)).numpy(), got)

    print(f"max abs differences: {diffs}")
    for what, d in diffs.items():
        assert d <= TOL, f"{what}: max abs difference {d}"
    return diffs


@pytest.fixture(scope="module")
def images(mnist):
    x, y, _, _ = mnist
    return x[:N].copy(), y[:N].copy()


def pixels(x):
    return x.astype(np.float32) / 255


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus", "leaky-relu", "leaky-relu-0.2", "identity"])
def test_mlp_of_every_activation(images, tmp_path, activation):
    x, _ = images
    vae = fit(tmp_path, x, hidden=[24], latent=3, activation=activation)
    check(vae, x[:40])


def test_default_mlp_takes_levels_or_intensities(images, tmp_path):
    x, _ = images
    vae = fit(tmp_path, x, hidden=[32], latent=4)
    assert vae.config["model"]["activation"] == "relu" and vae.config["model"]["likelihood"]["kind"] == "bernoulli"
    check(vae, x[:40])
    check(vae, x[:40], as_float=pixels)
    module = vae.to_torch()
    mu, _ = vae.encode(x[:5])
    with torch.no_grad():
        flat = module.encode(torch.from_numpy(pixels(x[:5]).reshape(5, -1)))[0]
        nchw = module.encode(torch.from_numpy(pixels(x[:5])[:, None]))[0]
    assert max_diff(flat.numpy(), mu) <= TOL and max_diff(nchw.numpy(), mu) <= TOL


def test_tanh_mlp_with_two_hidden_layers(images, tmp_path):
    x, _ = images
    check(fit(tmp_path, x, hidden=[32, 16], latent=4, activation="tanh"), x[:40])


def test_conditional(images, tmp_path):
    x, y = images
    vae = fit(tmp_path, x, y, hidden=[32], latent=3, conditional=True)
    assert vae.model.is_conditional
    check(vae, x[:40], y[:40])
    module = vae.to_torch()
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="conditional"):
        module.decode(z)
    # One class index for all codes, as VAE.decode takes one label for all.
    with torch.no_grad():
        one = module.decode(z, vae.classes.index("7")).numpy()
    assert max_diff(one, vae.decode(z.numpy(), labels=7)) <= TOL


def test_batch_norm_mlp(images, tmp_path):
    x, _ = images
    vae = fit(tmp_path, x, hidden=[32, 16], latent=4, batch_norm=True, activation="leaky-relu")
    assert any(k.endswith("running_var") for k in vae.state_dict())
    check(vae, x[:40])
    # Training mode normalises by the batch, as elbo's training does: another function of the same items.
    module = vae.to_torch().train()
    with torch.no_grad():
        batch = module.encode(torch.from_numpy(pixels(x[:40])))[0].numpy()
    assert max_diff(batch, vae.encode(x[:40])[0]) > 1e-3


def test_keras_conv(images, tmp_path):
    x, _ = images
    vae = fit(tmp_path, x, arch="keras-conv")
    assert vae.config["model"]["conv"] and vae.config["model"]["decoder"]["deconv"]
    check(vae, x[:40])


def test_mirrored_conv_conditional_batch_norm(images, tmp_path):
    x, y = images
    vae = fit(tmp_path, x, y, conv=[8, 16], hidden=[16], latent=3, conditional=True, batch_norm=True,
              activation="softplus")
    check(vae, x[:40], y[:40])


def test_uneven_convolutions_without_dense_layers(images, tmp_path):
    """An unpadded 3x3, stride-3 convolution (14 -> 4, whose transpose reaches 14 with an output padding of 2)
    and the class entering the encoder's head, right after the convolutions."""
    x, y = images
    config = tmp_path / "model.toml"
    config.write_text('conv = [{ channels = 4 }, { channels = 8, kernel = 3, stride = 3, padding = 0 }]\n')
    vae = elbo.VAE.from_config(config, **FIT, hidden=[], latent=3, conditional=True)
    vae.fit(x, y, out=tmp_path / "run", verbose=0)
    assert vae.to_torch().decoder.deconv0.output_padding == (2, 2)
    check(vae, x[:40], y[:40])


def colour(x):
    """MNIST digits as colour images: a different tint of each digit in each channel."""
    tint = np.array([1.0, 0.6, 0.25], dtype=np.float32)
    shift = np.array([0, 40, 90], dtype=np.float32)
    return np.clip(x[..., None] * tint + shift, 0, 255).astype(np.uint8)


def test_pytorch_vae_logistic_colour(images, tmp_path):
    x, _ = images
    xc = colour(x[:200])
    vae = fit(tmp_path, xc, arch="pytorch-vae", latent=8, likelihood="logistic")
    m = vae.config["model"]
    assert m["channels"] == 3 and m["likelihood"]["kind"] == "logistic" and m["decoder"]["linear_projection"]
    check(vae, xc[:20])
    module = vae.to_torch()
    with pytest.raises(ValueError, match="permute"):
        module.encode(torch.from_numpy(pixels(xc[:2])).permute(0, 3, 1, 2))


def test_gaussian_colour_mlp_with_learned_sigma_and_batch_norm(images, tmp_path):
    x, _ = images
    xc = colour(x[:200])
    vae = fit(tmp_path, xc, hidden=[24], latent=3, likelihood="gaussian", learn_sigma="pixel", batch_norm=True)
    assert "decoder.log_sigma" in vae.state_dict() and "decoder.norm0.running_mean" in vae.state_dict()
    check(vae, xc[:20])


def test_autoencoder(images, tmp_path):
    x, _ = images
    vae = fit(tmp_path, x, model="ae", hidden=[32], latent=3)
    assert not vae.model.is_variational
    check(vae, x[:40])
    module = vae.to_torch()
    with torch.no_grad():
        recon, z, logvar = module(torch.from_numpy(pixels(x[:5])))
        assert logvar is None
        assert torch.equal(recon, module.decode(z))


def test_conv_autoencoder(images, tmp_path):
    x, _ = images
    check(fit(tmp_path, x, model="ae", conv=[4, 8], hidden=[], latent=3), x[:40])


def test_vectors_in_unit_interval(images, tmp_path):
    x, _ = images
    v = pixels(x).reshape(len(x), -1)[:, ::4].copy()
    vae = fit(tmp_path, v, hidden=[16], latent=3)
    assert vae.model.kind == "vector"
    check(vae, v[:40])


def table(n=N, d=6, seed=3):
    """Correlated features on a few scales, kept small so that 1e-5 is an absolute bound in their units."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 2))
    mix = rng.normal(size=(2, d))
    x = base @ mix + 0.3 * rng.normal(size=(n, d))
    return (x * np.linspace(0.5, 2.0, d) + np.arange(d) - 2).astype(np.float32)


def test_gaussian_table_in_its_own_units(tmp_path):
    x = table()
    vae = fit(tmp_path, x, hidden=[16], latent=2, activation="tanh")
    m = vae.config["model"]
    assert vae.model.kind == "table" and m["likelihood"]["kind"] == "gaussian"
    assert m["likelihood"]["mean"] == "identity"
    check(vae, x[:40])
    module = vae.to_torch()
    st = vae.config["data"]["standardizer"]
    assert np.array_equal(module.feature_mean.numpy(), np.float32(st["mean"]))
    assert np.array_equal(module.feature_std.numpy(), np.float32(st["std"]))


def test_forward_is_the_example_s(images, tmp_path):
    x, y = images
    vae = fit(tmp_path, x, y, hidden=[32], latent=3, conditional=True)
    module = vae.to_torch()
    items, labels = torch.from_numpy(pixels(x[:8])), indices(vae, y[:8])
    with torch.no_grad():
        torch.manual_seed(5)
        recon, mu, logvar = module(items, labels)
        torch.manual_seed(5)
        eps = torch.randn_like(mu)
        want = module.decode(mu + eps * torch.exp(0.5 * logvar), labels)
        emu, elogvar = module.encode(items, labels)
    assert recon.shape == (8, 28, 28)
    assert torch.equal(mu, emu) and torch.equal(logvar, elogvar) and torch.equal(recon, want)


def test_gradients_reach_every_weight(images, tmp_path):
    x, _ = images
    vae = fit(tmp_path, x, conv=[4], hidden=[8], latent=2, batch_norm=True)
    module = vae.to_torch().train()
    items = torch.from_numpy(pixels(x[:16]))
    recon, mu, logvar = module(items)
    loss = torch.nn.functional.binary_cross_entropy(recon, items, reduction="sum")
    loss = loss - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_what_it_cannot_rebuild_is_refused_by_name(images, tmp_path):
    from elbo._torch import TorchVAE

    x, _ = images
    vae = fit(tmp_path, x[:100], hidden=[8], latent=2)
    config = vae.config
    for change, named in [({"flows": 2}, "flows"), ({"activation": "gelu"}, "gelu"),
                          ({"likelihood": {"kind": "poisson"}}, "poisson"),
                          ({"upper": [{"latent": 3, "hidden": [4]}]}, "stacked latent layers")]:
        with pytest.raises(NotImplementedError, match=named):
            TorchVAE({**config, "model": {**config["model"], **change}})


def test_without_torch_the_error_says_how_to_install_it(images, tmp_path, monkeypatch):
    x, _ = images
    vae = fit(tmp_path, x[:100], hidden=[8], latent=2)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "elbo._torch", raising=False)
    with pytest.raises(ImportError, match="pip install torch") as e:
        vae.to_torch()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("settings", [dict(factor_vae=35.0, discriminator=[16, 16]), dict(tc=6.0, tc_sampling="mss"),
                                      dict(dip="ii")])
def test_disentangling_models_convert_without_their_training_devices(images, tmp_path, settings):
    x, _ = images
    vae = fit(tmp_path, x, hidden=[24], latent=3, **settings)
    if "factor_vae" in settings:
        assert any(k.startswith("discriminator.") for k in vae.state_dict())
        assert vae.config["model"]["discriminator"] == [16, 16]
    check(vae, x[:40])
