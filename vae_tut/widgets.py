"""An ipywidgets latent-space explorer for a running kernel (chapters 5 and 8); :mod:`vae_tut.web` is the book's."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import matplotlib.pyplot as plt
import torch
from torch import nn

from . import validation
from .latent import _latent_dim, decode
from .plots import _code_and_image, figure_png


class LatentExplorer:
    """Sliders over two latent dimensions of ``model`` (drop-downs choose which), the decoded image, and the class
    scatter of ``codes`` (e.g. posterior means of test images); ``start`` is the initial code (default: zeros)."""

    def __init__(
        self,
        model: nn.Module,
        codes: torch.Tensor,
        labels: torch.Tensor,
        class_names: Sequence[str] | None = None,
        start: torch.Tensor | None = None,
        limit: float = 3.0,
        title: str = "",
    ) -> None:
        self.codes = validation.codes(codes, "codes", _latent_dim(model)).detach().cpu()
        self.labels = validation.labels(labels, len(codes)).cpu()
        self.z_dim = int(codes.shape[1])
        if start is not None:
            flat = start.reshape(-1) if isinstance(start, torch.Tensor) else start  # [z] or [1, z]
            start = validation.tensor(flat, "start", (self.z_dim,))
        validation.positive(limit, "limit")
        self.model, self.class_names, self.title = model, class_names, title  # class_names: checked by draw()
        self.code = torch.zeros(self.z_dim) if start is None else start.detach().cpu().clone()
        lim = math.ceil(max(limit, float(self.codes.abs().max())) * 4) / 4  # whole steps from 0: 0 is on the slider
        dropdown = {"options": [(f"z{i + 1}", i) for i in range(self.z_dim)], "layout": w.Layout(width="150px")}
        self.dim_x = w.Dropdown(value=0, description="x dim", **dropdown)
        self.dim_y = w.Dropdown(value=min(1, self.z_dim - 1), description="y dim", disabled=self.z_dim == 1, **dropdown)
        slider = {"min": -lim, "max": lim, "step": 0.05, "continuous_update": True, "readout_format": ".2f"}
        self.slider_x = w.FloatSlider(description="x", **slider)
        self.slider_y = w.FloatSlider(description="y", disabled=self.z_dim == 1, **slider)
        self.output = w.Output()
        for control in (self.slider_x, self.slider_y):
            control.observe(self._on_slider, names="value")
        for control in (self.dim_x, self.dim_y):
            control.observe(self._on_dims, names="value")
        self.widget = w.VBox([w.VBox([w.HBox([self.dim_x, self.dim_y]), self.slider_x, self.slider_y]), self.output])
        self._on_dims()

    def _on_dims(self, _change: dict | None = None) -> None:
        self._syncing = True  # the sliders move to the chosen dimensions' values: not a move of the code
        self.slider_x.value = float(self.code[self.dim_x.value])
        self.slider_y.value = float(self.code[self.dim_y.value])
        self._syncing = False
        self.draw()

    def _on_slider(self, _change: dict) -> None:
        if self._syncing:
            return
        self.code[self.dim_x.value] = self.slider_x.value
        if self.z_dim > 1:
            self.code[self.dim_y.value] = self.slider_y.value
        self.draw()

    def image(self) -> torch.Tensor:
        """The image ``[28, 28]`` decoded from the current code."""
        return decode(self.model, self.code.unsqueeze(0))[0, 0]

    def figure(self) -> plt.Figure:
        """The explorer's picture: class scatter with the current point, and its decoding."""
        dx, dy = self.dim_x.value, self.dim_y.value
        values = ", ".join(f"{v:.2f}" for v in self.code.tolist()[:6])
        titles = (self.title or "latent space", f"decoded from z = ({values}{', ...' if self.z_dim > 6 else ''})")
        fig, ax = _code_and_image(self.codes, self.labels, self.class_names, (dx, dy), self.image(), titles)
        if self.z_dim == 1:
            ax.axvline(float(self.code[0]), color="k", lw=2)
        else:
            ax.plot(float(self.code[dx]), float(self.code[dy]), marker="X", ms=16, color="k", mec="w", mew=1.5)
        return fig

    def draw(self) -> None:
        """Redraw the figure in the output area (the saved state of the static page)."""
        png = base64.b64encode(figure_png(self.figure(), dpi=80)).decode("ascii")  # shown inside the widget only
        data = {"image/png": png, "text/plain": "latent explorer"}
        self.output.outputs = ({"output_type": "display_data", "metadata": {}, "data": data},)


def latent_explorer(
    model: nn.Module, codes: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None = None, **kw: Any
) -> w.Widget:
    """The explorer's widget, ready to display as a cell's last expression (chapters 5 and 8)."""
    return LatentExplorer(model, codes, labels, class_names, **kw).widget
