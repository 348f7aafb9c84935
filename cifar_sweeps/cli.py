"""Command line: train / run / resume / stop / leaderboard / serve / predict / weights."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from cifar_sweeps.errors import CifarSweepsError, SpecError
from cifar_sweeps.settings import Settings, load_settings
from cifar_sweeps.store.states import ENDED_WELL
from cifar_sweeps.sweepspec.metrics import DEFAULT_ORDER, STORED
from cifar_sweeps.sweepspec.schema import apply_overrides, format_validation_error


def _settings(args: argparse.Namespace) -> Settings:
    over = {}
    if getattr(args, "data", None):
        over["data"] = args.data
    if getattr(args, "results_dir", None):
        over["results_dir"] = args.results_dir
    if getattr(args, "store_url", None):
        over["store_url"] = args.store_url
    return load_settings(**over)


def _store(settings: Settings, writes: bool = False):
    from cifar_sweeps.store.queries import get_store

    if writes and not settings.store_url:
        from cifar_sweeps.store.artifacts import check_writable

        # The SQLite file lives in the results folder: say so plainly if it can't be
        # written (tuning/driver.py checks the free space, and records a failure in the store).
        check_writable(settings.results_dir, 0)
    return get_store(settings.resolved_store_url())


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from cifar_sweeps.training.data import load_splits
    from cifar_sweeps.training.train import TrainConfig, Trainer

    settings = _settings(args)
    fields = TrainConfig.model_fields
    recipe, data = _recipe(args.recipe) if args.recipe else ({}, {})
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    model_args = {**recipe.pop("model_args", {}), **_model_args(args.model_arg or [])}
    try:
        cfg = TrainConfig(**{**recipe, **given}, model_args=model_args)
    except ValidationError as e:
        raise SpecError(format_validation_error(e)) from None
    val_fraction = args.val_fraction if args.val_fraction is not None else data.get("val_fraction", 0.2)
    splits = load_splits(settings.data, settings.cache_dir, val_fraction, args.split_seed, image_size=args.image_size)
    if args.train_subset:
        from cifar_sweeps.training.data import train_subset

        splits = train_subset(splits, args.train_subset, args.split_seed)
    pretrained = None
    if cfg.pretrained:
        from cifar_sweeps.training.weights import load_staged

        pretrained = load_staged(cfg.model, settings.weights_dir)
    trainer = Trainer(cfg, splits, pretrained_state=pretrained)
    print(
        f"train {cfg.model} on {trainer.device}: {splits.sizes}, {len(splits.classes)} classes at "
        f"{splits.image_size}x{splits.image_size}, normalize {trainer.normalize}, "
        f"precision {trainer.precision} ({trainer.precision_why})",
        flush=True,
    )

    def on_epoch(m, _t):
        print(
            f"epoch {m.epoch:3d}/{cfg.epochs}  train_loss {m.train_loss:.4f}  train_acc {m.train_acc:.4f}  "
            f"val_loss {m.val_loss:.4f}  val_acc {m.val_acc:.4f}  lr {m.lr:.4g}  "
            f"{m.seconds:.1f}s  {m.images_per_s:.0f} img/s",
            flush=True,
        )

    result = trainer.run(on_epoch)
    best = (
        "no validation split: the last epoch's weights"
        if not len(splits.y_val)
        else (f"best val_acc {result.best_val_acc:.4f} at epoch {result.best_epoch}")
    )
    print(f"{best}; test_acc {result.test_acc:.4f}", flush=True)
    if args.save:
        import torch

        Path(args.save).parent.mkdir(parents=True, exist_ok=True)
        torch.save(trainer.best_model_file(), args.save)
        print(f"saved best model to {args.save}")
    return 0


def _recipe(name: str) -> tuple[dict, dict]:
    """A preset's training recipe: its fixed config with its first point to evaluate (its
    known-good point), and its data options."""
    from cifar_sweeps.sweepspec.presets import read
    from cifar_sweeps.sweepspec.schema import parse_spec

    spec = parse_spec(read(name))
    points = spec.search.points_to_evaluate
    cfg = {**spec.fixed, **(points[0] if points else {})}
    return {k: v for k, v in cfg.items() if not isinstance(v, dict) or k == "model_args"}, spec.data.model_dump()


def _model_args(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key:
            raise SpecError(f"--model-arg {item!r}: expected NAME=VALUE, e.g. channels=32")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


# ---------------------------------------------------------------- sweeps


def _spec_for_run(args: argparse.Namespace, settings: Settings):
    """The spec file (or preset) named on the command line."""
    from cifar_sweeps.sweepspec.schema import load_spec_file

    if not args.spec:
        raise SpecError("give a spec file (or preset name), or --sweep-id of a stored sweep")
    return load_spec_file(args.spec, settings)


def _edited_spec(args: argparse.Namespace, settings, store):
    from cifar_sweeps.sweepspec.schema import parse_spec

    spec = _spec_for_run(args, settings)
    update = {}
    if getattr(args, "name", None):
        update["name"] = args.name
    if getattr(args, "num_samples", None):
        update["num_samples"] = args.num_samples
    if update or args.set:
        spec = parse_spec(
            apply_overrides({**spec.model_dump(mode="json", exclude_unset=True), **update}, args.set or []), settings
        )
    return spec


def _plan(spec, settings, store, as_json: bool = False, replay: str | None = None, replay_seeds: int = 20):
    from cifar_sweeps.analysis.plan import describe
    from cifar_sweeps.cluster.resources import named_cluster_url
    from cifar_sweeps.usecases.submit import plan_spec

    plan = plan_spec(spec, settings, store, named_cluster_url(settings), replay, replay_seeds, allow_path=True)
    print(plan.model_dump_json(indent=2) if as_json else describe(plan), flush=True)
    return plan


def cmd_plan(args: argparse.Namespace) -> int:
    """The spec's cost on this machine; nothing is stored and nothing is submitted."""
    settings = _settings(args)
    store = _store(settings)
    _plan(_edited_spec(args, settings, store), settings, store, args.json, args.replay, args.replay_seeds)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Trials side by side: what differs in their configurations, their scores."""
    from cifar_sweeps.analysis.compare import compare, describe_comparison

    out = compare(_store(_settings(args)), args.trial_ids)
    print(out.model_dump_json(indent=2) if args.json else describe_comparison(out))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cifar_sweeps.usecases.drive import drive, run_local

    settings = _settings(args)
    store = _store(settings, writes=not args.dry_run)
    if args.sweep_id:  # a sweep the API stored and planned (a job of an earlier version names it so)
        if args.spec or args.set or args.name or args.num_samples or args.dry_run:
            raise SpecError("--sweep-id runs the stored sweep's own spec: give no spec, --set, --name or --dry-run")
        ended_well = drive(args.sweep_id, settings, store, "run")
        _print_leaderboard(store, args.sweep_id, 10, False)
        return 0 if ended_well else 1
    sweep_id, _ = run_local(_edited_spec(args, settings, store), settings, store, args.dry_run)
    if sweep_id is None:
        return 0
    _print_leaderboard(store, sweep_id, 10, False)
    return 0 if store.get_sweep(sweep_id).status in ENDED_WELL else 1


def cmd_resume(args: argparse.Namespace) -> int:
    from cifar_sweeps.usecases.drive import drive

    settings = _settings(args)
    store = _store(settings, writes=True)
    ended_well = drive(args.sweep_id, settings, store, "resume", retry_errored=not args.no_retry_errored)
    _print_leaderboard(store, args.sweep_id, 10, False)
    return 0 if ended_well else 1


def cmd_repeat(args: argparse.Namespace) -> int:
    from cifar_sweeps.usecases import again

    settings = _settings(args)
    store = _store(settings, writes=True)
    again.run_here(store, settings, again.repeat(store, args.sweep_id, args.top, args.seeds))
    _print_groups(store, args.sweep_id, 10, "table")
    return 0 if store.get_sweep(args.sweep_id).status in ENDED_WELL else 1


def cmd_continue(args: argparse.Namespace) -> int:
    """An ended trial trained on from its last checkpoint, a new row of its sweep; runs here."""
    from cifar_sweeps.usecases import again

    settings = _settings(args)
    store = _store(settings, writes=True)
    sweep_id = again.run_here(store, settings, again.continue_trial(store, args.trial_id, args.epochs, settings))
    _print_leaderboard(store, sweep_id, 10, False)
    return 0 if store.get_sweep(sweep_id).status in ENDED_WELL else 1


def cmd_extend(args: argparse.Namespace) -> int:
    """More search trials for an ended sweep, the searcher's state carried; runs them here."""
    from cifar_sweeps.usecases import again

    settings = _settings(args)
    store = _store(settings, writes=True)
    sweep_id = again.run_here(store, settings, again.extend(store, args.sweep_id, args.trials, settings))
    _print_leaderboard(store, sweep_id, 10, False)
    return 0 if store.get_sweep(sweep_id).status in ENDED_WELL else 1


