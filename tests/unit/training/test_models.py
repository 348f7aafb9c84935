from __future__ import annotations

import pytest
import torch

from cifar_sweeps.training.models import ACTIVATIONS, MODEL_NAMES, ModelError, build_model, count_parameters

# Parameter counts pin each architecture (a change to a layer shows up here).
EXPECTED_PARAMS = {
    "mlp": 1_841_162,
    "relu_layer_div2": 6_294_550,
    "relu_layer_div4": 2_517_694,
    "relu_div4_div2": 2_697_694,
    "relu_6_layer_divrand": 3_853_400,
    "relu_4_layer_divrand": 3_054_670,
    "default_conv": 62_006,
    "simple_cnn": 2_122_186,
    "simple_cnn_arq_2": 11_208_282,
    "simple_cnn_arq_4": 4_494_778,
    "resnet50": 25_886_266,
    "resnet18": 11_173_962,
    "airbench": 1_978_016,
}


def test_every_report_model_is_in_the_zoo():
    assert set(EXPECTED_PARAMS) == set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_and_parameter_count(name):
    model = build_model(name, "elu", 0.2)
    assert count_parameters(model) == EXPECTED_PARAMS[name]
    model.eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activation_applies_to_fc_layers(act):
    model = build_model("simple_cnn_arq_4", act, 0.5)
    fc_types = {type(m).__name__ for m in model.fc}
    assert type(ACTIVATIONS[act]()).__name__ in fc_types and "Dropout" in fc_types
    conv_acts = {type(m).__name__ for m in model.features}
    assert conv_acts & {"ReLU"}  # convolutional layers keep ReLU, as in the report


def test_resnet50_head_is_the_reports():
    head = build_model("resnet50", "elu").fc
    sizes = [m.out_features for m in head if isinstance(m, torch.nn.Linear)]
    assert sizes == [1024, 256, 64, 16, 10]


def test_bad_names():
    with pytest.raises(ModelError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ModelError, match="unknown activation"):
        build_model("mlp", "tanhh")
    with pytest.raises(ModelError, match="no pretrained"):
        build_model("mlp", pretrained=True)


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("depth", [1, 2])
def test_the_fast_net_builds_and_trains_a_step_at_each_width(width, depth):
    torch.manual_seed(0)
    model = build_model("airbench", width=width, depth=depth).to(memory_format=torch.channels_last).train()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 3 * (1 + depth)
    assert all(c.out_channels % 16 == 0 for c in convs)  # whole AVX-512 fp32 vectors
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_width_scales_the_fast_net_and_nothing_else():
    counts = [count_parameters(build_model("airbench", width=w)) for w in (0.25, 0.5, 0.75, 1.0)]
    assert counts == sorted(counts) and len(set(counts)) == 4
    assert counts[-1] == EXPECTED_PARAMS["airbench"]  # width 1 is the airbench it was
    with pytest.raises(ModelError, match="fixed shape; width and depth apply to \\['airbench'\\]"):
        build_model("simple_cnn", width=0.5)
    with pytest.raises(ModelError, match="fixed shape"):
        build_model("mlp", depth=2)
