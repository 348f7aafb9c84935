"""The child process of the submit-time model check (sweepspec/modelcheck.py): builds each
plug-in model it is asked for on the meta device, checks its logits and counts its
parameters; prints one JSON line: {"params": {model: count}, "error": message or null}."""

from __future__ import annotations

import json
from typing import Any


def check_point(point: dict[str, Any], num_classes: int, image_size: int) -> int:
    """Build one plug-in model on the meta device and check its logits; its parameters."""
    import torch

    from cifar_sweeps.training.models import build_model, check_on_meta

    with torch.device("meta"):
        net = build_model(point["model"], num_classes=num_classes, model_args=point["args"])
    return check_on_meta(net, num_classes, image_size)


def _located(point: dict[str, Any], message: str) -> str:
    """Put the spec field in front: the argument the message names, else the model's place."""
    for key, place in point["where_args"].items():
        if message.startswith(f"model_args.{key}:"):
            return f"{place}:{message.removeprefix(f'model_args.{key}:')}"
    args = f" with model_args {point['args']}" if point["args"] else ""
    message = message.removeprefix(f"model {point['model']!r}: ")
    return f"{point['where_model']}: model {point['model']!r}{args}: {message}"


def run_checks(request: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, int] = {}
    for point in request["points"]:
        try:
            n = check_point(point, request["num_classes"], request["image_size"])
        except Exception as e:  # the plug-in's own code: any error is the spec's problem to report
            return {"params": params, "error": _located(point, str(e))}
        params[point["model"]] = max(n, params.get(point["model"], 0))
    return {"params": params, "error": None}


def main() -> int:
    from cifar_sweeps.subprocs import read_request

    print(json.dumps(run_checks(read_request())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