def cmd_refit(args: argparse.Namespace) -> int:
    """An ended sweep's best configuration refit on every training image; runs here."""
    from cifar_sweeps.usecases import again

    settings = _settings(args)
    store = _store(settings, writes=True)
    sweep_id = again.run_here(store, settings, again.refit(store, args.sweep_id, settings))
    _print_leaderboard(store, sweep_id, 10, False)
    return 0 if store.get_sweep(sweep_id).status in ENDED_WELL else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from cifar_sweeps.store.lifecycle import request_stop

    settings = _settings(args)
    status = request_stop(_store(settings), args.sweep_id)  # NotFound naming it
    print(f"sweep {args.sweep_id}: {status}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Change a running sweep's limits; its driver applies them within seconds."""
    from cifar_sweeps.store.lifecycle import change_limits
    from cifar_sweeps.sweepspec.limits import LIVE_FIELDS, Limits

    settings = _settings(args)
    given = {
        "num_samples": args.num_samples,
        "max_concurrent_trials": args.max_concurrent,
        "time_budget_s": args.time_budget,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if args.no_time_budget:
        changes["time_budget_s"] = None
    try:
        limits = Limits.model_validate(changes)
    except ValidationError as e:  # none given, or a count under 1: names the field
        raise SpecError(format_validation_error(e)) from None
    sweep = change_limits(_store(settings), args.sweep_id, limits, settings)
    print(f"sweep {sweep.id}: " + ", ".join(f"{k} {sweep.spec.get(k)}" for k in LIVE_FIELDS))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Remove a sweep that is not running: its Tune folders, checkpoints, model files,
    cached exports and rows."""
    from cifar_sweeps.store.cleanup import delete_sweep

    settings = _settings(args)
    freed = delete_sweep(settings, _store(settings, writes=True), args.sweep_id)  # refused while it runs
    print(f"sweep {args.sweep_id}: deleted, {freed / 2**20:.1f} MiB freed")
    return 0


def cmd_du(args: argparse.Namespace) -> int:
    """The disk each sweep and the data cache use."""
    from cifar_sweeps.store.cleanup import disk_use

    settings = _settings(args)
    use = disk_use(settings, _store(settings))
    if args.json:
        print(use.model_dump_json(indent=2))
        return 0
    mib = lambda b: f"{b / 2**20:10.1f} MiB"  # noqa: E731
    for s in use.sweeps:
        print(f"{mib(s.bytes)}  {s.sweep_id}  {s.name} ({s.status})")
    print(f"{mib(use.data_cache_bytes)}  the data cache (decoded data sets, shared)")
    print(f"{mib(use.other_bytes)}  the rest (the store's file, logs)")
    print(f"{mib(use.total_bytes)}  in all")
    return 0


def _fmt(x, spec=".4f") -> str:
    return "-" if x is None else format(x, spec)


def _print_leaderboard(
    store,
    sweep_id: str | None,
    top: int,
    as_json: bool,
    model: str | None = None,
    filters: list[str] | None = None,
    statuses: list[str] | None = None,
    as_csv: bool = False,
    sort: str = DEFAULT_ORDER,
    dataset: str | None = None,
) -> None:
    from cifar_sweeps.analysis.filters import parse_filters
    from cifar_sweeps.usecases.leaderboard import BoardQuery, read_board, to_csv, to_table

    query = BoardQuery(sweep_id, model, statuses or [], parse_filters(filters or []), 0, top, sort, dataset)
    items, total = read_board(store, query, lambda t: t.checkpoint_path)
    if as_csv:
        print(to_csv(items), end="")
        return
    if as_json:
        print(json.dumps({"items": [it.model_dump(mode="json") for it in items], "total": total}, indent=2))
        return
    print(to_table(items, total, one_sweep=bool(sweep_id)))


def _print_groups(
    store,
    sweep_id: str | None,
    top: int,
    form: str,
    model: str | None = None,
    filters: list[str] | None = None,
    statuses: list[str] | None = None,
) -> None:
    """The grouped leaderboard (one row per configuration over its seeds), as GET
    /leaderboard?group=config gives it."""
    from cifar_sweeps.analysis.filters import parse_filters
    from cifar_sweeps.usecases.leaderboard import BoardQuery, groups_csv, read_groups

    board = read_groups(store, BoardQuery(sweep_id, model, statuses or [], parse_filters(filters or []), 0, top))
    items = board.items
    if form == "csv":
        print(groups_csv(items), end="")
        return
    if form == "json":
        body = {"items": [it.model_dump(mode="json") for it in items], "total": board.total}
        print(json.dumps(body | {"trials": board.trials}, indent=2))
        return
    head = f"{'rank':>4}  {'n':>2} {'val_acc mean [95% interval]':<30} {'test_acc mean':>13}  {'model':<14}"
    print(f"{head} vs next; config")
    for it in items:
        ci = f"[{_fmt(it.val_acc_low)}, {_fmt(it.val_acc_high)}]" if it.n > 1 else "(one run)"
        mark = {True: "better", False: "TIE?", None: "-"}[it.distinct_from_next]
        cfg = ", ".join(
            f"{k}={_fmt(v, '.4g') if isinstance(v, float) else v}" for k, v in it.config.items() if k != "model"
        )
        print(
            f"{it.rank:>4}  {it.n:>2} {_fmt(it.val_acc_mean)} {ci:<23} {_fmt(it.test_acc_mean):>13}  "
            f"{it.model:<14} {mark:<6}  {cfg}"
        )
    print(
        f"({len(items)} of {board.total} configurations; TIE?: not distinguishable from the next row, "
        "Welch's t-test at 5 %)"
    )


def cmd_pareto(args: argparse.Namespace) -> int:
    """The sweep's trials over two stored metrics, each with its Pareto rank (GET
    /sweeps/{id}/pareto)."""
    from cifar_sweeps.usecases.leaderboard import csv_cell
    from cifar_sweeps.usecases.pareto import pareto_out

    store = _store(_settings(args))
    sweep = store.sweep(args.sweep_id)
    out = pareto_out(sweep.id, sweep.spec or {}, store.trials(sweep.id), args.x, args.y, lambda t: t.checkpoint_path)
    if args.json:
        print(out.model_dump_json(indent=2))
        return 0
    if args.csv:
        import csv as csv_module

        w = csv_module.writer(sys.stdout, lineterminator="\n")
        w.writerow(["rank", "trial_id", "model", out.x, out.y, "config"])
        for p in out.items:
            w.writerow([p.rank, p.trial_id, p.model, p.x, p.y, csv_cell(json.dumps(p.config, sort_keys=True))])
        return 0
    print(f"sweep {sweep.id}: {out.x} ({out.x_mode}) against {out.y} ({out.y_mode}); front: {len(out.front)} trials")
    print(f"{'front':>5}  {'trial':<30} {'model':<18} {out.x:>16} {out.y:>14}")
    for p in out.items:
        print(f"{p.rank:>5}  {p.trial_id:<30} {p.model:<18} {p.x:>16.6g} {p.y:>14.6g}")
    if out.skipped:
        print(f"({out.skipped} completed trials lack one of the two metrics)")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from cifar_sweeps.store.lifecycle import reconcile_local_drivers

    settings = _settings(args)
    store = _store(settings)
    reconcile_local_drivers(store)  # a terminal run killed since reads interrupted, as GET /sweeps says
    if args.group:
        form = "csv" if args.csv else "json" if args.json else "table"
        _print_groups(store, args.sweep, args.top, form, args.model, args.filter, args.status)
        return 0
    _print_leaderboard(
        store, args.sweep, args.top, args.json, args.model, args.filter, args.status, args.csv, args.sort, args.dataset
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from cifar_sweeps.service.serve import serve

    return serve(_settings(args), args.host, args.port, submit=args.submit, access_log=args.access_log)


def cmd_predict(args: argparse.Namespace) -> int:
    from cifar_sweeps.training.predict import classify, decode
    from cifar_sweeps.training.train import read_model_file

    mf = read_model_file(args.model_file)  # the trial's own size, input statistics and classes
    for f in args.images:
        label, prob = classify(mf, [decode(f, Path(f).read_bytes())], k=1)[0][0]
        print(f"{f}: {label} ({prob:.3f})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A trial's best model as ONNX or TorchScript, its preprocessing inside (export.py)."""
    from cifar_sweeps.sdk import export_model

    out = export_model(args.trial_id, args.output, args.format, settings=_settings(args))
    print(f"{args.trial_id}: {args.format} written to {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Every model a spec may name: the zoo's, then installed plug-ins' (registry.py)."""
    from cifar_sweeps.sweepspec import registry

    items = list(registry.models().values())
    if args.json:
        print(json.dumps([m.model_dump() for m in items], indent=2))
        return 0
    print(f"{'model':<22} {'kind':<7} {'source':<28} {'input':<8} notes")
    for m in items:
        source = f"{m.source} {m.version}" if m.version else m.source
        size = f"{m.image_size}x{m.image_size}" if m.image_size else "any"
        print(f"{m.name:<22} {m.kind:<7} {source:<28} {size:<8} {m.notes or m.target}")
    print(f'(plug-ins: packages that register a builder under the entry-point group "{registry.GROUP}")')
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from cifar_sweeps.analysis.importance import importance
    from cifar_sweeps.sweepspec.schema import parse_spec

    store = _store(_settings(args))
    sweep = store.sweep(args.sweep_id)
    result = importance(parse_spec(sweep.spec), sweep.id, store.trials(sweep.id))
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(
        f"sweep {sweep.id}: {result.metric} ({result.direction}), {result.trials_used} finished trials, "
        f"best region from the top {result.top_trials}; importance by {result.evaluator}"
    )
    print(f"{'parameter':<20} {'importance':>10}  best region")
    for p in result.params:
        region = (
            ", ".join(map(str, p.best_values))
            if p.best_values is not None
            else f"{p.best_low:.4g} .. {p.best_high:.4g}{' (log scale)' if p.log else ''}"
        )
        print(f"{p.name:<20} {p.importance:>10.3f}  {region}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from cifar_sweeps.sweepspec import presets
    from cifar_sweeps.sweepspec.schema import parse_spec

    if args.name:
        print(presets.read(args.name), end="")
        return 0
    for name in presets.names():
        spec = parse_spec(presets.read(name))
        print(f"{name:<20} {spec.total_trials():>4} trials  {spec.description[:90]}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from cifar_sweeps.training import weights as w

    d = _settings(args).weights_dir
    if args.action == "fetch":
        staged = [w.fetch_weights(args.model, d)]
    elif args.action == "import":
        staged = [w.import_weights(args.model, args.file, d)]
    else:
        staged = w.list_weights(d)
        if not staged:
            print(
                f"no weights staged in {d}; stage them with `cifar-sweeps weights fetch resnet50` "
                "or `cifar-sweeps weights import resnet50 FILE`"
            )
            return 0
    for s in staged:
        print(f"{s.name:<10} {s.size_mb:7.1f} MiB  backbone sha256 {s.backbone_sha256[:16]}  {s.path}")
    return 0


# ---------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data source (default: CIFAR_SWEEPS_DATA or torchvision download)")
    p.add_argument("--results-dir", help="results folder (default: CIFAR_SWEEPS_RESULTS_DIR or ./results)")
    p.add_argument("--store-url", help="SQLAlchemy URL of the store (default: SQLite under results)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from cifar_sweeps.sweepspec.config import ACTIVATIONS, LR_SCHEDULES, OPTIMIZERS

    p.add_argument("--model", help="a model name (`cifar-sweeps models` lists them; default simple_cnn)")
    p.add_argument(
        "--model-arg",
        dest="model_arg",
        action="append",
        metavar="NAME=VALUE",
        help="a plug-in model's argument, VALUE as JSON (repeatable)",
    )
    p.add_argument("--image-size", dest="image_size", type=int, default=32, help="images resized to this square")
    p.add_argument("--activation", choices=list(ACTIVATIONS))
    p.add_argument("--dropout", type=float)
    p.add_argument("--width", type=float, help="channel multiplier of airbench (default 1)")
    p.add_argument("--depth", type=int, help="conv layers after each pool of airbench (default 1)")
    p.add_argument("--nesterov", action="store_true", default=None)
    p.add_argument("--recipe", help="start from a preset's training config and first point, e.g. cpu-fast")
    _method_args(p)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr-schedule", "--scheduler", dest="lr_schedule", choices=LR_SCHEDULES, help="default none")
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--gamma", type=float)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    p.add_argument("--crop-padding", dest="crop_padding", type=int)
    p.add_argument("--cutout", type=int)
    p.add_argument("--no-flip", dest="flip", action="store_false", default=None)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--normalize",
        choices=["auto", "cifar", "report", "imagenet", "dataset"],
        help="input statistics: auto (default: CIFAR-10's on its classes, else the training split's own), "
        "cifar, report (0.5, 0.5), imagenet, dataset",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        default=None,
        help="start resnet50 from the staged ImageNet weights (see `weights`)",
    )
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--val-fraction",
        dest="val_fraction",
        type=float,
        help="default 0.2, or the recipe's; 0: train on every training image, keep the last epoch",
    )
    p.add_argument("--split-seed", dest="split_seed", type=int, default=0)
    p.add_argument("--train-subset", dest="train_subset", type=int)
    p.add_argument("--save", help="write the best model file here")


def _method_args(p: argparse.ArgumentParser) -> None:
    """airbench's method (airbench_method.py) and the arithmetic, each a TrainConfig field."""
    from cifar_sweeps.sweepspec.config import PRECISIONS

    p.add_argument(
        "--tta",
        nargs="?",
        const=1,
        type=int,
        choices=[0, 1, 2],
        help="test-time augmentation: 1 (the flag alone) image + mirror, 2 also 1-pixel shifts (6 views)",
    )
    p.add_argument("--precision", choices=list(PRECISIONS), help="auto (default): bf16 where the CPU/GPU has it")
    p.add_argument("--whiten", action="store_true", default=None, help="airbench: a patch-whitening first layer")
    p.add_argument("--dirac", action="store_true", default=None, help="airbench: identity-initialized 3x3 convs")
    p.add_argument("--lookahead", action="store_true", default=None, help="pull the weights to their EMA every 5 steps")
    p.add_argument("--alternate-flip", dest="alternate_flip", action="store_true", default=None)
    p.add_argument("--bn-bias-lr", dest="bn_bias_lr", type=float, help="lr multiplier of BatchNorm biases")
    p.add_argument("--bn-momentum", dest="bn_momentum", type=float, help="BatchNorm running-stats momentum")
    p.add_argument("--freeze-bn-weight", dest="freeze_bn_weight", action="store_true", default=None)
    p.add_argument(
        "--test-at-end",
        dest="test_on_best",
        action="store_false",
        default=None,
        help="evaluate test once, on the best weights at the end (default: each time val improves)",
    )


PARETO_CHOICES = tuple(STORED)  # metrics.py: the metrics a front or an order takes


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cifar-sweeps", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="one training run, no Ray")
    _common(p)
    _train_args(p)
    p.set_defaults(fn=cmd_train)

    _run_parsers(sub)

    p = sub.add_parser("resume", help="continue an interrupted or stopped sweep")
    p.add_argument("sweep_id")
    _common(p)
    p.add_argument("--no-retry-errored", action="store_true", help="leave errored trials as they are")
    p.set_defaults(fn=cmd_resume)

    p = sub.add_parser("repeat", help="train an ended sweep's best configurations again over more seeds")
    p.add_argument("sweep_id")
    _common(p)
    p.add_argument("--top", type=int, required=True, help="how many of the best configurations (1-20)")
    p.add_argument("--seeds", type=int, required=True, help="runs per configuration, the first included (2-10)")
    p.set_defaults(fn=cmd_repeat)

    _control_parsers(sub)
    _cleanup_parsers(sub)

    _leaderboard_parser(sub)

    p = sub.add_parser("serve", help="the HTTP API and leaderboard page")
    _common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--submit", help="a spec (file or preset name) to submit once the service is up")
    p.add_argument("--access-log", action="store_true", help="a line per request (off: the page polls)")
    p.set_defaults(fn=cmd_serve)

    _weights_parser(sub)
    _pareto_parser(sub)
    _compare_parser(sub)
    p = sub.add_parser("analyze", help="parameter importance and best regions of a sweep")
    p.add_argument("sweep_id")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_analyze)
    p = sub.add_parser("presets", help="the sweep specs that ship with cifar-sweeps (search_spaces/)")
    p.add_argument("name", nargs="?", help="print this preset's JSON")
    p.set_defaults(fn=cmd_presets)
    _model_parsers(sub)
    return ap


def _control_parsers(sub) -> None:
    p = sub.add_parser("update", help="change a running sweep's trial count, concurrency or time budget")
    p.add_argument("sweep_id")
    p.add_argument("--num-samples", type=int, help="trials in all (those started count)")
    p.add_argument("--max-concurrent", type=int, help="trials at once")
    p.add_argument("--time-budget", type=float, help="seconds from the driver's start")
    p.add_argument("--no-time-budget", action="store_true", help="remove the time budget")
    _common(p)
    p.set_defaults(fn=cmd_update)
    p = sub.add_parser("extend", help="add search trials to an ended sweep, the searcher's state carried")
    p.add_argument("sweep_id")
    p.add_argument("--trials", type=int, required=True, help="how many search trials to add")
    _common(p)
    p.set_defaults(fn=cmd_extend)
    p = sub.add_parser("refit", help="train an ended sweep's best configuration again on every training image")
    p.add_argument("sweep_id")
    _common(p)
    p.set_defaults(fn=cmd_refit)
    p = sub.add_parser("continue", help="train an ended trial more epochs from its last checkpoint, as a new row")
    p.add_argument("trial_id")
    p.add_argument("--epochs", type=int, required=True, help="how many epochs more")
    _common(p)
    p.set_defaults(fn=cmd_continue)
    p = sub.add_parser("stop", help="stop a running sweep; results are kept")
    p.add_argument("sweep_id")
    _common(p)
    p.set_defaults(fn=cmd_stop)


def _model_parsers(sub) -> None:
    p = sub.add_parser("models", help="every model a spec may name: the zoo's and installed plug-ins'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("export", help="a trial's best model as ONNX or TorchScript, preprocessing inside")
    p.add_argument("trial_id")
    _common(p)
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("-o", "--output", required=True, help="the file to write")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("predict", help="classify images with a downloaded model file")
    p.add_argument("model_file")
    p.add_argument("images", nargs="+")
    p.set_defaults(fn=cmd_predict)


def _run_parsers(sub) -> None:
    p = sub.add_parser("run", help="run a sweep spec to the end (also as a Ray job)")
    p.add_argument("spec", nargs="?", help="a spec JSON file, or the name of a preset in search_spaces/")
    _common(p)
    p.add_argument("--name")
    p.add_argument("--num-samples", type=int)
    p.add_argument("--sweep-id", help="run this stored sweep (created by the API) with its own spec")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="edit the spec, e.g. --set fixed.epochs=15 --set resources_per_trial.gpu=0 (repeatable)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan (cost) and stop: nothing runs or is stored")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("plan", help="what a spec will cost on this machine: trials, epochs, wall time, memory")
    p.add_argument("spec", help="a spec JSON file, or the name of a preset")
    _common(p)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="edit the spec, as `run --set`")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--replay",
        metavar="TASK",
        help="also replay the spec's searcher and scheduler on a tabulated task (mlp, airbench, tinynet: "
        "benchmarks/tables; or a table's CSV path) and print the expected best accuracy against simulated seconds",
    )
    p.add_argument("--replay-seeds", type=int, default=20, help="seeds of the replay (1-200; default 20)")
    p.set_defaults(fn=cmd_plan, sweep_id=None)


