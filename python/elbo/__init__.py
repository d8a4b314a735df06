"""elbo: variational autoencoders trained fast on the CPU, from NumPy arrays.

    >>> import elbo
    >>> vae = elbo.VAE(latent=20, hidden=[400])
    >>> history = vae.fit(x_train, epochs=10)       # uint8 images (n, h, w[, c]) or float tables (n, d)
    >>> images = vae.sample(16)
    >>> mu, logvar = vae.encode(x_test)
    >>> scores = vae.score(x_new, k=100)            # per item: -ELBO and -log p(x); high means unusual

Every keyword of :class:`VAE` is a setting of ``elbo train`` (``--batch-size`` is ``batch_size=``), with the same
defaults; a model trained here is a run directory the ``elbo`` command line reads, and :func:`load` opens runs the
command line made.
"""

import numbers
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

from . import _elbo
from ._arrays import as_array, for_library, labels_of
from .callbacks import Callback, EarlyStopping, StopTraining
# Imported here so `elbo.metrics.mig(...)` works after a plain `import elbo`, as the README writes it.
from . import metrics

__all__ = ["VAE", "History", "load", "Callback", "EarlyStopping", "StopTraining", "setting_names", "metrics"]
__version__ = "0.1.0"


def setting_names():
    """The keyword arguments :class:`VAE` takes: every setting of ``elbo train``."""
    return list(_elbo.setting_names())


