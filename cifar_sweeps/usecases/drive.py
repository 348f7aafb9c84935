"""Drive a stored sweep: what the Ray job of a sweep submitted through the API runs, with
nothing but the sweep's id travelling to the cluster (the spec is read from the store):

    python -m cifar_sweeps.usecases.drive run SWEEP_ID      # a sweep POST /sweeps created
    python -m cifar_sweeps.usecases.drive resume SWEEP_ID   # POST /sweeps/{id}/resume

and a spec run in this process with no service behind it (`run_local`: `cifar-sweeps run`,
the Python API's `run`), planned here first.

It runs in a driver process (the Ray job's), never the API's: the sweep loads Ray Tune and
torch. The spec is checked again with the driver's own settings (a cluster apart may cap
epochs or data differently from the service that took it). Its end: the sweep's leaderboard
printed to the job's log; exit status 0 when the sweep ended well, 1 when not, and each
error's own code (errors.py) when it could not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from cifar_sweeps.errors import CifarSweepsError
from cifar_sweeps.settings import Settings, load_settings
from cifar_sweeps.store.states import ENDED_WELL
from cifar_sweeps.usecases.leaderboard import BoardQuery, read_board, to_table

if TYPE_CHECKING:
    from cifar_sweeps.analysis.schemas import PlanOut
    from cifar_sweeps.sweepspec.schema import SweepSpec

Verb = Literal["run", "resume"]
VERBS: tuple[Verb, ...] = ("run", "resume")
LOG_TOP = 10  # trials of the leaderboard a driver's log ends with
NOTIFY_WAIT_S = 20.0  # how long a run in this process waits for its webhooks' deliveries at its end


def drive(sweep_id: str, settings: Settings, store, verb: Verb = "run", retry_errored: bool = True) -> bool:
    """Run (or resume) the stored sweep `sweep_id` to its end in this process; whether it
    ended well. NotFound for an unknown id, SpecError for a spec these settings refuse.
    `retry_errored`: a resume trains errored trials again (else it leaves them as they are)."""
    from cifar_sweeps.sweepspec.schema import parse_spec
    from cifar_sweeps.tuning.driver import resume_sweep, run_sweep

    sweep = store.sweep(sweep_id)  # NotFound naming it
    if verb == "resume":
        resume_sweep(sweep.id, settings, store, retry_errored=retry_errored)
    else:
        run_sweep(parse_spec(sweep.spec, settings), settings, store, settings.data, sweep.id)
    return store.get_sweep(sweep.id).status in ENDED_WELL


def run_local(
    spec: SweepSpec, settings: Settings, store, dry_run: bool = False, echo: Callable[[str], None] = print
) -> tuple[str | None, PlanOut]:
    """A spec planned and run to its end in this process, with no service behind it
    (`cifar-sweeps run SPEC`, the Python API's `run`): (sweep id, plan). The plan is shown
    through `echo` first, counted on the cluster RAY_ADDRESS names or on this machine; a
    trial that can't fit the memory stops it before anything is stored (check_fits). With
    `dry_run`, only the plan: nothing runs or is stored. At its end the sweep announces
    itself to the operator's webhooks, as a service's sync loop would."""
    from cifar_sweeps.analysis.plan import check_fits, describe
    from cifar_sweeps.tuning.driver import run_sweep
    from cifar_sweeps.usecases.notify import notify_ended
    from cifar_sweeps.usecases.submit import plan_here

    plan = plan_here(spec, settings, store)
    echo(describe(plan))
    if dry_run:
        return None, plan
    check_fits(plan)
    ran = run_sweep(spec, settings, store, settings.data, None, plan=plan)
    notify_ended(store, settings, wait_s=NOTIFY_WAIT_S)
    return ran, plan


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
