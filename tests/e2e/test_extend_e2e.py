"""An ended sweep extended through the served API (POST /sweeps/{id}/extend), on a real Ray
head: the new trials are those its searcher suggests after the old ones (the same as one
sweep of that many trials from the same seed gives), in the same sweep, and the refit follows
the best configuration (tuning/live.py, lifecycle.extend). Then a trial of it is trained on
(POST /trials/{id}/continue, tuning/continued.py) as a new row that counts its epochs on."""

from __future__ import annotations

import httpx
import pytest

from cifar_sweeps.tuning.refit import plan_refit
from tests.helpers.service import Service

pytestmark = pytest.mark.slow

SPEC = {
    "name": "grow",
    "num_samples": 3,
    "max_concurrent_trials": 1,  # one at a time: the searcher sees every result before it suggests
    "scheduler": {"type": "fifo"},
    "search": {"algorithm": "hyperopt", "seed": 3, "n_initial_points": 2},
    "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.0005, "high": 0.2}},
    "refit": True,
}
ENDED = {"succeeded", "failed", "stopped", "interrupted"}


def _search_lrs(svc: Service, sweep_id: str) -> list[float]:
    return [t.config["lr"] for t in svc.store.trials(sweep_id) if t.refit_of is None]


def test_an_extended_sweep_carries_its_searchers_state_and_refits_the_best(ray_head, tmp_path):
    svc = Service(ray_head, tmp_path / "results").start()
    try:
        grown = httpx.post(f"{svc.base}/sweeps", json=SPEC, timeout=60).json()["id"]
        assert svc.wait(grown, ENDED, 400) == "succeeded"
        assert len(_search_lrs(svc, grown)) == 3

        r = httpx.post(f"{svc.base}/sweeps/{grown}/extend", json={"trials": 2}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["spec"]["num_samples"] == 5
        assert svc.wait(grown, ENDED, 400) == "succeeded"

        whole = httpx.post(f"{svc.base}/sweeps", json={**SPEC, "num_samples": 5}, timeout=60).json()["id"]
        assert svc.wait(whole, ENDED, 400) == "succeeded"
        # The searcher went on where it stopped: HyperOpt's trials and random state restored.
        assert _search_lrs(svc, grown) == pytest.approx(_search_lrs(svc, whole), rel=1e-9)

        # One refit, of the configuration the refit rule picks among all five (ties of val_acc
        # on synthetic data included): the same as the five-trial sweep's refit.
        trials = svc.store.trials(grown)
        refits = [t for t in trials if t.refit_of is not None]
        best = plan_refit(trials, "val_acc", "max")
        assert len(refits) == 1 and refits[0].refit_of == best.source_id and refits[0].test_acc is not None
        (whole_refit,) = [t for t in svc.store.trials(whole) if t.refit_of is not None]
        assert refits[0].config["lr"] == pytest.approx(whole_refit.config["lr"], rel=1e-9)

        r = httpx.post(f"{svc.base}/sweeps/{grown}/extend", json={"trials": 0}, timeout=60)
        assert r.status_code == 422 and "trials" in r.text

        # Train the refit's source 2 epochs more (POST /trials/{id}/continue): a new row that
        # goes on from its last checkpoint, epochs 3 and 4, and the refit stays as it was.
        source = svc.store.trial(best.source_id)
        r = httpx.post(f"{svc.base}/trials/{source.id}/continue", json={"epochs": 2}, timeout=60)
        assert r.status_code == 200 and r.json()["spec"]["continues"] == [{"trial": source.id, "epochs": 2}], r.text
        assert svc.wait(grown, ENDED, 400) == "succeeded"
        (cont,) = [t for t in svc.store.trials(grown) if t.continue_of == source.id]
        assert cont.status == "terminated" and cont.config["epochs"] == 4 and cont.config["lr"] == source.config["lr"]
        assert [e.epoch for e in svc.store.epochs(cont.id)] == [3, 4]
        assert [t.id for t in svc.store.trials(grown) if t.refit_of is not None] == [refits[0].id]
        r = httpx.get(f"{svc.base}/leaderboard?sweep_id={grown}&limit=20", timeout=60).json()
        assert any(i["continue_of"] == source.id for i in r["items"])
        r = httpx.post(f"{svc.base}/trials/{refits[0].id}/continue", json={"epochs": 2}, timeout=60)
        assert r.status_code == 409 and "refit" in r.json()["detail"]
    finally:
        svc.stop()
