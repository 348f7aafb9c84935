"""airbench's method (airbench_method.py) and the precision choice (precision.py): each part does what
it says, on small tensors; the trainer wires them in; the spec refuses them where they
don't apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_sweeps.errors import SpecError
from cifar_sweeps.sweepspec.schema import old_name_warnings, parse_spec
from cifar_sweeps.training import airbench_method, precision
from cifar_sweeps.training.loader import Augment, DeviceSplit
from cifar_sweeps.training.models import build_model
from cifar_sweeps.training.train import TrainConfig, Trainer, load_model_file


def _smooth_images(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Images with strongly correlated neighbouring pixels and channels (as photos have),
    so that their patches are far from white."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    x = nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    return torch.cat(
        [x, 0.8 * x + 0.2 * torch.randn(x.shape, generator=g), 0.3 * torch.randn(x.shape, generator=g) - x], 1
    )


def test_the_whitening_layer_whitens_the_patches_it_was_fitted_to():
    x = _smooth_images()
    raw = airbench_method.patches(x, 2)
    corr = torch.corrcoef(raw.T)
    assert corr[0, 1] > 0.5 and corr[0, 4] > 0.5  # neighbours and channels correlate: far from white
    conv = nn.Conv2d(3, 24, 2, bias=False)
    airbench_method.fit_whitening(conv, x, eps=1e-9)
    out = conv(x).detach()  # N, 24, 15, 15
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24)
    cov = flat[:, :12].T @ flat[:, :12] / len(flat)
    assert torch.allclose(cov, torch.eye(12), atol=0.02)  # the first half: unit variance, uncorrelated
    assert torch.equal(conv.weight[12:], -conv.weight[:12])  # the second half: their negatives


def test_a_net_with_whiten_has_a_frozen_whitening_stem_fitted_at_trial_start(tiny_splits):
    t = Trainer(TrainConfig(model="airbench", width=0.25, whiten=True, epochs=1, batch_size=64, threads=1), tiny_splits)
    w = t.model.whitening
    assert w is not None and w.kernel_size == (2, 2) and w.out_channels == 24
    assert not w.weight.requires_grad
    before = w.weight.detach().clone()
    assert before.abs().sum() > 0 and torch.equal(before[12:], -before[:12])
    t.run()
    assert torch.equal(w.weight.detach(), before)  # frozen through training


def test_the_whitening_bias_trains_for_its_epochs_then_freezes(tiny_splits):
    cfg = TrainConfig(
        model="airbench", width=0.25, whiten=True, whiten_bias_epochs=1, epochs=3, batch_size=64, threads=1
    )
    t = Trainer(cfg, tiny_splits)
    biases = [t.model.whitening.bias.detach().clone()]
    for _ in range(3):
        t.step_epoch()
        biases.append(t.model.whitening.bias.detach().clone())
    assert not torch.equal(biases[0], biases[1])  # epoch 1: trained
    assert torch.equal(biases[1], biases[2]) and torch.equal(biases[2], biases[3])  # then frozen


def test_dirac_init_makes_each_width_keeping_conv_the_identity():
    torch.manual_seed(0)
    net = build_model("airbench", width=0.25)
    assert airbench_method.dirac_init(net) == 7  # the stem and every 3x3 conv of the three groups
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(2, 64, 8, 8)
    keeping = [c for c in convs if c.in_channels == c.out_channels]
    assert keeping
    for c in keeping:
        assert torch.allclose(c(x[:, : c.in_channels]), x[:, : c.in_channels], atol=1e-6)
    widening = next(c for c in convs if c.out_channels > c.in_channels > 3)
    y = widening(x[:, : widening.in_channels])
    assert torch.allclose(y[:, : widening.in_channels], x[:, : widening.in_channels], atol=1e-6)
    assert y[:, widening.in_channels :].abs().sum() > 0  # the other filters keep their random init


def _numbered_split(n: int = 64) -> DeviceSplit:
    """Images whose left and right halves differ: a mirrored one is told apart."""
    x = torch.zeros(n, 4, 4, 3, dtype=torch.uint8)
    x[:, :, :2] = torch.arange(n, dtype=torch.uint8)[:, None, None, None]
    x[:, :, 2:] = 255
    return DeviceSplit(x.numpy(), torch.arange(n).numpy(), torch.device("cpu"), ((0, 0, 0), (1 / 255,) * 3))


def _flipped_labels(split: DeviceSplit, epoch: int, seed: int) -> set[int]:
    g = torch.Generator().manual_seed(epoch)
    mask = airbench_method.alternate_flip_mask(len(split), epoch, seed)
    out = set()
    for x, y in split.batches(16, g, Augment(flip=True, alternate=True), flip_mask=mask):
        out |= {int(label) for img, label in zip(x, y, strict=True) if img[0, 0, 0] == 255}  # left half white
    return out


def test_alternating_flip_mirrors_every_image_exactly_once_per_two_epochs():
    split = _numbered_split()
    for start in (0, 2, 5):
        a, b = _flipped_labels(split, start, seed=7), _flipped_labels(split, start + 1, seed=7)
        assert not a & b and a | b == set(range(len(split)))
        assert 16 < len(a) < 48  # a random half, not the same half for every seed
    assert _flipped_labels(split, 0, seed=7) != _flipped_labels(split, 0, seed=8)


def test_lookahead_pulls_the_weights_to_their_ema_on_its_schedule():
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    la = airbench_method.Lookahead(lin, total_steps=20)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    la.after_step(4)  # not a multiple of 5: nothing moves
    assert lin.weight.item() == 1.0
    d = airbench_method.LOOKAHEAD_BASE * (5 / 20) ** 3
    la.after_step(5)  # ema = 0 + (1 - d)(1 - 0); the weights become it
    assert lin.weight.item() == pytest.approx(1 - d) and la.ema["weight"].item() == pytest.approx(1 - d)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    d15 = airbench_method.LOOKAHEAD_BASE * (15 / 20) ** 3
    la.after_step(15)  # a later pull is weaker: the EMA moves (1 - d15) of the way
    ema = (1 - d) + (1 - d15) * (3.0 - (1 - d))
    assert lin.weight.item() == pytest.approx(ema)
    with torch.no_grad():
        lin.weight.fill_(5.0)
    la.after_step(20)  # the last step: the weights end on the EMA as it stands
    assert lin.weight.item() == pytest.approx(ema)


@pytest.mark.parametrize(("level", "views"), [(0, 1), (1, 2), (2, 6)])
def test_tta_levels_give_their_number_of_views_weighted_to_one(level, views):
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    out = airbench_method.tta_views(x, level)
    assert len(out) == views and sum(w for w, _ in out) == pytest.approx(1.0)
    assert all(v.shape == x.shape for _, v in out)
    if level == 2:
        shifted = out[2][1]  # one pixel up-left: pixel (i, j) of the view is (i-1, j-1) of the image
        assert torch.equal(shifted[:, :, 1:, 1:], x[:, :, :-1, :-1])


def test_tta_logits_average_the_views():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = torch.randn(2, 3, 5, 5)
    want = sum(w * net(v) for w, v in airbench_method.tta_views(x, 2))
    assert torch.allclose(airbench_method.tta_logits(net, x, 2), want, atol=1e-6)


@pytest.mark.parametrize(
    ("flags", "want"),
    [(frozenset({"avx2", "avx512f"}), "fp32"), (frozenset({"avx512_bf16"}), "bf16"), (frozenset({"amx_bf16"}), "bf16")],
)
def test_precision_auto_picks_bf16_only_where_the_cpu_has_it(flags, want):
    got, why = precision.resolve("auto", "cpu", flags)
    assert got == want
    assert ("reports" in why) and (want == "fp32" or next(iter(flags)) in why)
    assert precision.resolve("fp32", "cpu", frozenset({"amx_bf16"}))[0] == "fp32"
    assert precision.resolve("bf16", "cpu", frozenset())[0] == "bf16"


@pytest.mark.parametrize(("flags", "want"), [(frozenset(), "fp32"), (frozenset({"avx512_bf16"}), "bf16")])
def test_a_trainer_on_the_cpu_follows_the_cpus_flags(tiny_splits, monkeypatch, flags, want):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    t = Trainer(TrainConfig(model="airbench", width=0.25, epochs=1, batch_size=64, threads=1), tiny_splits)
    assert t.precision == want
    seen = {}

    def note_dtype(_module, _inputs, out):
        seen.setdefault("dtype", out.dtype)

    hook = t.model.head.register_forward_hook(note_dtype)
    t.step_epoch()
    hook.remove()
    assert seen["dtype"] == (torch.bfloat16 if want == "bf16" else torch.float32)
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # weights (and BatchNorm's) stay fp32


def test_the_old_names_are_read_as_the_new_fields_with_a_warning_and_never_beside_them():
    assert TrainConfig(amp=False).precision == "fp32" and TrainConfig(amp=True).precision == "auto"
    assert TrainConfig(tta=True).tta == 1 and TrainConfig(tta=False).tta == 0
    assert TrainConfig(scheduler="onecycle").lr_schedule == "onecycle"
    lr = {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}}
    spec = parse_spec({"params": lr, "fixed": {"amp": False, "tta": True, "scheduler": "cosine"}})
    assert spec.fixed == {"amp": False, "tta": True, "scheduler": "cosine"}  # stored as given
    warned = old_name_warnings(spec)
    assert len(warned) == 2 and any("fixed.scheduler is the old name of fixed.lr_schedule" in w for w in warned)
    with pytest.raises(SpecError, match=r"fixed\.scheduler: the old name of lr_schedule, which is set too"):
        parse_spec({"params": lr, "fixed": {"scheduler": "cosine", "lr_schedule": "none"}})
    optim = {"type": "choice", "values": [{"optimizer": "sgd", "scheduler": "none"}, {"optimizer": "adam"}]}
    assert "params.optim.values[0].scheduler" in old_name_warnings(parse_spec({"params": {"optim": optim}}))[0]


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("simple_cnn", "whiten", True),
        ("resnet18", "dirac", True),
        ("mlp", "bn_bias_lr", 64.0),
        ("simple_cnn", "bn_momentum", 0.4),
        ("mlp", "freeze_bn_weight", True),
    ],
)
def test_the_method_is_refused_on_models_it_does_not_apply_to(model, field, value):
    spec = {
        "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}},
        "fixed": {"model": model, field: value},
    }
    with pytest.raises(SpecError, match=rf"fixed\.{field}: {field} applies to .* not to model '{model}'"):
        parse_spec(spec)
    with pytest.raises(ValueError, match=f"{field} applies to"):
        TrainConfig(model=model, **{field: value})
    searched = {"params": {"model": {"type": "choice", "values": ["airbench", model]}}, "fixed": {field: value}}
    with pytest.raises(SpecError, match=rf"fixed\.{field}: .*\(params\.model\.values\[1\]\)"):
        parse_spec(searched)


def test_the_whole_method_trains_resumes_exactly_and_round_trips_through_its_model_file(tiny_splits, tmp_path):
    cfg = TrainConfig(
        model="airbench", width=0.25, epochs=4, batch_size=64, lr=0.2, momentum=0.85, nesterov=True,
        lr_schedule="linear", whiten=True, whiten_bias_epochs=1, dirac=True, bn_bias_lr=16.0, bn_momentum=0.4,
        lookahead=True, alternate_flip=True, crop_padding=2, tta=2, label_smoothing=0.2, threads=1,
        freeze_bn_weight=True,
    )  # fmt: skip
    full = Trainer(cfg, tiny_splits).run()
    first = Trainer(cfg, tiny_splits)
    first.step_epoch()
    first.step_epoch()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = Trainer(cfg, tiny_splits)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    rest = resumed.run()
    assert [h.val_acc for h in rest.history] == [h.val_acc for h in full.history]
    assert full.best_val_acc > 0.3
    scales = [m.weight for m in resumed.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert scales and all(torch.equal(w, torch.ones_like(w)) for w in scales)  # frozen at 1
    torch.save(resumed.best_model_file(), tmp_path / "m.pt")
    model = load_model_file(tmp_path / "m.pt")  # rebuilt with its whitening stem
    assert model.whitening is not None and model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_run_without_a_validation_split_trains_on_every_image_and_keeps_its_last_epoch():
    from cifar_sweeps.training.data import split_train_val, synthetic

    splits = split_train_val(synthetic(300, 100, seed=0), 0.0, seed=0)
    assert len(splits.y_val) == 0 and len(splits.y_train) == 300
    cfg = TrainConfig(model="airbench", width=0.25, epochs=2, batch_size=64, threads=1, test_on_best=False)
    result = Trainer(cfg, splits).run()
    assert result.best_epoch == 2 and result.test_acc is not None
    with pytest.raises(SpecError, match="data.val_fraction"):  # a sweep still needs one to rank by
        parse_spec({"params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}}, "data": {"val_fraction": 0}})


def test_train_with_a_recipe_runs_the_presets_point_and_says_its_precision(tmp_path, capsys):
    from cifar_sweeps.cli import main

    code = main(
        ["train", "--recipe", "quickstart", "--data", "synthetic:300", "--epochs", "1", "--results-dir", str(tmp_path)]
        + ["--save", str(tmp_path / "m.pt"), "--width", "0.25"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "train airbench" in out and "precision " in out and "epoch   1/1" in out
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    cfg = blob["config"]  # the preset's fixed config and first point, the flags over them
    assert cfg["whiten"] and cfg["lookahead"] and cfg["tta"] == 2 and cfg["lr"] == 1.5 and cfg["width"] == 0.25
    assert cfg["lr_schedule"] == "linear" and cfg["epochs"] == 1
    assert main(["train", "--recipe", "no-such-preset", "--data", "synthetic:300"]) == 2
    assert "no preset 'no-such-preset'" in capsys.readouterr().err
