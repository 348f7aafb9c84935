"""The service's worker pools end whole: nothing left for the interpreter's exit to race."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from cifar_sweeps.subprocs import end_pool


def test_an_ended_pool_leaves_no_thread_or_pipe_for_the_exit_hook():
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    assert pool.submit(abs, -3).result(timeout=60) == 3
    workers = list(pool._processes.values())
    thread, wakeup = pool._executor_manager_thread, pool._executor_manager_thread_wakeup
    end_pool(pool)
    assert not any(p.is_alive() for p in workers)
    # Python 3.11's exit hook writes to the wake-up pipe of every pool thread it still knows;
    # a thread still closing that pipe then is the race (Errno 9 after a clean Ctrl-C).
    assert not thread.is_alive() and wakeup._closed
