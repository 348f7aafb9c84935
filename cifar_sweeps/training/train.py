"""The training loop, pure PyTorch and unaware of Ray.

`Trainer(cfg, splits).run(on_epoch)` trains for cfg.epochs epochs and calls `on_epoch` with
the epoch's metrics after each one. Its whole state (model, optimizer, scheduler, epoch,
RNGs, best weights, history) round-trips through `state_dict()` / `load_state_dict()`, so
a run restored from a checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from cifar_sweeps.errors import ModelError, NonFiniteLossError
from cifar_sweeps.sweepspec.config import LENGTH_SHAPED, LR_SCHEDULES, OPTIMIZERS, PBT_MUTABLE, TrainConfig  # noqa: F401 (re-exported)
from cifar_sweeps.sweepspec.epoch import EpochRecord
from cifar_sweeps.training import airbench_method, precision
from cifar_sweeps.training.data import Splits
from cifar_sweeps.training.loader import Augment, DeviceSplit, Stats, resolve_stats
from cifar_sweeps.training.models import MLP_WIDTHS, backbone_sha256, build_model


class EpochMetrics(EpochRecord):
    """An epoch as the trainer reports it: the record, and the run's best so far."""

    best_val_acc: float
    best_epoch: int
    test_acc: float | None = None  # of the best-validation weights so far


class FitResult(BaseModel):
    best_val_acc: float
    best_epoch: int
    test_acc: float | None
    epochs_run: int
    history: list[EpochMetrics]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_net(cfg: TrainConfig, pretrained_state: dict[str, torch.Tensor] | None, num_classes: int) -> nn.Module:
    return build_model(
        cfg.model,
        cfg.activation,
        cfg.dropout,
        cfg.pretrained,
        pretrained_state,
        cfg.width,
        cfg.depth,
        num_classes=num_classes,
        model_args=cfg.model_args,
        whiten=cfg.whiten,
    )


def compiled(net: nn.Module, device_type: str) -> nn.Module:
    """torch.compile's net: CUDA graphs on CUDA (one launch per step instead of hundreds)."""
    mode = "reduce-overhead" if device_type == "cuda" else "default"
    return torch.compile(net, mode=mode)


def memory_format_for(cfg: TrainConfig) -> torch.memory_format:
    """channels_last for conv nets when asked (oneDNN on CPU and cuDNN on GPU both run NHWC
    convs faster, and the uint8 data is stored NHWC, so batches need no transpose); MLPs
    flatten their input, where NCHW order is the cheap one."""
    if cfg.channels_last and cfg.model not in MLP_WIDTHS:
        return torch.channels_last
    return torch.contiguous_format


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_lr_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """Returns (scheduler, steps_per_batch): onecycle and linear step every batch, the rest
    per epoch. Each param group keeps its own peak lr (BatchNorm biases: bn_bias_lr x)."""
    s = cfg.lr_schedule
    if s == "none":
        return None, False
    if s == "linear":
        factor = airbench_method.linear_schedule(airbench_method.total_steps(cfg.epochs, steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(opt, factor), True
    if s == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma), False
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs), False
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], epochs=cfg.epochs, steps_per_epoch=steps_per_epoch
    ), True


