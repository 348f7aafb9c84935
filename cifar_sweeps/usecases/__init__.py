"""The use cases: what the system does, one function each, under the front ends (the HTTP
routes, the CLI, the Python API), which parse their input, call one and present its answer.

- leaderboard.py: the leaderboard read (ranked trials, configurations over seeds, CSV);
- submit.py: a sweep checked, planned, stored and queued on the cluster; a plan alone;
- drive.py: a stored sweep run or resumed to its end, what a sweep's Ray job runs
  (`python -m cifar_sweeps.usecases.drive`), and a spec planned and run in this process
  (`cifar-sweeps run`, the Python API's `run`); not imported here: it loads Ray Tune;
- notify.py: the operator's webhooks told when a sweep ends;
- pareto.py: a sweep's Pareto front over two stored metrics;
- export.py: a trial's best model as ONNX or TorchScript, made in a child and cached;
- again.py: an ended sweep asked for more (repeat, extend, continue), queued as a Ray job
  or run in this process.
"""

from cifar_sweeps.usecases.leaderboard import (
    BoardQuery,
    GroupedLeaderboard,
    GroupItem,
    Leaderboard,
    LeaderboardItem,
    read_board,
    read_groups,
)
from cifar_sweeps.usecases.submit import Submitted, check_spec, plan_spec, submit_sweep

__all__ = [
    "again",
    "drive",
    "export",
    "leaderboard",
    "notify",
    "pareto",  # the modules other layers may import (tests/unit/project/test_structure.py holds it)
    "submit",
    "BoardQuery",
    "GroupItem",
    "GroupedLeaderboard",
    "Leaderboard",
    "LeaderboardItem",
    "read_board",
    "read_groups",
    "Submitted",
    "check_spec",
    "plan_spec",
    "submit_sweep",
]
