"""Trials trained on (`cifar-sweeps continue TRIAL_ID --epochs N`, POST /trials/{id}/continue).

The sweep's spec lists what was asked (`continues`: a trial and how many epochs more); after
the search and the repeats, the driver trains each one still missing as a new row of the
sweep, linked to the trial it goes on from (`continue_of`): the same configuration, from that
trial's last checkpoint (weights, optimizer state, epoch count, random streams), up to its
epochs plus N. A learning-rate schedule shaped by the run's length (onecycle, linear, cosine)
starts a new segment over the N epochs from the configured lr (Trainer.continue_from); the
others go on where they were. The row's id is stable (`<source's Tune id>-c<N>`), so a
resumed driver skips the finished ones and runs an unfinished one again in its own row.

A continued trial is not a search trial: the repeats and the refit rank the search's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cifar_sweeps.analysis.ranking import CONTINUE_FROM, CONTINUE_OF, REPEAT_ID
from cifar_sweeps.store.artifacts import last_state
from cifar_sweeps.store.lifecycle import continue_id
from cifar_sweeps.store.states import TRIAL_COMPLETED


@dataclass(frozen=True)
class ContinueRun:
    source_id: str  # the store id of the trial it goes on from
    tune_trial_id: str  # lifecycle.continue_id(): the same row whenever it is retried
    epochs: int  # how many more
    state_file: str  # the source's last state (store/artifacts.last_state)


def plan_continues(trials: list, continues: list) -> list[ContinueRun]:
    """The continuations the spec asks for that have no completed row yet, in its order.
    SweepError when a source's last state is gone (store/artifacts.last_state)."""
    by_id = {t.id: t for t in trials}
    done = {t.tune_trial_id for t in trials if t.continue_of is not None and t.status in TRIAL_COMPLETED}
    runs = []
    for c in continues:
        source = by_id.get(c.trial)
        if source is None:  # deleted since it was asked for: nothing to go on from
            continue
        tid = continue_id(source.tune_trial_id, c.epochs)
        if tid not in done:
            runs.append(ContinueRun(source.id, tid, c.epochs, str(last_state(source.checkpoint_path))))
    return runs


def tune_config(run: ContinueRun, source_config: dict[str, Any], state_epoch: int) -> dict[str, Any]:
    """The continuation's Tune config: the source's, to its epochs so far plus `run.epochs`;
    the adapter's keys say where from (tuning/trainable.py takes them off)."""
    return {
        **source_config,
        "epochs": state_epoch + run.epochs,
        CONTINUE_OF: run.source_id,
        CONTINUE_FROM: run.state_file,
        REPEAT_ID: run.tune_trial_id,
    }


def state_epoch(state_file: str) -> int:
    """The epoch a state file was saved at (its last checkpoint may be older than the
    trial's last epoch when `checkpoint_every` > 1)."""
    import torch

    return int(torch.load(state_file, map_location="cpu", weights_only=True)["epoch"])
