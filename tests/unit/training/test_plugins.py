"""Your model, your images, the model out: models from installed packages (a real
distribution with entry points on sys.path, found through importlib.metadata), their
arguments checked, models of any number of classes and image size, and the model file
exported to ONNX and TorchScript with its preprocessing inside, checked by onnxruntime."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from cifar_sweeps.errors import ModelError
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec import registry
from cifar_sweeps.sweepspec.schema import parse_spec
from cifar_sweeps.training.data import Splits
from cifar_sweeps.training.models import build_model, check_on_meta, count_parameters
from cifar_sweeps.training.train import TrainConfig, Trainer, read_model_file
from tests.helpers.jobs import FakeJobs


def test_the_zoo_and_an_installed_plugin_are_listed_with_their_sources_without_importing_it(plugin):
    sys.modules.pop("fakenets", None)
    found = registry.models()
    assert found["widenet"].kind == "plugin" and found["widenet"].source == "fakenets"
    assert found["widenet"].version == "0.2" and found["widenet"].target == "fakenets:build"
    assert found["airbench"].kind == "zoo" and found["airbench"].source == "cifar-sweeps"  # not shadowed
    assert found["simple_cnn"].image_size == 32 and found["resnet18"].image_size is None
    assert "fakenets" not in sys.modules  # listing ran no plug-in code


def test_a_plugin_builds_through_the_one_build_function_with_its_classes_and_arguments(plugin):
    net = build_model("widenet", num_classes=3, model_args={"channels": 12})
    assert net(torch.zeros(2, 3, 40, 40)).shape == (2, 3)
    with pytest.raises(ModelError, match=r"model_args\.channels: model 'widenet' takes ints in \[4, 64\], got 100"):
        build_model("widenet", model_args={"channels": 100})
    with pytest.raises(ModelError, match="declares no argument 'width'"):
        build_model("widenet", model_args={"width": 2})
    with pytest.raises(ModelError, match="its builder raised ValueError: depth 3 is too deep"):
        build_model("raises", model_args={"depth": 3})  # undeclared: passed through


def test_the_meta_check_counts_parameters_and_finds_a_wrong_output(plugin):
    with torch.device("meta"):
        net = build_model("widenet", num_classes=5, model_args={"channels": 16})
    assert check_on_meta(net, 5, 48) == count_parameters(
        build_model("widenet", num_classes=5, model_args={"channels": 16})
    )
    with torch.device("meta"):
        bad = build_model("badshape")
    with pytest.raises(ModelError, match=r"not \(2, 10\) logits"):
        check_on_meta(bad, 10, 32)


def test_every_zoo_model_takes_the_number_of_classes(tiny_splits):
    for name in registry.ZOO:
        size = registry.ZOO[name].image_size or 40
        with torch.device("meta"):
            net = build_model(name, num_classes=7)
        check_on_meta(net, 7, size)


def _spec(**over) -> dict:
    spec = {
        "name": "p",
        "search": {"algorithm": "random"},
        "fixed": {"model": "widenet", "epochs": 1},
        "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}},
    }
    for k, v in over.items():
        spec[k] = {**spec.get(k, {}), **v} if isinstance(v, dict) else v
    return spec


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"fixed": {"model": "nope"}}, ["fixed.model", "unknown model 'nope'"]),
        ({"fixed": {"model": "fakenets:build"}}, ["fixed.model", "module path", "cifar_sweeps.models"]),
        ({"fixed": {"model": "my_pkg.nets:Net"}}, ["module path"]),
        ({"fixed": {"model": "simple_cnn"}, "data": {"image_size": 48}}, ["data.image_size", "simple_cnn", "48x48"]),
        ({"fixed": {"dropout": 0.5}}, ["fixed.dropout", "plug-in model 'widenet'"]),
        ({"fixed": {"model": "airbench", "model_args": {"channels": 8}}}, ["model_args", "zoo"]),
        (
            {"params": {"model_args.bad-name": {"type": "choice", "values": [1]}}},
            ["params.model_args.bad-name: unknown"],
        ),
    ],
)
def test_a_spec_naming_an_unregistered_model_or_a_module_path_is_a_422_with_nothing_stored(
    plugin, tmp_path, change, names
):
    settings = Settings(results_dir=tmp_path)
    store = get_store(settings.resolved_store_url())
    client = TestClient(create_app(settings, FakeJobs(store)))
    r = client.post("/sweeps", json=_spec(**change))
    assert r.status_code == 422, r.text
    for part in names:
        assert part in r.json()["detail"], (part, r.json()["detail"])
    assert store.list_sweeps()[1] == 0


def test_get_models_lists_the_zoo_and_the_plugin(plugin, tmp_path):
    settings = Settings(results_dir=tmp_path)
    client = TestClient(create_app(settings, FakeJobs(get_store(settings.resolved_store_url()))))
    body = client.get("/models").json()
    by_name = {m["name"]: m for m in body["items"]}
    assert body["group"] == "cifar_sweeps.models"
    assert set(registry.ZOO) < set(by_name) and by_name["widenet"]["source"] == "fakenets"


def test_a_searched_model_argument_reaches_the_trial_config(plugin):
    spec = parse_spec(_spec(params={"model_args.channels": {"type": "choice", "values": [4, 8]}}))
    cfg = TrainConfig.model_validate({"model": "widenet", "model_args.channels": 8, "lr": 0.1})
    assert cfg.model_args == {"channels": 8} and "model_args.channels" in spec.params


# ---------------------------------------------------------------- the model out


def _three_classes(size: int = 24) -> Splits:
    rng = np.random.default_rng(0)

    def part(n):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, (n, size, size, 3), dtype=np.uint8)
        for c in range(3):  # each class is bright in its own channel: learnable
            x[y == c, :, :, c] += 150
        return x, y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = part(90), part(30), part(30)
    return Splits(xt, yt, xv, yv, xs, ys, ("red", "green", "blue"))


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.pt"
    t = Trainer(
        TrainConfig(model="airbench", width=0.25, epochs=2, batch_size=16, lr=0.05, device="cpu"), _three_classes()
    )
    t.run()
    torch.save(t.best_model_file(), path)
    return path, t


def test_the_model_file_carries_classes_size_and_the_training_splits_own_statistics(three_class_model):
    path, trainer = three_class_model
    mf = read_model_file(path)
    assert mf.classes == ("red", "green", "blue") and mf.image_size == 24
    assert mf.normalize == "dataset" and mf.mean == trainer.stats[0] and mf.mean != (0.4914, 0.4822, 0.4465)
    assert mf.model(torch.zeros(1, 3, 24, 24)).shape == (1, 3)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"model": "os:system"}, "model"),
        ({"model": "fakenets:build"}, "module path"),
        ({"image_size": 100_000}, "image_size"),
        ({"model_args": {"num_classes": 3}}, "the service sets this argument itself"),
        ({"width": 1e9}, "width"),
        ({"classes": ["a"] * 20_000}, "20000 classes"),
    ],
)
def test_a_model_file_is_checked_as_a_spec_is_before_anything_is_built(three_class_model, tmp_path, change, names):
    """predict and export rebuild a model from the file's own fields: a file that names a
    module path, a huge size or an argument a spec can't give is refused, nothing built."""
    path, _ = three_class_model
    blob = torch.load(path, weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save({**blob, **change}, bad)
    with pytest.raises(ModelError, match="the model file can't be used") as err:
        read_model_file(bad)
    assert names in str(err.value)


def test_predict_names_the_models_own_classes(three_class_model):
    from PIL import Image

    from cifar_sweeps.training.predict import classify

    mf = read_model_file(three_class_model[0])
    img = np.zeros((64, 80, 3), np.uint8)
    img[..., 2] = 220  # blue, at another size
    top = classify(mf, [Image.fromarray(img)], k=3)[0]
    assert {label for label, _ in top} == {"red", "green", "blue"}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_export_agrees_with_pytorch_and_carries_its_preprocessing_and_classes(three_class_model, tmp_path, fmt):
    from cifar_sweeps.training.export import export_file, read_metadata, with_preprocessing

    path, _ = three_class_model
    out = export_file(path, tmp_path / f"m.{fmt}", fmt, trial_id="sw-x-t1")
    x = np.random.default_rng(1).random((7, 3, 24, 24), dtype=np.float32)  # [0, 1] pixels, no normalization
    expected = with_preprocessing(read_model_file(path))(torch.from_numpy(x)).detach().numpy()
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out)).run(None, {"images": x})[0]
    else:
        got = torch.jit.load(str(out))(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got - expected).max() < 1e-3
    assert (got.argmax(1) == expected.argmax(1)).all()
    meta = read_metadata(out)
    assert meta["classes"] == ["red", "green", "blue"] and meta["image_size"] == 24
    assert meta["trial_id"] == "sw-x-t1" and meta["config"]["model"] == "airbench"
    assert meta["normalize"]["name"] == "dataset"
