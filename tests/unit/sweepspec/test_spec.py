from __future__ import annotations

import re

import pytest
from hyperopt.pyll.stochastic import sample

from cifar_sweeps.settings import Settings
from cifar_sweeps.sweepspec.schema import SpecError, load_spec_file, parse_spec
from cifar_sweeps.sweepspec.spaces import flatten_config, hyperopt_space
from tests.helpers.paths import REPO

PRESETS = sorted(REPO.joinpath("search_spaces").glob("*.json"))
REPORT_TPE = {
    "name": "report-tpe",
    "fixed": {"model": "resnet50", "activation": "elu", "optimizer": "adadelta"},
    "params": {
        "lr": {"type": "uniform", "low": 0.001, "high": 0.1},
        "batch_size": {"type": "choice", "values": [32, 64, 128]},
        "epochs": {"type": "quniform", "low": 10, "high": 100, "q": 5},
    },
}


def test_there_are_presets():
    names = {p.stem for p in PRESETS}
    assert {
        "quickstart",
        "report-tpe",
        "report-mlp",
        "report-cnn",
        "report-activations",
        "report-optimizers",
        "report-dropout",
        "gpu-airbench",
    } <= names


BENCHMARK_SPECS = sorted((REPO / "benchmarks" / "specs").glob("*.json"))


@pytest.mark.parametrize("path", PRESETS + BENCHMARK_SPECS, ids=lambda p: p.stem)
def test_every_preset_loads(path):
    spec = load_spec_file(path, Settings())
    assert spec.total_trials() >= 1 and spec.max_epochs() >= 1


def test_samples_have_the_right_types():
    spec = parse_spec(REPORT_TPE)
    space = hyperopt_space(spec.fixed, spec.params)
    for _ in range(20):
        cfg = sample(space)
        assert isinstance(cfg["epochs"], int) and 10 <= cfg["epochs"] <= 100 and cfg["epochs"] % 5 == 0
        assert cfg["batch_size"] in (32, 64, 128) and isinstance(cfg["batch_size"], int)
        assert isinstance(cfg["lr"], float) and 0.001 <= cfg["lr"] <= 0.1
        assert cfg["model"] == "resnet50"


