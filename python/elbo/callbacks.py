"""Callbacks for :meth:`elbo.VAE.fit`, in Keras's conventions: any callable ``f(epoch, logs)`` or object with
``on_epoch_end(epoch, logs)``; returning ``True`` or raising :class:`StopTraining` ends training after that
epoch, with its checkpoint kept."""

import math


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (its checkpoint is kept)."""


class Callback:
    """Base class: override :meth:`on_epoch_end`."""

    def on_epoch_end(self, epoch, logs):
        """Called after each epoch, once its checkpoint is saved; return True to stop training."""
        return False


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor`` is a key of the epoch's logs (``val_neg_elbo``, ``neg_elbo``, ``val_kl``, ...); lower is better
    unless ``mode="max"``. After training, ``stopped_epoch`` is the epoch it stopped at (0 if it never did) and
    ``best`` the best value seen.
    """

    def __init__(self, monitor="val_neg_elbo", patience=0, min_delta=0.0, mode="min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}: choose 'min' or 'max'")
        if patience < 0:
            raise ValueError(f"patience={patience}: give 0 or more epochs")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.mode = mode
        self.on_train_begin()

    def on_train_begin(self):
        """Forgets the previous fit's best value, as Keras does at each fit."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = 0

    def _better(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: no '{self.monitor}' in this epoch's logs; choose one of {', '.join(sorted(logs))}"
            )
        value = logs[self.monitor]
        if self._better(value):
            self.best = value
            self.wait = 0
            return False
        self.wait += 1
        # As Keras: with patience p, the p-th epoch in a row without improvement stops (p = 0: the first).
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            return True
        return False
