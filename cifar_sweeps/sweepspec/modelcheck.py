"""The submit-time check of plug-in models (registry.py), in a process of its own.

Each distinct (model, model_args) of a spec's expanded space (every choice, the ends of
every range: spec.expand_space) is built on the meta device (no memory, no weights), run
once on two images of the spec's size, and its parameters counted. A builder that raises,
an argument its declaration refuses, or logits of the wrong shape is a SpecError (422)
naming the field, before anything is stored: Ray Tune would find it trial by trial, after
retries. The builds run in a child process (`python -I -m cifar_sweeps.training.meta_build`, the request on stdin),
as the probe does, since the API process loads no torch; one at a time, and bounded in time.
The zoo's models are built by the test suite, not at every submit.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cifar_sweeps.errors import ChildTimeout, SpecError
from cifar_sweeps.subprocs import run_torch
from cifar_sweeps.sweepspec import registry
from cifar_sweeps.sweepspec.config import MODEL_ARG, TrainConfig

CHECK_TIMEOUT_S = 120  # a torch import and a few builds on the meta device take seconds
MAX_BUILDS = 64  # distinct (model, model_args) built per check


def plugin_points(spec) -> list[dict[str, Any]]:
    """The distinct plug-in builds a spec's trials can ask for, each with where its model and
    arguments come from in the spec (for the error message)."""
    from cifar_sweeps.sweepspec.schema import expand_space

    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for cfg, where in expand_space(spec):
        model = cfg.get("model", TrainConfig.model_fields["model"].default)
        if not registry.is_plugin(model):
            continue
        args = TrainConfig.model_validate({"model": model, **_arg_keys(cfg)}).model_args
        key = json.dumps([model, args], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        places = {k: where.get(MODEL_ARG + k, where.get("model_args", f"model_args.{k}")) for k in args}
        out.append({"model": model, "args": args, "where_model": where.get("model", "model"), "where_args": places})
        if len(out) > MAX_BUILDS:
            raise SpecError(
                f"model_args: the spec's space asks for more than {MAX_BUILDS} distinct builds of plug-in models "
                "(each choice and each range's ends count): every one is checked at submit, so narrow the space"
            )
    return out


def check_http_model_args(spec) -> None:
    """Over HTTP, a plug-in builder that declares no arguments (`build.model_args`) gets
    numbers and booleans only: a string could be a path or a URL that a builder forwarding
    `**kw` to a loader would open. A declared builder's strings are checked against its
    declaration (registry.py), so they may pass. The CLI and the Python API, run by the
    machine's own user, are not limited."""
    found = registry.plugins()
    for point in plugin_points(spec):
        info = found.get(point["model"])
        if info is None or info.args is not None:
            continue
        for name, value in point["args"].items():
            if not isinstance(value, bool | int | float):
                where = point["where_args"].get(name, f"model_args.{name}")
                raise SpecError(
                    f"{where}: model {point['model']!r} declares no arguments, so over HTTP it takes numbers and "
                    f"booleans only, not {type(value).__name__} {str(value)[:40]!r} (declare build.model_args: "
                    "docs/your-model.md)"
                )


def _arg_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k == "model_args" or k.startswith(MODEL_ARG)}


def check_models(spec, num_classes: int = 10) -> dict[str, int]:
    """Parameter counts of the spec's plug-in models, by name (the largest over their
    arguments); {} when it names none. SpecError for a model that can't be built, with the
    data set's `num_classes`. Results and failures (a timeout too) are remembered by the
    builds asked and the plug-ins' versions: the same spec is not checked twice."""
    points = plugin_points(spec)
    if not points:
        return {}
    request = {"points": points, "num_classes": num_classes, "image_size": spec.data.image_size}
    key = _memo_key(request)
    known = _MEMO.get(key)
    if known is not None and time.monotonic() - known[0] < MEMO_S:
        return _answer(known[1])
    try:
        answer = _run_check(request)
    except ChildTimeout as e:
        answer = {"error": f"model: the model check {str(e).removeprefix('the model check ')}; the builds are too slow"}
    _remember(key, answer)
    return _answer(answer)


def _run_check(request: dict[str, Any]) -> dict[str, Any]:
    p = run_torch("cifar_sweeps.training.meta_build", request, CHECK_TIMEOUT_S, "the model check")
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (p.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"error": f"model: the model check failed ({tail[0][:300]})"}


def _answer(answer: dict[str, Any]) -> dict[str, int]:
    if answer.get("error"):
        raise SpecError(answer["error"])
    return {k: int(v) for k, v in answer["params"].items()}


MEMO_S = 3600.0  # how long a check's result is reused (s): a plug-in reinstalled changes the key anyway
MAX_MEMO = 256
_MEMO: dict[str, tuple[float, dict[str, Any]]] = {}


def _memo_key(request: dict[str, Any]) -> str:
    """The builds asked and the versions of the plug-ins that make them."""
    found = registry.plugins()
    versions = sorted({(p["model"], found[p["model"]].version or "") for p in request["points"] if p["model"] in found})
    return json.dumps([request, versions], sort_keys=True, default=str)


def _remember(key: str, answer: dict[str, Any]) -> None:
    _MEMO.pop(key, None)
    _MEMO[key] = (time.monotonic(), answer)
    while len(_MEMO) > MAX_MEMO:
        _MEMO.pop(next(iter(_MEMO)))
