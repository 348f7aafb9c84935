"""Leaderboard filters on trial config parameters, as the API, the CLI and the page write
them: `NAME:LOW..HIGH` for a range of numbers (either end may be left out) and
`NAME:V1,V2` for values (each read as JSON, so `32` is a number and `relu` a string)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel

from cifar_sweeps.errors import InputError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FILTERS = 20
MAX_VALUES = 100


class ConfigFilter(BaseModel):
    name: str
    low: float | None = None  # a range, both ends inclusive
    high: float | None = None
    values: list[Any] | None = None  # or any of these values


def _number(text: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        x = float(text)
    except ValueError:
        raise InputError(f"filter {where!r}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"filter {where!r}: {text!r} is not a finite number")
    return x


def _value(text: str) -> Any:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        return text
    return v if isinstance(v, (int, float, str, bool)) else text


def parse_filter(text: str) -> ConfigFilter:
    """One `NAME:LOW..HIGH` or `NAME:V1,V2`, or InputError naming what is wrong."""
    name, colon, rest = text.partition(":")
    if not colon or not NAME.match(name) or not rest:
        raise InputError(
            f"filter {text!r}: expected NAME:LOW..HIGH or NAME:V1,V2 (e.g. lr:0.001..0.01, batch_size:32,64)"
        )
    if ".." in rest:
        low, _, high = rest.partition("..")
        f = ConfigFilter(name=name, low=_number(low, text), high=_number(high, text))
        if f.low is None and f.high is None:
            raise InputError(f"filter {text!r}: a range needs at least one end")
        if f.low is not None and f.high is not None and f.low > f.high:
            raise InputError(f"filter {text!r}: low {f.low:g} is above high {f.high:g}")
        return f
    values = [_value(v) for v in rest.split(",")]
    if len(values) > MAX_VALUES:
        raise InputError(f"filter {text[:80]!r}: more than {MAX_VALUES} values")
    return ConfigFilter(name=name, values=values)


def parse_filters(texts: list[str]) -> list[ConfigFilter]:
    if len(texts) > MAX_FILTERS:
        raise InputError(f"at most {MAX_FILTERS} filters, got {len(texts)}")
    return [parse_filter(t) for t in texts]
