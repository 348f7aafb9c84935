"""Pretrained weights: import refuses what is not a ResNet-50 ImageNet state dict, list shows
what is staged, a model starts from exactly the staged tensors, and input normalization
travels with the model file. No network: a stand-in state dict plays ImageNet's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cifar_sweeps.cli import main
from cifar_sweeps.training.loader import NORMALIZATIONS, DeviceSplit
from cifar_sweeps.training.models import backbone_sha256, build_model
from cifar_sweeps.training.train import TrainConfig, Trainer, backbone_digest, load_model_blob
from cifar_sweeps.training.weights import (
    WeightsError,
    import_weights,
    list_weights,
    load_staged,
    staged_path,
)
from tests.helpers.weights import stand_in_resnet50


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet50-standin.pth"
    torch.save(stand_in_resnet50(), path)
    return path


def test_import_list_and_load_the_exact_tensors(stand_in, tmp_path):
    staged = import_weights("resnet50", stand_in, tmp_path)
    assert staged.path == staged_path("resnet50", tmp_path) and staged.size_mb > 90
    original = torch.load(stand_in, weights_only=True)
    assert staged.backbone_sha256 == backbone_sha256(original)
    assert [s.name for s in list_weights(tmp_path)] == ["resnet50"]
    model = build_model("resnet50", "elu", pretrained=True, pretrained_state=load_staged("resnet50", tmp_path))
    state = model.state_dict()
    for k, v in original.items():
        if not k.startswith("fc."):
            assert torch.equal(state[k], v), k
    assert backbone_digest(model) == staged.backbone_sha256


def _write(path, obj) -> str:
    torch.save(obj, path)
    return str(path)


def _truncated(tmp_path, stand_in) -> str:
    data = stand_in.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    return str(tmp_path / "cut.pth")


def _text(tmp_path) -> str:
    (tmp_path / "notes.txt").write_text("these are not weights\n")
    return str(tmp_path / "notes.txt")


def _half(tmp_path) -> str:
    return _write(
        tmp_path / "half.pth", {k: v.half() if v.is_floating_point() else v for k, v in stand_in_resnet50().items()}
    )


def _cifar_head(tmp_path) -> str:
    return _write(tmp_path / "rn50-ours.pth", build_model("resnet50").state_dict())


WRONG = [
    (
        "a simple_cnn state dict",
        lambda t, s: _write(t / "cnn.pth", build_model("simple_cnn").state_dict()),
        "missing keys",
    ),
    ("a truncated file", _truncated, "can't be read"),
    ("a text file", lambda t, s: _text(t), "can't be read"),
    ("a ResNet-50 with the report's head", lambda t, s: _cifar_head(t), "unexpected keys fc.0"),
    ("half-precision tensors", lambda t, s: _half(t), "torch.float16"),
    ("a list, not a state dict", lambda t, s: _write(t / "list.pth", [torch.zeros(3)]), "not a state dict"),
    ("a missing file", lambda t, s: str(t / "nowhere.pth"), "does not exist"),
]


@pytest.mark.parametrize("what,make,reason", WRONG, ids=[w[0] for w in WRONG])
def test_import_refuses_a_wrong_file_with_its_reason(what, make, reason, tmp_path, stand_in, capsys):
    weights_dir = tmp_path / "weights"
    path = make(tmp_path, stand_in)
    with pytest.raises(WeightsError, match=reason):
        import_weights("resnet50", path, weights_dir)
    # The command line says the same, exits 2, and stages nothing.
    code = main(["weights", "import", "resnet50", path, "--results-dir", str(tmp_path / "r")])
    assert code == 2 and reason in capsys.readouterr().err
    assert not staged_path("resnet50", weights_dir).exists()


def test_unknown_model_and_missing_weights_name_the_commands(tmp_path):
    with pytest.raises(WeightsError, match="no pretrained weights for model 'mlp'"):
        import_weights("mlp", tmp_path / "x.pth", tmp_path)
    with pytest.raises(WeightsError) as e:
        load_staged("resnet50", tmp_path)
    assert "cifar-sweeps weights fetch resnet50" in str(e.value)
    assert "cifar-sweeps weights import resnet50 FILE" in str(e.value)


def test_weights_cli_list(tmp_path, stand_in, capsys, monkeypatch):
    monkeypatch.setenv("CIFAR_SWEEPS_WEIGHTS_DIR", str(tmp_path / "w"))
    assert main(["weights", "list"]) == 0
    assert "no weights staged" in capsys.readouterr().out
    assert main(["weights", "import", "resnet50", str(stand_in)]) == 0
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and str(tmp_path / "w") in out


@pytest.mark.parametrize("name", list(NORMALIZATIONS))
def test_normalizations(name):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[1] = 255
    out = DeviceSplit(x, np.array([0, 1]), torch.device("cpu"), name).normalize(torch.from_numpy(x))
    mean, std = NORMALIZATIONS[name]
    for c in range(3):
        assert out[0, c].flatten()[0].item() == pytest.approx(-mean[c] / std[c], rel=1e-5)
        assert out[1, c].flatten()[0].item() == pytest.approx((1 - mean[c]) / std[c], rel=1e-5)
    if name == "report":
        assert out.min().item() == pytest.approx(-1) and out.max().item() == pytest.approx(1)


def test_model_file_keeps_its_normalization_and_init_weights(tiny_splits, tmp_path):
    cfg = TrainConfig(
        model="resnet50",
        pretrained=True,
        normalize="imagenet",
        epochs=1,
        batch_size=64,
        device="cpu",
        eval_batch_size=256,
    )
    state = stand_in_resnet50()
    # A ResNet-50 step is slow on a CPU: a batch of each split is what the file needs.
    few = dataclasses.replace(
        tiny_splits,
        **{k: getattr(tiny_splits, k)[:64] for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")},
    )
    trainer = Trainer(cfg, few, pretrained_state=state)
    trainer.run()
    torch.save(trainer.best_model_file(), tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert blob["normalize"] == "imagenet" and blob["init_weights"] == backbone_sha256(state)
    model, normalize = load_model_blob(tmp_path / "m.pt")
    assert normalize == "imagenet" and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_predict_uses_the_files_normalization(tiny_splits, tmp_path, capsys):
    from PIL import Image

    for norm in ("cifar", "report"):
        trainer = Trainer(TrainConfig(model="mlp", normalize=norm, epochs=1, device="cpu"), tiny_splits)
        trainer.run()
        torch.save(trainer.best_model_file(), tmp_path / f"{norm}.pt")
    img = tmp_path / "img.png"
    Image.fromarray(tiny_splits.x_test[0]).save(img)
    model, _ = load_model_blob(tmp_path / "report.pt")
    x = (torch.from_numpy(tiny_splits.x_test[:1]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    expected = torch.softmax(model(x), 1)[0]
    assert main(["predict", str(tmp_path / "report.pt"), str(img)]) == 0
    out = capsys.readouterr().out
    assert f"({expected.max().item():.3f})" in out
