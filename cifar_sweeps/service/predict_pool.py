"""Predictions out of the API process: one worker process (spawned, not forked) loads the
models and runs them, with a cap on its threads and a time bound per request. The API
decodes the uploads (Pillow only: their checks come first) and hands the worker plain
arrays; the API process never imports torch or a plug-in's code.

The worker starts as the service's other children do where it can: no secret in its
environment, a temporary working folder that is not on its import path, its data memory
capped; it ends with its parent. A request past PREDICT_TIMEOUT_S ends the worker (its
next request starts a new one) and is a 503.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from cifar_sweeps.errors import ChildTimeout
from cifar_sweeps.subprocs import CHILD_MEMORY_MB, end_pool
from cifar_sweeps.training.predict import held_models, init_worker, work

PREDICT_TIMEOUT_S = 60.0  # a request's classification (the model's first load included)
PREDICT_THREADS = 2  # torch threads in the worker: predictions never take every core

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def classify_in_worker(key: tuple[str, str], model_file: str, images: list, top_k: int) -> dict[str, Any]:
    """The top-k of each image (uint8 HWC arrays) by the trial's model: what the route
    answers with (the model's classes and normalization, and the tops)."""
    with _lock:
        pool = _pool or _start()
    future = pool.submit(work, key, model_file, images, top_k)
    try:
        return future.result(timeout=PREDICT_TIMEOUT_S)
    except FutureTimeout:
        shutdown_worker()
        raise ChildTimeout(f"the prediction took over {PREDICT_TIMEOUT_S:g} s and was stopped", 1) from None


def worker_models() -> int | None:
    """Models the worker holds loaded (None: no worker is running)."""
    with _lock:
        pool = _pool
    return None if pool is None else pool.submit(held_models).result(timeout=PREDICT_TIMEOUT_S)


def _start() -> ProcessPoolExecutor:
    global _pool
    _pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(os.getpid(), PREDICT_THREADS, CHILD_MEMORY_MB),
    )
    return _pool


def shutdown_worker() -> None:
    """End the worker (the service's shutdown; a request past its time ends it too)."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        end_pool(pool)
