import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from vae_tut.models import build_model
from vae_tut.widgets import LatentExplorer, latent_explorer


def _codes(n=200, z=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, z, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_sliders_move_the_code_and_the_image():
    torch.manual_seed(0)
    model = build_model("mlp", 2)
    codes, labels = _codes()
    ex = LatentExplorer(model, codes, labels)
    before = ex.image().clone()
    ex.slider_x.value = 2.5
    ex.slider_y.value = -1.0
    assert ex.code.tolist() == pytest.approx([2.5, -1.0])
    assert not torch.allclose(before, ex.image())
    expected = torch.sigmoid(model.decode(torch.tensor([[2.5, -1.0]])))[0, 0]
    assert torch.allclose(ex.image(), expected.detach(), atol=1e-6)


def test_choosing_dimensions_for_z_above_2():
    model = build_model("mlp", 5)
    codes, labels = _codes(z=5)
    ex = LatentExplorer(model, codes, labels, start=torch.arange(5.0) / 10)
    ex.dim_x.value, ex.dim_y.value = 3, 4
    assert ex.slider_x.value == pytest.approx(0.3) and ex.slider_y.value == pytest.approx(0.4)
    ex.slider_x.value = -2.0
    assert ex.code.tolist() == pytest.approx([0.0, 0.1, 0.2, -2.0, 0.4])
    fig = ex.figure()
    assert fig.axes[0].get_xlabel() == "$z_4$" and fig.axes[0].get_ylabel() == "$z_5$"


def test_one_dimensional_latent_space():
    model = build_model("cnn", 1)
    codes, labels = _codes(z=1)
    ex = LatentExplorer(model, codes, labels)
    assert ex.slider_y.disabled
    ex.slider_x.value = 1.0
    assert ex.code.tolist() == [1.0]
    assert len(ex.figure().axes) == 2


def test_widget_has_controls_and_output():
    model = build_model("mlp", 2)
    widget = latent_explorer(model, *_codes(), class_names=[str(i) for i in range(10)])
    controls, output = widget.children
    assert len(controls.children) == 3
    (saved,) = output.outputs  # the drawing is kept in the widget state: the static page shows it
    assert saved["data"]["image/png"].startswith("iVBOR")  # base64 of the PNG signature


def test_a_label_that_is_no_class_is_one_line():
    from vae_tut.errors import ConfigError

    codes, labels = _codes(5)
    labels[-1] = 10**8
    with pytest.raises(ConfigError) as caught:
        LatentExplorer(build_model("mlp", 2), codes, labels)
    assert str(caught.value) == "labels must be class indices from 0 to 9, got 100000000"
