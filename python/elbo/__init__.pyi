"""Type stubs of elbo's Python API (see the docstrings in elbo/__init__.py)."""

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from .callbacks import Callback as Callback, EarlyStopping as EarlyStopping, StopTraining as StopTraining
from . import metrics as metrics

ArrayLike = Union[npt.ArrayLike, Any]
PathLike = Union[str, "os.PathLike[str]"]
Data = Union[ArrayLike, PathLike]
Labels = Union[Sequence[int], Sequence[str], npt.NDArray[Any]]
CallbackLike = Union[Callable[[int, Dict[str, float]], Optional[bool]], Callback]

__version__: str

def setting_names() -> List[str]:
    """The keyword arguments VAE takes: every setting of `elbo train`."""

class History:
    """Per-epoch metrics of one fit, as Keras's History."""

    epoch: List[int]
    history: Dict[str, List[float]]

class VAE:
    """A variational autoencoder with elbo's training settings as keyword arguments."""

    history: Optional[History]

    def __init__(
        self,
        *,
        dataset: Optional[str] = ...,
        data: Optional[PathLike] = ...,
        image_size: Optional[Union[int, str, Tuple[int, int]]] = ...,
        crop: Optional[int] = ...,
        channels: Optional[int] = ...,
        layout: Optional[str] = ...,
        label_column: Optional[str] = ...,
        test_fraction: Optional[float] = ...,
        skip_bad: Optional[bool] = ...,
        epochs: Optional[int] = ...,
        out: Optional[PathLike] = ...,
        data_dir: Optional[PathLike] = ...,
        threads: Optional[int] = ...,
        model: Optional[str] = ...,
        arch: Optional[str] = ...,
        conv: Optional[Sequence[Union[int, str, Dict[str, int]]]] = ...,
        latent: Optional[Union[int, Sequence[int]]] = ...,
        hidden: Optional[Union[Sequence[int], Sequence[Sequence[int]]]] = ...,
        activation: Optional[str] = ...,
        conditional: Optional[bool] = ...,
        likelihood: Optional[str] = ...,
        sigma: Optional[float] = ...,
        learn_sigma: Optional[str] = ...,
        objective: Optional[str] = ...,
        samples: Optional[int] = ...,
        k_train: Optional[int] = ...,
        groups: Optional[int] = ...,
        ciwae_beta: Optional[float] = ...,
        beta: Optional[float] = ...,
        warmup_epochs: Optional[int] = ...,
        capacity: Optional[float] = ...,
        capacity_steps: Optional[int] = ...,
        gamma: Optional[float] = ...,
        free_bits: Optional[float] = ...,
        dip: Optional[str] = ...,
        dip_lambda_od: Optional[float] = ...,
        dip_lambda_d: Optional[float] = ...,
        tc: Optional[float] = ...,
        tc_alpha: Optional[float] = ...,
        tc_gamma: Optional[float] = ...,
        tc_sampling: Optional[str] = ...,
        factor_vae: Optional[float] = ...,
        discriminator: Optional[Union[str, List[int]]] = ...,
        discriminator_lr: Optional[float] = ...,
        binarize: Optional[str] = ...,
        batch_size: Optional[int] = ...,
        lr: Optional[float] = ...,
        adam_eps: Optional[float] = ...,
        adam_beta1: Optional[float] = ...,
        adam_beta2: Optional[float] = ...,
        loss_reduction: Optional[str] = ...,
        random_flip: Optional[bool] = ...,
        shards: Optional[int] = ...,
        lr_schedule: Optional[str] = ...,
        stages: Optional[int] = ...,
        stage_growth: Optional[float] = ...,
        lr_min: Optional[float] = ...,
        lr_step_every: Optional[int] = ...,
        lr_step_gamma: Optional[float] = ...,
        lr_gamma: Optional[float] = ...,
        weight_decay: Optional[float] = ...,
        batch_norm: Optional[bool] = ...,
        prior: Optional[str] = ...,
        prior_components: Optional[int] = ...,
        pseudo_init: Optional[str] = ...,
        flow: Optional[str] = ...,
        seed: Optional[int] = ...,
        limit: Optional[int] = ...,
        validation: Optional[int] = ...,
        clip_grad_norm: Optional[float] = ...,
    ) -> None: ...
    @classmethod
    def from_config(cls, path: PathLike, **overrides: Any) -> "VAE":
        """A VAE from a --config TOML file; keywords override the file's settings."""
    def fit(
        self,
        x: Optional[Data] = ...,
        y: Optional[Labels] = ...,
        *,
        epochs: Optional[int] = ...,
        validation_data: Optional[Union[ArrayLike, Tuple[ArrayLike, Labels]]] = ...,
        out: Optional[PathLike] = ...,
        force: bool = ...,
        callbacks: Optional[Iterable[CallbackLike]] = ...,
        verbose: int = ...,
    ) -> History:
        """Trains on x (array, path or dataset name) and returns a History; fit again continues the run."""
    @property
    def run_dir(self) -> str: ...
    @property
    def latent(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def classes(self) -> List[str]: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    def encode(
        self, x: Data, y: Optional[Labels] = ..., *, layout: Optional[str] = ...
    ) -> Tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.float32]]]:
        """Posterior means and log-variances, each (n, latent), of the top latent layer."""
    def decode(self, z: ArrayLike, labels: Optional[Union[int, str, Labels]] = ...) -> npt.NDArray[np.float32]:
        """Decoder means of codes (n, latent), in the data's units."""
    def sample(
        self, n: int, *, seed: int = ..., temperature: float = ..., labels: Optional[Union[int, str, Labels]] = ...
    ) -> npt.NDArray[np.float32]:
        """Decoder means of n draws from the prior."""
    def reconstruct(self, x: Data, y: Optional[Labels] = ..., *, layout: Optional[str] = ...) -> npt.NDArray[np.float32]:
        """Each item decoded from its posterior mean."""
    def score(
        self, x: Data, y: Optional[Labels] = ..., *, k: int = ..., seed: int = ..., layout: Optional[str] = ...
    ) -> Dict[str, Any]:
        """Per item: neg_elbo and nll (nats), with label and name when known."""
    def evaluate(
        self, x: Data, y: Optional[Labels] = ..., *, k: int = ..., seed: int = ..., layout: Optional[str] = ...
    ) -> Dict[str, Any]:
        """The set's mean neg_elbo, nll and bits_per_dim."""
    def disentanglement(
        self, *, points: int = ..., seed: int = ..., data_dir: Optional[Union[str, "os.PathLike[str]"]] = ...
    ) -> Dict[str, Any]:
        """The five disentanglement metrics against the factors of the run's data, as elbo disentanglement --json."""
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The weights, in PyTorch's names and layout (convolution weights channels-last, [out, k, k, in])."""
    def to_torch(self) -> Any:
        """This model as a PyTorch nn.Module (elbo._torch.TorchVAE) holding its weights, in eval mode, shaped like
        PyTorch's VAE example: encode(x, labels=None) -> (mu, logvar) (an autoencoder's: z), reparameterize(mu,
        logvar), decode(z, labels=None) -> the means VAE.decode gives, forward(x, labels=None) -> (recon, mu,
        logvar). x as decode returns items: images as floats in [0, 1] (uint8 levels are divided by 255), channels
        last; table rows in their own units. labels: class indices into classes. Its state_dict() has the names
        and shapes of state_dict(). Raises ImportError when torch is not installed."""

def load(run_dir: PathLike) -> VAE:
    """Opens a run directory made by `elbo train` or VAE.fit."""
