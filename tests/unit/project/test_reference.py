"""docs/reference.md is what scripts/gen_reference.py writes from the code: a field, a default
or a CLI flag changed without regenerating it fails here."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import REPO

ROOT = REPO


def _gen():
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_reference

    return gen_reference


def test_the_reference_is_current():
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reference.py"), "--check"], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr


def test_the_reference_lists_the_defaults_a_user_asks_about():
    text = (ROOT / "docs" / "reference.md").read_text()
    for row in (
        "| `num_samples` | int | `10` | >= 1 |",
        "| `search.algorithm` | one of 'hyperopt', 'random', 'grid', 'optuna', 'bohb' | `'hyperopt'` |",
        "| `scheduler.grace_period` | int | `1` | >= 1, <= 10000 |",
        "| `data.image_size` | int | `32` | >= 8, <= 512 |",
        "### `cifar-sweeps plan`",
        "| `quickstart` | airbench | optuna | asha | 16 | 1 | 570 s | yes |",  # from search_spaces/quickstart.json
        "| `--replay` |",
    ):
        assert row in text, row


def test_a_planted_stale_default_is_found(monkeypatch):
    from cifar_sweeps.sweepspec.schema import SweepSpec

    gen = _gen()
    current = gen.render()
    monkeypatch.setattr(SweepSpec.model_fields["num_samples"], "default", 11)  # the code changed, the docs not
    assert gen.render() != current and "| `num_samples` | int | `11` |" in gen.render()