class History:
    """What :meth:`VAE.fit` returns, as Keras's ``History``: ``history`` maps each metric to its per-epoch list,
    ``epoch`` lists the epochs trained."""

    def __init__(self):
        self.epoch = []
        self.history = {}

    def _add(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        return f"History(epochs={self.epoch}, metrics={sorted(self.history)})"


def _logs(m):
    """An epoch's metrics as Keras-style logs: training metrics by name, held-out (test) ones as ``val_*``."""
    logs = {}
    for split, prefix in (("train", ""), ("test", "val_"), ("validation", "holdout_")):
        part = m.get(split)
        if part:
            for k, v in part.items():
                logs[prefix + k] = v
    if m.get("train_neg_iwae") is not None:
        logs["neg_iwae"] = m["train_neg_iwae"]
    if m.get("discriminator"):
        for k, v in m["discriminator"].items():
            logs["discriminator_" + k] = v
    logs["lr"] = m["lr"]
    logs["seconds"] = m["seconds"]
    return logs


class _Progress:
    """Receives training's progress from the native trainer: draws a bar and epoch lines on ``sys.stderr``
    (a terminal's or Jupyter's), records the history and calls the callbacks."""

    def __init__(self, verbose, callbacks, history):
        self.verbose = verbose
        self.callbacks = list(callbacks or [])
        self.history = history
        self.out = sys.stderr
        interactive = getattr(self.out, "isatty", lambda: False)() or "ipykernel" in sys.modules
        self.bar = verbose == 1 and interactive
        self.drawn = False
        self.epoch = self.epochs = self.items = 0
        # Rewrites lines naming paths the user never chose (the temporary file holding their arrays) with the names
        # they know instead.
        self.rename = None

    def _write(self, text):
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            pass

    def note(self, line):
        if self.rename:
            line = self.rename(line)
        if self.verbose:
            self._write(line + "\n")

    def epoch_start(self, epoch, epochs, items):
        self.epoch, self.epochs, self.items = epoch, epochs, items

    def step(self, done, loss, per_second):
        if not self.bar:
            return
        width = 30
        filled = int(width * done / max(self.items, 1))
        bar = "=" * filled + (">" if filled < width else "") + " " * (width - filled - 1)
        self._write(
            f"\repoch {self.epoch}/{self.epochs} [{bar[:width]}] {done}/{self.items} loss {loss:.2f}  "
            f"{per_second:.0f} items/s"
        )
        self.drawn = True

    def _clear(self):
        if self.drawn:
            self._write("\r" + " " * 100 + "\r")
            self.drawn = False

    def abandon(self):
        self._clear()

    def epoch_end(self, metrics, line):
        self._clear()
        if self.verbose:
            self._write(line + "\n")
        logs = _logs(metrics)
        epoch = metrics["epoch"]
        self.history._add(epoch, logs)
        stop = False
        for cb in self.callbacks:
            try:
                if hasattr(cb, "on_epoch_end"):
                    r = cb.on_epoch_end(epoch, logs)
                elif callable(cb):
                    r = cb(epoch, logs)
                else:
                    raise TypeError(f"callback {cb!r} is neither callable nor has on_epoch_end(epoch, logs)")
            except StopTraining:
                r = True
            if r is not None and not isinstance(r, (bool, np.bool_)):
                raise TypeError(
                    f"callback {cb!r} returned {r!r}: return True (or raise elbo.StopTraining) to stop training, "
                    f"None or False to go on")
            stop = stop or bool(r)
        return stop


# The arrays of the .npz that fit writes for the library, as the caller named them.
_GIVEN_AS = {"x": "x", "x_train": "x", "y": "y", "y_train": "y", "x_test": "validation_data",
             "y_test": "validation_data labels"}


def _as_given(text, keep):
    """A message about the temporary ``.npz`` holding fit's arrays, naming them as the caller gave them."""
    for array, given in _GIVEN_AS.items():
        text = text.replace(f"{keep}: {array}: ", f"{given}: ")
    return text.replace(f"data={keep}", "x").replace(keep, "x")


def _free_dir(base):
    """``base``, or ``base-2``, ``base-3``, ... : the first that does not exist, created here at once so that two
    models fitted at the same time (threads, notebooks in one folder) never pick the same one."""
    parent = os.path.dirname(base) or "."
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise ValueError(f"{parent} is a file, so runs cannot go into it: pass out= another folder")
    os.makedirs(parent, exist_ok=True)
    i = 1
    while True:
        name = base if i == 1 else f"{base}-{i}"
        try:
            os.mkdir(name)
            return name
        except FileExistsError:
            i += 1


def _check_out(run_dir, force):
    """Refuses a folder that holds files but no run: elbo replaces only what it wrote (a config.json of the
    user's own is not a run's)."""
    if not os.path.isdir(run_dir):
        return
    entries = [e for e in os.listdir(run_dir) if not e.startswith(".elbo")]
    if entries and not _elbo.holds_run(run_dir):
        raise ValueError(
            f"out={run_dir} holds other files ({', '.join(sorted(entries)[:3])}{', ...' if len(entries) > 3 else ''}) "
            f"and no run: choose a new or empty folder"
        )
    # Said here in Python's terms; the library's own message names the command line's --force and --resume.
    if entries and not force:
        raise ValueError(
            f"out={run_dir} already holds a run: pass force=True to replace it, continue it with "
            f"elbo.load({run_dir!r}).fit(epochs=...), or choose another out="
        )


def _path(p):
    """A path as text: ``str``, ``bytes`` (decoded as the file system does) or any ``os.PathLike``."""
    return os.fsdecode(os.fspath(p))


def _open(run_dir):
    """The native model of a run, opened by its absolute path: a VAE keeps its own run when the program changes
    folder (``os.chdir``, as notebooks do), rather than continuing or reading a run of the same relative name."""
    return _elbo.Model.open(os.path.abspath(_path(run_dir)))


def _text_paths(settings):
    """Settings with ``bytes`` values (paths: ``out=b"runs/x"``) as text, as the file system decodes them."""
    return {k: os.fsdecode(v) if isinstance(v, bytes) else v for k, v in settings.items()}


def _is_path(x):
    return isinstance(x, (str, bytes)) or hasattr(x, "__fspath__")


class VAE:
    """A variational autoencoder with elbo's training settings as keyword arguments.

    Every keyword is a setting of ``elbo train`` with the same default (``latent=20``, ``hidden=[400]``,
    ``batch_size=128``, ``lr=1e-3``, ``epochs=10``, ``seed=1``, ...; :func:`setting_names` lists them). Unknown
    keywords raise ``TypeError``, impossible values ``ValueError``, before anything is trained.
    """

    def __init__(self, **settings):
        settings = _text_paths(settings)
        _elbo.check_settings(settings)
        self._settings = dict(settings)
        self._config_file = None
        self._model = None
        self.history = None

    @classmethod
    def from_config(cls, path, **overrides):
        """A VAE from a ``--config`` TOML file (``configs/*.toml``); keywords override the file's settings. A
        keyword given as None leaves the file's value (as an absent flag does): to remove a file's flow or prior,
        give ``flow="none"`` or ``prior="normal"``."""
        path = _path(path)
        overrides = _text_paths(overrides)
        # Read once: fit trains on the settings checked here, even if the file changes or the working folder moves.
        config = (str(path), _elbo.read_config(path))
        _elbo.check_settings(overrides, config)
        vae = cls.__new__(cls)
        vae._settings = dict(overrides)
        vae._config_file = config
        vae._model = None
        vae.history = None
        return vae

    # ----------------------------------------------------------------------------------------------- training

    def fit(self, x=None, y=None, *, epochs=None, validation_data=None, out=None, force=False, callbacks=None,
            verbose=1):
        """Trains on ``x`` and returns a :class:`History`.

        ``x``: a NumPy array (uint8 images ``(n, h, w)`` or ``(n, h, w, c)``, floats ``(n, d)``), anything with
        ``__array__`` (a CPU tensor, a DataFrame), a path (folder of images, archive, ``.npy``/``.npz``,
        ``.csv``) or a dataset name (``"mnist"``); ``None`` uses the ``data=``/``dataset=`` setting. ``y``: a label
        per item (ints or strings). ``validation_data``: ``x_val`` or ``(x_val, y_val)``, reported each epoch as
        ``val_*``; without it a ``test_fraction`` of ``x`` (0.1) is held out for that. ``out``: the run directory
        (default ``runs/vae``, or the first free ``runs/vae-N``); ``force`` replaces a run already there.
        ``callbacks``: callables ``f(epoch, logs)`` or objects with ``on_epoch_end``; returning True or raising
        :class:`StopTraining` stops after that epoch. ``verbose``: 0 silent, 1 progress bar and epoch lines, 2
        epoch lines only (on ``sys.stderr``).

        A C-contiguous uint8 (or bool) ``x`` is trained on in place, without a copy, as ``torch.from_numpy``
        shares it: do not change it from another thread while ``fit`` runs. The run also keeps the arrays in its
        folder (``arrays.npz``), so it resumes and evaluates like a run of the CLI.

        Calling ``fit`` again continues the same run for ``epochs`` more epochs on the same data. Ctrl-C stops
        training between two steps and raises ``KeyboardInterrupt``; the last epoch's checkpoint is kept, and
        ``fit`` continues from it.
        """
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral)
                                   or epochs < 1):
            raise ValueError(f"fit: epochs={epochs!r}: give a whole number of epochs, 1 or more")
        if epochs is not None:
            epochs = int(epochs)
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"verbose={verbose!r}: give 0 (silent), 1 (progress bar and epoch lines) or 2 (epoch lines)")
        if callbacks is not None and (hasattr(callbacks, "on_epoch_end") or callable(callbacks)):
            callbacks = [callbacks]
        for cb in callbacks or []:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin()
        history = History()
        progress = _Progress(verbose, callbacks, history)
        if self._model is not None:
            if out is not None and os.path.abspath(_path(out)) != os.path.abspath(self.run_dir):
                raise ValueError(
                    f"this VAE is already trained in {self.run_dir}: fit again continues that run; for a new run in "
                    f"out={_path(out)}, make a new elbo.VAE"
                )
            return self._continue(x, y, epochs, validation_data, progress, history)
        settings = dict(self._settings)
        if epochs is not None:
            settings["epochs"] = epochs
        chosen = _path(out) if out is not None else settings.get("out")
        if chosen is not None and not str(chosen):
            raise ValueError("out='': give a folder for the run")
        if chosen is not None:
            _check_out(_path(chosen), force)
        created = chosen is None
        run_dir = _path(chosen) if chosen is not None else _free_dir(os.path.join("runs", "vae"))
        settings["out"] = run_dir
        had_run = os.path.exists(os.path.join(run_dir, "config.json")) or os.path.exists(
            os.path.join(run_dir, "checkpoint.safetensors"))
        tmp = None
        keep = None
        arrays = None
        try:
            if x is not None and _is_path(x):
                if y is not None or validation_data is not None:
                    raise ValueError("y= and validation_data= go with arrays; a path brings its own labels and splits")
                settings["data"] = _path(x)
                settings.pop("dataset", None)
            elif x is not None:
                if "data" in settings or "dataset" in settings:
                    raise ValueError("give the data once: as x, or as data=/dataset= when the VAE is made")
                tmp = tempfile.mkdtemp(prefix="elbo-")
                keep = os.path.join(tmp, "x.npz")
                arrays = _save_arrays(keep, x, y, validation_data)
                settings["data"] = keep
                progress.rename = lambda line, keep=keep: _as_given(line, keep)
            elif y is not None or validation_data is not None:
                raise ValueError("y= and validation_data= need the array x")
            try:
                run, _ = _elbo.train(settings, config=self._config_file, force=force, keep=keep, observer=progress,
                                     arrays=arrays)
            except KeyboardInterrupt:
                self._open_if_saved(run_dir)
                self.history = history
                raise
            except Exception as e:
                # A run this call started (and saved epochs of) is kept; another run already there is not ours.
                if not had_run or force:
                    self._open_if_saved(run_dir)
                    self.history = history
                if keep is not None and isinstance(e, (ValueError, OSError)) and keep in str(e):
                    raise type(e)(_as_given(str(e), keep)) from None
                raise
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            # A default folder made for a run that never started goes again.
            if created and self._model is None and os.path.isdir(run_dir) and not os.listdir(run_dir):
                os.rmdir(run_dir)
        self._model = _open(run)
        self.history = history
        return history

    def _continue(self, x, y, epochs, validation_data, progress, history):
        run_dir = self._model.run_dir
        if y is not None or validation_data is not None:
            raise ValueError("a fitted VAE continues on its run's own data: give no y= or validation_data=")
        if x is not None:
            self._check_same_data(x)
        done = self._model.epoch
        try:
            if epochs is None:
                epochs = self._settings.get("epochs") or 10
            _elbo.train({}, resume=run_dir, epochs=done + int(epochs), observer=progress)
        finally:
            # Epochs trained before an interruption or a callback's exception are saved, and so is their history.
            self._model = _open(run_dir)
            self.history = history
        return history

    def _check_same_data(self, x):
        data = (self._model.config.get("train") or {}).get("data") or {}
        recorded = data.get("path")
        if _is_path(x):
            if recorded and os.path.abspath(_path(x)) == os.path.abspath(recorded):
                return
        elif recorded and os.path.basename(recorded) == "arrays.npz":
            with np.load(recorded) as z:
                key = "x" if "x" in z.files else "x_train"
                if np.array_equal(np.asarray(z[key]), as_array(x, "x")):
                    return
        raise ValueError(
            f"this VAE was trained on other data ({recorded or 'a named dataset'}): calling fit again continues "
            f"that run on its own data; for new data make a new elbo.VAE"
        )

    def _open_if_saved(self, run_dir):
        try:
            self._model = _open(run_dir)
        except Exception:
            pass

    # ------------------------------------------------------------------------------------------------- using

    @property
    def model(self):
        """The trained native model; raises if :meth:`fit` has not run and nothing was loaded."""
        if self._model is None:
            raise RuntimeError("this VAE is not trained yet: call fit(x) first, or elbo.load(run_dir)")
        return self._model

    @property
    def run_dir(self):
        """The run directory the model lives in."""
        return _path(self.model.run_dir)

    @property
    def latent(self):
        """Latent dimensions of the codes: the top latent layer's (``latent=[100, 50]`` gives 50)."""
        return self.model.latent

    @property
    def depth(self):
        """Stochastic layers: 1, or one per entry of ``latent=[...]``."""
        return self.model.depth

    @property
    def classes(self):
        """Class names, indexed by label (empty for unlabelled data)."""
        return list(self.model.classes)

    @property
    def config(self):
        """The run's resolved configuration (model, training settings, data facts) as a dict."""
        return self.model.config

    def _labels(self, labels, n):
        if labels is None:
            return None
        if not self.model.is_conditional:
            raise ValueError("labels= needs a conditional model (trained with conditional=True); this one is not")
        if np.isscalar(labels):
            labels = [labels] * n
        values = labels_of(labels, "labels")
        classes = self.classes
        out = []
        # A label means what it meant in fit's y: the class of that value (y=[1, 2] makes classes "1" and "2"). As
        # on the command line, a whole number is an index only where no class is named by a number (cat, dog).
        numbered = any(_is_int_text(c) for c in classes)
        for v in values:
            key = str(v)
            if key in classes:
                out.append(classes.index(key))
            elif isinstance(v, int) and not numbered and 0 <= v < len(classes):
                out.append(v)
            else:
                raise ValueError(f"labels: {v!r} is not one of the run's classes ({', '.join(classes) or 'none'})")
        return out

    def encode(self, x, y=None, *, layout=None):
        """Posterior means and log-variances of the items of ``x``, two arrays of shape ``(n, latent)``
        (``logvar`` is None for a deterministic autoencoder). With a flow posterior (``flow="iaf:2"``) ``mu`` is
        the flow's image of the base Gaussian's mean (the code the decoder reads for it) and ``logvar`` the base
        Gaussian's, before the flow. ``y`` gives labels to a conditional model; ``layout`` ("nhwc" or "nchw")
        orders a 4-D array's axes."""
        self._only_conditional(y)
        mu, logvar, _, _ = self.model.encode(for_library(x, "x", y, layout))
        return mu, logvar

    def _only_conditional(self, y):
        """Refuses labels that a model without a condition would take and not use."""
        if y is not None and not self.model.is_conditional:
            raise ValueError("y= needs a conditional model (trained with conditional=True); this one is not")

    def decode(self, z, labels=None):
        """Decoder means of codes ``z`` of shape ``(n, latent)``: images ``(n, h, w[, c])`` with intensities in
        [0, 1], or rows ``(n, d)`` in the table's own units. ``labels``: a class per code (index or name, or one
        for all) for a conditional model."""
        z = as_array(z, "z")
        if z.ndim == 1 and z.shape[0] == self.latent:
            z = z[None, :]
        z = np.ascontiguousarray(z, dtype=np.float32)
        n = z.shape[0] if z.ndim else 0
        return self.model.decode(z, self._labels(labels, n))

    def sample(self, n, *, seed=1, temperature=1.0, labels=None):
        """Decoder means of ``n`` draws from the model's prior, its spread scaled by ``temperature`` (N(0,
        temperature² I) unless the model has a learned prior or stacked latent layers, each of which is drawn in
        turn), reproducible from ``seed``. ``labels``: a class per draw (or one for all) for a conditional model,
        as the values of fit's ``y``."""
        n = _count(n, "n")
        return self.model.sample(n, _count(seed, "seed", 0), float(temperature), self._labels(labels, n))

    def reconstruct(self, x, y=None, *, layout=None):
        """Each item of ``x`` decoded from its posterior mean, shaped like :meth:`decode`'s output."""
        self._only_conditional(y)
        return self.model.reconstruct(for_library(x, "x", y, layout))

    def score(self, x, y=None, *, k=100, seed=1, layout=None):
        """Per item, ``neg_elbo`` and ``nll`` (−log p(x) by importance sampling with ``k`` samples), in nats, as a
        dict of arrays (the anomaly use: high means unusual), with ``label`` and ``name`` when the items have
        them."""
        neg_elbo, nll, labels, names = self.model.score(for_library(x, "x", y, layout), _count(k, "k"), _count(seed, "seed", 0))
        beyond = np.flatnonzero(np.isinf(np.asarray(neg_elbo)))
        if len(beyond):
            warnings.warn(
                f"{len(beyond)} items (the first: index {beyond[0]}) lie so far outside the training data that the "
                f"model's float32 arithmetic overflows: scored inf, above every finite score", stacklevel=2)
        out = {"neg_elbo": neg_elbo, "nll": nll}
        if y is not None:
            # The labels as the caller gave them, not as the library numbered them.
            out["label"] = np.asarray(y).tolist()
        elif labels is not None:
            out["label"] = list(labels)
        if names:
            out["name"] = list(names)
        return out

    def evaluate(self, x, y=None, *, k=5000, seed=1, layout=None):
        """The set's mean ``neg_elbo``, ``nll`` (−log p(x), ``k`` importance samples) and ``bits_per_dim``."""
        self._only_conditional(y)
        return self.model.evaluate(for_library(x, "x", y, layout), _count(k, "k"), _count(seed, "seed", 0))

    def disentanglement(self, *, points=10000, seed=1, data_dir=None):
        """The five disentanglement metrics of this model against the factors of its run's data (dSprites'), as
        ``elbo disentanglement --json`` gives them: a dict with ``beta_vae``, ``factor_vae``, ``mig``, ``sap``,
        ``dci_*``, the ``factors`` scored and where the ``observations`` came from."""
        lo, hi = int(_elbo.MIN_POINTS), int(_elbo.MAX_POINTS)
        if isinstance(points, bool) or not isinstance(points, numbers.Integral) or not lo <= points <= hi:
            raise ValueError(f"points={points!r}: give a whole number from {lo} to {hi} (disentanglement_lib uses "
                             "10000)")
        # The command line's range, so that every seed Python takes gives the scores `elbo disentanglement` does.
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
            raise ValueError(f"seed={seed!r}: give a whole number from 0 to 2**63 - 1")
        if data_dir is not None and not _path(data_dir):
            raise ValueError("data_dir='': give the folder of dSprites' file, or leave data_dir out")
        return self.model.disentanglement(int(points), int(seed), None if data_dir is None else _path(data_dir))

    def state_dict(self):
        """The weights as a dict of NumPy arrays, in PyTorch's names and layout (a dense weight is ``[out, in]``);
        convolution weights are channels-last, ``[out, k, k, in]`` (:meth:`to_torch` permutes them as it uses them)."""
        return self.model.state_dict()

    def to_torch(self):
        """This model as a PyTorch ``nn.Module`` with its weights, in eval mode, shaped like PyTorch's VAE example:
        ``encode(x, labels=None) -> (mu, logvar)`` (an autoencoder's: ``z``), ``reparameterize(mu, logvar)``,
        ``decode(z, labels=None)`` (the same means as :meth:`decode`) and ``forward(x, labels=None) -> (recon,
        mu, logvar)``. ``x`` is what :meth:`decode` returns: images as floats in [0, 1], channels last, or rows of
        a table in its own units; labels are class indices into :attr:`classes`. Its ``state_dict()`` has the
        names and shapes of :meth:`state_dict`. Needs ``torch`` (raises ImportError without it)."""
        model = self.config["model"]
        # What TorchVAE cannot hold is refused before asking for torch, which would not help.
        if model.get("upper"):
            raise NotImplementedError(
                f"to_torch does not cover {1 + len(model['upper'])} stacked latent layers; decode and encode with "
                f"elbo itself")
        if model.get("prior"):
            raise NotImplementedError(
                f"to_torch does not cover a learned prior ({model['prior'].get('kind')}); decode and encode with "
                f"elbo itself")
        flow = model.get("flow")
        if flow:
            raise NotImplementedError(
                f"to_torch does not cover a flow posterior ({flow.get('kind')}); decode and encode with elbo itself")
        from ._torch import to_torch

        return to_torch(self.model)

    def __repr__(self):
        if self._model is None:
            args = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
            return f"elbo.VAE({args})"
        return f"<elbo.VAE trained {self._model.epoch} epochs, latent {self._model.latent}, in {self.run_dir}>"


