"""A throughput probe: the real training loop (train.Trainer: augmentation, memory format,
optimizer, evaluation) for two short epochs on random CIFAR-shaped images, in a process of
its own (`python -I -m cifar_sweeps.training.probe`, the config as JSON on stdin), so that the API process never loads
torch. The second epoch is timed (the first pays one-time costs). Prints one JSON line:
training images/s, evaluation images/s, and the process's peak memory (MiB).
"""

from __future__ import annotations

import json
import resource
import time

# Images per timed epoch: a few batches, so a probe takes seconds even for a large model.
TRAIN_BATCHES = 6
EVAL_IMAGES_PER_BATCH = 2  # evaluation images per training batch (a fifth of an epoch's, or so)


def probe(config: dict) -> dict:
    import numpy as np

    from cifar_sweeps.sweepspec.config import TrainConfig
    from cifar_sweeps.training.data import Splits
    from cifar_sweeps.training.train import Trainer

    config = dict(config)
    size = int(config.pop("image_size", 32))  # the spec's data.image_size
    cfg = TrainConfig(**{**config, "epochs": 2, "test_on_best": False})
    n_train, n_eval = TRAIN_BATCHES * cfg.batch_size, EVAL_IMAGES_PER_BATCH * cfg.batch_size
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)

    labels = (np.arange(max(n_train, n_eval)) % 10).astype(np.int64)
    splits = Splits(images(n_train), labels[:n_train], images(n_eval), labels[:n_eval], images(10), labels[:10])
    trainer = Trainer(cfg, splits)
    trainer.step_epoch()  # warm-up: allocator, kernels, caches
    m = trainer.step_epoch()
    train_s = n_train / m.images_per_s
    eval_s = max(m.seconds - train_s, 1e-6)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "train_images_per_s": m.images_per_s,
        "eval_images_per_s": n_eval / eval_s,
        "peak_mb": peak_mb,
        "device": trainer.device.type,
    }


def main() -> int:
    t0 = time.perf_counter()
    from cifar_sweeps.subprocs import read_request

    out = probe(read_request())
    print(json.dumps({**out, "probe_s": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
