"""Property-based tests generated from the app's own OpenAPI schema: no 5xx, and every
response conforms to the schema (status codes, content types, bodies)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from cifar_sweeps.service.api import create_app  # noqa: E402
from cifar_sweeps.settings import Settings  # noqa: E402
from cifar_sweeps.store import lifecycle  # noqa: E402
from cifar_sweeps.store.queries import get_store  # noqa: E402
from tests.helpers.jobs import FakeJobs  # noqa: E402
from tests.helpers.specs import GOOD  # noqa: E402

_SETTINGS = Settings(results_dir=Path(tempfile.mkdtemp(prefix="cifar-sweeps-st-")), api_token="tok")
_STORE = get_store(_SETTINGS.resolved_store_url())
_SWEEP = _STORE.create_sweep({**GOOD, "name": "seed"}, "synthetic:100", "v")
_TRIAL = lifecycle.trial_started(_STORE, _SWEEP.id, "t0", {"model": "mlp", "lr": 0.1}, 2)
APP = create_app(_SETTINGS, FakeJobs(_STORE))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    # Every check but "schema-valid data must be accepted": the JSON schema can't say which
    # parameter names exist or that low < high, so some schema-valid specs are (rightly)
    # refused with a 422 naming the field. Invalid data must still be rejected.
    case.call_and_validate(headers={"Authorization": "Bearer tok"}, excluded_checks=[positive_data_acceptance])


# ---------------------------------------------------------------- spec-aware fuzzing
# The OpenAPI document leaves `fixed` and `params` free-form, so the schema's own cases never
# reach the numbers inside a spec. These strategies build specs near their edges: floats just
# above 1, huge and tiny numbers, strings where numbers go, mixed choices, deep nesting.

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

EDGE_NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 1.00000001, 1.0000000001, 1e-300, 1e300, 2**63, -(2**63), 0.5, 3, 10**9]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.from_regex(r"\A-?[0-9]{1,9}(\.[0-9]+)?\Z"),  # a number as a string: "100000"
)
PLAIN = st.one_of(EDGE_NUMBERS, st.booleans(), st.text(max_size=12), st.none())
FIELDS = st.sampled_from(
    ["epochs", "batch_size", "lr", "width", "depth", "momentum", "dropout", "threads", "crop_padding", "model"]
)


def _param():
    lows = EDGE_NUMBERS
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["uniform", "loguniform", "quniform", "qloguniform", "randint"])},
            optional={"low": lows, "high": lows, "q": lows},
        ),
        st.fixed_dictionaries({"type": st.just("choice"), "values": st.lists(PLAIN, min_size=0, max_size=6)}),
    )


def _nested(depth: int):
    inner = {"type": "choice", "values": [0.01]}
    for _ in range(depth):
        inner = {"type": "choice", "values": [{"lr": inner}]}
    return inner


BASE = {
    "name": "fz",
    "num_samples": 2,
    "max_concurrent_trials": 1,
    "search": {"algorithm": "random"},
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}
# One edit of a valid spec: (where, what). Most fuzzed specs are one or two edits from a
# valid one, so they reach the checks deep inside (the rung loop, the space's expansion,
# the plan), not only the schema's first refusal.
EDITS = st.one_of(
    st.tuples(st.just(("scheduler", "reduction_factor")), EDGE_NUMBERS),
    st.tuples(st.just(("scheduler", "grace_period")), EDGE_NUMBERS),
    st.tuples(st.just(("scheduler", "type")), st.sampled_from(["fifo", "hyperband", "nope"])),
    st.tuples(FIELDS.map(lambda f: ("fixed", f)), PLAIN),
    st.tuples(FIELDS.map(lambda f: ("params", f)), _param()),
    st.tuples(st.just(("params", "space")), st.integers(0, 40).map(_nested)),
    st.tuples(st.sampled_from([("num_samples",), ("max_concurrent_trials",), ("time_budget_s",)]), EDGE_NUMBERS),
    st.tuples(st.just(("budget", "epochs")), EDGE_NUMBERS),
    st.tuples(st.sampled_from([("data", "image_size"), ("data", "val_fraction")]), EDGE_NUMBERS),
    st.tuples(st.sampled_from([("resources_per_trial", "cpu"), ("resources_per_trial", "gpu")]), EDGE_NUMBERS),
    st.tuples(st.just(("name",)), st.sampled_from(["x" * 70, "../x", "", "a\x00b"])),
    # The fields of the refit, the automatic space, model arguments and the data's splits.
    st.tuples(st.just(("refit",)), PLAIN),
    st.tuples(st.just(("params",)), st.sampled_from(["auto", None, [], {"auto": True}, {"auto": "yes"}])),
    st.tuples(
        st.just(("fixed", "model_args")),
        st.dictionaries(st.sampled_from(["tag", "num_classes", "_x", "a-b", "w"]), PLAIN | st.just("y" * 300)),
    ),
    st.tuples(st.just(("params", "model_args.w")), _param()),
    st.tuples(
        st.sampled_from([("data", "train_subset"), ("data", "test_fraction"), ("data", "split_seed")]), EDGE_NUMBERS
    ),
    st.tuples(
        st.just(("search", "points_to_evaluate")),
        st.lists(st.fixed_dictionaries({}, optional={"epochs": EDGE_NUMBERS, "lr": EDGE_NUMBERS}), max_size=2),
    ),
    st.tuples(st.just(("search", "n_initial_points")), EDGE_NUMBERS),
    st.tuples(st.just(("repeat",)), st.fixed_dictionaries({}, optional={"top": EDGE_NUMBERS, "seeds": EDGE_NUMBERS})),
)


def _edited(edits) -> dict:
    import copy

    spec = copy.deepcopy(BASE)
    for path, value in edits:
        node = spec
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):  # an earlier edit made it "auto", a list, None
                node[key] = {}
            node = node[key]
        if path[0] == "params" and path[-1] == "space":
            spec["params"] = {"space": value}
        else:
            node[path[-1]] = value
    return spec


SPECS = st.lists(EDITS, min_size=0, max_size=3).map(_edited)
FUZZ_TIMEOUT_S = 30.0  # per request: a hang fails the test
_CLIENT = TestClient(APP, raise_server_exceptions=False)


def fuzz_once(spec: dict, client=_CLIENT, store=_STORE) -> None:
    """One spec to POST /sweeps/plan and POST /sweeps: a 2xx or a 4xx, in time, and
    nothing stored on a 4xx."""
    import time

    for route in ("/sweeps/plan", "/sweeps"):
        before = store.list_sweeps(limit=1)[1]
        t0 = time.monotonic()
        r = client.post(route, json=spec, headers={"Authorization": "Bearer tok"})
        took = time.monotonic() - t0
        assert r.status_code < 500, (route, r.status_code, r.text[:500], spec)
        assert took < FUZZ_TIMEOUT_S, (route, took, spec)
        if r.status_code >= 400:
            assert store.list_sweeps(limit=1)[1] == before, (route, spec)


@given(SPECS)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_specs_near_their_edges_get_a_2xx_or_a_4xx_in_time_and_a_4xx_stores_nothing(spec):
    fuzz_once(spec)