def _cleanup_parsers(sub) -> None:
    p = sub.add_parser("delete", help="remove a sweep that is not running: its files, checkpoints and rows")
    p.add_argument("sweep_id")
    _common(p)
    p.set_defaults(fn=cmd_delete)

    p = sub.add_parser("du", help="the disk each sweep and the data cache use")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_du)


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="trials side by side: what differs in their configurations, and their scores")
    p.add_argument("trial_ids", nargs="+", help="2 to 20 trial ids (the leaderboard's)")
    _common(p)
    p.add_argument("--json", action="store_true", help="the API's answer: the diff, the scores and the curves")
    p.set_defaults(fn=cmd_compare)


def _pareto_parser(sub) -> None:
    p = sub.add_parser("pareto", help="a sweep's Pareto front over two stored metrics (e.g. params and accuracy)")
    p.add_argument("sweep_id")
    _common(p)
    p.add_argument("--x", choices=list(PARETO_CHOICES), help="default: the first objective, else params")
    p.add_argument("--y", choices=list(PARETO_CHOICES), help="default: the second objective, else best_val_acc")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true")
    p.set_defaults(fn=cmd_pareto)


def _leaderboard_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="best trials across sweeps, or of one")
    _common(p)
    p.add_argument("--sweep")
    p.add_argument("--model")
    p.add_argument("--dataset", help="one data set only (the rows of every sweep are grouped by data set)")
    p.add_argument("--top", type=int, default=20)
    p.add_argument(
        "--filter",
        action="append",
        metavar="NAME:LOW..HIGH|NAME:V1,V2",
        help="a config parameter's range or values, e.g. lr:0.001..0.01 or batch_size:32,64 (repeatable)",
    )
    p.add_argument("--status", action="append", help="trial status, e.g. terminated (repeatable)")
    p.add_argument(
        "--group", action="store_true", help="one row per configuration over its seeds: n, mean, 95%% interval"
    )
    p.add_argument(
        "--sort", choices=list(PARETO_CHOICES), default=DEFAULT_ORDER, help="order by this metric, best first"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--csv", action="store_true", help="the rows as CSV, config parameters as columns")
    p.set_defaults(fn=cmd_leaderboard)


def _weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="stage pretrained weights: fetch (download), import (offline), list")
    wsub = p.add_subparsers(dest="action", required=True)
    q = wsub.add_parser("fetch", help="download through torchvision, hash-checked")
    q.add_argument("model", help="resnet50")
    q = wsub.add_parser("import", help="stage a file, for clusters without internet")
    q.add_argument("model", help="resnet50")
    q.add_argument("file", help="an ImageNet state dict file (e.g. resnet50-0676ba61.pth)")
    q = wsub.add_parser("list", help="what is staged")
    for q in wsub.choices.values():
        _common(q)
        q.set_defaults(fn=cmd_weights)


def _fail(args: argparse.Namespace, e: Exception, code: int) -> int:
    print(f"cifar-sweeps {args.command}: error: {e}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.fn(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except CifarSweepsError as e:  # each error knows its exit code (errors.py)
        return _fail(args, e, e.exit_code)
    except (FileNotFoundError, ValueError) as e:
        return _fail(args, e, 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cifar-sweeps presets | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
