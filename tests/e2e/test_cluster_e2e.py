"""Scale-out on one machine: a Ray head and a second node that joins it (each with one CPU,
a temp folder of its own and a custom resource), sweeps through POST /sweeps with the store
on PostgreSQL and the results on a folder both nodes see. Trials run on both nodes; a node
SIGKILLed mid-trial costs no epoch (the trial continues from its checkpoint on the head);
a lost head leaves the sweep interrupted, never running, and a new head resumes it."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import httpx
import pytest

from cifar_sweeps.store.queries import Store
from tests.helpers.ray_head import RayHead, WorkerNode, kill_node
from tests.helpers.service import Service

pytestmark = pytest.mark.slow
_db = itertools.count()


class PgService(Service):
    def __init__(self, head, results: Path, store_url: str, **env):
        super().__init__(
            head,
            results,
            CIFAR_SWEEPS_STORE_URL=store_url,
            CIFAR_SWEEPS_STORAGE_PATH=str(results.parent / "shared"),
            **env,
        )
        self.store = Store(store_url)


def _spec(name: str, n: int, epochs: int, **over) -> dict:
    return {
        "name": name,
        "num_samples": n,
        "max_concurrent_trials": 2,
        "scheduler": {"type": "fifo"},
        "search": {"algorithm": "random", "seed": 0},
        "max_failures": 2,
        "checkpoint_every": 1,
        "resources_per_trial": {"cpu": 1},
        "data": {"train_subset": 2400},
        "fixed": {"model": "simple_cnn", "epochs": epochs, "batch_size": 32},
        "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.02}},
        **over,
    }


def _node_ids(head: RayHead) -> dict[str, str]:
    from ray.util.state import list_nodes

    nodes = list_nodes(address=head.dashboard_url, detail=True)
    return {
        ("second" if "second_node" in n.resources_total else "head"): n.node_id for n in nodes if n.state == "ALIVE"
    }


@pytest.fixture
def cluster(tmp_path):
    head = RayHead(tmp_path / "ray", num_cpus=1, resources={"head_node": 1}).start()
    second = WorkerNode(head, num_cpus=1, resources={"second_node": 1}).start()
    deadline = time.time() + 60
    while len(_node_ids(head)) < 2 and time.time() < deadline:
        time.sleep(1)
    assert len(_node_ids(head)) == 2
    yield head, second
    second.kill()
    head.stop()


@pytest.fixture
def service(cluster, tmp_path, postgres):
    head, _ = cluster
    url = postgres.new_database(f"cl{next(_db)}_{tmp_path.name[-10:].lower()}".replace("-", "_"))
    svc = PgService(head, tmp_path / "results", url, CIFAR_SWEEPS_DATA="synthetic:3000").start()
    yield svc
    svc.stop()


def _post(svc: PgService, spec: dict) -> str:
    r = httpx.post(f"{svc.base}/sweeps", json=spec, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _epochs(svc: PgService, trial_id: str) -> list[tuple[int, str]]:
    return [(e.epoch, e.node_id) for e in svc.store.epochs(trial_id)]


def test_trials_run_on_both_nodes_and_checkpoints_download(cluster, service, tmp_path):
    head, _ = cluster
    nodes = _node_ids(head)
    sid = _post(service, _spec("two-nodes", n=4, epochs=2))
    assert service.wait(sid, {"succeeded", "failed", "interrupted"}, 600) == "succeeded"
    trials = service.store.trials(sid)
    assert len(trials) == 4 and {t.node_id for t in trials} == set(nodes.values())
    on_second = next(t for t in trials if t.node_id == nodes["second"])
    r = httpx.get(f"{service.base}/trials/{on_second.id}/checkpoint", timeout=30)
    assert r.status_code == 200
    (tmp_path / "best.pt").write_bytes(r.content)
    from cifar_sweeps.training.train import load_model_file

    assert load_model_file(tmp_path / "best.pt")(__import__("torch").zeros(1, 3, 32, 32)).shape == (1, 10)
    assert httpx.get(f"{service.base}/trials/{on_second.id}", timeout=10).json()["node_id"] == nodes["second"]


@pytest.mark.parametrize("after_epochs", [2, 0], ids=["past-a-checkpoint", "before-any-checkpoint"])
def test_a_node_lost_mid_trial(cluster, service, after_epochs):
    head, second = cluster
    nodes = _node_ids(head)
    sid = _post(service, _spec(f"node-loss-{after_epochs}", n=2, epochs=6))
    victim = _wait_for_victim(service, sid, nodes["second"], after_epochs)
    assert second.kill() > 0
    assert httpx.get(f"{service.base}/sweeps/{sid}", timeout=10).status_code == 200  # the API answers
    status = service.wait(sid, {"succeeded", "failed", "interrupted"}, 900)
    assert status == "succeeded", service.store.get_sweep(sid).error
    for t in service.store.trials(sid):
        history = _epochs(service, t.id)
        print(f"trial {t.id}: (epoch, node) {[(e, n[:8]) for e, n in history]}")
        assert [e for e, _ in history] == list(range(1, 7)), t.id  # every epoch stored exactly once
    if after_epochs:  # the victim continued from its last checkpoint, on the head
        # Its last reported epoch's checkpoint may not have reached storage before the kill
        # (a loaded machine): that epoch is trained again on the head, its row rewritten.
        # Restarted from scratch, epoch 1 would be the head's too.
        nodes_by_epoch = [n for _, n in _epochs(service, victim)]
        on_second = nodes_by_epoch.index(nodes["head"])
        assert 1 <= on_second <= after_epochs, nodes_by_epoch
        assert nodes_by_epoch == [nodes["second"]] * on_second + [nodes["head"]] * (6 - on_second)
    else:  # killed in its first epoch: the trial restarted on the head, from epoch 1
        assert {n for t in service.store.trials(sid) for _, n in _epochs(service, t.id)} == {nodes["head"]}


def _wait_for_victim(svc: PgService, sid: str, second: str, after_epochs: int, timeout_s: float = 600) -> str | None:
    """The trial running on the second node once it has `after_epochs` epochs stored; with 0,
    the moment both trials run before any epoch (one CPU per node: one of them is on the
    second node, in its first epoch, with no checkpoint yet)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        trials = svc.store.trials(sid)
        if not after_epochs and len(trials) == 2 and all(t.status == "running" for t in trials):
            assert all(t.epochs == 0 for t in trials), "an epoch ended before the kill: make epochs longer"
            return None
        for t in trials:
            if after_epochs and t.node_id == second and t.epochs >= after_epochs:
                return t.id
        time.sleep(0.2)
    raise AssertionError("no trial reached the second node in time")


