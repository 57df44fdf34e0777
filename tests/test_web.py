"""The in-browser explorer's Python side: ONNX export parity, the cache entry, the HTML blocks."""

import matplotlib

matplotlib.use("Agg")

import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort  # the test extra (pip install -e ".[test]")
import pytest
import torch

from vae_tut import web
from vae_tut.errors import CacheError, ConfigError
from vae_tut.experiments import RunConfig
from vae_tut.models import build_model


def fake_run(arch="mlp", z=2, seed=0):
    """A run-like object with an untrained model (the export does not care whether it was trained)."""
    torch.manual_seed(seed)
    model = build_model(arch, z).eval()
    return SimpleNamespace(config=RunConfig(arch=arch, z=z, seed=seed).resolved("cpu"), model=model)


def onnx_decode(path, codes):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["z"]
    return session.run(["x"], {"z": codes.numpy()})[0]


@pytest.mark.parametrize("arch,z", [("mlp", 2), ("cnn", 2), ("cnn", 5), ("mlp", 20)])
def test_onnx_decoder_matches_pytorch(tmp_path, arch, z):
    r = fake_run(arch, z)
    path = web.export_decoder(r.model, tmp_path / "d.onnx")
    codes = torch.randn(64, z, generator=torch.Generator().manual_seed(7)) * 2
    got = onnx_decode(path, codes)
    with torch.no_grad():
        want = torch.sigmoid(r.model.decode(codes)).flatten(1).numpy()
    assert got.shape == (64, 784)
    assert np.abs(got - want).max() <= 1e-4
    assert 0 <= got.min() and got.max() <= 1
    # one code at a time, as the page asks
    assert np.abs(onnx_decode(path, codes[:1]) - want[:1]).max() <= 1e-4


def test_decoder_entry_is_made_once_and_keyed_by_the_weights(tmp_path):
    r = fake_run("mlp", 2)
    path, meta = web.decoder_entry(r)
    key, weights = web.entry_key(r)
    assert path.parent.name == f"mlp-vae-mnist-z2-onnx-{key}" == meta["name"]
    assert path.parent.parent == web.entries_root()
    assert meta["key"] == key and meta["weights"] == web.store.weights_checksum(r.model) == weights
    assert meta["config"] == r.config.as_dict() and meta["z"] == 2
    fields = {k: meta[k] for k in web.ENTRY_FIELDS}
    assert meta["checksum"] == web.store.checksum(fields, path.read_bytes())  # checked on every load
    stamp = path.stat().st_mtime_ns
    again, meta2 = web.decoder_entry(r)
    assert again == path and again.stat().st_mtime_ns == stamp and meta2 == meta
    assert web.model_file(path.parent.name + ".onnx") == path
    # the page's check values are PyTorch's decodings of the fixed codes
    assert len(meta["checks"]) == web.N_CHECKS
    codes = torch.tensor([c["code"] for c in meta["checks"]])
    assert codes[0].abs().max() == 0 and codes[1:].abs().max() > 0
    with torch.no_grad():
        want = torch.sigmoid(r.model.decode(codes)).flatten(1).numpy()
    pixels = np.array([c["pixels"] for c in meta["checks"]])
    assert np.abs(pixels - want).max() < 1e-6
    assert np.abs(onnx_decode(path, codes) - pixels).max() <= 1e-4
    # another run (other seed) has another entry
    other, _ = web.decoder_entry(fake_run("mlp", 2, seed=1))
    assert other != path
    # the same config with other weights (trained on CUDA, or changed in place) has another entry
    with torch.no_grad():
        next(r.model.parameters()).add_(0.5)
    changed, _ = web.decoder_entry(r)
    assert changed.parent.name.startswith("mlp-vae-mnist-z2-onnx-") and changed != path


def test_the_export_code_digest_is_taken_at_import(monkeypatch):
    def no_digest_now(objects):
        raise AssertionError("the export code's digest is taken at import, not per call")

    monkeypatch.setattr(web.store, "code_version", no_digest_now)
    assert len(web.EXPORT_CODE) == 16
    assert web.entry_key(fake_run("mlp", 2))[0] == web.entry_key(fake_run("mlp", 2))[0]


def _swap(a, b):
    """Exchange the contents of the entry folders ``a`` and ``b`` (each keeps its name)."""
    a.rename(a.with_name("swap"))
    b.rename(a)
    a.with_name("swap").rename(b)


