"""The Python API from a script or a notebook: run a sweep, read its leaderboard, use and
export its best model. Runs in a minute or two on a CPU, on generated images:

    python examples/python_api.py [--results-dir DIR] [--data SOURCE]

(docs/python.md walks through it.)
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

import cifar_sweeps as cs

SPEC = {
    "name": "python-api",
    "metric": "val_acc",
    "mode": "max",
    "num_samples": 2,
    "max_concurrent_trials": 1,
    "search": {"algorithm": "random", "seed": 0},
    "scheduler": {"type": "fifo"},
    "resources_per_trial": {"cpu": 1, "gpu": 0},
    "fixed": {"model": "airbench", "width": 0.25, "optimizer": "sgd", "nesterov": True, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.01, "high": 0.1}},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results-dir", default=None, help="default: a new temporary folder")
    ap.add_argument("--data", default="synthetic:600", help="any data source (docs/data.md)")
    args = ap.parse_args()
    results = args.results_dir or tempfile.mkdtemp(prefix="cifar-sweeps-api-")

    # 1. Run a spec (a dict here; a JSON file or a preset name work too), with an edit.
    sweep = cs.run(SPEC, data=args.data, results_dir=results, set={"fixed.epochs": 2}, quiet=True)
    print(f"sweep {sweep.id}: {sweep.status}")

    # 2. Its leaderboard, best first.
    for row in sweep.leaderboard(top=5):
        print(f"  {row.trial_id}  lr={row.config['lr']:.4f}  val_acc={row.val_acc:.3f}  test_acc={row.test_acc:.3f}")

    # 3. The best model, ready to call: its classes, size and input statistics come with it.
    best = sweep.load_best_model()
    images = np.random.default_rng(0).random((4, 3, best.image_size, best.image_size), dtype=np.float32)
    import torch

    mean = torch.tensor(best.mean).view(1, 3, 1, 1)
    std = torch.tensor(best.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = best.model((torch.from_numpy(images) - mean) / std)
    print("predicted:", [best.classes[i] for i in logits.argmax(1).tolist()])

    # 4. Export it: ONNX with the normalization inside, class names in its metadata.
    path = sweep.export_best(f"{results}/best.onnx")
    print(f"exported {path}")
    try:
        import onnxruntime
    except ImportError:
        return
    out = onnxruntime.InferenceSession(str(path)).run(None, {"images": images})[0]
    print(f"onnxruntime agrees with PyTorch: max |logit difference| {np.abs(out - logits.numpy()).max():.2e}")


if __name__ == "__main__":
    main()
