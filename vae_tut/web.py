"""Latent explorers that run in the reader's browser, without a kernel (chapters 5, 8 and 9).

The ipywidgets explorer (:mod:`vae_tut.widgets`) needs a running Python kernel;
on the static HTML page it is a frozen picture. Here a trained decoder is
exported to ONNX once (:func:`decoder_entry`, an entry of the run cache keyed by
the weights the model holds) and a chapter cell displays :func:`explorer`: an HTML
block whose script (``_ext/static/vae_explorer.js``, added by the book's
``latent_web`` extension) decodes codes with ``onnxruntime-web`` in the page.
For ``z = 2`` the reader clicks or drags on a pad drawn over the test set's
posterior means; for ``z > 2`` there is one slider per dimension, ordered by
the dimension's KL, with inactive dimensions marked. A second panel morphs
between two test images. :func:`sweep` shows precomputed pictures of several
runs behind one slider (chapters 8 and 9).

The ``.onnx`` files are build products: the book's extension copies each file a
page names (``data-vae-model``) from the run cache into ``_static/vae-models/``, after
checking it (:func:`decoder_bytes`).
Without JavaScript, and in Jupyter, the block shows a static picture instead.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import store, validation
from .analysis import ACTIVE_THRESHOLD, active_mask, prior_samples, unit_activity
from .validation import images as check_images

if TYPE_CHECKING:
    from .experiments import Run, RunConfig
from .errors import CacheError, ConfigError
from .latent import decode, encode
from .losses import kl_per_dimension
from .plots import class_colour

N_CHECKS = 3  # fixed codes whose PyTorch decodings go into the page, for the browser test
MODELS_FOLDER = "vae-models"  # under the build's _static/
ENTRY_FOLDER = "web"  # under the run cache


class PixelDecoder(nn.Module):
    """``model``'s decoder as the browser runs it: codes ``[N, z]`` -> pixels in [0, 1], ``[N, 784]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decoder(z)).flatten(1)  # type: ignore[operator]  # unchecked: traced


