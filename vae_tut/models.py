"""The report's encoder and decoder networks (its section 3), the VAE and a plain autoencoder (chapters 2, 5, 6)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import validation
from .data import N_PIXELS
from .errors import ConfigError
from .validation import IMAGE_SHAPE, one_of, whole

ARCHS = ("mlp", "cnn")
KINDS = ("vae", "ae", "cvae")
N_CLASSES = 10  # both data sets have ten classes; the conditional VAE takes one of them
VARIANCE_FLOOR = 1e-8
MAX_LATENT = 4096  # far beyond any useful code for 784 pixels, and still a model that fits in memory


def check_latent_dim(z: object) -> int:
    """``z`` if it is a whole number from 1 to :data:`MAX_LATENT`, else a :class:`ConfigError`."""
    return whole(z, "latent size z", 1, MAX_LATENT)


def _check_images(x: object) -> torch.Tensor:
    return validation.images(x, "the encoder's images", unit=False)


def _check_codes(z: object, latent_dim: int) -> torch.Tensor:
    return validation.codes(z, "the decoder's codes", latent_dim)


MLP_HIDDEN = 10  # the third hidden layer of the report's printed MLP (its text says 20)


def check_hidden(hidden: object) -> int:
    """``hidden`` if it is a whole number from 1 to 1000, else a :class:`ConfigError`."""
    return whole(hidden, "hidden width", 1, 1000)


class FCEncoder(nn.Module):
    """MLP encoder 784 (plus ``conditions``) -> 300 -> 100 -> ``hidden`` (10) -> ``out_features``, ELU (chapter 5)."""

    def __init__(
        self, latent_dim: int = 2, out_features: int | None = None, hidden: int = MLP_HIDDEN, conditions: int = 0
    ) -> None:
        super().__init__()
        out = 2 * check_latent_dim(latent_dim) if out_features is None else out_features
        hidden = check_hidden(hidden)
        self.activation = nn.ELU()
        self.encode_layers = nn.Sequential(
            nn.Linear(N_PIXELS + conditions, 300),
            self.activation,
            nn.Linear(300, 100),
            self.activation,
            nn.Linear(100, hidden),
            self.activation,
            nn.Linear(hidden, out),
        )

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        return self.encode_layers(h if condition is None else torch.cat([h, condition], dim=1))


class FCDecoder(nn.Module):
    """MLP decoder ``z`` (plus ``conditions``) -> ``hidden`` (10) -> 100 -> 300 -> 784 logits, ELU (chapter 5)."""

    def __init__(self, latent_dim: int = 2, hidden: int = MLP_HIDDEN, conditions: int = 0) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.activation = nn.ELU()
        self.decode_layers = nn.Sequential(
            nn.Linear(check_latent_dim(latent_dim) + conditions, hidden),
            self.activation,
            nn.Linear(hidden, 100),
            self.activation,
            nn.Linear(100, 300),
            self.activation,
            nn.Linear(300, N_PIXELS),
        )

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        h = z if condition is None else torch.cat([z, condition], dim=1)
        return self.decode_layers(h).view(-1, *IMAGE_SHAPE)


class CNNEncoder(nn.Module):
    """Three stride-2 convolutions 28 -> 14 -> 7 -> 4 with batch norm, then a linear layer (chapter 6)."""

    def __init__(self, latent_dim: int = 2, out_features: int | None = None) -> None:
        super().__init__()
        out = 2 * check_latent_dim(latent_dim) if out_features is None else out_features
        self.activation = nn.ELU()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            self.activation,
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            self.activation,
            nn.Conv2d(64, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            self.activation,
        )
        self.fc = nn.Linear(32 * 4 * 4, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv_layers(x).flatten(1))


class CNNDecoder(nn.Module):
    """A linear layer to 32x4x4, then transposed convolutions 4 -> 7 -> 14 -> 28 (chapter 6)."""

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.activation = nn.ELU()
        self.fc = nn.Linear(check_latent_dim(latent_dim), 32 * 4 * 4)
        self.conv_transpose_layers = nn.Sequential(
            nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            self.activation,
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(32),
            self.activation,
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(32),
            self.activation,
            nn.Conv2d(32, 1, 3, stride=1, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.fc(z)).view(-1, 32, 4, 4)
        return self.conv_transpose_layers(h)


class VAEOutput(NamedTuple):
    """What a forward pass returns: decoder logits, posterior mean and variance, the sample."""

    logits: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor | None
    z: torch.Tensor


class VAE(nn.Module):
    """Gaussian encoder N(mean, softplus(h) + 1e-8), decoder logits (chapters 3-5); ``learn_c`` learns c (chapter 9)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int, learn_c: bool = False) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.encoder = encoder
        self.decoder = decoder
        self.log_c = nn.Parameter(torch.zeros(())) if learn_c else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(z|x), each ``[batch, z]``."""
        return self._posterior(self.encoder(_check_images(x)))

    def _posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw_var = h.float().split(self.latent_dim, dim=1)  # fp32 from here on, also under bf16 autocast
        return mean, F.softplus(raw_var) + VARIANCE_FLOOR

    @staticmethod
    def reparameterize(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """z = mean + sqrt(var) * eps with eps ~ N(0, I): differentiable in mean and var (chapter 4)."""
        return mean + var.sqrt() * torch.randn_like(mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[batch, 1, 28, 28]``; ``sigmoid`` of them is the image."""
        return self.decoder(_check_codes(z, self.latent_dim))

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """One unchecked training pass (:func:`~vae_tut.train.fit` checks its images once)."""
        mean, var = self._posterior(self.encoder(x))
        z = self.reparameterize(mean, var)
        return VAEOutput(self.decoder(z), mean, var, z)


