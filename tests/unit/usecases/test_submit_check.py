"""Every spec is checked at submit for what would otherwise fail trial by trial: the space is
expanded (grid points, choice branches, random draws) and each config is built and checked.
Each bad spec is a 422 from POST /sweeps naming the field, with nothing stored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.sweepspec.schema import (
    SpecError,
    check_expanded,
    expand_space,
    load_spec_file,
    needs_pretrained,
    parse_spec,
)
from tests.helpers.jobs import FakeJobs
from tests.helpers.paths import REPO
from tests.helpers.specs import AUTH

PRESETS = sorted(REPO.joinpath("search_spaces").glob("*.json"))
LR = {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_passes_the_submit_check(path):
    spec = load_spec_file(path, Settings())
    check_expanded(spec)
    assert expand_space(spec), "the expansion covers at least one config"


def test_report_presets_run_what_the_report_ran():
    specs = {p.stem: load_spec_file(p) for p in PRESETS}
    for name in (
        "report-cnn",
        "report-activations",
        "report-optimizers",
        "report-tpe",
        "report-tpe-as-run",
        "report-dropout",
    ):
        assert needs_pretrained(specs[name]) == {"resnet50"}, name  # ImageNet-pretrained ResNet-50
    for name, spec in specs.items():
        if name.startswith("report-"):
            assert spec.metric == "best_val_acc", name  # the report's objective: the best epoch
            assert all(cfg.get("normalize") == "report" for cfg, _ in expand_space(spec)), name
    for name in ("report-mlp", "report-cnn", "report-activations", "report-optimizers", "report-tpe-as-run"):
        assert specs[name].scheduler.type == "fifo", name  # full curves, as the report compared them
    as_run = specs["report-tpe-as-run"]
    assert as_run.search.algorithm == "random" and as_run.num_samples == 10  # fmin's 10 random draws
    cnn_models = {cfg["model"]: cfg.get("pretrained", False) for cfg, _ in expand_space(specs["report-cnn"])}
    assert cnn_models == {
        "default_conv": False,
        "simple_cnn": False,
        "simple_cnn_arq_2": False,
        "simple_cnn_arq_4": False,
        "resnet50": True,
    }


def _grid_of_models(*values, **fixed):
    return {
        "search": {"algorithm": "grid"},
        "fixed": {"epochs": 2, **fixed},
        "params": {"model": {"type": "choice", "values": list(values)}},
    }


# (what, body, the field the error must name, a word of the reason)
BAD = [
    ("empty body", {}, "params", "cifar-sweeps train"),
    ("empty params with random search", {"search": {"algorithm": "random"}, "params": {}}, "params", "seed"),
    (
        "pretrained in a grid of models",
        _grid_of_models("simple_cnn", "resnet50", pretrained=True),
        "fixed.pretrained",
        "simple_cnn",
    ),
    (
        "pretrained with the default model",
        {"fixed": {"pretrained": True}, "params": LR},
        "fixed.pretrained",
        "simple_cnn",
    ),
    (
        "pretrained searched beside an mlp",
        {"fixed": {"model": "mlp"}, "params": {"pretrained": {"type": "choice", "values": [False, True]}}},
        "params.pretrained.values[1]",
        "mlp",
    ),
    (
        "pretrained object with a model without weights",
        _grid_of_models("simple_cnn", {"model": "mlp", "pretrained": True}),
        "params.model.values[1].pretrained",
        "mlp",
    ),
    (
        "unknown model inside an object",
        _grid_of_models({"model": "vgg16", "pretrained": True}),
        "params.model.values[0].model",
        "vgg16",
    ),
    (
        "batch larger than the training subset",
        {"fixed": {"batch_size": 512}, "params": LR, "data": {"train_subset": 100}},
        "fixed.batch_size",
        "train_subset",
    ),
    (
        "one batch choice larger than the subset",
        {"params": {**LR, "batch_size": {"type": "choice", "values": [32, 4096]}}, "data": {"train_subset": 1000}},
        "params.batch_size.values[1]",
        "4096",
    ),
    (
        "a randint batch range past the subset",
        {"params": {**LR, "batch_size": {"type": "randint", "low": 16, "high": 700}}, "data": {"train_subset": 500}},
        "params.batch_size",
        "699",
    ),
    (
        "batch size inside a sub-space past the subset",
        {
            "params": {"opt": {"type": "choice", "values": [{"optimizer": "sgd", "batch_size": 256, **LR}]}},
            "data": {"train_subset": 100},
        },
        "params.opt.values[0].batch_size",
        "256",
    ),
    ("best_val_acc minimized", {"metric": "best_val_acc", "mode": "min", "params": LR}, "mode", "best_val_acc"),
    (
        "pretrained object in a hyperopt choice",
        {
            "params": {
                **LR,
                "model": {"type": "choice", "values": ["mlp", {"model": "default_conv", "pretrained": True}]},
            }
        },
        "params.model.values[1].pretrained",
        "default_conv",
    ),
    (
        "a seed choice that is not an int",
        {"fixed": {"model": "mlp"}, "params": {"seed": {"type": "choice", "values": [0, "one"]}}},
        "params.seed",
        "seed",
    ),
]


@pytest.mark.parametrize("what,body,field,word", BAD, ids=[b[0] for b in BAD])
def test_bad_specs_fail_at_parse(what, body, field, word):
    with pytest.raises(SpecError) as e:
        parse_spec(body)
    assert field in str(e.value) and word in str(e.value), str(e.value)


@pytest.fixture
def api(tmp_path):
    settings = Settings(results_dir=tmp_path, api_token="s3cret-token", weights_dir=tmp_path / "weights")
    store = get_store(settings.resolved_store_url())
    store.create_sweep({"name": "kept"}, "synthetic:10", "test")  # what is stored must stay as it is
    return TestClient(create_app(settings, FakeJobs(store))), store


@pytest.mark.parametrize("what,body,field,word", BAD, ids=[b[0] for b in BAD])
def test_bad_specs_are_a_422_naming_the_field_and_store_nothing(api, what, body, field, word):
    client, store = api
    r = client.post("/sweeps", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"] and word in r.json()["detail"], r.json()["detail"]
    rows, total = store.list_sweeps()
    assert total == 1 and rows[0].spec == {"name": "kept"}


def test_seeds_repeat_one_config():
    spec = parse_spec({"fixed": {"model": "mlp"}, "params": {"seed": {"type": "choice", "values": [0, 1, 2]}}})
    assert sorted(cfg["seed"] for cfg, _ in expand_space(spec, draws=0)) == [0, 1, 2]


def test_pretrained_without_staged_weights_is_a_422_on_a_local_cluster(api):
    client, store = api
    r = client.post(
        "/sweeps", json=_grid_of_models("simple_cnn", {"model": "resnet50", "pretrained": True}), headers=AUTH
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "cifar-sweeps weights fetch resnet50" in detail and "cifar-sweeps weights import resnet50" in detail
    assert store.list_sweeps()[1] == 1
