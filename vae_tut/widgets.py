"""An interactive latent-space explorer (used in chapters 5 and 8).

Sliders set a latent code, the decoder turns it into an image at once, and a
scatter of encoded test images shows where the code sits among the data. For
``z > 2`` two drop-downs choose which dimensions the sliders move; the other
dimensions stay where they are. In the static HTML book the last drawn state
is saved with the page; the sliders move only with a running kernel.
"""

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
from .latent import decode
from .plots import figure_png, latent_scatter


class LatentExplorer:
    """Sliders over two latent dimensions of ``model``, the decoded image, and the class scatter.

    ``codes`` and ``labels`` are encoded data (e.g. posterior means of test images)
    drawn behind the current point; ``start`` is the initial code (default: zeros).
    """

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
        latent_dim = getattr(model, "latent_dim", None)
        validation.codes(codes, "codes", latent_dim if isinstance(latent_dim, int) else None)
        validation.labels(labels, len(codes))
        if start is not None:
            validation.tensor(
                start.reshape(-1) if isinstance(start, torch.Tensor) else start, "start", (int(codes.shape[1]),)
            )
        validation.positive(limit, "limit")
        if class_names is not None:
            validation.class_names(class_names, int(labels.max()) + 1)
        self.model = model
        self.z_dim = int(codes.shape[1])
        self.codes, self.labels = codes.detach().cpu(), labels.detach().cpu()
        self.class_names = class_names
        self.title = title
        self.code = torch.zeros(self.z_dim) if start is None else start.detach().cpu().reshape(-1).clone().float()
        # a whole number of slider steps from 0, so that 0 itself is on the slider
        lim = math.ceil(max(limit, float(self.codes.abs().max())) * 4) / 4
        options = [(f"z{i + 1}", i) for i in range(self.z_dim)]
        self.dim_x = w.Dropdown(options=options, value=0, description="x dim", layout=w.Layout(width="150px"))
        self.dim_y = w.Dropdown(
            options=options,
            value=min(1, self.z_dim - 1),
            description="y dim",
            layout=w.Layout(width="150px"),
            disabled=self.z_dim == 1,
        )
        self.slider_x = w.FloatSlider(
            min=-lim, max=lim, step=0.05, description="x", continuous_update=True, readout_format=".2f"
        )
        self.slider_y = w.FloatSlider(
            min=-lim,
            max=lim,
            step=0.05,
            description="y",
            continuous_update=True,
            readout_format=".2f",
            disabled=self.z_dim == 1,
        )
        self.output = w.Output()
        self._sync_sliders()
        for control in (self.slider_x, self.slider_y):
            control.observe(self._on_slider, names="value")
        for control in (self.dim_x, self.dim_y):
            control.observe(self._on_dims, names="value")
        controls = w.VBox([w.HBox([self.dim_x, self.dim_y]), self.slider_x, self.slider_y])
        self.widget = w.VBox([controls, self.output])
        self.draw()

    def _sync_sliders(self) -> None:
        self._syncing = True
        self.slider_x.value = float(self.code[self.dim_x.value])
        self.slider_y.value = float(self.code[self.dim_y.value])
        self._syncing = False

    def _on_dims(self, _change: dict) -> None:
        self._sync_sliders()
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
        fig, (ax_s, ax_i) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
        dx, dy = self.dim_x.value, self.dim_y.value
        if self.z_dim == 1:
            jitter = torch.rand(len(self.codes), generator=torch.Generator().manual_seed(0))
            shown = torch.stack([self.codes[:, 0], jitter], dim=1)
            latent_scatter(shown, self.labels, ax=ax_s, class_names=self.class_names)
            ax_s.set_ylabel("(random jitter)")
            ax_s.axvline(float(self.code[0]), color="k", lw=2)
        else:
            latent_scatter(self.codes, self.labels, ax=ax_s, class_names=self.class_names, dims=(dx, dy))
            ax_s.plot(float(self.code[dx]), float(self.code[dy]), marker="X", ms=16, color="k", mec="w", mew=1.5)
        ax_s.set_title(self.title or "latent space")
        ax_i.imshow(self.image().numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax_i.set_xticks([])
        ax_i.set_yticks([])
        values = ", ".join(f"{v:.2f}" for v in self.code.tolist()[:6])
        ax_i.set_title(f"decoded from z = ({values}{', ...' if self.z_dim > 6 else ''})", fontsize="small")
        fig.tight_layout()
        return fig

    def draw(self) -> None:
        """Redraw the figure in the output area (the saved state of the static page)."""
        png = base64.b64encode(figure_png(self.figure(), dpi=80)).decode("ascii")  # shown inside the widget only
        self.output.outputs = (
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": png, "text/plain": "latent explorer"},
            },
        )


def latent_explorer(
    model: nn.Module, codes: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None = None, **kw: Any
) -> w.Widget:
    """The explorer's widget, ready to display as a cell's last expression (chapters 5 and 8)."""
    return LatentExplorer(model, codes, labels, class_names, **kw).widget
