"""Latent explorers that run in the reader's browser without a kernel (chapters 5, 8 and 9): decoders exported to
ONNX once decode codes in the page (``_ext/static/vae_explorer.js``); without JavaScript, pictures show instead."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from html import escape
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from PIL import Image
from torch import nn

from . import store, validation
from .analysis import ACTIVE_THRESHOLD, active_mask, prior_samples, unit_activity
from .errors import CacheError, ConfigError
from .experiments import Run, cache_dir
from .latent import decode, encode
from .losses import kl_per_dimension
from .plots import _code_and_image, class_colour, figure_png, grid_canvas, latent_scatter
from .train import eval_mode

N_CHECKS = 3  # fixed codes whose PyTorch decodings go into the page, for the browser test
MODELS_FOLDER = "vae-models"  # under the build's _static/


def export_decoder(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s decoder as the page runs it (codes ``z`` -> pixels ``x`` [N, 784]) to ``path`` as ONNX."""
    with eval_mode(model), warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            nn.Sequential(model.decoder, nn.Sigmoid(), nn.Flatten()),  # type: ignore[arg-type]
            (torch.zeros(2, int(model.latent_dim)),),  # type: ignore[arg-type]
            dynamo=True,
            input_names=["z"],
            output_names=["x"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),  # z: any batch size
            optimize=True,
            verbose=False,
        )
        program.save(str(path))  # type: ignore[union-attr]  # None only without dynamo=True
    return Path(path)


ENTRY_FIELDS = ("name", "key", "weights", "config", "label", "z", "torch", "checks")  # meta.json's, under its checksum


def entry_key(run: Run) -> tuple[str, str]:
    """The key of ``run``'s exported decoder (config, current weights, versions, :data:`EXPORT_CODE`), its weights'."""
    import onnx

    weights = store.weights_checksum(run.model)
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "code": EXPORT_CODE}
    return store.key_digest({"config": run.config.as_dict(), "weights": weights, **versions}), weights


def entries_root(cache: str | os.PathLike | None = None) -> Path:
    """The folder of exported decoders inside the run cache."""
    return cache_dir(cache) / "web"


def model_file(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the ``.onnx`` file named ``name`` (the file name a page asks for) is in the run cache."""
    stem = name.removesuffix(".onnx")
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ConfigError(f"not the name of an exported decoder: {name!r}")
    return entries_root(cache) / stem / "decoder.onnx"


def decoder_entry(run: Run, cache: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]]:
    """``run``'s decoder exported to ONNX once and kept in the run cache under :func:`entry_key`: file and metadata."""
    key, weights = entry_key(run)
    config = run.config
    name = f"{config.arch}-{config.kind}-{config.dataset}-z{config.z}-onnx-{key}"

    def compute(scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        scratch.mkdir(parents=True, exist_ok=True)
        blob = export_decoder(run.model, scratch / "decoder.onnx").read_bytes()
        codes = prior_samples(N_CHECKS, config.z, seed=1234)
        codes[0] = 0.0  # the origin, then seeded N(0, I) draws
        checks = [
            {"code": [round(v, 6) for v in c.tolist()], "pixels": [round(v, 7) for v in p.tolist()]}
            for c, p in zip(codes, decode(run.model, codes).flatten(1))
        ]
        meta: dict[str, Any] = {"name": name, "key": key, "weights": weights, "config": config.as_dict()}
        meta |= {"label": config.label(), "z": config.z, "torch": torch.__version__, "checks": checks}
        meta["checksum"] = store.checksum({k: meta[k] for k in ENTRY_FIELDS}, blob)
        return meta, {"decoder.onnx": blob, "meta.json": meta}

    meta, _ = store.cached(entries_root(cache) / name, compute, lambda entry: load_entry(entry, key)[0])
    return entries_root(cache) / name / "decoder.onnx", meta


# The export code, hashed once at import (as a run's code is): part of every entry's key.
EXPORT_CODE: str = store.code_version((export_decoder, decoder_entry, store.checksum))


def load_entry(entry: Path, key: str | None = None) -> tuple[dict[str, Any], bytes]:
    """The metadata and ONNX file of the exported decoder in ``entry``, checked against their checksum and for the
    key ``key`` (default: the one its folder's name ends in); a one-line :class:`CacheError` if not."""
    advice = "delete it and run the chapter again"
    meta, blob = store.read_entry(entry, "decoder.onnx", ENTRY_FIELDS, "exported decoder", advice, "meta.json")
    wanted = entry.name.rpartition("-onnx-")[2] if key is None else key
    if meta["key"] != wanted or meta["name"] != entry.name:
        raise CacheError(
            f"exported decoder {entry} holds the decoder of another model (key {str(meta['key'])[:16]!r}, "
            f"looked up by {wanted[:16]!r}); {advice}"
        )
    return meta, blob


def decoder_bytes(name: str, cache: str | os.PathLike | None = None) -> bytes:
    """The checked ONNX file a page names ``name`` (see :func:`load_entry`): what ``latent_web`` copies to the build."""
    return load_entry(model_file(name, cache).parent)[1]


def _png_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def grid_png(images: torch.Tensor, nrow: int, pad: int = 1) -> str:
    """``[N, 1, 28, 28]`` images in [0, 1] as one grey PNG data URL, dark ink on white like the book's grids."""
    canvas = grid_canvas(images, nrow, pad)
    buffer = io.BytesIO()
    Image.fromarray(((1.0 - canvas) * 255).round().to(torch.uint8).numpy(), mode="L").save(buffer, "PNG", optimize=True)
    return _png_url(buffer.getvalue())


def _pad_png(codes: torch.Tensor, labels: torch.Tensor, lim: float, size_px: int = 320) -> str:
    """The test set's codes by class, filling a square picture exactly from ``-lim`` to ``lim``."""
    fig = plt.figure(figsize=(size_px / 100, size_px / 100), dpi=100)
    ax = latent_scatter(codes, labels, ax=fig.add_axes((0, 0, 1, 1)), s=2.0, legend=False)
    ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0, color="0.8", lw=0.6, zorder=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim))
    ax.set_axis_off()
    return _png_url(figure_png(fig))