def export_decoder(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s decoder (:class:`PixelDecoder`) to ``path`` as ONNX, with any batch size.

    Uses ``torch.onnx.export`` with the dynamo exporter (it needs PyPI ``onnxscript``).
    The input is named ``z``, the output ``x``. The exporter's progress lines and
    warnings are kept out of the notebook.
    """
    path = Path(path)
    z_dim = int(model.latent_dim)  # type: ignore[arg-type]
    was_training = model.training
    net = PixelDecoder(model).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (torch.zeros(2, z_dim),),
                dynamo=True,
                input_names=["z"],
                output_names=["x"],
                dynamic_shapes={"z": {0: batch}},
                optimize=True,
                verbose=False,
            )
            if program is None:
                raise CacheError("the ONNX exporter returned nothing")
            program.save(str(path))
    finally:
        model.train(was_training)
    return path


def check_codes(z: int, n: int = N_CHECKS) -> torch.Tensor:
    """The fixed codes ``[n, z]`` whose decodings the page carries: the origin, then seeded N(0, I) draws."""
    codes = prior_samples(n, z, seed=1234)
    codes[0] = 0.0
    return codes


# of meta.json, under its checksum: "key" and "weights" say which model's decoder the entry holds
ENTRY_FIELDS = ("name", "key", "weights", "config", "label", "z", "torch", "checks")
# The export code, hashed once at import (as a run's code is): part of every entry's key.
EXPORT_CODE: str = store.code_version((PixelDecoder, export_decoder, check_codes, store.checksum))


def entry_key(run: Run) -> tuple[str, str]:
    """The key of ``run``'s exported decoder and the checksum of the weights its model holds now
    (:func:`vae_tut.store.weights_checksum`): the same config trained on another device, or weights
    changed in place, give another key. The key also holds the config, torch, onnx and :data:`EXPORT_CODE`."""
    import onnx

    weights = store.weights_checksum(run.model)
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "code": EXPORT_CODE}
    return store.key_digest({"config": run.config.as_dict(), "weights": weights, **versions}), weights


def entry_name(config: RunConfig, key: str) -> str:
    """The folder (and ``.onnx`` file) name of the decoder of ``config`` with :func:`entry_key` ``key``."""
    return f"{config.arch}-{config.kind}-{config.dataset}-z{config.z}-onnx-{key}"


def entries_root(cache: str | os.PathLike | None = None) -> Path:
    """The folder of exported decoders inside the run cache."""
    from .experiments import cache_dir

    return cache_dir(cache) / ENTRY_FOLDER


def model_file(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the ``.onnx`` file named ``name`` (the file name a page asks for) is in the run cache."""
    stem = name[: -len(".onnx")] if name.endswith(".onnx") else name
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ConfigError(f"not the name of an exported decoder: {name!r}")
    return entries_root(cache) / stem / "decoder.onnx"


def decoder_entry(run: Run, cache: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """``run``'s decoder exported to ONNX (made once, kept in the run cache): the file and its metadata.

    The entry is keyed by :func:`entry_key` (the weights the model holds now). The metadata
    holds that key, the weights' checksum, the run's config and label, ``z``, PyTorch's decodings of
    :func:`check_codes` (pixels in [0, 1]), against which the browser test checks the page,
    and a checksum of the ONNX file and the metadata (:func:`vae_tut.store.checksum`), checked on every
    load like a run's (:func:`load_entry`): a damaged entry, or one of another model, is a one-line
    :class:`~vae_tut.errors.CacheError`.
    """
    key, weights = entry_key(run)
    name = entry_name(run.config, key)
    folder = entries_root(cache) / name

    def compute(scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        scratch.mkdir(parents=True, exist_ok=True)
        onnx_path = export_decoder(run.model, scratch / "decoder.onnx")
        codes = check_codes(run.config.z)
        pixels = decode(run.model, codes).flatten(1)
        meta: dict[str, Any] = {
            "name": name,
            "key": key,
            "weights": weights,
            "config": run.config.as_dict(),
            "label": run.config.label(),
            "z": run.config.z,
            "torch": torch.__version__,
            "checks": [
                {"code": [round(v, 6) for v in c.tolist()], "pixels": [round(v, 7) for v in p.tolist()]}
                for c, p in zip(codes, pixels)
            ],
        }
        blob = onnx_path.read_bytes()
        meta["checksum"] = store.checksum({k: meta[k] for k in ENTRY_FIELDS}, blob)
        return meta, {"decoder.onnx": blob, "meta.json": meta}

    meta, _ = store.cached(folder, compute, lambda entry: load_entry(entry, key))
    return folder / "decoder.onnx", meta


def _read_entry(entry: Path, key: str | None) -> tuple[dict[str, Any], bytes]:
    """The checked metadata and ONNX file of ``entry``, which must hold the decoder keyed ``key``
    (``None``: the key its folder's name ends in) under the folder's own name."""
    advice = "delete it and run the chapter again"
    meta, blob = store.read_entry(entry, "decoder.onnx", ENTRY_FIELDS, "exported decoder", advice, "meta.json")
    wanted = entry.name.rpartition("-onnx-")[2] if key is None else key
    if meta["key"] != wanted or meta["name"] != entry.name:
        raise CacheError(
            f"exported decoder {entry} holds the decoder of another model (key {str(meta['key'])[:16]!r}, "
            f"looked up by {wanted[:16]!r}); {advice}"
        )
    return meta, blob


def load_entry(entry: Path, key: str | None = None) -> dict[str, Any]:
    """The metadata of the exported decoder in ``entry``, after checking it and the ONNX file against
    the checksum written beside them, and that its recorded key is ``key`` (default: the key its
    folder's name ends in); a :class:`CacheError` in one line if anything is off."""
    return _read_entry(entry, key)[0]


def decoder_bytes(name: str, cache: str | os.PathLike | None = None) -> bytes:
    """The ONNX file a page names ``name`` (``NAME.onnx``), checked as :func:`load_entry` checks it:
    what the book's ``latent_web`` extension copies into the build."""
    return _read_entry(model_file(name, cache).parent, None)[1]


# ---------------------------------------------------------------- pictures carried by the page


def _png(fig: Any) -> str:
    from .plots import figure_png

    return "data:image/png;base64," + base64.b64encode(figure_png(fig)).decode("ascii")


def grid_png(images: torch.Tensor, nrow: int, pad: int = 1) -> str:
    """``[N, 1, 28, 28]`` images in [0, 1] as one grey PNG data URL, dark ink on white like the book's grids."""
    from PIL import Image

    from .plots import grid_canvas

    canvas = grid_canvas(images, nrow, pad)
    array = ((1.0 - canvas.clamp(0, 1)) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array, mode="L").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pad_png(codes: torch.Tensor, labels: torch.Tensor, lo: float, hi: float, size_px: int = 320) -> str:
    """The test set's codes coloured by class, filling a square picture exactly from ``lo`` to ``hi``."""
    import matplotlib.pyplot as plt

    from .plots import latent_scatter

    dpi = 100
    fig = plt.figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    latent_scatter(codes, labels, ax=ax, s=2.0, legend=False)
    ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0, color="0.8", lw=0.6, zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_axis_off()
    return _png(fig)


def _pixels_b64(image: torch.Tensor) -> str:
    """One ``[1, 28, 28]`` image in [0, 1] as base64 of 784 bytes (0-255, row by row)."""
    data = (image.detach().cpu().float().clamp(0, 1).flatten() * 255).round().to(torch.uint8)
    return base64.b64encode(bytes(data.tolist())).decode("ascii")


def _limit(values: torch.Tensor, floor: float = 3.0) -> float:
    """A symmetric slider or pad range covering the prior's +-3 and 99.5 % of ``values``, in steps of 0.5."""
    reach = float(values.abs().quantile(0.995)) if values.numel() else 0.0
    return math.ceil(max(floor, 1.1 * reach) * 2) / 2


# ---------------------------------------------------------------- the HTML blocks


def _json_script(data: dict[str, Any], cls: str) -> str:
    """``data`` as a JSON ``<script>`` block; ``<``, ``>`` and ``&`` (which JSON has in strings only)
    are written as ``\\u003c``, ``\\u003e`` and ``\\u0026``, so no text (e.g. ``</script>``) can end the block."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" class="{cls}">{text}</script>'


class WebBlock:
    """An HTML block for a notebook output: shown as HTML by Jupyter and the book."""

    def __init__(self, markup: str, text: str, data: dict[str, Any]) -> None:
        self.markup, self.text, self.data = markup, text, data

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text


def _static_figure(
    model: nn.Module,
    means: torch.Tensor,
    labels: torch.Tensor,
    order: Sequence[int],
    class_names: Sequence[str] | None,
    label: str,
) -> str:
    """The picture shown without JavaScript: the codes (the two dimensions of largest KL) and a decoding."""
    import matplotlib.pyplot as plt

    from .plots import latent_scatter

    z = means.shape[1]
    fig, (ax_s, ax_i) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=80, gridspec_kw={"width_ratios": [1.5, 1]})
    if z == 1:
        jitter = torch.rand(len(means), generator=torch.Generator().manual_seed(0))
        latent_scatter(torch.stack([means[:, 0], jitter], 1), labels, ax=ax_s, class_names=class_names)
    else:
        latent_scatter(means, labels, ax=ax_s, class_names=class_names, dims=(order[0], order[1]))
    ax_s.set_title(label, fontsize="small")
    ax_i.imshow(decode(model, torch.zeros(1, z))[0, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax_i.set_xticks([])
    ax_i.set_yticks([])
    ax_i.set_title("decoded from z = 0", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def explorer(
    run: Run,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] | None = None,
    pair: tuple[int, int] | None = None,
    encoded: tuple[torch.Tensor, torch.Tensor] | None = None,
    title: str | None = None,
    cache: str | os.PathLike | None = None,
) -> WebBlock:
    """The in-browser explorer of ``run``'s latent space, as a notebook output (chapters 5 and 8).

    ``images``/``labels`` are test images; their posterior means (or ``encoded``,
    the ``(means, variances)`` already computed) are drawn under the pad (z = 2)
    and give each dimension's KL and activity (z > 2). The interpolation panel
    offers the first test image of each class; ``pair`` (two indices into
    ``images``) chooses its two ends (default: the first 0 and the first 1).
    """
    model = run.model
    z = int(run.config.z)
    check_images(images)
    labels = validation.labels(labels, len(images)).cpu()
    if len(images) < 2:
        raise ConfigError(f"the explorer needs at least two images (one for each end of its path), got {len(images)}")
    if encoded is not None:
        if not isinstance(encoded, (tuple, list)) or len(encoded) != 2:
            raise ConfigError("encoded must be the pair (means, variances) of the images")
        means = validation.codes(encoded[0], "encoded means", z, rows=len(images))
        variances = validation.codes(encoded[1], "encoded variances", z, rows=len(images), least=0.0)
        validation.same_shape(means, variances, "encoded means and variances")
        if len(means) != len(images):
            raise ConfigError(f"encoded must hold one code per image ({len(images)}), got {len(means)}")
    n_classes = int(labels.max()) + 1
    if class_names is not None:
        class_names = validation.class_names(class_names, n_classes)
    if pair is not None:
        pair = validation.pair(pair, len(images))
    try:
        onnx_file, meta = decoder_entry(run, cache)
    except ImportError:  # no onnx/onnxscript (e.g. a Colab runtime): the static picture only
        onnx_file, meta = None, {"checks": []}
    if encoded is None:
        means, posterior_variances = encode(model, images)
        if posterior_variances is None:
            raise ConfigError("the explorer shows a VAE's latent space; this model has no posterior variances")
        variances = posterior_variances
    kl = kl_per_dimension(means, variances).mean(0)
    active = active_mask(unit_activity(means))
    order = [int(j) for j in kl.argsort(descending=True)]
    names = list(class_names) if class_names is not None else [str(k) for k in range(n_classes)]
    label = run.config.label()

    firsts = [int(torch.nonzero(labels == k)[0]) for k in range(n_classes) if bool((labels == k).any())]
    if pair is None:  # the first images of the first two classes, or of the one class there is
        pair = (firsts[0], firsts[1]) if len(firsts) > 1 else (firsts[0], 1 if firsts[0] == 0 else 0)
    gallery_idx = list(dict.fromkeys([*firsts, *pair]))
    gallery = [
        {
            "index": i,
            "label": int(labels[i]),
            "name": names[int(labels[i])],
            "code": [round(v, 5) for v in means[i].tolist()],
            "pixels": _pixels_b64(images[i]),
        }
        for i in gallery_idx
    ]
    data: dict[str, Any] = {
        "model": None if onnx_file is None else onnx_file.parent.name + ".onnx",
        "z": z,
        "label": label,
        "title": (title + (" [QUICK MODE]" if run.config.is_quick else "")) if title else label,
        "classes": [{"name": n, "colour": class_colour(k)} for k, n in enumerate(names)],
        "dims": [
            {"index": j, "kl": round(float(kl[j]), 4), "active": bool(active[j]), "limit": _limit(means[:, j])}
            for j in order
        ],
        "activeThreshold": ACTIVE_THRESHOLD,
        "gallery": gallery,
        "pair": [gallery_idx.index(pair[0]), gallery_idx.index(pair[1])],
        "checks": meta["checks"],
    }
    if z == 2:
        lim = max(_limit(means[:, 0]), _limit(means[:, 1]))
        data["pad"] = {"png": _pad_png(means, labels, -lim, lim), "lo": -lim, "hi": lim}
    fallback = _static_figure(model, means, labels, order, class_names, label)
    what = "click or drag on the pad" if z == 2 else "move the sliders"
    model_attr = "" if data["model"] is None else f' data-vae-model="{html.escape(data["model"])}"'
    markup = (
        f'<div class="vae-explorer"{model_attr} data-z="{z}">'
        + _json_script(data, "vae-explorer-data")
        + '<div class="vae-static"><img alt="the latent space of '
        + html.escape(label)
        + ' and one decoded image" src="'
        + fallback
        + '" style="max-width:100%">'
        + '<p class="vae-note"><em>The live explorer decodes in the web browser (HTML book, with '
        + "JavaScript); with a Python kernel use the ipywidgets explorer.</em></p></div>"
        + f'<div class="vae-live" hidden><p class="vae-help">{html.escape(data["title"])}: {what}; '
        + "the decoder runs in this page.</p></div></div>"
    )
    text = f"in-browser latent explorer: {label} ({data['model'] or 'static picture only: onnx is not installed'})"
    return WebBlock(markup, text, data)


def sweep_frame(
    run: Run, images: torch.Tensor, caption: str, n_side: int = 6, n_recon: int = 8, seed: int = 0
) -> dict[str, Any]:
    """One frame of :func:`sweep`: ``n_side``² samples from the prior and ``n_recon`` test
    images over their reconstructions (from the posterior means), as PNG data URLs."""
    model = run.model
    z = int(run.config.z)
    check_images(images)
    validation.whole(n_side, "n_side", 1)
    validation.whole(n_recon, "n_recon", 1, len(images))
    codes = prior_samples(n_side * n_side, z, seed)
    originals = images[:n_recon]
    means, _ = encode(model, originals)
    recon = decode(model, means)
    return {
        "caption": caption,
        "label": run.config.label(),
        "samples": grid_png(decode(model, codes), nrow=n_side),
        "recon": grid_png(torch.cat([originals, recon]), nrow=n_recon),
    }


def sweep(
    frames: Sequence[Sequence[dict[str, Any]]],
    values: Sequence[str],
    name: str,
    columns: Sequence[str] = ("",),
    start: int = 0,
) -> WebBlock:
    """Precomputed pictures of several runs behind one slider (chapters 8 and 9).

    ``frames[i][k]`` is :func:`sweep_frame` of the ``i``-th slider position
    (shown as ``values[i]``, e.g. ``"z = 5"``) and the ``k``-th column (e.g. MLP
    and CNN). ``name`` labels the slider. Without JavaScript every position is shown.
    """
    if len(frames) != len(values) or not frames:
        raise ConfigError("sweep needs one list of frames per slider value, and at least one value")
    if any(len(row) != len(columns) for row in frames):
        raise ConfigError(f"every slider position needs {len(columns)} frame(s), one per column")
    parts = []
    for i, (row, value) in enumerate(zip(frames, values)):
        cells = []
        for column, frame in zip(columns, row):
            cells.append(
                f'<figure class="vae-sweep-cell" data-column="{html.escape(column)}">'
                f"<figcaption>{html.escape(frame['label'])}</figcaption>"
                f'<img class="vae-sweep-samples" alt="samples, {html.escape(frame["label"])}" src="{frame["samples"]}">'
                f'<img class="vae-sweep-recon" alt="test images over their reconstructions, '
                f'{html.escape(frame["label"])}" src="{frame["recon"]}"></figure>'
            )
        parts.append(
            f'<div class="vae-sweep-frame" data-index="{i}" data-value="{html.escape(value)}">'
            f'<p class="vae-sweep-value">{html.escape(value)}</p>{"".join(cells)}</div>'
        )
    start = max(0, min(start, len(values) - 1))
    markup = (
        f'<div class="vae-sweep" data-start="{start}" data-name="{html.escape(name)}">'
        f'{"".join(parts)}<p class="vae-sweep-key">Each panel: samples decoded from z ~ N(0, I) '
        "(top), test images over their reconstructions (bottom).</p></div>"
    )
    return WebBlock(
        markup, f"sweep over {name}: {', '.join(values)}", {"values": list(values), "columns": list(columns)}
    )