def test_an_entry_of_another_model_is_refused_in_one_line(tmp_path, monkeypatch):
    """An MLP decoder folder swapped with the CNN's (each intact, under the other's name) is refused,
    when it is looked up by its key (decoder_entry) and by its name (the book's extension)."""
    monkeypatch.setattr(web, "export_decoder", lambda model, path: (Path(path).write_bytes(b"onnx"), Path(path))[1])
    mlp, cnn = fake_run("mlp", 2), fake_run("cnn", 2)
    mlp_file, _ = web.decoder_entry(mlp)
    cnn_file, _ = web.decoder_entry(cnn)
    _swap(mlp_file.parent, cnn_file.parent)
    mlp_key, cnn_key = web.entry_key(mlp)[0], web.entry_key(cnn)[0]
    advice = "delete it and run the chapter again"
    for call, folder, recorded, wanted in [
        (lambda: web.decoder_entry(mlp), mlp_file.parent, cnn_key, mlp_key),
        (lambda: web.decoder_bytes(cnn_file.parent.name + ".onnx"), cnn_file.parent, mlp_key, cnn_key),
        (lambda: web.load_entry(cnn_file.parent), cnn_file.parent, mlp_key, cnn_key),
    ]:
        with pytest.raises(CacheError) as caught:
            call()
        assert str(caught.value) == (f"exported decoder {folder} holds the decoder of another model "
                                     f"(key {recorded!r}, looked up by {wanted!r}); {advice}")


def test_model_file_refuses_paths():
    for bad in ("", "../x.onnx", "a/b.onnx", ".hidden"):
        with pytest.raises(ConfigError) as caught:
            web.model_file(bad)
        assert str(caught.value) == f"not the name of an exported decoder: {bad!r}"


def _data(block):
    found = re.search(r'<script type="application/json" class="vae-explorer-data">(.*?)</script>', block.markup)
    return json.loads(found.group(1))


@pytest.fixture(scope="session")
def _decoders(tmp_path_factory):
    """One run cache for the tests that only read exported decoders: each is exported once per session."""
    return tmp_path_factory.mktemp("decoders")


@pytest.fixture
def shared_decoders(_decoders, monkeypatch):
    monkeypatch.setenv("VAE_TUT_CACHE", str(_decoders))


def _images(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_explorer_z2_has_a_pad_and_the_model_name(shared_decoders):
    r = fake_run("mlp", 2)
    images, labels = _images()
    block = web.explorer(r, images, labels, pair=(3, 7))
    data = _data(block)
    assert data == block.data
    path, _ = web.decoder_entry(r)
    assert f'data-vae-model="{path.parent.name}.onnx"' in block.markup
    assert data["model"] == path.parent.name + ".onnx"
    assert data["pad"]["lo"] == -data["pad"]["hi"] and data["pad"]["hi"] >= 3
    assert data["pad"]["png"].startswith("data:image/png;base64,")
    assert [c["colour"] for c in data["classes"]][:3] == ["#1f77b4", "#ff7f0e", "#2ca02c"]
    # the gallery: the first image of each class; the pair's ends point into it
    assert [g["index"] for g in data["gallery"]] == list(range(10))
    assert [data["gallery"][i]["index"] for i in data["pair"]] == [3, 7]
    pixels = np.frombuffer(base64.b64decode(data["gallery"][3]["pixels"]), dtype=np.uint8)
    assert pixels.shape == (784,)
    assert np.abs(pixels / 255 - images[3].flatten().numpy()).max() <= 0.5 / 255 + 1e-6
    means, _ = r.model.encode(images[3:4])
    assert data["gallery"][3]["code"] == pytest.approx(means[0].tolist(), abs=1e-4)
    # without JavaScript the static picture is visible and the live part hidden
    assert '<div class="vae-static"><img' in block.markup and '<div class="vae-live" hidden>' in block.markup
    assert "</script>" not in block.markup.split('class="vae-explorer-data">', 1)[1].split("</script>", 1)[0]
    assert block._repr_html_() == block.markup


def test_explorer_orders_dimensions_by_kl_and_marks_inactive_ones(shared_decoders):
    r = fake_run("mlp", 5)
    images, labels = _images()
    means = torch.randn(60, 5, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.5, 2.0, 0.001, 1.0, 0.0])
    variances = torch.ones(60, 5) * torch.tensor([0.5, 0.1, 1.0, 0.3, 1.0])
    data = web.explorer(r, images, labels, encoded=(means, variances)).data
    order = [d["index"] for d in data["dims"]]
    kls = [d["kl"] for d in data["dims"]]
    assert order == [1, 3, 0, 2, 4] or order == [1, 3, 0, 4, 2]
    assert kls == sorted(kls, reverse=True)
    assert {d["index"]: d["active"] for d in data["dims"]} == {0: True, 1: True, 2: False, 3: True, 4: False}
    assert "pad" not in data and all(d["limit"] >= 3 for d in data["dims"])


def test_sweep_block_has_one_frame_per_value(shared_decoders):
    images, _ = _images(16)
    rows = [[web.sweep_frame(fake_run("mlp", z), images, f"z = {z}")] for z in (1, 2)]
    block = web.sweep(rows, ["z = 1", "z = 2"], "latent size", start=1)
    assert block.markup.count('class="vae-sweep-frame"') == 2
    assert 'data-start="1"' in block.markup
    srcs = re.findall(r'class="vae-sweep-samples" alt="[^"]*" src="([^"]+)"', block.markup)
    assert len(srcs) == 2 and srcs[0] != srcs[1]
    with pytest.raises(ConfigError, match="one list of frames per slider value"):
        web.sweep(rows, ["only one"], "latent size")


