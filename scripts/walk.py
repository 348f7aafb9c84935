"""A walk of a submitted spec through the package, measured: `cifar-sweeps run SPEC` from the
command line to the moment Ray Tune takes over (Tuner.fit, where the trainable starts), with
every call that crosses from one module of the package into another recorded in order.

    python scripts/walk.py                 # this checkout
    PYTHONPATH=/path/to/old/checkout python scripts/walk.py   # another commit's code, the same walk

It prints
- stops: the calls that enter another module of the package (a room change), each call site
  once (from that module, into that function: a validator run per field is one stop),
- rooms: the modules entered,
- climbs back up: stops whose module sits in a higher layer than the one before it (the walk
  went down, then back up to go down again: checked at submit, then by the driver...),
- the modules entered most often.

The layers, bottom to top, by folder: errors/settings/... (bottom, not counted as rooms: every
module reads them), the spec, store and training, analysis and cluster, tuning, use cases,
service, the top (cli, sdk). Names from before the folders were renamed count as theirs.
Only the main thread is traced; a child process (the plan's probe, the model check) is a
room of its own when the code that starts it runs, not inside.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

RANK = {
    "sweepspec": 1,
    "spec": 1,
    "store": 2,
    "training": 2,
    "analysis": 3,
    "cluster": 3,
    "tuning": 4,
    "usecases": 5,
    "service": 6,
    "cli": 7,
    "sdk": 7,
    "__main__": 7,
}
BOTTOM = {"errors", "settings", "subprocs", "moved", "version", "__init__"}
SPEC = {
    "name": "walk",
    "num_samples": 2,
    "max_concurrent_trials": 1,
    "scheduler": {"type": "asha", "grace_period": 1},
    "fixed": {"model": "mlp", "epochs": 2, "batch_size": 64},
    "params": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}},
}


class WalkEnd(Exception):
    """Raised where Ray Tune takes over: the walk ends there."""


def room_of(filename: str, root: Path) -> str | None:
    """A code object's module under the package, as a dotted name (None outside it)."""
    try:
        rel = Path(filename).resolve().relative_to(root)
    except ValueError:
        return None
    if rel.suffix != ".py":
        return None
    room = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
    # The schema's revisions, which Alembic runs as the store opens, are the migrations' room:
    # one more revision is not one more step of the walk.
    return room.partition(".versions.")[0] if ".migrations.versions." in room else room


def rank(room: str) -> int | None:
    bits = room.split(".")
    head = bits[1] if len(bits) > 1 else "__init__"
    if head in BOTTOM or head not in RANK:
        return None
    return RANK[head]


def measure(stops: list[str]) -> dict:
    """Stops, rooms and climbs of a walk (the modules entered, in order)."""
    layered = [rank(s) for s in stops if rank(s) is not None]  # the bottom is beside every layer
    climbs = sum(1 for a, b in zip(layered, layered[1:], strict=False) if b > a)
    entered = collections.Counter(stops)
    return {"stops": len(stops), "rooms": len(entered), "climbs": climbs, "most": entered.most_common(6)}


def walk(spec_path: Path, data: str) -> list[str]:
    from ray import tune

    import cifar_sweeps

    root = Path(cifar_sweeps.__file__).resolve().parent.parent
    stops: list[str] = []
    seen: set[tuple] = set()
    current: list[str | None] = [None]

    def profile(frame, event, arg):
        if event == "call":
            room = room_of(frame.f_code.co_filename, root)
            key = (current[-1], room, frame.f_code.co_name)
            entered = room and rank(room) is not None and room != current[-1] and key not in seen
            if entered and frame.f_code.co_name != "<module>":  # an import runs a module: not a step
                seen.add(key)  # a call made again (a validator per field, per trial) is one stop
                stops.append(room)
            current.append(room if room and rank(room) is not None else current[-1])
        elif event == "return" and len(current) > 1:
            current.pop()

    def fit(self, *a, **k):
        raise WalkEnd

    tune.Tuner.fit = fit
    from cifar_sweeps import cli

    sys.setprofile(profile)
    try:
        cli.main(["run", str(spec_path), "--data", data])
    except WalkEnd:
        pass
    finally:
        sys.setprofile(None)
    return stops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic:300")
    p.add_argument("--json", action="store_true", help="the stops in order, as JSON")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="walk-"))
    os.environ["CIFAR_SWEEPS_RESULTS_DIR"] = str(tmp / "results")
    os.environ.pop("CIFAR_SWEEPS_STORE_URL", None)
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(SPEC))
    stops = walk(spec, args.data)
    m = measure(stops)
    if args.json:
        print(json.dumps(stops))
    import cifar_sweeps

    print(f"code: {Path(cifar_sweeps.__file__).resolve().parent}")
    walked = f"{m['stops']} stops in {m['rooms']} rooms, {m['climbs']} climbs back up"
    print(f"walk of `cifar-sweeps run` to Tuner.fit: {walked}")
    print("entered most: " + ", ".join(f"{r} x{n}" for r, n in m["most"]))


if __name__ == "__main__":
    main()