class ConditionalVAE(VAE):
    """A VAE whose MLP encoder and decoder also see the one-hot label y: q(z|x, y), p(x|z, y) (chapter 4)."""

    n_classes = N_CLASSES

    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.n_classes).float()

    def _checked_onehot(self, labels: object) -> torch.Tensor:
        n = len(labels) if isinstance(labels, torch.Tensor) and labels.dim() == 1 else 0
        return self._onehot(validation.labels(labels, n, classes=self.n_classes).long())

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """Mean and variance of q(z|x, y)."""
        return self._posterior(self.encoder(_check_images(x), self._checked_onehot(labels)))

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Decoder logits of codes ``z`` [N, d] drawn as digits/classes ``labels`` [N]."""
        if len(_check_codes(z, self.latent_dim)) != len(labels):
            raise ConfigError(f"{len(z)} codes but {len(labels)} labels")
        return self.decoder(z, self._checked_onehot(labels))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> VAEOutput:  # type: ignore[override]
        onehot = self._onehot(labels)  # unchecked, as in VAE.forward
        mean, var = self._posterior(self.encoder(x, onehot))
        z = self.reparameterize(mean, var)
        return VAEOutput(self.decoder(z, onehot), mean, var, z)


class Autoencoder(nn.Module):
    """A deterministic autoencoder on the same bodies: one code per image, no KL (chapter 2)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The code of each image, and ``None`` where a VAE would give a variance."""
        return self.encoder(_check_images(x)), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits of codes ``z`` ``[batch, latent_dim]``."""
        return self.decoder(_check_codes(z, self.latent_dim))

    def forward(self, x: torch.Tensor) -> VAEOutput:
        z = self.encoder(x).float()
        return VAEOutput(self.decoder(z), z, None, z)  # unchecked, as in VAE.forward


def check_combination(
    arch: object, kind: object, hidden: object = MLP_HIDDEN, likelihood: str = "gaussian", kl_variant: str = "exact"
) -> None:
    """A :class:`ConfigError` naming the clash unless these settings go together (models and runs ask it)."""
    one_of(arch, ARCHS, "architecture")
    one_of(kind, KINDS, "model kind")
    if check_hidden(hidden) != MLP_HIDDEN and arch != "mlp":
        raise ConfigError("the hidden width applies to the MLP only")
    if kind == "cvae" and arch != "mlp":
        raise ConfigError("the conditional VAE is built on the MLP networks only")
    if kind == "ae" and (kl_variant != "exact" or likelihood != "gaussian"):
        raise ConfigError("an autoencoder has no KL term and a Gaussian decoder only")
    if likelihood == "gaussian-learned" and kind != "vae":
        raise ConfigError("only a VAE can learn its decoder variance")


def build_model(
    arch: str = "mlp", latent_dim: int = 2, kind: str = "vae", hidden: int = MLP_HIDDEN, learn_c: bool = False
) -> nn.Module:
    """A :class:`VAE`, :class:`Autoencoder` or (MLP only) :class:`ConditionalVAE` on the report's ``arch`` networks."""
    check_combination(arch, kind, hidden, "gaussian-learned" if validation.flag(learn_c, "learn_c") else "gaussian")
    z = check_latent_dim(latent_dim)
    if kind == "cvae":
        return ConditionalVAE(FCEncoder(z, None, hidden, N_CLASSES), FCDecoder(z, hidden, N_CLASSES), z)
    if arch == "mlp":
        enc, dec = FCEncoder(z, None if kind == "vae" else z, hidden), FCDecoder(z, hidden)
    else:
        enc, dec = CNNEncoder(z, None if kind == "vae" else z), CNNDecoder(z)  # type: ignore[assignment]
    return VAE(enc, dec, z, learn_c) if kind == "vae" else Autoencoder(enc, dec, z)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
