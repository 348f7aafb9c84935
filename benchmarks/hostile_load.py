"""Hostile load against a real uvicorn server on loopback, served as `cifar-sweeps serve`
serves it (loopback hosts only, a token set), while a prober asks GET /health every 50 ms:

  (a) GET /sweeps/{id}/importance of a 5,000-trial sweep, with a junk query parameter;
  (b) POST /sweeps of a 2.4 KB spec whose one choice combines to 3.2 M settings;
  (c) 40 junk-parameter variants of /leaderboard.csv?limit=100000 (20,000 trials);
  (d) a request with a poisoned Host, then an honest client's links;
  (e) 20 parallel POST /sweeps/plan of distinct trial shapes never probed: at most one
      probe process at a time (the rest: 503 with Retry-After), and a valid cache file after.
  (f) 8 parallel exports of distinct model files and 8 plans of an installed plug-in model
      (the example tinynet, when installed: its model check), together: at most one torch
      child process at a time, no 5xx but 503 with a Retry-After, /health answering.

Prints, for each, the answer, its time, the slowest /health meanwhile and what it shows.

    python benchmarks/hostile_load.py --trials 5000 --csv-trials 20000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import print_table  # noqa: E402
from cifar_sweeps.store.queries import Store  # noqa: E402
from cifar_sweeps.store.tables import Sweep, Trial, utcnow  # noqa: E402

SPEC = {
    "name": "imp",
    "fixed": {"model": "mlp", "epochs": 1},
    "params": {
        "lr": {"type": "loguniform", "low": 0.0001, "high": 0.1},
        "batch_size": {"type": "choice", "values": [32, 64, 128]},
        "momentum": {"type": "uniform", "low": 0.5, "high": 0.95},
    },
}


def seed(store: Store, sweep_id: str, n: int) -> None:
    """One finished sweep of `n` trials whose val_acc depends on lr, written in one go."""
    rng = random.Random(0)
    trials = []
    for i in range(n):
        lr, acc = 10 ** rng.uniform(-4, -1), 0.0
        acc = 0.8 - 0.08 * (rng.uniform(-2, 1)) ** 2
        trials.append(
            dict(
                id=f"{sweep_id}-{i:08x}",
                sweep_id=sweep_id,
                tune_trial_id=f"{i:08x}",
                model="mlp",
                config={
                    "model": "mlp",
                    "epochs": 1,
                    "lr": lr,
                    "batch_size": rng.choice([32, 64, 128]),
                    "momentum": rng.uniform(0.5, 0.95),
                },
                status="terminated",
                val_acc=acc,
                val_loss=1 - acc,
                test_acc=acc,
                best_epoch=1,
                epochs=1,
                epochs_budget=1,
                seconds=1.0,
                started_at=utcnow(),
                finished_at=utcnow(),
                checkpoint_path=f"/results/{i}/model.pt",
            )
        )
    with store.session() as s:
        s.execute(
            Sweep.__table__.insert(),
            [
                dict(
                    id=sweep_id,
                    name=sweep_id,
                    spec=SPEC,
                    status="succeeded",
                    data_source="synthetic",
                    code_version="bench",
                    created_at=utcnow(),
                    stop_requested=False,
                )
            ],
        )
        s.execute(Trial.__table__.insert(), trials)


def wide_spec() -> dict:
    keys = ("batch_size", "epochs", "seed", "step_size", "crop_padding")
    obj = {"model": "mlp", **{k: {"type": "choice", "values": [2**i for i in range(20)]} for k in keys}}
    return {"name": "wide", "params": {"arch": {"type": "choice", "values": [obj]}}}


class Prober(threading.Thread):
    """GET /health every 50 ms; `slowest()` since the last `reset()`, in ms."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.times, self.stop = base, [], threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                c.get(f"{self.base}/health")
                self.times.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.05)

    def reset(self) -> None:
        self.times = []

    def slowest(self) -> str:
        """The slowest /health since reset, in ms; "-" when none fell in (a phase of a few ms)."""
        return f"{max(self.times):.0f}" if self.times else "-"


