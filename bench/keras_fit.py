"""Seconds per training epoch of the Keras example's convolutional VAE (keras.io/examples/generative/vae: Conv 32
and 64, 3x3 stride 2, Dense 16, a 2-D latent, the mirrored decoder; summed BCE plus KL; Adam 1e-3; batch 128; all
70 000 MNIST digits), trained by Keras's `model.fit` on TensorFlow, and the same model trained by
`elbo.VAE(arch="keras-conv").fit`, one after the other in one run, both on 2 threads.

Usage (from the repository root, on an otherwise idle machine; a virtual environment with tensorflow-cpu and the
elbo package, e.g. `python3 -m venv ../venv-tf && ../venv-tf/bin/pip install tensorflow-cpu ./python`):

    ELBO_DATA_DIR=../shared/data/mnist ../venv-tf/bin/python bench/keras_fit.py [--epochs 3]

Prints one JSON object: the median seconds per epoch of each (the first epoch left out: it traces and warms
caches) and the ratio of Keras's to elbo's.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from python_fit import cpu, read_idx  # noqa: E402


def digits(data_dir):
    """Train and test digits together, as the example trains on."""
    parts = [read_idx(os.path.join(data_dir, f)) for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")]
    return np.concatenate(parts)


def keras_epochs(x, epochs):
    import tensorflow as tf
    import keras
    from keras import layers

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    latent = 2

    inputs = keras.Input(shape=(28, 28, 1))
    h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    h = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
    encoder = keras.Model(inputs, [layers.Dense(latent)(h), layers.Dense(latent)(h)])

    codes = keras.Input(shape=(latent,))
    g = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(codes))
    g = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(g)
    g = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(g)
    decoder = keras.Model(codes, layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(g))

    class Vae(keras.Model):
        """The example's structure: a custom train_step with a GradientTape over the two losses."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.encoder, self.decoder = encoder, decoder

        def train_step(self, batch):
            with tf.GradientTape() as tape:
                mean, log_var = self.encoder(batch)
                z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))
                recon = self.decoder(z)
                nll = tf.reduce_mean(tf.reduce_sum(keras.losses.binary_crossentropy(batch, recon), axis=(1, 2)))
                kl = tf.reduce_mean(tf.reduce_sum(-0.5 * (1 + log_var - tf.square(mean) - tf.exp(log_var)), axis=1))
                loss = nll + kl
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            return {"loss": loss}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t)

    seconds = []
    vae = Vae()
    vae.compile(optimizer=keras.optimizers.Adam())
    data = np.expand_dims(x, -1).astype("float32") / 255
    vae.fit(data, epochs=epochs, batch_size=128, verbose=0, callbacks=[Clock()])
    return statistics.median(seconds[1:]), keras.__version__, tf.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    x = digits(os.environ.get("ELBO_DATA_DIR", "../shared/data/mnist"))
    out = {"cpu": cpu(), "epochs": a.epochs, "items": len(x)}
    import elbo
    with tempfile.TemporaryDirectory() as tmp:
        # Every digit is trained on, as in the example: ten of them stand in as the (required) held-out set.
        vae = elbo.VAE(arch="keras-conv", threads=2)
        h = vae.fit(x, validation_data=x[:10], epochs=a.epochs, out=os.path.join(tmp, "py"), verbose=0)
        out["elbo_python_s_per_epoch"] = statistics.median(h.history["seconds"][1:])
    s, kv, tv = keras_epochs(x, a.epochs)
    out.update(keras_s_per_epoch=s, keras=kv, tensorflow=tv)
    out["keras_over_elbo"] = s / out["elbo_python_s_per_epoch"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
