"""Drive a stored sweep: what the Ray job of a sweep submitted through the API runs, with
nothing but the sweep's id travelling to the cluster (the spec is read from the store):

    python -m cifar_sweeps.usecases.drive run SWEEP_ID      # a sweep POST /sweeps created
    python -m cifar_sweeps.usecases.drive resume SWEEP_ID   # POST /sweeps/{id}/resume

It runs in a driver process (the Ray job's), never the API's: the sweep loads Ray Tune and
torch. The spec is checked again with the driver's own settings (a cluster apart may cap
epochs or data differently from the service that took it). Its end: the sweep's leaderboard
printed to the job's log; exit status 0 when the sweep ended well, 1 when not, and each
error's own code (errors.py) when it could not run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from cifar_sweeps.errors import CifarSweepsError
from cifar_sweeps.settings import Settings, load_settings
from cifar_sweeps.store.states import ENDED_WELL
from cifar_sweeps.usecases.leaderboard import BoardQuery, read_board, to_table

Verb = Literal["run", "resume"]
VERBS: tuple[Verb, ...] = ("run", "resume")
LOG_TOP = 10  # trials of the leaderboard a driver's log ends with


def drive(sweep_id: str, settings: Settings, store, verb: Verb = "run") -> bool:
    """Run (or resume) the stored sweep `sweep_id` to its end in this process; whether it
    ended well. NotFound for an unknown id, SpecError for a spec these settings refuse."""
    from cifar_sweeps.sweepspec.schema import parse_spec
    from cifar_sweeps.tuning.driver import resume_sweep, run_sweep

    sweep = store.sweep(sweep_id)  # NotFound naming it
    if verb == "resume":
        resume_sweep(sweep.id, settings, store)
    else:
        run_sweep(parse_spec(sweep.spec, settings), settings, store, settings.data, sweep.id)
    return store.get_sweep(sweep.id).status in ENDED_WELL


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cifar_sweeps.usecases.drive", description=__doc__.split("\n\n")[0])
    p.add_argument("verb", choices=VERBS)
    p.add_argument("sweep_id")
    args = p.parse_args(argv)
    from cifar_sweeps.store.queries import get_store

    try:
        settings = load_settings()
        store = get_store(settings.resolved_store_url())
        ended_well = drive(args.sweep_id, settings, store, args.verb)
        items, total = read_board(store, BoardQuery(sweep_id=args.sweep_id, limit=LOG_TOP), lambda t: None)
        print(to_table(items, total, one_sweep=True), flush=True)
        return 0 if ended_well else 1
    except CifarSweepsError as e:  # each error knows its exit code
        print(f"{p.prog} {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