def _is_int_text(text):
    try:
        int(text)
        return True
    except ValueError:
        return False


def _count(v, name, least=1):
    """A whole number of at least ``least`` and below 2**63, or a ValueError naming ``name``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{name}={v!r}: give a whole number")
    v = int(v)
    if not least <= v < 2**63:
        raise ValueError(f"{name}={v}: give a whole number from {least} to 2**63 - 1")
    return v


def _same_form(x, xv):
    """Refuses validation data stored unlike the training data (uint8 levels against floats, or floats in [0, 1]
    against floats beyond it), which the held-out metrics would otherwise read on another scale."""
    if xv.shape[1:] != x.shape[1:]:
        raise ValueError(f"validation_data items have shape {xv.shape[1:]}, x's have {x.shape[1:]}: give the same shape")
    bytes_x, bytes_v = x.dtype == np.uint8, xv.dtype == np.uint8
    if bytes_x != bytes_v:
        raise ValueError(
            f"validation_data is {xv.dtype} but x is {x.dtype}: give both as 8-bit levels (uint8) or both as floats "
            f"on one scale (x / 255)"
        )
    if x.dtype.kind == "f" and xv.dtype.kind == "f" and x.size and xv.size:
        unit_x = 0 <= np.nanmin(x) and np.nanmax(x) <= 1
        unit_v = 0 <= np.nanmin(xv) and np.nanmax(xv) <= 1
        if unit_x and not unit_v and x.ndim > 2:
            raise ValueError(
                "x holds intensities in [0, 1] but validation_data values beyond them: scale both alike (x / 255)"
            )


def _save_arrays(path, x, y, validation_data):
    """Writes the arrays as the ``.npz`` the CLI's ``--data`` reads, so a run from Python is a run like any other,
    and returns them as the native module trains on them in memory (uint8 read in place, not from the file)."""
    xa = as_array(x, "x")
    ya = None if y is None else np.asarray(labels_of(y, "y"))
    if validation_data is None:
        arrays = {"x": xa}
        if ya is not None:
            arrays["y"] = ya
        given = [_named(for_library(xa, "x", ya), "x")]
    else:
        if isinstance(validation_data, tuple):
            if len(validation_data) != 2:
                raise ValueError("validation_data: give x_val or (x_val, y_val)")
            xv, yv = validation_data
        else:
            xv, yv = validation_data, None
        if (ya is None) != (yv is None):
            raise ValueError("give labels for both the training and the validation data, or for neither")
        xva = as_array(xv, "validation_data")
        _same_form(xa, xva)
        arrays = {"x_train": xa, "x_test": xva}
        if ya is not None:
            arrays["y_train"] = ya
            arrays["y_test"] = np.asarray(labels_of(yv, "validation labels"))
        given = [_named(for_library(xa, "x", arrays.get("y_train")), "x_train"),
                 _named(for_library(xva, "validation_data", arrays.get("y_test"), yname="validation labels"), "x_test")]
    np.savez(path, **arrays)
    return given


def _named(source, name):
    """``for_library``'s tuple under the name the ``.npz`` gives the array, which the library's messages use."""
    return source[:-1] + (name,)


def load(run_dir):
    """Opens a run directory (made by ``elbo train`` or :meth:`VAE.fit`) at its newest checkpoint."""
    vae = VAE.__new__(VAE)
    vae._settings = {}
    vae._config_file = None
    vae._model = _open(run_dir)
    vae.history = None
    return vae
