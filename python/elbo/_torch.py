"""A trained elbo model as a PyTorch ``nn.Module``, built from the run's config and loaded with its weights.

The networks are rebuilt layer by layer as ``src/model/config.rs`` (``ModelConfig::build``) builds them, and run
as ``src/model/net.rs`` runs them: each layer, then the class's learned row (a conditional model), then batch
norm, then the activation. elbo keeps images and feature maps channels-last (NHWC) and flattens them in that
order before a dense layer; here convolutions run on NCHW tensors, so feature maps are permuted at the two
places where a dense layer meets a convolution, and convolution weights keep elbo's layout in the state dict
and are permuted as they are used.
"""

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ModuleNotFoundError as e:
    # Only a missing torch: a torch that is there but fails to load says why itself.
    if e.name != "torch":
        raise
    raise ImportError("VAE.to_torch() needs PyTorch, which is not installed: pip install torch") from None

__all__ = ["TorchVAE", "to_torch"]

# elbo's batch norm (src/core/batchnorm.rs): PyTorch's ε and momentum.
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1

_ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    # elbo's slope is PyTorch's default, 0.01.
    "leaky-relu": F.leaky_relu,
    "leaky-relu-0.2": lambda h: F.leaky_relu(h, 0.2),
    "identity": lambda h: h,
}

_MODEL_KEYS = {"kind", "rows", "cols", "channels", "conv", "hidden", "latent", "decoder", "activation",
               "likelihood", "classes", "batch_norm"}
_DECODER_KEYS = {"hidden", "deconv", "linear_projection"}
_CONV_KEYS = {"channels", "kernel", "stride", "padding"}


def _refuse(what):
    raise NotImplementedError(f"to_torch does not cover {what}; decode and encode with elbo itself")


def _conv_out(n, k, s, p):
    """A convolution's output side (src/core/conv.rs ``conv_out``), or None when the kernel does not fit."""
    return None if n + 2 * p < k else (n + 2 * p - k) // s + 1


class _Conv(nn.Module):
    """elbo's ``Conv2d``: weight ``[out, k, k, in]`` as elbo stores it, applied to NCHW input."""

    def __init__(self, cin, cout, kernel, stride, padding):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, kernel, kernel, cin))
        self.bias = nn.Parameter(torch.empty(cout))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight.permute(0, 3, 1, 2), self.bias, self.stride, self.padding)


class _Deconv(nn.Module):
    """elbo's ``ConvTranspose2d``: weight ``[in, k, k, out]`` as elbo stores it, applied to NCHW input. elbo
    sizes its output by the image it must reach; PyTorch reaches the same size through ``output_padding``."""

    def __init__(self, cin, cout, kernel, stride, padding, output_padding):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, kernel, kernel, cout))
        self.bias = nn.Parameter(torch.empty(cout))
        self.stride, self.padding, self.output_padding = stride, padding, output_padding

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight.permute(0, 3, 1, 2), self.bias, self.stride, self.padding,
                                  self.output_padding)


class _BatchNorm(nn.Module):
    """Batch norm over dimension 1 (features of ``(N, C)``, channels of ``(N, C, H, W)``) with exactly elbo's
    tensors: ``nn.BatchNorm*d`` would add a ``num_batches_tracked`` that elbo's state dict does not have."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            _BN_MOMENTUM, _BN_EPS)


class _Net(nn.Module):
    """One of elbo's networks: layers in order, each followed by the class's row (at the conditioned layer),
    its batch norm (if any) and its activation. Dense layers take and give ``(N, features)``; convolutions
    ``(N, C, H, W)``; the flat order of a feature map is elbo's, height, width, channels."""

    def __init__(self):
        super().__init__()
        # Per layer: (name, kind, activation, norm name or None, NHWC shape of a convolution's input or None).
        self._plan = []
        self._cond_at = None

    def add(self, name, layer, kind, act, shape_in=None):
        self.add_module(name, layer)
        self._plan.append([name, kind, act, None, shape_in])

    def add_norm(self, i, channels):
        name = f"norm{i}"
        self.add_module(name, _BatchNorm(channels))
        self._plan[i][3] = name

    def condition(self, at, classes, width):
        self.cond = nn.Parameter(torch.zeros(classes, width))
        self._cond_at = at

    def forward(self, h, labels=None):
        n = h.shape[0]
        for i, (name, kind, act, norm, shape_in) in enumerate(self._plan):
            if kind == "dense" and h.dim() == 4:
                h = h.permute(0, 2, 3, 1).reshape(n, -1)
            elif kind != "dense" and h.dim() == 2:
                height, width, channels = shape_in
                h = h.reshape(n, height, width, channels).permute(0, 3, 1, 2)
            h = getattr(self, name)(h)
            if i == self._cond_at:
                # Concatenating a one-hot class to the layer's input adds one column of its weight: this row.
                h = h + self.cond[labels]
            if norm is not None:
                h = getattr(self, norm)(h)
            h = _ACTIVATIONS[act](h)
        return h


