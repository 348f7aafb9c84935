"""The docs' values are the code's: each default in docs/settings.md is the Settings field's,
each preset named in the docs exists, and each `python benchmarks/X.py --flag` line names a
flag that script's parser has, and each measured figure of the README is one the performance
page reports. Each check is shown failing on a planted false value."""

from __future__ import annotations

import re
from pathlib import Path

from cifar_sweeps.settings import Settings
from tests.helpers.docs import PAGES, ROOT, benchmark_flag_problems

ROW = re.compile(r"^\| `CIFAR_SWEEPS_(\w+)` \| ([^|]+) \|", re.M)
NOT_FIELDS = {"SECRETS_DIR"}  # read by settings.load_settings before the fields, documented in the table


def _number(text: str) -> float | None:
    m = re.fullmatch(r"`?(-?[\d.]+)`?", text.strip())
    return float(m[1]) if m else None


def settings_mismatches(text: str) -> list[str]:
    """Rows of the settings table whose default is a number, a word or a path that differs
    from the field's default (prose defaults such as "unset" or "loopback names ..." are
    read as words only when the field's default is one)."""
    out = []
    for name, shown in ROW.findall(text):
        field = Settings.model_fields.get(name.lower())
        if name in NOT_FIELDS:
            continue
        if field is None:
            out.append(f"CIFAR_SWEEPS_{name}: no such setting")
            continue
        default, shown = field.default, shown.strip()
        if isinstance(default, bool):
            ok = shown in (("on", "`1`") if default else ("off", "`0`", "unset"))
        elif isinstance(default, int | float):
            ok = _number(shown) == float(default)
        elif isinstance(default, str | Path) and str(default) and re.fullmatch(r"`[^`]+`|[\w.-]+", shown):
            ok = shown.strip("`") == str(default)
        else:
            continue  # a default the table describes in words (computed, empty, a list)
        if not ok:
            out.append(f"CIFAR_SWEEPS_{name}: the docs say {shown}, the code {default!r}")
    return out


def test_every_default_in_the_settings_table_is_the_codes():
    text = (ROOT / "docs" / "settings.md").read_text()
    assert len(ROW.findall(text)) >= 30
    assert settings_mismatches(text) == []


def test_a_planted_false_default_is_found():
    text = (
        (ROOT / "docs" / "settings.md")
        .read_text()
        .replace("| `CIFAR_SWEEPS_MAX_EPOCHS` | 500 |", "| `CIFAR_SWEEPS_MAX_EPOCHS` | 600 |")
    )
    assert settings_mismatches(text) == ["CIFAR_SWEEPS_MAX_EPOCHS: the docs say 600, the code 500"]


def test_a_planted_false_benchmark_flag_is_found():
    pages = [("x.md", "run `python benchmarks/replay.py --task mlp --seedz 200`")]
    assert benchmark_flag_problems(pages) == ["x.md: benchmarks/replay.py has no flag --seedz"]


# A measured figure in the README: a bold accuracy or percentage, or a time after "in"/"at".
BOLD_FIGURE = re.compile(r"\*\*([^*]*\d[^*]*)\*\*")
TIME_FIGURE = re.compile(r"\b(?:in|at) (\d+(?:\.\d+)?) ?(minutes|min|s)\b")
NUMBER = re.compile(r"\d+(?:\.\d+)?(?: %)?")


def _flat(text: str) -> str:
    """Prose with emphasis and line breaks gone, and minutes written as min."""
    return re.sub(r"\s+", " ", text.replace("**", "")).replace(" minutes", " min")