def serve(settings, port: int):
    import uvicorn

    from cifar_sweeps.service.api import create_app
    from cifar_sweeps.service.serve import serving_settings

    app = create_app(serving_settings(settings, "127.0.0.1"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return app, server


def cache_of(app):
    from cifar_sweeps.service.cache import ResponseCache

    m = app.middleware_stack
    while m is not None and not isinstance(m, ResponseCache):
        m = getattr(m, "app", None)
    return m


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return r, (time.perf_counter() - t0) * 1000


def plan_spec(i: int) -> dict:
    """A spec whose trial shape (batch size) no probe has measured."""
    return {
        "name": f"plan{i}",
        "num_samples": 2,
        "scheduler": {"type": "fifo"},
        "fixed": {"model": "mlp", "epochs": 1, "batch_size": 48 + i},
        "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
    }


TORCH_CHILDREN = ("cifar_sweeps.training.probe", "cifar_sweeps.training.export", "cifar_sweeps.training.meta_build")


def probes_now(modules: tuple[str, ...] = TORCH_CHILDREN[:1]) -> int:
    import psutil

    n = 0
    for c in psutil.Process().children(recursive=True):
        try:
            line = " ".join(c.cmdline())
        except psutil.Error:
            continue
        n += any(m in line for m in modules) and "-I" in c.cmdline()
    return n


def trained_model_file(folder: Path) -> Path:
    """A real model file (simple_cnn, one epoch on 200 synthetic images), for the exports."""
    import torch

    from cifar_sweeps.training.data import load_splits
    from cifar_sweeps.training.train import TrainConfig, Trainer

    t = Trainer(TrainConfig(model="simple_cnn", epochs=1, batch_size=32, threads=1), load_splits("synthetic:200", None))
    t.run()
    path = folder / "model.pt"
    torch.save(t.best_model_file(), path)
    return path


def exports_and_checks(client: httpx.Client, prober: Prober, store: Store, folder: Path, n: int) -> list:
    """n exports of distinct model files and n plans of a plug-in model, all at once."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from cifar_sweeps.store import lifecycle
    from cifar_sweeps.sweepspec import registry

    model = trained_model_file(folder)
    sweep = store.create_sweep({"name": "exports"}, "synthetic:200", "v")
    trials = []
    for i in range(n):
        tid = lifecycle.trial_started(store, sweep.id, f"e{i}", {"model": "simple_cnn"}, 1)
        copy = folder / f"model-{i}.pt"
        shutil.copy(model, copy)
        store.trial_checkpoint(tid, str(copy))
        trials.append(tid)
    plugin = "tinynet" in registry.plugins()
    headers = {"Authorization": "Bearer bench-token"}

    def plan(i: int):
        spec = {**plan_spec(100 + i), "fixed": {"model": "tinynet", "epochs": 1, "model_args": {"channels": 8 + i}}}
        return client.post("/sweeps/plan", json=spec, headers=headers)

    calls = [lambda t=t: client.get(f"/trials/{t}/export", headers=headers) for t in trials]
    calls += [lambda i=i: plan(i) for i in range(n)] if plugin else []
    prober.reset()
    most, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            most[0] = max(most[0], probes_now(TORCH_CHILDREN))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda c: c(), calls))
    ms = (time.perf_counter() - t0) * 1000
    done.set()
    watcher.join()
    counts = {s: sum(a.status_code == s for a in answers) for s in sorted({a.status_code for a in answers})}
    retry = sorted({a.headers.get("retry-after") for a in answers if a.status_code == 503})
    what = f"{n} exports" + (f" + {n} plug-in checks" if plugin else " (tinynet not installed: no checks)")
    return [
        what,
        "/".join(map(str, sorted(counts))),
        f"{ms:,.0f}",
        prober.slowest(),
        f"answers {counts}; Retry-After {retry}; at most {most[0]} torch child(ren) at once",
    ]


def parallel_plans(client: httpx.Client, prober: Prober, settings, n: int) -> list:
    """n plan requests at once, each of a shape never probed; the most probe processes seen at
    once (polled every 20 ms), the answers by status, and whether the cache file reads."""
    from concurrent.futures import ThreadPoolExecutor

    prober.reset()
    most, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            most[0] = max(most[0], probes_now())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    headers = {"Authorization": "Bearer bench-token"}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda i: client.post("/sweeps/plan", json=plan_spec(i), headers=headers), range(n)))
    ms = (time.perf_counter() - t0) * 1000
    done.set()
    watcher.join()
    statuses = statistics.multimode([a.status_code for a in answers])
    counts = {s: sum(a.status_code == s for a in answers) for s in sorted({a.status_code for a in answers})}
    cache = settings.cache_dir / "throughput.json"
    valid = cache.exists() and isinstance(json.loads(cache.read_text()), dict)
    return [
        f"{n} parallel plans, unprobed shapes",
        "/".join(map(str, statuses)),
        f"{ms:,.0f}",
        prober.slowest(),
        f"answers {counts}; at most {most[0]} probe process(es) at once; cache file valid: {valid}",
    ]


def main(argv: list[str] | None = None) -> int:
    from cifar_sweeps.settings import Settings
    from tests.helpers.ray_head import free_port

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5000, help="trials of the importance sweep")
    ap.add_argument("--csv-trials", type=int, default=20000, help="trials in the store for the CSV phase")
    ap.add_argument("--variants", type=int, default=40)
    ap.add_argument("--plans", type=int, default=20, help="parallel plan requests of unprobed shapes")
    ap.add_argument("--exports", type=int, default=8, help="parallel exports (and as many plug-in checks)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        settings = Settings(results_dir=Path(d), api_token="bench-token", dashboard_url="http://127.0.0.1:9")
        store = Store(settings.resolved_store_url())
        t0 = time.perf_counter()
        seed(store, "sw-importance", args.trials)
        seed(store, "sw-csv", max(args.csv_trials - args.trials, 0))
        print(f"store: {args.csv_trials} trials written in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        app, server = serve(settings, port)
        base = f"http://127.0.0.1:{port}"
        prober = Prober(base)
        prober.start()
        client = httpx.Client(base_url=base, timeout=600)
        rows = []

        prober.reset()
        r, ms = timed(lambda: client.get("/sweeps/sw-importance/importance", params={"junk": random.random()}))
        body = r.json()
        rows.append(
            [
                f"importance, {args.trials:,} trials",
                r.status_code,
                f"{ms:,.0f}",
                prober.slowest(),
                f"{body.get('trials_used')} of {body.get('trials_finished')} used (sampled: {body.get('sampled')})",
            ]
        )
        r, ms2 = timed(lambda: client.get("/sweeps/sw-importance/importance", params={"other": 1}))
        rows.append(["  the same, other junk", r.status_code, f"{ms2:,.0f}", prober.slowest(), "cached"])

        prober.reset()
        raw = json.dumps(wide_spec())
        r, ms = timed(
            lambda: client.post(
                "/sweeps",
                content=raw,
                headers={"Authorization": "Bearer bench-token", "Content-Type": "application/json"},
            )
        )
        rows.append(
            [
                f"3.2 M-setting spec ({len(raw):,} bytes)",
                r.status_code,
                f"{ms:,.0f}",
                prober.slowest(),
                r.json()["detail"][:70],
            ]
        )

        prober.reset()
        cache = cache_of(app)
        t0 = time.perf_counter()
        sizes = [len(client.get(f"/leaderboard.csv?limit=100000&junk{i}={i}").content) for i in range(args.variants)]
        ms = (time.perf_counter() - t0) * 1000
        rows.append(
            [
                f"{args.variants} junk CSV variants",
                200,
                f"{ms:,.0f}",
                prober.slowest(),
                f"each {statistics.median(sizes) / 2**20:.1f} MiB; cache {cache.bytes / 2**20:.1f} MiB in "
                f"{len(cache.entries)} entries (bound {cache.max_bytes / 2**20:.0f} MiB)",
            ]
        )

        prober.reset()
        bad, ms = timed(lambda: client.get("/leaderboard?limit=1", headers={"Host": "evil.example"}))
        good = client.get("/leaderboard?limit=1").json()["items"][0]["checkpoint_url"]
        rows.append(["poisoned Host", bad.status_code, f"{ms:,.0f}", prober.slowest(), f"next client's link: {good}"])
        rows.append(parallel_plans(client, prober, settings, args.plans))
        rows.append(exports_and_checks(client, prober, store, Path(d), args.exports))
        prober.stop.set()
        server.should_exit = True
        print()
        print_table(["request", "status", "ms", "slowest /health ms meanwhile", "what it shows"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
