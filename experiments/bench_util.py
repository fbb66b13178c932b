"""Timing and report helpers shared by the benchmark sections (experiments/bench.py runs them)."""

import time


def interleaved(variants: dict, repeats: int = 3) -> dict[str, float]:
    """Best wall time in seconds of each variant (a no-argument callable), after one warm-up call each.

    The variants take turns within each repeat, so a burst of load from other processes on a shared
    machine hits them alike; the best of the repeats is the one least disturbed by it.
    """
    for fn in variants.values():
        fn()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def table(headers: list[str], rows: list[list]) -> list[str]:
    """A markdown table; floats are printed with 3 significant digits (at least the integer part)."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