def _pixels_b64(image: torch.Tensor) -> str:
    """One ``[1, 28, 28]`` image in [0, 1] as base64 of 784 bytes (0-255, row by row)."""
    data = (image.detach().cpu().float().flatten() * 255).round().to(torch.uint8)
    return base64.b64encode(bytes(data.tolist())).decode("ascii")


def _limit(values: torch.Tensor, floor: float = 3.0) -> float:
    """A symmetric slider or pad range covering the prior's +-3 and 99.5 % of ``values``, in steps of 0.5."""
    return math.ceil(max(floor, 1.1 * float(values.abs().quantile(0.995))) * 2) / 2


def _json_script(data: dict[str, Any], cls: str) -> str:
    """``data`` as a JSON ``<script>`` block; ``&<>`` escaped, so no text in it (``</script>``) can end the block."""
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
    """The in-browser explorer of ``run``'s latent space (chapters 5 and 8): a pad (z = 2) or sliders by KL over the
    posterior means of ``images`` (or ``encoded``: means, variances), and a morph between two of them, ``pair``."""
    z = int(run.config.z)
    validation.images(images)
    labels = validation.labels(labels, len(images)).cpu()
    if len(images) < 2:
        raise ConfigError(f"the explorer needs at least two images (one for each end of its path), got {len(images)}")
    if encoded is None:
        means, variances = encode(run.model, images)
        if variances is None:
            raise ConfigError("the explorer shows a VAE's latent space; this model has no posterior variances")
    elif not isinstance(encoded, (tuple, list)) or len(encoded) != 2:
        raise ConfigError("encoded must be the pair (means, variances) of the images")
    else:
        means = validation.codes(encoded[0], "encoded means", z, rows=len(images))
        if len(means) != len(images):
            raise ConfigError(f"encoded must hold one code per image ({len(images)}), got {len(means)}")
        variances = validation.tensor(encoded[1], "encoded variances", tuple(means.shape), least=0.0)
    digits = [str(k) for k in range(int(labels.max()) + 1)]
    names = validation.class_names(digits if class_names is None else class_names, len(digits))
    firsts = [int(torch.nonzero(labels == k)[0]) for k in range(len(digits)) if bool((labels == k).any())]
    if pair is None:  # the first images of the first two classes, or of the one class there is
        pair = (firsts[0], firsts[1] if len(firsts) > 1 else 1 if firsts[0] == 0 else 0)
    pair = validation.pair(pair, len(images))
    try:
        onnx_file, meta = decoder_entry(run, cache)
    except ImportError:  # no onnx/onnxscript (e.g. a Colab runtime): the static picture only
        onnx_file, meta = None, {"checks": []}
    kl = kl_per_dimension(means, variances).mean(0)
    active = active_mask(unit_activity(means))
    order = [int(j) for j in kl.argsort(descending=True)]
    label = run.config.label()
    gallery_idx = list(dict.fromkeys([*firsts, *pair]))
    gallery = []  # the images the interpolation panel offers
    for i in gallery_idx:
        k, code = int(labels[i]), [round(v, 5) for v in means[i].tolist()]
        gallery.append({"index": i, "label": k, "name": names[k], "code": code, "pixels": _pixels_b64(images[i])})
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
        data["pad"] = {"png": _pad_png(means, labels, lim), "lo": -lim, "hi": lim}
    dims = (order[0], order[min(1, z - 1)])  # the two dimensions of largest KL
    origin = decode(run.model, torch.zeros(1, z))[0, 0]
    fig, _ = _code_and_image(means, labels, names, dims, origin, (label, "decoded from z = 0"))
    what = "click or drag on the pad" if z == 2 else "move the sliders"
    model_attr = "" if data["model"] is None else f' data-vae-model="{escape(data["model"])}"'
    markup = (
        f'<div class="vae-explorer"{model_attr} data-z="{z}">{_json_script(data, "vae-explorer-data")}'
        f'<div class="vae-static"><img alt="the latent space of {escape(label)} and one decoded image" '
        f'src="{_png_url(figure_png(fig, dpi=80))}" style="max-width:100%">'
        '<p class="vae-note"><em>The live explorer decodes in the web browser (HTML book, with '
        "JavaScript); with a Python kernel use the ipywidgets explorer.</em></p></div>"
        f'<div class="vae-live" hidden><p class="vae-help">{escape(data["title"])}: {what}; '
        "the decoder runs in this page.</p></div></div>"
    )
    text = f"in-browser latent explorer: {label} ({data['model'] or 'static picture only: onnx is not installed'})"
    return WebBlock(markup, text, data)