def test_grid_png_is_opaque_dark_ink_on_white():
    from PIL import Image

    images = torch.zeros(4, 1, 28, 28)
    images[0, 0, 10, 10] = 1.0
    url = web.grid_png(images, nrow=2)
    picture = Image.open(__import__("io").BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert picture.mode == "L"  # no alpha channel: readable on a dark page
    array = np.asarray(picture)
    assert array[1 + 10, 1 + 10] == 0 and array[1 + 5, 1 + 5] == 255


def test_book_extension_copies_the_decoders_a_page_names(tmp_path, shared_decoders):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
    try:
        import latent_web
    finally:
        sys.path.pop(0)
    r = fake_run("mlp", 2)
    images, labels = _images()
    block = web.explorer(r, images, labels)
    added = []
    app = SimpleNamespace(outdir=str(tmp_path / "html"), config=SimpleNamespace(vae_ort_staged=True),
                          add_js_file=lambda name, **kw: added.append(name),
                          add_css_file=lambda name, **kw: added.append(name))
    latent_web._page(app, "chapters/05", "page.html", {"body": "<p>no explorer</p>"}, None)
    assert added == []
    latent_web._page(app, "chapters/05", "page.html", {"body": block.markup}, None)
    assert added == ["vae_explorer.css", "vae_explorer.js"]
    copied = tmp_path / "html" / "_static" / web.MODELS_FOLDER / block.data["model"]
    source, _ = web.decoder_entry(r)
    assert copied.read_bytes() == source.read_bytes()
    assert (latent_web.STATIC / "vae_explorer.js").exists() and (latent_web.STATIC / "vae_explorer.css").exists()


def test_book_extension_warns_in_one_line_and_copies_no_damaged_decoder(tmp_path, monkeypatch):
    """A decoder that fails its checksum (here: its ONNX file changed after it was written) is not
    copied into the build, a copy left there by an earlier build is removed, and one warning says why."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
    try:
        import latent_web
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(web, "export_decoder", lambda model, path: (Path(path).write_bytes(b"onnx"), Path(path))[1])
    source, _ = web.decoder_entry(fake_run("mlp", 2))
    name = source.parent.name + ".onnx"
    warnings = []
    monkeypatch.setattr(latent_web.logger, "warning", lambda text, *args: warnings.append(text % args))
    app = SimpleNamespace(outdir=str(tmp_path / "html"), config=SimpleNamespace(vae_ort_staged=True),
                          add_js_file=lambda name, **kw: None, add_css_file=lambda name, **kw: None)
    page = {"body": f'<div class="vae-explorer" data-vae-model="{name}"></div>'}
    copied = tmp_path / "html" / "_static" / web.MODELS_FOLDER / name
    latent_web._page(app, "chapters/05", "page.html", page, None)
    assert copied.read_bytes() == b"onnx" and warnings == []
    source.write_bytes(b"onnz")
    latent_web._page(app, "chapters/05", "page.html", page, None)
    assert not copied.exists()
    assert warnings == [f"latent_web: chapters/05: exported decoder {source.parent}: decoder.onnx or meta.json does "
                        "not match its checksum (changed or corrupted after it was written); delete it and run the "
                        "chapter again (not copied)"]


def test_explorer_without_onnx_shows_the_static_picture_only(monkeypatch):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxscript'")

    monkeypatch.setattr(web, "decoder_entry", missing)
    images, labels = _images()
    block = web.explorer(fake_run("mlp", 2), images, labels)
    assert "data-vae-model" not in block.markup and block.data["model"] is None
    assert '<div class="vae-static"><img' in block.markup
    assert "onnx is not installed" in repr(block)


def _static_only(monkeypatch):
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxscript'")

    monkeypatch.setattr(web, "decoder_entry", missing)


def test_class_names_cannot_break_the_page(monkeypatch):
    """Text in the page's JSON block has <, > and & escaped (\\u003c, ...): a class name holding
    </script> or <!--<script> cannot end the block or open another, and reads back unchanged."""
    _static_only(monkeypatch)
    names = ["</script><script>alert(1)</script>", "<!--<script>", "a & b", "x > y", *map(str, range(4, 10))]
    images, labels = _images()
    block = web.explorer(fake_run("mlp", 2), images, labels, class_names=names)
    inner = block.markup.split('class="vae-explorer-data">', 1)[1].split("</script>", 1)[0]
    assert not {"<", ">", "&"} & set(inner)
    assert "\\u003c/script\\u003e" in inner and "\\u003c!--\\u003cscript\\u003e" in inner and "a \\u0026 b" in inner
    assert [c["name"] for c in json.loads(inner)["classes"]] == names == [c["name"] for c in block.data["classes"]]
    assert _data(block) == block.data


def test_a_label_that_is_no_class_is_one_line(monkeypatch):
    """A label of 10**8 used to make 10**8 class names (out of memory); labels are class indices below 10."""
    _static_only(monkeypatch)
    images, labels = _images(6)
    labels[2] = 10**8
    with pytest.raises(ConfigError) as caught:
        web.explorer(fake_run("mlp", 2), images, labels)
    assert str(caught.value) == "labels must be class indices from 0 to 9, got 100000000"