def readme_figures_not_measured(readme: str, performance: str) -> list[str]:
    """The README's measured figures that docs/performance.md does not state."""
    prose, perf = _flat(re.sub(r"```.*?```", "", readme, flags=re.S)), _flat(performance)
    figures = [n for bold in BOLD_FIGURE.findall(readme) for n in NUMBER.findall(bold)]
    figures += [f"{n} {'s' if unit == 's' else 'min'}" for n, unit in TIME_FIGURE.findall(prose)]
    return [f for f in figures if not re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", perf)]


def test_every_figure_in_the_readme_is_the_performance_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(BOLD_FIGURE.findall(readme)) >= 3
    assert readme_figures_not_measured(readme, (ROOT / "docs" / "performance.md").read_text()) == []


def test_a_planted_false_readme_figure_is_found():
    readme = (ROOT / "README.md").read_text().replace("**94.01 % test**", "**94.31 % test**")
    perf = (ROOT / "docs" / "performance.md").read_text()
    assert readme_figures_not_measured(readme, perf) == ["94.31 %"]
    assert readme_figures_not_measured("done in 7.7 minutes", perf) == ["7.7 min"]


def k8s_objects() -> tuple[set[str], set[str]]:
    """The object names the manifests under deploy/k8s create (with the head Service KubeRay
    makes for a RayCluster, `<name>-head-svc`), and the keys of the Secret they read."""
    import yaml

    names, keys = set(), set()
    for path in (ROOT / "deploy" / "k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "metadata" not in doc:
                continue
            names.add(doc["metadata"]["name"])
            if doc["kind"] == "RayCluster":
                names.add(doc["metadata"]["name"] + "-head-svc")
            if doc["kind"] == "Secret":
                keys |= set(doc.get("stringData", {})) | set(doc.get("data", {}))
    return names, keys


def k8s_prose_problems(text: str) -> list[str]:
    """Kubernetes names the docs give (kubectl's `svc/NAME`, `secret generic NAME`, a
    `NAME:port` host, a backticked `cifar-sweeps-*`) that no manifest creates, and Secret keys
    (`--from-literal=KEY=`) the Secret the manifests read does not have."""
    names, keys = k8s_objects()
    given = re.findall(r"\bsvc/([a-z0-9-]+)", text) + re.findall(r"secret generic ([a-z0-9-]+)", text)
    given += re.findall(r"@(cifar-sweeps[a-z0-9-]*):\d+", text) + re.findall(r"`(cifar-sweeps-[a-z0-9-]+)`", text)
    out = [f"{n}: no manifest creates it" for n in given if n not in names]
    return out + [f"{k}: not a key of the Secret" for k in re.findall(r"--from-literal=(\w+)=", text) if k not in keys]


def test_every_kubernetes_name_in_the_docs_is_the_manifests():
    text = "\n".join(p.read_text() for p in PAGES)
    assert len(re.findall(r"\bsvc/|secret generic|--from-literal", text)) >= 5
    assert k8s_prose_problems(text) == []


def test_a_planted_false_kubernetes_name_is_found():
    text = (ROOT / "docs" / "cluster.md").read_text()
    planted = text.replace("svc/cifar-sweeps-api ", "svc/cifar-sweeps-server ").replace(
        "--from-literal=postgres_password=", "--from-literal=pg_password="
    )
    assert k8s_prose_problems(planted) == [
        "cifar-sweeps-server: no manifest creates it",
        "pg_password: not a key of the Secret",
    ]


def metric_problems(text: str) -> list[str]:
    """Metric names the docs write where a metric goes (a spec's `"metric"`, a leaderboard's
    `sort=`, a constraint's left side) that the metric registry (sweepspec/metrics.py) does not
    take there."""
    from cifar_sweeps.sweepspec.metrics import METRIC_MODES, STORED

    out = [
        f"metric {m}: not a searchable metric" for m in re.findall(r'"metric": "(\w+)"', text) if m not in METRIC_MODES
    ]
    out += [f"sort={m}: not a stored metric" for m in re.findall(r"\bsort=([a-z_]+)", text) if m not in STORED]
    for listed in re.findall(r'"constraints": \[([^]]*)\]', text):
        out += [
            f"constraint on {m}: not a stored metric" for m in re.findall(r'"(\w+) *[<>]', listed) if m not in STORED
        ]
    return out


def test_every_metric_the_docs_name_is_the_registrys():
    text = "\n".join(p.read_text() for p in PAGES)
    assert len(re.findall(r'"metric": "|\bsort=|"constraints": \[', text)) >= 5
    assert metric_problems(text) == []


def test_a_planted_false_metric_is_found():
    text = '{"metric": "val_accuracy"} ?sort=latency "constraints": ["params <= 2e6", "flops < 1e9"]'
    assert metric_problems(text) == [
        "metric val_accuracy: not a searchable metric",
        "sort=latency: not a stored metric",
        "constraint on flops: not a stored metric",
    ]