def sweep_frame(
    run: Run, images: torch.Tensor, caption: str, n_side: int = 6, n_recon: int = 8, seed: int = 0
) -> dict[str, Any]:
    """One frame of :func:`sweep`: ``n_side``² prior samples and ``n_recon`` test images over their reconstructions."""
    validation.images(images)
    validation.whole(n_side, "n_side", 1)
    validation.whole(n_recon, "n_recon", 1, len(images))
    samples = grid_png(decode(run.model, prior_samples(n_side * n_side, int(run.config.z), seed)), n_side)
    originals = images[:n_recon]
    recon = grid_png(torch.cat([originals, decode(run.model, encode(run.model, originals)[0])]), n_recon)
    return {"caption": caption, "label": run.config.label(), "samples": samples, "recon": recon}


def sweep(
    frames: Sequence[Sequence[dict]], values: Sequence[str], name: str, columns: Sequence[str] = ("",), start: int = 0
) -> WebBlock:
    """Pictures of several runs behind one slider ``name`` (chapters 8 and 9): ``frames[i][k]`` is :func:`sweep_frame`
    of slider position ``values[i]`` (``"z = 5"``) and column ``columns[k]`` (MLP, CNN); without JavaScript, all."""
    if len(frames) != len(values) or not frames:
        raise ConfigError("sweep needs one list of frames per slider value, and at least one value")
    if any(len(row) != len(columns) for row in frames):
        raise ConfigError(f"every slider position needs {len(columns)} frame(s), one per column")
    parts = []
    for i, (row, value) in enumerate(zip(frames, values)):
        cells = "".join(
            f'<figure class="vae-sweep-cell" data-column="{escape(column)}">'
            f"<figcaption>{escape(frame['label'])}</figcaption>"
            f'<img class="vae-sweep-samples" alt="samples, {escape(frame["label"])}" src="{frame["samples"]}">'
            f'<img class="vae-sweep-recon" alt="test images over their reconstructions, '
            f'{escape(frame["label"])}" src="{frame["recon"]}"></figure>'
            for column, frame in zip(columns, row)
        )
        parts.append(
            f'<div class="vae-sweep-frame" data-index="{i}" data-value="{escape(value)}">'
            f'<p class="vae-sweep-value">{escape(value)}</p>{cells}</div>'
        )
    start = max(0, min(start, len(values) - 1))
    markup = (
        f'<div class="vae-sweep" data-start="{start}" data-name="{escape(name)}">'
        f'{"".join(parts)}<p class="vae-sweep-key">Each panel: samples decoded from z ~ N(0, I) '
        "(top), test images over their reconstructions (bottom).</p></div>"
    )
    data = {"values": list(values), "columns": list(columns)}
    return WebBlock(markup, f"sweep over {name}: {', '.join(values)}", data)
