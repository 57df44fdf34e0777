"""The classifier verdict of vae_tut.classifier: its summaries by hand, and a quick classifier on real data."""

import math

import pytest
import torch

from vae_tut.classifier import load_classifier, sample_quality, verdict
from vae_tut.errors import ConfigError


def test_verdict_by_hand():
    one_hot = torch.eye(10)  # ten confident images, one of each class
    q = verdict(one_hot)
    assert q.confidence == pytest.approx(1.0)
    assert q.entropy_bits == pytest.approx(math.log2(10)) == pytest.approx(q.max_entropy_bits)
    all_threes = torch.zeros(5, 10)
    all_threes[:, 3] = 1.0
    assert verdict(all_threes).entropy_bits == pytest.approx(0.0, abs=1e-6)
    unsure = torch.full((4, 10), 0.1)  # each image undecided, the set covers every class
    q = verdict(unsure)
    assert q.confidence == pytest.approx(0.1) and q.entropy_bits == pytest.approx(math.log2(10))
    with pytest.raises(ConfigError, match=r"\[N, 10\]"):
        verdict(torch.zeros(3, 9))


def test_quick_classifier_tells_digits_from_noise(monkeypatch, real_data):
    from vae_tut.data import load_dataset

    mnist_test = load_dataset("mnist", "test")[0]
    monkeypatch.setenv("VAE_TUT_QUICK", "1")
    clf = load_classifier("mnist")
    assert clf.quick and clf.test_accuracy > 0.8
    real = sample_quality(mnist_test[:500], "mnist")
    noise = sample_quality(torch.rand(500, 1, 28, 28), "mnist")
    # 500 test images cover all ten digits; the classifier calls (almost) all noise one class,
    # often confidently: the confidence alone is no test of realism, the entropy catches it
    assert real.entropy_bits > 3.0 and noise.entropy_bits < 2.0
    assert real.confidence > 0.8
    again = load_classifier("mnist")  # read back from the cache
    assert again.test_accuracy == clf.test_accuracy
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_classifier("cifar")
    with pytest.raises(ConfigError):
        sample_quality(torch.rand(2, 784), "mnist")


@pytest.mark.parametrize("damage", ["accuracy edited", "weights truncated", "result.json truncated"])
def test_a_damaged_classifier_entry_is_one_line(monkeypatch, damage):
    """The classifier's cache entry carries a checksum of its weights and accuracy, like a run's."""
    import json

    from vae_tut import classifier
    from vae_tut.errors import CacheError

    monkeypatch.setattr(classifier, "_fit", lambda dataset, quick: (classifier.build_classifier().eval(), 0.5))
    first = load_classifier("mnist")
    assert load_classifier("mnist").test_accuracy == first.test_accuracy == 0.5  # read back intact
    (entry,) = [p for p in (classifier.store.root("runs") / "classifier").iterdir() if not p.name.startswith(".")]
    if damage == "accuracy edited":
        meta = json.loads((entry / "result.json").read_text())
        meta["test_accuracy"] = 0.99
        (entry / "result.json").write_text(json.dumps(meta))
    else:
        name = "model.pt" if damage == "weights truncated" else "result.json"
        blob = (entry / name).read_bytes()
        (entry / name).write_bytes(blob[:len(blob) // 2])
    with pytest.raises(CacheError) as caught:
        load_classifier("mnist")
    assert str(entry) in str(caught.value) and "\n" not in str(caught.value)


def test_the_classifier_key_holds_the_code_digest_of_import_time_and_torch(monkeypatch):
    """The code digest is taken once, at import (an edit made later to the file on disk cannot change
    the key of the code that runs), and another torch version makes another entry."""
    from vae_tut import classifier

    fits = []

    def fit(dataset, quick):
        fits.append(dataset)
        return classifier.build_classifier().eval(), 0.5

    def no_digest_now(objects):
        raise AssertionError("the code digest is taken at import, not per call")

    monkeypatch.setattr(classifier, "_fit", fit)
    monkeypatch.setattr(classifier.store, "code_version", no_digest_now)
    assert len(classifier.CODE_VERSION) == 16
    load_classifier("mnist")
    load_classifier("mnist")
    assert len(fits) == 1
    monkeypatch.setattr(classifier.torch, "__version__", "0.0.1")
    load_classifier("mnist")
    assert len(fits) == 2
    entries = [p for p in (classifier.store.root("runs") / "classifier").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 2
