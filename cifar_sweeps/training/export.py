"""The model out: a trial's best model as ONNX or TorchScript, its preprocessing inside.

The exported model takes float32 NCHW images in [0, 1] at the size it was trained at (any
batch size) and returns logits: the input statistics it was trained with are its first
layer, so a user feeds it decoded pixels and nothing of this package. Its class names, the
trial's config and scores travel in the file's metadata (ONNX `metadata_props`, a
TorchScript file's `metadata.json`). One path for `cifar-sweeps export` and
GET /trials/{id}/export, which runs it in a process of its own
(`python -m cifar_sweeps.training.export MODEL_FILE OUT FORMAT`): the API process loads no torch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 18


def metadata(mf, trial_id: str | None = None) -> dict[str, str]:
    """What travels with the exported model, as strings (ONNX metadata is string to string)."""
    meta = mf.meta
    out = {
        "producer": "cifar-sweeps",
        "classes": json.dumps(list(mf.classes)),
        "input": f"float32 NCHW RGB in [0, 1], {mf.image_size}x{mf.image_size}",
        "image_size": str(mf.image_size),
        "normalize": json.dumps({"name": mf.normalize, "mean": list(mf.mean), "std": list(mf.std)}),
        "model": str(meta.get("model")),
        "config": json.dumps(meta.get("config") or {}, sort_keys=True),
        "val_acc": json.dumps(meta.get("val_acc")),
        "test_acc": json.dumps(meta.get("test_acc")),
        "best_epoch": json.dumps(meta.get("epoch")),
    }
    if trial_id:
        out["trial_id"] = trial_id
    return out


def with_preprocessing(mf):
    """The model behind its own standardization: [0, 1] pixels in, logits out."""
    import torch
    from torch import nn

    class Preprocessed(nn.Module):
        def __init__(self, net: nn.Module, mean, std):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - self.mean) / self.std)

    return Preprocessed(mf.model, mf.mean, mf.std).eval()


def export_file(model_file: str | Path, out: str | Path, fmt: Format = "onnx", trial_id: str | None = None) -> Path:
    """Write `model_file` (a trial's model.pt) to `out` as `fmt`; returns the path."""
    import torch

    from cifar_sweeps.errors import InputError
    from cifar_sweeps.training.train import read_model_file

    if fmt not in FORMATS:
        raise InputError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    mf = read_model_file(model_file)
    net = with_preprocessing(mf)
    example = torch.rand(2, 3, mf.image_size, mf.image_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = metadata(mf, trial_id)
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notes: the format is still what it loads
            traced = torch.jit.trace(net, example)
            torch.jit.save(traced, str(out), _extra_files={"metadata.json": json.dumps(meta)})
        return out
    _onnx(net, example, out, meta)
    return out


def _onnx(net, example, out: Path, meta: dict[str, str]) -> None:
    import onnx
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are not the user's concern
        torch.onnx.export(
            net,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript-based exporter: one self-contained file, no onnxscript
        )
    model = onnx.load(str(out))
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """An exported file's metadata (ONNX or TorchScript), JSON values decoded."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        raw = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        import torch

        files = {"metadata.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.load(str(path), _extra_files=files)
        raw = json.loads(files["metadata.json"])
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            out[k] = v
    return out


def main() -> int:
    """`python -I -m cifar_sweeps.training.export` with {"model_file", "out_dir", "format",
    "trial_id"} as JSON on stdin: writes OUT_DIR/model.<the format's suffix> and prints
    {"path": ...} (the service's export)."""
    from cifar_sweeps.subprocs import read_request

    request = read_request()
    fmt = request["format"]
    out = Path(request["out_dir"]) / f"model{SUFFIX[fmt]}"
    export_file(request["model_file"], out, fmt, request.get("trial_id"))
    print(json.dumps({"path": str(out)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
