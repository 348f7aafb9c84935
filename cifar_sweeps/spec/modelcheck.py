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
from typing import Any

from cifar_sweeps.errors import SpecError
from cifar_sweeps.spec import registry
from cifar_sweeps.spec.config import MODEL_ARG, TrainConfig
from cifar_sweeps.subprocs import run_torch

CHECK_TIMEOUT_S = 120  # a torch import and a few builds on the meta device take seconds
MAX_BUILDS = 64  # distinct (model, model_args) built per check


def plugin_points(spec) -> list[dict[str, Any]]:
    """The distinct plug-in builds a spec's trials can ask for, each with where its model and
    arguments come from in the spec (for the error message)."""
    from cifar_sweeps.spec.spec import expand_space

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
        if len(out) >= MAX_BUILDS:
            break
    return out


def _arg_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k == "model_args" or k.startswith(MODEL_ARG)}


def check_models(spec) -> dict[str, int]:
    """Parameter counts of the spec's plug-in models, by name (the largest over their
    arguments); {} when it names none. SpecError for a model that can't be built."""
    points = plugin_points(spec)
    if not points:
        return {}
    request = {"points": points, "num_classes": 10, "image_size": spec.data.image_size}
    p = run_torch("cifar_sweeps.training.meta_build", request, CHECK_TIMEOUT_S, "the model check")
    try:
        answer = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (p.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise SpecError(f"model: the model check failed ({tail[0][:300]})") from None
    if answer.get("error"):
        raise SpecError(answer["error"])
    return {k: int(v) for k, v in answer["params"].items()}