class Trainer:
    """One training run over device-resident splits."""

    def __init__(
        self,
        cfg: TrainConfig,
        splits: Splits,
        device: torch.device | None = None,
        pretrained_state: dict[str, torch.Tensor] | None = None,
        test_epochs: frozenset[int] | None = None,
    ):
        """`pretrained_state`: the backbone's ImageNet weights when cfg.pretrained (loaded once by
        the caller: trials never read weight files). `test_epochs` (with cfg.test_on_best): where
        the run may be stopped (a scheduler's rungs); the best weights are tested there and at
        the last epoch, if untested. None: each time they improve."""
        self.cfg = cfg
        self.test_epochs = test_epochs
        self.device = device or resolve_device(cfg.device)
        if cfg.threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.cuda = self.device.type == "cuda"
        self.memory_format = memory_format_for(cfg)
        self.classes = tuple(splits.classes)
        self.image_size = int(splits.x_train.shape[1])
        self.model = build_net(cfg, pretrained_state, len(self.classes))
        # Which weights the backbone started from (sha256 of its tensors; None: random init).
        self.init_weights = backbone_digest(self.model) if cfg.pretrained else None
        airbench_method.initialize(self.model, cfg)
        self.model.to(self.device, memory_format=self.memory_format)
        # The compiled net shares self.model's parameters; self.model stays the module that
        # is saved, evaluated and exported (a compiled one's state names gain a prefix).
        self.train_net = compiled(self.model, self.device.type) if cfg.compile else self.model
        # The input statistics: named ones, or the training split's own (auto on other data).
        self.normalize, self.stats = resolve_stats(cfg.normalize, self.classes, splits.x_train)
        self.train = DeviceSplit(splits.x_train, splits.y_train, self.device, self.stats)
        self.val = DeviceSplit(splits.x_val, splits.y_val, self.device, self.stats)
        self.test = DeviceSplit(splits.x_test, splits.y_test, self.device, self.stats)
        if cfg.whiten:
            airbench_method.fit_whitening(
                self.model.whitening, self.train.normalize(self.train.x[: airbench_method.WHITEN_IMAGES])
            )
        # bf16 autocast where the hardware runs it natively (precision.py); said in the log.
        self.precision, self.precision_why = precision.resolve(cfg.precision, self.device.type)
        self.steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.opt = make_optimizer(
            cfg, airbench_method.param_groups(self.model, cfg.lr, cfg.weight_decay, cfg.bn_bias_lr)
        )
        self.peak_lrs = [g["lr"] for g in self.opt.param_groups]  # each group's lr before any schedule
        self.sched, self.sched_per_batch = make_lr_schedule(cfg, self.opt, self.steps_per_epoch)
        self.segment_start = 0  # the epoch this run's schedule began at (continue_from: a later one)
        total = airbench_method.total_steps(cfg.epochs, self.steps_per_epoch)
        self.lookahead = airbench_method.Lookahead(self.model, total) if cfg.lookahead else None
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch = 0
        self.best_val_acc = -1.0
        self.best_epoch = 0
        self.best_test_acc: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[EpochMetrics] = []

    # ------------------------------------------------------------ one epoch

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _epoch_setup(self) -> torch.Tensor | None:
        """Freeze the whitening bias once its epochs are over; this epoch's alternating flip
        mask (None: coin flips, or no flip)."""
        if self.cfg.whiten:
            self.model.whitening.bias.requires_grad_(self.epoch < self.cfg.whiten_bias_epochs)
        if self.cfg.flip and self.cfg.alternate_flip:
            return airbench_method.alternate_flip_mask(len(self.train), self.epoch, self.cfg.seed)
        return None

    def train_epoch(self) -> tuple[float, float, float]:
        """Returns (mean loss, accuracy, images/s) over the whole epoch."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        flip_mask = self._epoch_setup()
        t0 = time.perf_counter()
        batches = self.train.batches(
            self.cfg.batch_size,
            self.generator,
            Augment.of(self.cfg),
            memory_format=self.memory_format,
            flip_mask=flip_mask,
        )
        for step, (x, y) in enumerate(batches):
            with self._autocast():
                out = self.train_net(x)
            loss = self.loss_fn(out.float(), y)  # the loss in fp32, whatever the logits' dtype
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched_per_batch:
                self.sched.step()
            if self.lookahead is not None:
                self.lookahead.after_step((self.epoch - self.segment_start) * self.steps_per_epoch + step + 1)
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            # One host sync every 50 steps: catches a diverged run early without stalling the GPU.
            if step % 50 == 49 and not torch.isfinite(loss_sum):
                self._raise_non_finite()
        if not torch.isfinite(loss_sum):
            self._raise_non_finite()
        if self.sched is not None and not self.sched_per_batch:
            self.sched.step()
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        return loss_sum.item() / seen, correct.item() / seen, seen / max(seconds, 1e-9)

    def _raise_non_finite(self) -> None:
        raise NonFiniteLossError(
            f"training loss became NaN or infinite in epoch {self.epoch + 1} "
            f"(model {self.cfg.model}, optimizer {self.cfg.optimizer}, lr {self.cfg.lr}); "
            "try a lower learning rate"
        )

    @torch.no_grad()
    def evaluate(self, split: DeviceSplit) -> tuple[float, float]:
        """(mean loss, accuracy) without training augmentation; with TTA, the weighted mean
        of the logits of the level's views (airbench_method.tta_views)."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in split.batches(self.cfg.eval_batch_size, memory_format=self.memory_format):
            with self._autocast():
                out = airbench_method.tta_logits(self.model, x, self.cfg.tta)
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
        return loss_sum.item() / len(split), correct.item() / len(split)

    # ------------------------------------------------------------ the run

    def step_epoch(self) -> EpochMetrics:
        t0 = time.perf_counter()
        lr = self.opt.param_groups[-1]["lr"]  # the main group (BatchNorm biases may come first, scaled)
        train_loss, train_acc, ips = self.train_epoch()
        # No validation split (`cifar-sweeps train --val-fraction 0`: a final run on every
        # training image, as airbench trains): nothing to choose by, the last epoch is kept.
        val_loss, val_acc = self.evaluate(self.val) if len(self.val) else (math.nan, math.nan)
        self.epoch += 1
        if not len(self.val) or val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch = val_acc, self.epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best_test_acc = None  # of the previous best: this one is untested
        if self._test_due():
            # The current weights are the best ones when they just improved: no swap needed.
            self.best_test_acc = self.evaluate(self.test)[1] if self.best_epoch == self.epoch else self.test_best()
        m = EpochMetrics(
            epoch=self.epoch,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=lr,
            seconds=time.perf_counter() - t0,
            images_per_s=ips,
            best_val_acc=self.best_val_acc,
            best_epoch=self.best_epoch,
            test_acc=self.best_test_acc,
        )
        self.history.append(m)
        return m

    def _test_due(self) -> bool:
        """Whether the best weights are to be tested now: they are untested, and the run
        tests each new best, or may end after this epoch."""
        if not self.cfg.test_on_best or self.best_state is None or self.best_test_acc is not None:
            return False
        return self.test_epochs is None or self.epoch in self.test_epochs or self.epoch >= self.cfg.epochs

    def run(self, on_epoch: Callable[[EpochMetrics, Trainer], None] | None = None) -> FitResult:
        while self.epoch < self.cfg.epochs:
            m = self.step_epoch()
            if on_epoch is not None:
                on_epoch(m, self)
        if self.best_test_acc is None and self.best_state is not None:
            self.best_test_acc = self.test_best()
        return FitResult(
            best_val_acc=self.best_val_acc,
            best_epoch=self.best_epoch,
            test_acc=self.best_test_acc,
            epochs_run=self.epoch,
            history=self.history,
        )

    def test_best(self) -> float:
        """Test accuracy of the best-validation weights (the current weights stay in place)."""
        current = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.best_state)
        try:
            return self.evaluate(self.test)[1]
        finally:
            self.model.load_state_dict(current)

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.model_dump(),
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "lr_schedule": self.sched.state_dict() if self.sched is not None else None,
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.cuda else None,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "best_test_acc": self.best_test_acc,
            "best_state": self.best_state,
            "history": [m.model_dump() for m in self.history],
            "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None,
            "segment_start": self.segment_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        lrs = [g["lr"] for g in self.opt.param_groups]  # as saved, mid-schedule
        self.segment_start = state.get("segment_start", 0)
        if self.segment_start:  # a continuation's own state: its segment's schedule, then its place in it
            self._start_segment(self.cfg.epochs - self.segment_start)
        schedule = state.get("lr_schedule", state.get("scheduler"))  # its key before the rename
        if self.sched is not None and schedule is not None:
            self.sched.load_state_dict(schedule)
        for group, lr in zip(self.opt.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.epoch = state["epoch"]
        # RNG states are CPU byte tensors whatever the device: a state loaded with
        # map_location="cuda" carries them on the card, and set_state refuses that
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.best_val_acc = state["best_val_acc"]
        self.best_epoch = state["best_epoch"]
        self.best_test_acc = state["best_test_acc"]
        self.best_state = state["best_state"]
        self.history = [EpochMetrics(**m) for m in state["history"]]
        if self.lookahead is not None and state.get("lookahead") is not None:
            self.lookahead.load_state_dict(state["lookahead"])

    def retune(self, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """After load_state_dict of a state trained with config `saved`: what this run's config
        changes of PBT_MUTABLE takes effect in place, mid-schedule (population-based training).
        lr: every group's lr and the schedule's base and peak lrs scale by new/old, so the
        schedule goes on from where it was at the new level; weight decay: each group's, as
        the new config gives it; label smoothing: the loss is this config's already. Returns
        what changed, {key: (old, new)}."""
        changed = {
            k: (saved[k], getattr(self.cfg, k)) for k in PBT_MUTABLE if k in saved and saved[k] != getattr(self.cfg, k)
        }
        if "lr" in changed:
            ratio = self.cfg.lr / changed["lr"][0]
            for group in self.opt.param_groups:
                for key in ("lr", "initial_lr", "max_lr", "min_lr"):  # OneCycleLR keeps its phases' on the group
                    if key in group:
                        group[key] *= ratio
            if self.sched is not None and hasattr(self.sched, "base_lrs"):
                self.sched.base_lrs = [b * ratio for b in self.sched.base_lrs]
                self.sched._last_lr = [g["lr"] for g in self.opt.param_groups]
        if "weight_decay" in changed:
            fresh = airbench_method.param_groups(self.model, self.cfg.lr, self.cfg.weight_decay, self.cfg.bn_bias_lr)
            for group, new in zip(self.opt.param_groups, fresh, strict=True):
                group["weight_decay"] = new["weight_decay"]
        return changed

    def continue_from(self, state: dict[str, Any]) -> None:
        """Go on from another run's last state (a continuation: `cifar-sweeps continue`) up to
        cfg.epochs: its weights, optimizer state (momentum), lookahead, random streams and
        epoch count. The epochs from here are this run's own, so its best and history start
        empty. A schedule shaped by the run's length (onecycle, linear, cosine) can't be
        stretched without changing the epochs already trained, so it starts a new segment
        over the epochs left, from each group's configured lr (a warm restart); exponential
        and step go on decaying where they were, and none keeps the lr."""
        self.load_state_dict(state)
        self.best_val_acc, self.best_epoch, self.best_test_acc, self.best_state = -1.0, 0, None, None
        self.history = []
        left = self.cfg.epochs - self.epoch
        if left < 1:
            raise ValueError(f"the state is at epoch {self.epoch}: nothing is left of {self.cfg.epochs} epochs")
        self.segment_start = self.epoch
        self._start_segment(left)

    def _start_segment(self, epochs: int) -> None:
        """A new schedule segment of `epochs` (a length-shaped schedule from each group's
        configured lr; the lookahead's pull over the segment's steps, its average kept)."""
        if self.cfg.lr_schedule in LENGTH_SHAPED:
            for group, peak in zip(self.opt.param_groups, self.peak_lrs, strict=True):
                for key in ("initial_lr", "max_lr", "min_lr"):  # the schedule before, on the groups
                    group.pop(key, None)
                group["lr"] = peak
            segment = self.cfg.model_copy(update={"epochs": epochs})
            self.sched, self.sched_per_batch = make_lr_schedule(segment, self.opt, self.steps_per_epoch)
        if self.lookahead is not None:
            ema = self.lookahead.state_dict()
            self.lookahead = airbench_method.Lookahead(
                self.model, airbench_method.total_steps(epochs, self.steps_per_epoch)
            )
            self.lookahead.load_state_dict(ema)

    def best_model_file(self) -> dict[str, Any]:
        """What a user downloads: the best weights and what is needed to rebuild the model
        and feed it: its input statistics, image size and class names (plain data only, so
        it loads with weights_only)."""
        return {
            "model": self.cfg.model,
            "activation": self.cfg.activation,
            "dropout": self.cfg.dropout,
            "width": self.cfg.width,
            "depth": self.cfg.depth,
            "model_args": dict(self.cfg.model_args),
            "normalize": self.normalize,
            "mean": list(self.stats[0]),
            "std": list(self.stats[1]),
            "classes": list(self.classes),
            "image_size": self.image_size,
            "config": self.cfg.model_dump(mode="json"),
            "init_weights": self.init_weights,
            "state_dict": self.best_state,
            "val_acc": self.best_val_acc,
            "epoch": self.best_epoch,
            "test_acc": self.best_test_acc,
        }


def test_model_blob(blob: dict[str, Any], splits: Splits) -> float:
    """The test accuracy of a model file's weights (a `best_model_file` dict), measured the
    way its run measures it (its TTA level, precision, input statistics and layout): for a
    best model whose run was stopped before it tested it."""
    cfg = TrainConfig(**blob["config"]).model_copy(update={"pretrained": False, "threads": None})
    trainer = Trainer(cfg, splits)
    trainer.model.load_state_dict(blob["state_dict"])
    return trainer.evaluate(trainer.test)[1]


class ModelFile(BaseModel):
    """A model file's model and what feeding it takes (files written before a field existed
    get CIFAR-10's: 32x32 images, its classes, the named statistics)."""

    model_config = {"arbitrary_types_allowed": True}

    model: Any  # the nn.Module, in eval mode
    normalize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]
    image_size: int
    meta: dict[str, Any]  # the model's name, config and scores, for an export's metadata

    @property
    def stats(self) -> Stats:
        return self.mean, self.std


def load_model_file(path) -> nn.Module:
    """Rebuild a model from a file written by `best_model_file` (weights_only: no pickled code)."""
    return read_model_file(path).model


def load_model_blob(path) -> tuple[nn.Module, str]:
    """The model of a model file and the name of its input normalization."""
    f = read_model_file(path)
    return f.model, f.normalize


MAX_FILE_CLASSES = 10_000  # as an image folder may have (data.MAX_CLASSES)


def _check_model_file(blob: dict[str, Any], classes: tuple) -> None:
    """A model file is checked as a spec is before anything is built from it: a registered
    model (no module path), its arguments, width, depth and dropout as TrainConfig takes
    them, an image size a spec may ask for, and a sane class list."""
    from pydantic import ValidationError

    from cifar_sweeps.sweepspec.schema import DataConfig

    fields = {k: blob[k] for k in ("model", "activation", "dropout", "width", "depth", "model_args") if k in blob}
    try:
        TrainConfig.model_validate(fields)
        DataConfig.model_validate({"image_size": int(blob.get("image_size") or 32)})
    except (ValidationError, TypeError, ValueError) as e:
        raise ModelError(f"the model file can't be used: {e}") from None
    if not 2 <= len(classes) <= MAX_FILE_CLASSES or not all(isinstance(c, str) and len(c) <= 256 for c in classes):
        raise ModelError(f"the model file can't be used: {len(classes)} classes, or a class name that is not text")


def read_model_file(path) -> ModelFile:
    from cifar_sweeps.training.data import CLASSES
    from cifar_sweeps.training.loader import NORMALIZATIONS

    blob = torch.load(path, map_location="cpu", weights_only=True)
    classes = tuple(blob.get("classes") or CLASSES)
    _check_model_file(blob, classes)
    model = build_model(
        blob["model"],
        blob["activation"],
        blob["dropout"],
        width=blob.get("width", 1.0),
        depth=blob.get("depth", 1),
        num_classes=len(classes),
        model_args=blob.get("model_args") or {},
        whiten=bool((blob.get("config") or {}).get("whiten")),
    )
    model.load_state_dict(blob["state_dict"])
    normalize = blob.get("normalize") or "cifar"
    mean, std = (blob["mean"], blob["std"]) if "mean" in blob else NORMALIZATIONS[normalize]
    meta = {k: blob.get(k) for k in ("model", "model_args", "config", "val_acc", "test_acc", "epoch")}
    return ModelFile(
        model=model.eval(),
        normalize=normalize,
        mean=tuple(mean),
        std=tuple(std),
        classes=classes,
        image_size=int(blob.get("image_size") or 32),
        meta=meta,
    )


def backbone_digest(model: nn.Module) -> str:
    return backbone_sha256(model.state_dict())


def fit(cfg: TrainConfig, splits: Splits, on_epoch=None) -> FitResult:
    return Trainer(cfg, splits).run(on_epoch)


# Inference latency is measured on the trial's own device, the same way for every trial:
# per image, at batch 1 (a served request) and at a large batch (offline scoring).
LATENCY_BATCH = 128
LATENCY_REPEATS_B1 = 20  # timed single-image passes (median), after 3 untimed ones
LATENCY_REPEATS_BATCH = 2  # timed large-batch passes (median), after 1 untimed one


def cost_metrics(trainer: Trainer) -> dict[str, float]:
    """The model's parameter count and inference latency in ms per image at batch 1 and at
    LATENCY_BATCH: what a model costs to ship, beside what it scores (a few seconds)."""
    model, device = trainer.model, trainer.device
    was_training = model.training
    model.eval()

    def per_image_ms(batch: int, repeats: int, warm: int) -> float:
        size = trainer.image_size
        x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=trainer.memory_format)
        times = []
        with torch.inference_mode():
            for i in range(warm + repeats):
                if trainer.cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if trainer.cuda:
                    torch.cuda.synchronize()
                if i >= warm:
                    times.append((time.perf_counter() - t0) * 1000 / batch)
        return sorted(times)[len(times) // 2]

    try:
        return {
            "params": float(sum(p.numel() for p in model.parameters())),
            "latency_ms": per_image_ms(1, LATENCY_REPEATS_B1, 3),
            "latency_ms_batch": per_image_ms(LATENCY_BATCH, LATENCY_REPEATS_BATCH, 1),
        }
    finally:
        model.train(was_training)
