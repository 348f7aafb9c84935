"""The report's table, measured: its ladders run as the presets define them, on real CIFAR-10.

    python benchmarks/report_table.py --run mlp-report mlp-cifar mlp-ladder cnn-ladder
    python benchmarks/report_table.py            # only print the table of what was run

Each experiment is one `cifar-sweeps run PRESET --set ...` on the CPU (resources_per_trial
set to one CPU and no GPU, one trial at a time so that the other core stays free); the
`--set` edits are printed with each command. Results land in a store of their own
(results/report-table by default), so runs accumulate and the table is printed from it:
per trial, the report's figure, the best epoch's val_acc, its epoch, and the test_acc of
that epoch's weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, default_data, print_table, say_data  # noqa: E402

CPU = ["--set", "resources_per_trial.gpu=0", "--set", "resources_per_trial.cpu=1", "--set", "max_concurrent_trials=1"]
# name -> (preset, --set edits). Epochs are the preset's (the report's 50) unless an edit
# says otherwise; the README says why each shortened one is.
EXPERIMENTS: dict[str, tuple[str, list[str]]] = {
    "mlp-report": ("report-mlp", ['params.model.values=["mlp"]']),
    "mlp-cifar": ("report-mlp", ['params.model.values=["mlp"]', "fixed.normalize=cifar", "name=report-mlp-cifar"]),
    "mlp-best": ("report-mlp", ['params.model.values=["relu_layer_div2", "relu_layer_div4"]', "fixed.epochs=15"]),
    "mlp-rest": (
        "report-mlp",
        ['params.model.values=["relu_div4_div2", "relu_6_layer_divrand", "relu_4_layer_divrand"]', "fixed.epochs=15"],
    ),
    # Without ResNet-50 (ImageNet weights, and a GPU for its 50 epochs).
    "cnn-ladder": (
        "report-cnn",
        ['params.model.values=["default_conv", "simple_cnn", "simple_cnn_arq_2"]', "fixed.epochs=10"],
    ),
    "cnn-arq4": ("report-cnn", ['params.model.values=["simple_cnn_arq_4"]', "fixed.epochs=10"]),
}
# The report's figure for each model of its ladders (validation accuracy at the best epoch).
REPORT = {
    "mlp": "53 %",
    "relu_layer_div2": "~55 % (best MLPs)",
    "relu_layer_div4": "~55 % (best MLPs)",
    "relu_div4_div2": "< 55 %",
    "relu_6_layer_divrand": "< 55 %",
    "relu_4_layer_divrand": "< 55 %",
    "default_conv": "below simple_cnn",
    "simple_cnn": "> 70 %",
    "simple_cnn_arq_2": "> 70 %",
    "simple_cnn_arq_4": "> 70 %",
}
# Experiments of the report that need ImageNet weights and a GPU: (preset, what, report's figure).
NOT_HERE = [
    ("report-cnn", "resnet50, pretrained", "> 80 %"),
    ("report-activations", "resnet50 + relu/leaky_relu/sigmoid/elu/silu", "elu slightly best; sigmoid behind"),
    ("report-optimizers", "resnet50 + elu: sgd, adagrad, adadelta, +ExponentialLR", "adadelta best"),
    ("report-tpe-as-run", "10 random draws, full length", "87.24 % (lr 0.068, batch 128, 90 epochs)"),
    ("report-tpe", "TPE + ASHA over the same space", "-"),
    ("report-dropout", "dropout 0 / 0.2 / 0.5", "88.18 % val, 86 % test"),
]


def run(name: str, args) -> None:
    preset, edits = EXPERIMENTS[name]
    sets = [x for e in edits for x in ("--set", e)]
    if args.epochs:
        sets += ["--set", f"fixed.epochs={args.epochs}"]
    cmd = [
        str(Path(sys.executable).parent / "cifar-sweeps"),
        "run",
        preset,
        "--data",
        args.data,
        "--results-dir",
        str(args.results_dir),
        *CPU,
        *sets,
    ]
    print("$ " + " ".join(f"'{c}'" if " " in c or "[" in c else c for c in cmd[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, cwd=ROOT)
    print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)


def table(results_dir: Path) -> None:
    from cifar_sweeps.store.queries import Store

    store = Store(f"sqlite:///{(results_dir / 'cifar_sweeps.db').resolve()}")
    rows = []
    for sweep in reversed(store.list_sweeps(limit=500)[0]):
        for t in store.trials(sweep.id):
            c = t.config
            rows.append(
                [
                    sweep.spec.get("name", ""),
                    t.model,
                    c.get("normalize", "cifar"),
                    REPORT.get(t.model, "-"),
                    f"{100 * (t.val_acc or 0):.1f} %",
                    t.best_epoch or "-",
                    f"{t.epochs}/{c.get('epochs')}",
                    f"{100 * t.test_acc:.1f} %" if t.test_acc is not None else "-",
                    t.status,
                ]
            )
    seen = {r[1] for r in rows}
    rows += [
        ["report-mlp", m, "report", REPORT[m], "not measured here", "-", "-", "-", "-"]
        for m in ("relu_div4_div2", "relu_6_layer_divrand", "relu_4_layer_divrand")
        if m not in seen
    ]
    rows += [
        [preset, what, "report", fig, "not measured here (ImageNet weights, GPU)", "-", "-", "-", "-"]
        for preset, what, fig in NOT_HERE
    ]
    print_table(
        [
            "preset",
            "model",
            "normalize",
            "report (val)",
            "measured best val",
            "at epoch",
            "epochs",
            "test of best",
            "status",
        ],
        rows,
    )


def gradients() -> None:
    """Why a deep fully connected head can sit at chance: the gradient that reaches its first
    layer at initialization, for one batch of inputs in [-1, 1] (the report's normalization)."""
    import torch

    from cifar_sweeps.training.models import build_model

    rows = []
    for name in ["simple_cnn", "simple_cnn_arq_4", "simple_cnn_arq_2", "mlp", "relu_layer_div4", "relu_layer_div2"]:
        torch.manual_seed(0)
        x, y = torch.rand(256, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (256,))
        model = build_model(name)
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        torch.nn.functional.cross_entropy(model(x), y).backward()
        rows.append([name, len(linear), f"{linear[0].weight.grad.norm():.1e}", f"{linear[-1].weight.grad.norm():.1e}"])
    print_table(["model", "linear layers", "grad norm, first FC", "grad norm, last FC"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs="*", default=[], choices=list(EXPERIMENTS))
    ap.add_argument("--data", default=default_data())
    ap.add_argument("--results-dir", type=Path, default=ROOT / "results" / "report-table")
    ap.add_argument("--epochs", type=int, help="override every experiment's epochs (smoke runs)")
    ap.add_argument("--gradients", action="store_true", help="print the gradient check of the deep heads")
    args = ap.parse_args()
    say_data(args.data)
    if args.gradients:
        gradients()
        return
    for name in args.run:
        run(name, args)
    table(args.results_dir)
    print(json.dumps({"results_dir": str(args.results_dir)}))


if __name__ == "__main__":
    main()