class TorchVAE(nn.Module):
    """A trained elbo VAE (or autoencoder) as a PyTorch module, shaped like PyTorch's ``examples/vae``.

    Made by :meth:`elbo.VAE.to_torch`, in eval mode (batch norm uses its running statistics; ``train()``
    normalises by the batch, as elbo's training does). ``state_dict()`` has exactly the names and shapes of
    :meth:`elbo.VAE.state_dict` (convolution weights in elbo's layout, ``[out, k, k, in]`` and, transposed,
    ``[in, k, k, out]``), so weights move both ways with ``load_state_dict``.

    elbo's networks see each item as one row of float32 values in height, width, channel order (NHWC): an
    image's 8-bit levels ``v`` as ``v / 255``, a vector's values as they are, a table's features standardised,
    ``(v - mean) / std`` with the training split's statistics. The module takes and gives items as
    :meth:`elbo.VAE.decode` returns them: images as floats in [0, 1], channels last, ``(N, H, W)`` grey or
    ``(N, H, W, C)`` colour (or any items as ``(N, D)`` rows in that order); vectors ``(N, D)``; table rows
    ``(N, D)`` in the table's own units, standardised before the encoder and mapped back after the decoder with
    the buffers ``feature_mean`` and ``feature_std`` (not saved in the state dict), as elbo does.

    Labels of a conditional model are class indices into :attr:`classes` (an int tensor ``(N,)``, or one int
    for all).
    """

    def __init__(self, config, classes=(), kind="image"):
        super().__init__()
        model = config["model"]
        self.config = config
        self.classes = list(classes)
        self.latent = int(model["latent"])
        self.item_shape = (int(model["rows"]), int(model["cols"]), int(model.get("channels", 1)))
        self.kind = kind
        self.is_variational = model.get("kind", "vae") == "vae"
        self.is_conditional = int(model.get("classes", 0)) > 0
        self._build(model)
        st = config.get("data", {}).get("standardizer")
        d = self.item_shape[0] * self.item_shape[1] * self.item_shape[2]
        mean = torch.tensor(st["mean"], dtype=torch.float32) if st else torch.zeros(d)
        std = torch.tensor(st["std"], dtype=torch.float32) if st else torch.ones(d)
        self._standardised = bool(st)
        self.register_buffer("feature_mean", mean, persistent=False)
        self.register_buffer("feature_std", std, persistent=False)
        self.eval()

    def _build(self, m):
        prior = m.get("prior")
        if prior:
            _refuse(f"a learned prior ({prior.get('kind')}, {prior.get('components')} components), which TorchVAE "
                    f"does not hold")
        upper = m.get("upper")
        if upper:
            _refuse(f"{1 + len(upper)} stacked latent layers (latent {[m['latent']] + [u['latent'] for u in upper]}), "
                    f"which TorchVAE's single latent does not hold")
        flow = m.get("flow")
        if flow:
            _refuse(f"a flow posterior ({flow.get('kind')}), which TorchVAE's Gaussian posterior does not hold")
        # FactorVAE's discriminator is a training device: the encoder and decoder are all TorchVAE needs.
        unknown = set(m) - _MODEL_KEYS - {"prior", "upper", "flow", "discriminator"}
        if unknown:
            _refuse(f"models with the setting(s) {', '.join(sorted(unknown))} (made by a newer elbo?)")
        if m.get("kind", "vae") not in ("vae", "autoencoder"):
            _refuse(f"model kind {m['kind']!r}")
        act = m["activation"]
        if act not in _ACTIVATIONS:
            _refuse(f"activation {act!r}")
        lik = m["likelihood"]
        lik_kind = lik.get("kind")
        if lik_kind == "bernoulli":
            self._mean = "sigmoid"
        elif lik_kind == "gaussian":
            self._mean = lik.get("mean", "sigmoid")
            if self._mean not in ("sigmoid", "identity"):
                _refuse(f"a Gaussian decoder with mean {self._mean!r}")
        elif lik_kind == "logistic":
            self._mean = "clamp"
        else:
            _refuse(f"likelihood {lik_kind!r}")
        rows, cols, channels = self.item_shape
        convs = [self._conv_spec(c) for c in m.get("conv") or []]
        hidden = [int(h) for h in m["hidden"]]
        latent = int(m["latent"])
        classes = int(m.get("classes", 0))
        batch_norm = bool(m.get("batch_norm", False))

        # Encoder (ModelConfig::build): convolutions, dense layers, then the head; the last layer stays linear.
        enc = _Net()
        shape = (rows, cols, channels)
        for i, (c, k, s, p) in enumerate(convs):
            oh, ow = _conv_out(shape[0], k, s, p), _conv_out(shape[1], k, s, p)
            if not oh or not ow:
                _refuse(f"convolution {i + 1}, which does not fit its {shape[0]}x{shape[1]} input")
            enc.add(f"conv{i}", _Conv(shape[2], c, k, s, p), "conv", act, shape)
            shape = (oh, ow, c)
        first_dense = len(enc._plan)
        width = shape[0] * shape[1] * shape[2]
        for i, h in enumerate(hidden):
            enc.add(str(i), nn.Linear(width, h), "dense", act)
            width = h
        enc.add("head", nn.Linear(width, 2 * latent if self.is_variational else latent), "dense", "identity")
        if classes:
            enc.condition(first_dense, classes, getattr(enc, enc._plan[first_dense][0]).out_features)

        # Decoder: the configured one, or the encoder mirrored (ModelConfig::decoder_spec).
        spec = m.get("decoder")
        if spec is None:
            deconv = [(channels if i == 0 else convs[i - 1][0],) + convs[i][1:] for i in reversed(range(len(convs)))]
            spec_hidden, linear_projection = list(reversed(hidden)), False
        else:
            unknown = set(spec) - _DECODER_KEYS
            if unknown:
                _refuse(f"decoders with the setting(s) {', '.join(sorted(unknown))}")
            deconv = [self._conv_spec(c) for c in spec.get("deconv") or []]
            spec_hidden = [int(h) for h in spec.get("hidden") or []]
            linear_projection = bool(spec.get("linear_projection", False))
        if deconv and deconv[-1][0] != channels:
            _refuse(f"a decoder ending in {deconv[-1][0]} channels for {channels}-channel images")
        if deconv and not convs:
            _refuse("a transposed-convolution decoder without a convolutional encoder")
        # Each transposed convolution's input shape, worked back from the image as elbo does.
        shapes = [(rows, cols, channels)]
        for i in reversed(range(len(deconv))):
            _, k, s, p = deconv[i]
            out = shapes[0]
            h, w = _conv_out(out[0], k, s, p), _conv_out(out[1], k, s, p)
            if not h or not w:
                _refuse(f"transposed convolution {i + 1}, which cannot produce a {out[0]}x{out[1]} image")
            shapes.insert(0, (h, w, convs[-1][0] if i == 0 else deconv[i - 1][0]))
        dec = _Net()
        width = latent
        for i, h in enumerate(spec_hidden):
            dec.add(str(i), nn.Linear(width, h), "dense", act)
            width = h
        if not deconv:
            dec.add("out", nn.Linear(width, rows * cols * channels), "dense", "identity")
        else:
            small = shapes[0]
            dec.add("project", nn.Linear(width, small[0] * small[1] * small[2]), "dense",
                    "identity" if linear_projection else act)
            for i, (c, k, s, p) in enumerate(deconv):
                src, dst = shapes[i], shapes[i + 1]
                pads = [dst[j] - ((src[j] - 1) * s - 2 * p + k) for j in (0, 1)]
                if not all(0 <= q < s for q in pads):
                    _refuse(f"transposed convolution {i + 1} from {src[0]}x{src[1]} onto {dst[0]}x{dst[1]}")
                last = i + 1 == len(deconv)
                dec.add(f"deconv{i}", _Deconv(src[2], c, k, s, p, tuple(pads)), "deconv",
                        "identity" if last else act, src)
        if classes:
            dec.condition(0, classes, getattr(dec, dec._plan[0][0]).out_features)

        # Batch norm after every layer an activation other than the identity follows (config.rs `add_norms`).
        if batch_norm:
            for net in (enc, dec):
                for i, (name, kind, layer_act, _, _) in enumerate(net._plan):
                    if layer_act == "identity":
                        continue
                    layer = getattr(net, name)
                    net.add_norm(i, layer.out_features if kind == "dense" else layer.bias.shape[0])

        learn = lik.get("learn", "global" if lik_kind == "logistic" else "fixed")
        d = rows * cols * channels
        size = {"fixed": 0, "global": 1, "pixel": d}.get(learn)
        if size is None and lik_kind != "bernoulli":
            _refuse(f"a learned scale {learn!r}")
        if lik_kind != "bernoulli" and size:
            # Not used for the means; kept so the state dict is elbo's, whole.
            name = "log_sigma" if lik_kind == "gaussian" else "log_scale"
            dec.register_parameter(name, nn.Parameter(torch.zeros(size)))
        self.encoder, self.decoder = enc, dec

    @staticmethod
    def _conv_spec(c):
        if isinstance(c, dict):
            unknown = set(c) - _CONV_KEYS
            if unknown:
                _refuse(f"convolutions with the setting(s) {', '.join(sorted(unknown))}")
            return (int(c["channels"]), int(c.get("kernel", 3)), int(c.get("stride", 2)), int(c.get("padding", 1)))
        _refuse(f"the convolution {c!r}")

    # ---------------------------------------------------------------------------------------------- helpers

    def _tensor(self, v):
        p = next(self.parameters())
        return torch.as_tensor(v, dtype=p.dtype, device=p.device)

    def _labels(self, labels, n):
        if not self.is_conditional:
            if labels is not None:
                raise ValueError("labels need a conditional model (trained with conditional=True); this one is not")
            return None
        if labels is None:
            k = self.decoder.cond.shape[0]
            raise ValueError(f"this model is conditional: give labels, a class index (0 to {k - 1}) per item")
        device = self.decoder.cond.device
        labels = torch.as_tensor(labels, device=device)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels of dtype {labels.dtype}: give class indices as integers")
        labels = labels.long()
        if labels.dim() == 0:
            labels = labels.expand(n)
        k = self.decoder.cond.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"labels of shape {tuple(labels.shape)}: give one class index per item, shape ({n},)")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must be class indices from 0 to {k - 1}")
        return labels

    def _flat(self, x):
        """Items as ``(N, D)`` rows in elbo's order (height, width, channels), on elbo's internal scale."""
        h, w, c = self.item_shape
        d = h * w * c
        if not torch.is_tensor(x):
            x = torch.as_tensor(x)
        if x.dtype == torch.uint8:
            # 8-bit levels, as elbo reads them.
            x = x.float() / 255
        x = self._tensor(x)
        shapes = [(d,)]
        if self.kind == "image":
            shapes += [(h, w, c)] + ([(h, w), (1, h, w)] if c == 1 else [])
        if x.dim() < 2 or tuple(x.shape[1:]) not in shapes:
            hint = " (channels last: for NCHW tensors give x.permute(0, 2, 3, 1))" if c > 1 else ""
            want = " or ".join(str((-1,) + s).replace("-1", "N") for s in shapes)
            raise ValueError(f"x of shape {tuple(x.shape)}: give items of shape {want}{hint}")
        x = x.reshape(x.shape[0], d)
        if self._standardised:
            x = (x - self.feature_mean) / self.feature_std
        return x

    # ------------------------------------------------------------------------------------------- the model

    def encode(self, x, labels=None):
        """Posterior parameters of items ``x``: ``(mu, logvar)``, each ``(N, latent)``. An autoencoder's encoder
        gives the code itself: ``encode`` returns ``z``, one ``(N, latent)`` tensor.

        ``x``: images as floats in [0, 1] (uint8 levels are divided by 255), channels last, ``(N, H, W)`` grey
        (``(N, 1, H, W)`` too) or ``(N, H, W, C)``; any items as ``(N, D)`` rows flattened in that order; table
        rows in the table's own units. ``labels``: class indices, for a conditional model.
        """
        x = self._flat(x)
        head = self.encoder(x, self._labels(labels, x.shape[0]))
        if not self.is_variational:
            return head
        return head[:, :self.latent], head[:, self.latent:]

    def reparameterize(self, mu, logvar):
        """A draw ``mu + ε·exp(logvar / 2)`` with ``ε ~ N(0, I)``; an autoencoder's code (``logvar`` None)
        passes unchanged."""
        if logvar is None:
            return mu
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z, labels=None):
        """Decoder means of codes ``z`` ``(N, latent)``, as :meth:`elbo.VAE.decode` gives them: images
        ``(N, H, W)`` or ``(N, H, W, C)`` in [0, 1] (Bernoulli, and a Gaussian over images: the sigmoid of the
        network's output; the discretised logistic: its location clamped to [0, 1]), vectors ``(N, D)``, table
        rows ``(N, D)`` in the table's own units (a Gaussian's mean, the output itself, unstandardised).
        ``labels``: class indices, for a conditional model."""
        z = self._tensor(z)
        if z.dim() == 1 and z.shape[0] == self.latent:
            z = z[None]
        if z.dim() != 2 or z.shape[1] != self.latent:
            raise ValueError(f"z of shape {tuple(z.shape)}: give codes of shape (N, {self.latent})")
        out = self.decoder(z, self._labels(labels, z.shape[0]))
        n = out.shape[0]
        if out.dim() == 4:
            # The last transposed convolution's NCHW output, in elbo's order.
            out = out.permute(0, 2, 3, 1)
        out = out.reshape(n, -1)
        if self._mean == "sigmoid":
            out = torch.sigmoid(out)
        elif self._mean == "clamp":
            out = out.clamp(0, 1)
        if self._standardised:
            out = out * self.feature_std + self.feature_mean
        h, w, c = self.item_shape
        if self.kind != "image":
            return out
        return out.reshape(n, h, w) if c == 1 else out.reshape(n, h, w, c)

    def forward(self, x, labels=None):
        """``(recon, mu, logvar)``: the decoder's means (shaped as :meth:`decode`'s) at a draw from the posterior
        of each item, as PyTorch's example does; an autoencoder gives ``(recon, z, None)``."""
        enc = self.encode(x, labels)
        mu, logvar = (enc, None) if not self.is_variational else enc
        z = self.reparameterize(mu, logvar)
        return self.decode(z, labels), mu, logvar

    def extra_repr(self):
        h, w, c = self.item_shape
        kind = "VAE" if self.is_variational else "autoencoder"
        return f"{kind}, latent={self.latent}, items {h}x{w}x{c} ({self.kind})"


def to_torch(model):
    """A :class:`TorchVAE` holding the weights of ``model`` (an ``elbo._elbo.Model``)."""
    module = TorchVAE(model.config, model.classes, model.kind)
    # FactorVAE's discriminator trains the model but is not part of it: TorchVAE holds the encoder and decoder.
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("discriminator.")}
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    if want != have:
        missing = sorted(set(have) - set(want))
        extra = sorted(set(want) - set(have))
        shaped = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        parts = [f"{what} {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}"
                 for what, names in (("tensors not rebuilt:", missing), ("tensors elbo does not have:", extra),
                                     ("tensors of other shapes:", shaped)) if names]
        _refuse(f"this model's architecture ({'; '.join(parts)})")
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return module
