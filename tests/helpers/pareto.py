"""The Pareto front by brute force, to check the service's sort against."""

from __future__ import annotations


def brute_front(points, modes) -> set[int]:
    def better_or_equal(a, b):
        return all((x >= y) if m == "max" else (x <= y) for x, y, m in zip(a, b, modes, strict=True))

    return {
        i
        for i, p in enumerate(points)
        if not any(better_or_equal(q, p) and q != p for j, q in enumerate(points) if j != i)
    }
