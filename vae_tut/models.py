"""The report's encoder and decoder networks, the VAE and a plain autoencoder.

Chapter 2 trains the :class:`Autoencoder`; chapter 5 explains the MLP networks
(:class:`FCEncoder`, :class:`FCDecoder`) and :class:`VAE`; chapter 6 the CNN
networks (:class:`CNNEncoder`, :class:`CNNDecoder`). Layer for layer they match
the listings of the reference report (section 3) for any latent size ``z >= 1``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .data import IMAGE_SHAPE, N_PIXELS
from .errors import ConfigError

ARCHS = ("mlp", "cnn")
KINDS = ("vae", "ae")
VARIANCE_FLOOR = 1e-8
MAX_LATENT = 4096  # far beyond any useful code for 784 pixels, and still a model that fits in memory


def check_latent_dim(z: object) -> int:
    """Return ``z`` if it is a whole number from 1 to :data:`MAX_LATENT`, else raise :class:`ConfigError`."""
    if isinstance(z, bool) or not isinstance(z, int) or not 1 <= z <= MAX_LATENT:
        raise ConfigError(f"latent size z must be a whole number from 1 to {MAX_LATENT}, got {z!r}")
    return z


def _check_shape(x: torch.Tensor) -> torch.Tensor:
    """``x`` if it is a batch of 1 x 28 x 28 images; a clear error for any other shape."""
    if tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ConfigError(f"the networks take images [N, 1, 28, 28], got shape {list(x.shape)}")
    return x


MLP_HIDDEN = 10  # the third hidden layer of the report's printed MLP (its text says 20)


def check_hidden(hidden: object) -> int:
    """Return ``hidden`` if it is a whole number from 1 to 1000, else raise :class:`ConfigError`."""
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 1000:
        raise ConfigError(f"hidden width must be a whole number from 1 to 1000, got {hidden!r}")
    return hidden


class FCEncoder(nn.Module):
    """MLP encoder 784 -> 300 -> 100 -> ``hidden`` (10) -> ``out_features`` with ELU (chapter 5)."""

    def __init__(self, latent_dim: int = 2, out_features: int | None = None,
                 hidden: int = MLP_HIDDEN) -> None:
        super().__init__()
        out = 2 * check_latent_dim(latent_dim) if out_features is None else out_features
        hidden = check_hidden(hidden)
        self.activation = nn.ELU()
        self.encode_layers = nn.Sequential(
            nn.Linear(N_PIXELS, 300), self.activation,
            nn.Linear(300, 100), self.activation,
            nn.Linear(100, hidden), self.activation,
            nn.Linear(hidden, out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_layers(x.flatten(1))


class FCDecoder(nn.Module):
    """MLP decoder ``z`` -> ``hidden`` (10) -> 100 -> 300 -> 784 logits with ELU (chapter 5)."""

    def __init__(self, latent_dim: int = 2, hidden: int = MLP_HIDDEN) -> None:
        super().__init__()
        hidden = check_hidden(hidden)
        self.activation = nn.ELU()
        self.decode_layers = nn.Sequential(
            nn.Linear(check_latent_dim(latent_dim), hidden), self.activation,
            nn.Linear(hidden, 100), self.activation,
            nn.Linear(100, 300), self.activation,
            nn.Linear(300, N_PIXELS),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_layers(z).view(-1, *IMAGE_SHAPE)


class CNNEncoder(nn.Module):
    """Three stride-2 convolutions 28 -> 14 -> 7 -> 4 with batch norm, then a linear layer (chapter 6)."""

    def __init__(self, latent_dim: int = 2, out_features: int | None = None) -> None:
        super().__init__()
        out = 2 * check_latent_dim(latent_dim) if out_features is None else out_features
        self.activation = nn.ELU()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), self.activation,
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), self.activation,
            nn.Conv2d(64, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), self.activation,
        )
        self.fc = nn.Linear(32 * 4 * 4, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv_layers(x).flatten(1))


class CNNDecoder(nn.Module):
    """A linear layer to 32x4x4, then transposed convolutions 4 -> 7 -> 14 -> 28 (chapter 6).

    With kernel 3, stride 2 and padding 1 a transposed convolution maps size
    ``n`` to ``2n - 1``; ``output_padding=1`` adds the missing row and column,
    so 4 -> 7 (none), 7 -> 14 and 14 -> 28 (one each).
    """

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.activation = nn.ELU()
        self.fc = nn.Linear(check_latent_dim(latent_dim), 32 * 4 * 4)
        self.conv_transpose_layers = nn.Sequential(
            nn.ConvTranspose2d(32, 64, 3, stride=2, padding=1),
            nn.BatchNorm2d(64), self.activation,
            nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(32), self.activation,
            nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(32), self.activation,
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
    """Gaussian encoder q(z|x) = N(mean, diag(var)) and decoder logits (chapters 3-5).

    ``var = softplus(h) + 1e-8``: softplus maps to (0, inf), not to [0, 1],
    and the floor keeps ``log var`` finite.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(z|x), each ``[batch, z]``."""
        h = self.encoder(_check_shape(x)).float()  # fp32 from here on, also under bf16 autocast
        mean, raw_var = h.split(self.latent_dim, dim=1)
        return mean, F.softplus(raw_var) + VARIANCE_FLOOR

    @staticmethod
    def reparameterize(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """z = mean + sqrt(var) * eps with eps ~ N(0, I): differentiable in mean and var (chapter 4)."""
        return mean + var.sqrt() * torch.randn_like(mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[batch, 1, 28, 28]``; ``sigmoid`` of them is the image."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mean, var = self.encode(x)
        z = self.reparameterize(mean, var)
        return VAEOutput(self.decode(z), mean, var, z)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] decoded from latent codes ``z``."""
        return torch.sigmoid(self.decode(z))


class Autoencoder(nn.Module):
    """A deterministic autoencoder on the same bodies: one code per image, no KL (chapter 2)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The code of each image, and ``None`` where a VAE would give a variance."""
        return self.encoder(_check_shape(x)), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        z = self.encoder(_check_shape(x)).float()
        return VAEOutput(self.decode(z), z, None, z)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode(z))


def build_model(arch: str = "mlp", latent_dim: int = 2, kind: str = "vae",
                hidden: int = MLP_HIDDEN) -> nn.Module:
    """A :class:`VAE` or :class:`Autoencoder` with the report's ``arch`` networks.

    ``hidden`` is the MLP's third hidden width; the CNN has no such layer.
    """
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if kind not in KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; choose one of: {', '.join(KINDS)}")
    z = check_latent_dim(latent_dim)
    hidden = check_hidden(hidden)
    if arch == "mlp":
        enc, dec = FCEncoder(z, None if kind == "vae" else z, hidden), FCDecoder(z, hidden)
    else:
        if hidden != MLP_HIDDEN:
            raise ConfigError("the hidden width applies to the MLP only")
        enc, dec = CNNEncoder(z, None if kind == "vae" else z), CNNDecoder(z)
    return (VAE if kind == "vae" else Autoencoder)(enc, dec, z)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