def test_the_head_lost_mid_sweep_is_not_left_running_and_resumes(tmp_path, postgres):
    head = RayHead(tmp_path / "ray", num_cpus=1).start()
    url = postgres.new_database(f"hl{next(_db)}_{tmp_path.name[-10:].lower()}".replace("-", "_"))
    svc = PgService(
        head, tmp_path / "results", url, CIFAR_SWEEPS_DATA="synthetic:3000", CIFAR_SWEEPS_CLUSTER_LOST_AFTER_S="5"
    ).start()
    new_head = None
    try:
        sid = _post(svc, _spec("head-loss", n=3, epochs=3, max_concurrent_trials=1))
        _wait(
            lambda: (
                sum(t.status == "terminated" for t in svc.store.trials(sid)) >= 1
                and any(t.status == "running" and t.epochs >= 1 for t in svc.store.trials(sid))
            )
        )
        finished = {t.id: _epochs(svc, t.id) for t in svc.store.trials(sid) if t.status == "terminated"}
        assert kill_node(head.temp_dir) > 0
        status = svc.wait(sid, {"interrupted", "failed", "succeeded"}, 120)
        sweep = svc.store.get_sweep(sid)
        assert status in ("interrupted", "failed"), status  # never a lasting `running`
        assert sweep.reason == "cluster_lost" and head.dashboard_url in sweep.error, (sweep.reason, sweep.error)
        new_head = RayHead(tmp_path / "ray2", num_cpus=1)
        new_head.port, new_head.dashboard_port = head.port, head.dashboard_port  # the same address
        new_head.start()
        r = httpx.post(f"{svc.base}/sweeps/{sid}/resume", timeout=60)
        assert r.status_code == 200, r.text
        assert svc.wait(sid, {"succeeded", "failed", "interrupted"}, 600) == "succeeded"
        trials = svc.store.trials(sid)
        assert len(trials) == 3 and all(t.status == "terminated" for t in trials)
        assert {t: _epochs(svc, t) for t in finished} == finished  # finished trials kept, not retrained
        assert all([e for e, _ in _epochs(svc, t.id)] == [1, 2, 3] for t in trials)
    finally:
        svc.stop()
        kill_node(head.temp_dir)
        if new_head is not None:
            new_head.stop()


def _wait(cond, timeout_s: float = 600) -> None:
    deadline = time.time() + timeout_s
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.3)