def test_conditional_sub_space():
    spec = parse_spec(
        {
            "fixed": {"model": "mlp"},
            "params": {
                "opt": {
                    "type": "choice",
                    "values": [
                        {"optimizer": "sgd", "lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
                        {"optimizer": "adadelta", "lr": {"type": "uniform", "low": 0.5, "high": 1.0}},
                    ],
                }
            },
        }
    )
    seen = set()
    for _ in range(30):
        cfg = flatten_config(sample(hyperopt_space(spec.fixed, spec.params)))
        seen.add(cfg["optimizer"])
        lo, hi = (0.001, 0.1) if cfg["optimizer"] == "sgd" else (0.5, 1.0)
        assert lo <= cfg["lr"] <= hi and "opt" not in cfg
    assert seen == {"sgd", "adadelta"}


def _with(**kw):
    return {**REPORT_TPE, **kw}


BAD_SPECS = [
    ("unknown param type", _with(params={"lr": {"type": "gauss", "low": 0, "high": 1}}), "params.lr"),
    ("unknown model", _with(fixed={"model": "vgg"}), "fixed.model"),
    (
        "unknown model in choice",
        _with(fixed={}, params={"model": {"type": "choice", "values": ["mlp", "nope"]}}),
        "params.model",
    ),
    ("unknown optimizer", _with(fixed={"model": "mlp", "optimizer": "lbfgs"}), "fixed.optimizer"),
    ("unknown activation", _with(fixed={"model": "mlp", "activation": "tanhh"}), "fixed.activation"),
    ("low >= high", _with(params={"lr": {"type": "uniform", "low": 0.1, "high": 0.01}}), "params.lr"),
    ("negative learning rate", _with(params={"lr": {"type": "uniform", "low": -0.1, "high": 0.1}}), "params.lr"),
    ("loguniform low <= 0", _with(params={"lr": {"type": "loguniform", "low": 0, "high": 0.1}}), "params.lr"),
    ("empty choice", _with(params={"batch_size": {"type": "choice", "values": []}}), "params.batch_size"),
    ("fixed and searched", _with(fixed={"model": "mlp", "lr": 0.1}), "params.lr"),
    ("unknown top-level key", _with(foo=1), "foo"),
    ("unknown parameter", _with(fixed={"model": "mlp", "learning_rate": 0.1}), "fixed.learning_rate"),
    ("num_samples zero", _with(num_samples=0), "num_samples"),
    ("negative batch size", _with(params={"batch_size": {"type": "choice", "values": [-32, 64]}}), "params.batch_size"),
    ("dropout >= 1", _with(fixed={"model": "mlp", "dropout": 1.5}), "fixed.dropout"),
    ("mode does not fit metric", _with(metric="val_acc", mode="min"), "mode"),
    ("bad name", _with(name="../../etc/passwd"), "name"),
    ("zero concurrency", _with(max_concurrent_trials=0), "max_concurrent_trials"),
    ("negative gpu", _with(resources_per_trial={"cpu": 1, "gpu": -1}), "resources_per_trial.gpu"),
    ("unknown scheduler", _with(scheduler={"type": "median"}), "scheduler.type"),
    ("grid with a range", _with(search={"algorithm": "grid"}), "params.lr"),
    ("point missing a param", _with(search={"points_to_evaluate": [{"lr": 0.05}]}), "points_to_evaluate"),
    ("quniform q <= 0", _with(params={"epochs": {"type": "quniform", "low": 10, "high": 100, "q": 0}}), "q"),
    ("randint wrong order", _with(params={"epochs": {"type": "randint", "low": 10, "high": 5}}), "params.epochs"),
    ("width on a fixed-shape model", _with(fixed={"model": "simple_cnn", "width": 0.5}), "fixed.width"),
    (
        "width searched for a fixed-shape model",
        _with(fixed={"model": "mlp"}, params={"width": {"type": "choice", "values": [0.5, 1.5]}}),
        "params.width",
    ),
    ("width out of range", _with(fixed={"model": "airbench", "width": 8}), "fixed.width"),
    ("depth zero", _with(fixed={"model": "airbench", "depth": 0}), "fixed.depth"),
    ("NaN bound", _with(params={"lr": {"type": "uniform", "low": float("nan"), "high": 0.1}}), "params.lr"),
]


@pytest.mark.parametrize("what,raw,field", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_specs_are_rejected_naming_the_field(what, raw, field):
    with pytest.raises(SpecError) as e:
        parse_spec(raw)
    assert field in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "raw,field",
    [
        (_with(num_samples=5000), "num_samples"),
        (
            _with(params={**REPORT_TPE["params"], "epochs": {"type": "quniform", "low": 10, "high": 5000, "q": 5}}),
            "epochs",
        ),
        (_with(max_concurrent_trials=1000), "max_concurrent_trials"),
    ],
)
def test_limits(raw, field):
    with pytest.raises(SpecError, match=field):
        parse_spec(raw, Settings(max_num_samples=1000, max_epochs=500, max_concurrent_trials=64))


EPOCH_PATHS = [
    (
        {"fixed": {"model": "mlp", "epochs": 501}, "params": {"lr": {"type": "uniform", "low": 0.01, "high": 0.1}}},
        "fixed.epochs",
    ),
    ({"fixed": {"model": "mlp"}, "params": {"epochs": {"type": "randint", "low": 2, "high": 100000}}}, "params.epochs"),
    ({"fixed": {"model": "mlp"}, "params": {"epochs": {"type": "choice", "values": [2, 100000]}}}, "params.epochs"),
    (
        {
            "fixed": {"model": "mlp"},
            "params": {
                "o": {"type": "choice", "values": [{"optimizer": "sgd", "epochs": 100000}, {"optimizer": "adam"}]}
            },
        },
        "params.o.values[0].epochs",
    ),
    (
        {
            "fixed": {"model": "mlp"},
            "params": {
                "o": {
                    "type": "choice",
                    "values": [{"optimizer": "sgd", "epochs": {"type": "quniform", "low": 2, "high": 100000, "q": 1}}],
                }
            },
        },
        "params.o.values[0].epochs",
    ),
    (
        {
            "fixed": {"model": "mlp"},
            "params": {
                "lr": {"type": "uniform", "low": 0.01, "high": 0.1},
                "epochs": {"type": "choice", "values": [2, 3]},
            },
            "search": {"points_to_evaluate": [{"lr": 0.05, "epochs": 100000}]},
        },
        "search.points_to_evaluate[0].epochs",
    ),
]


@pytest.mark.parametrize("raw,where", EPOCH_PATHS, ids=[w for _, w in EPOCH_PATHS])
def test_the_epoch_cap_holds_on_every_path_a_spec_can_give_epochs(raw, where):
    with pytest.raises(SpecError, match=rf"^{re.escape(where)}: up to \d+ epochs is over the limit of 500"):
        parse_spec(raw, Settings(max_epochs=500))
    assert parse_spec(raw).max_epochs() > 500  # the scheduler's max and the plan read the same number


def test_malformed_json_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="JSON|json"):
        parse_spec("{not json")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec_file(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "search,params,message",
    [
        ({"algorithm": "hyperopt", "optuna": {"multivariate": True}}, None, "options of the optuna algorithm"),
        ({"algorithm": "optuna", "optuna": {"multivariate": "yes"}}, None, "search.optuna.multivariate"),
        (
            {"algorithm": "optuna"},
            {"opt": {"type": "choice", "values": [{"optimizer": "sgd"}, {"optimizer": "adam"}]}},
            "optuna takes choices of plain values",
        ),
        (
            {"algorithm": "optuna"},
            {"batch_size": {"type": "qloguniform", "low": 16, "high": 256, "q": 16}},
            "no Optuna equivalent",
        ),
    ],
)
def test_optuna_options_are_checked(search, params, message):
    raw = {
        "name": "o",
        "fixed": {"model": "mlp"},
        "search": search,
        "params": params or {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
    }
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_optuna_draws_what_the_spec_draws():
    from cifar_sweeps.tuning.searchers import make_search

    spec = parse_spec(
        {
            "name": "o",
            "search": {"algorithm": "optuna", "seed": 3, "n_initial_points": 2},
            "fixed": {"model": "mlp"},
            "params": {
                "lr": {"type": "loguniform", "low": 0.001, "high": 0.1},
                "batch_size": {"type": "choice", "values": [32, 64, 128]},
                "epochs": {"type": "quniform", "low": 2, "high": 6, "q": 2},
                "seed": {"type": "randint", "low": 0, "high": 3},
            },
        }
    )
    searcher = make_search(spec)
    for i in range(12):  # past the 2 random trials: TPE's own draws too
        c = searcher.suggest(f"t{i}")
        assert 0.001 <= c["lr"] <= 0.1 and c["batch_size"] in (32, 64, 128)
        assert c["epochs"] in (2, 4, 6) and type(c["epochs"]) is int and c["seed"] in (0, 1, 2)
        searcher.on_trial_complete(f"t{i}", {"val_acc": c["lr"], "training_iteration": 1})


@pytest.mark.parametrize(
    "search, scheduler, params, message",
    [
        ({"algorithm": "bohb"}, {"type": "asha"}, None, "bohb runs with its own scheduler, hyperband"),
        ({"algorithm": "optuna"}, {"type": "hyperband"}, None, "hyperband is BOHB's scheduler"),
        ({"algorithm": "bohb"}, {"grace_period": 2}, None, "leave grace_period out with hyperband"),
        (
            {"algorithm": "bohb"},
            None,
            {"opt": {"type": "choice", "values": [{"optimizer": "sgd"}, {"optimizer": "adam"}]}},
            "bohb takes choices of plain values",
        ),
        (
            {"algorithm": "bohb"},
            None,
            {"batch_size": {"type": "qloguniform", "low": 16, "high": 256, "q": 16}},
            "no BOHB equivalent",
        ),
        (
            {"algorithm": "bohb", "warm_start": {"sweeps": ["sw-1"]}},
            None,
            None,
            "needs search.algorithm hyperopt or optuna",
        ),
    ],
)
def test_bohb_options_are_checked(search, scheduler, params, message):
    raw = {
        "name": "b",
        "fixed": {"model": "mlp"},
        "search": search,
        "params": params or {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
    }
    if scheduler:
        raw["scheduler"] = scheduler
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_bohb_gets_its_scheduler():
    spec = parse_spec(
        {
            "name": "b",
            "search": {"algorithm": "bohb"},
            "fixed": {"model": "mlp"},
            "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
        }
    )
    assert spec.scheduler.type == "hyperband"
    assert parse_spec(spec.model_dump(mode="json")).scheduler.type == "hyperband"  # the stored spec reads back


def test_bohb_draws_what_the_spec_draws(tmp_path):
    """Plain Python values of the spec's domain (choices as written, quniform on its steps),
    points_to_evaluate first; a config is kept past its trial's end and recovered from the
    result after a restore, so BOHB's model gets every result (Ray's own TuneBOHB raises
    KeyError on a result of a trial it forgot)."""
    from cifar_sweeps.tuning.searchers import make_search

    spec = parse_spec(
        {
            "name": "b",
            "search": {
                "algorithm": "bohb",
                "seed": 3,
                "n_initial_points": 2,
                "points_to_evaluate": [{"lr": 0.01, "batch_size": 64, "dropout": 0.2, "seed": 1}],
            },
            "fixed": {"model": "mlp"},
            "params": {
                "lr": {"type": "loguniform", "low": 0.001, "high": 0.1},
                "batch_size": {"type": "choice", "values": [32, 64, 128]},
                "dropout": {"type": "quniform", "low": 0.0, "high": 0.5, "q": 0.1},
                "seed": {"type": "randint", "low": 0, "high": 3},
            },
        }
    )
    searcher = make_search(spec)
    assert searcher.suggest("t0") == {"lr": 0.01, "batch_size": 64, "dropout": 0.2, "seed": 1}
    configs = {}
    for i in range(1, 12):
        c = configs[f"t{i}"] = searcher.suggest(f"t{i}")
        assert 0.001 <= c["lr"] <= 0.1 and type(c["lr"]) is float
        assert c["batch_size"] in (32, 64, 128) and type(c["batch_size"]) is int
        assert round(c["dropout"] * 10) in range(6) and type(c["dropout"]) is float
        assert c["seed"] in (0, 1, 2) and type(c["seed"]) is int
        result = {"val_acc": c["lr"], "epoch": 1, "hyperband_info": {"budget": 1}}
        searcher.on_trial_result(f"t{i}", result)
        searcher.on_trial_complete(f"t{i}", result)
    searcher.save(str(tmp_path / "bohb.pkl"))
    restored = make_search(spec)
    restored.restore(str(tmp_path / "bohb.pkl"))
    restored.trial_to_params.pop("t5")  # as if t5 had not been snapshotted yet
    n = len(restored.bohber.configs.get(1, []))
    restored.on_trial_result(
        "t5", {"val_acc": 0.5, "epoch": 2, "hyperband_info": {"budget": 2}, "config": {**configs["t5"], "model": "mlp"}}
    )
    assert restored.trial_to_params["t5"]["batch_size"] == (32, 64, 128).index(configs["t5"]["batch_size"])
    assert len(restored.bohber.configs.get(2, [])) == 1 and len(restored.bohber.configs.get(1, [])) == n


def _bounded_trial_fields() -> list[tuple[str, float, float]]:
    """(field, a value it takes, a value past one of its bounds) for every numeric trial field
    with a bound, read from TrainConfig's own schema."""
    from cifar_sweeps.sweepspec.config import TrainConfig

    out = []
    for name, info in TrainConfig.model_fields.items():
        ok = info.default
        if not isinstance(ok, int | float) or isinstance(ok, bool):
            continue
        for m in info.metadata:
            for key, past in (("le", lambda b: b * 2 + 1), ("lt", lambda b: b * 2 + 1), ("ge", lambda b: b - 1),
                              ("gt", lambda b: b - 1)):  # fmt: skip
                bound = getattr(m, key, None)
                if bound is not None:
                    value = past(bound)
                    out.append((name, ok, int(value) if isinstance(ok, int) else float(value)))
    return out


BOUNDED = _bounded_trial_fields()


@pytest.mark.parametrize(("field", "ok", "past"), BOUNDED, ids=[f"{f}={p}" for f, _, p in BOUNDED])
def test_every_bounded_trial_field_is_refused_past_its_bound_on_every_path(field, ok, past):
    """Each bound of the trial schema holds wherever a spec can carry the value: fixed, a
    choice, a range's end, a choice of objects, and the points to evaluate."""
    base = {
        "name": "w",
        "search": {"algorithm": "random"},
        "fixed": {"model": "airbench", "epochs": 2},
        "params": {"seed": {"type": "choice", "values": [0, 1]}},  # no field under test is searched twice
    }
    paths = {
        "fixed": {**base, "fixed": {**base["fixed"], field: past}},
        "choice": {**base, "params": {**base["params"], field: {"type": "choice", "values": [ok, past]}}},
        "object": {**base, "params": {**base["params"], "arch": {"type": "choice", "values": [{field: past}]}}},
        "points": {
            **base,
            "params": {**base["params"], field: {"type": "choice", "values": [ok]}},
            "search": {"algorithm": "random", "points_to_evaluate": [{field: past, "seed": 0}]},
        },
    }
    if isinstance(ok, float):
        low, high = sorted((ok, past))
        if low < high:
            paths["range"] = {
                **base,
                "params": {**base["params"], field: {"type": "uniform", "low": low, "high": high}},
            }
    assert len(BOUNDED) >= 15
    for where, raw in paths.items():
        with pytest.raises(SpecError, match=field):
            parse_spec(raw)
        assert where
