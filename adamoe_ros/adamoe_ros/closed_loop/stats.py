"""Small statistics for evaluation reports: Wilson intervals, rate differences, McNemar, percentiles, expert usage."""

import math

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0 and n successes)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds of a list of durations in seconds (NaN when empty)."""
    if not seconds:
        return {'p50_ms': float('nan'), 'p99_ms': float('nan'), 'mean_ms': float('nan'), 'count': 0}
    arr = np.asarray(seconds) * 1e3
    return {
        'p50_ms': float(np.percentile(arr, 50)),
        'p99_ms': float(np.percentile(arr, 99)),
        'mean_ms': float(arr.mean()),
        'count': int(arr.size),
    }


def usage_entropy(token_fraction: np.ndarray, top_k: int) -> float:
    """Mean over layers of the normalised entropy (0..1) of the expert-usage distribution."""
    frac = np.asarray(token_fraction, dtype=np.float64)
    if frac.size == 0 or frac.shape[-1] < 2:
        return float('nan')
    p = frac / max(top_k, 1)
    p = p / np.clip(p.sum(axis=-1, keepdims=True), 1e-12, None)
    ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=-1) / math.log(frac.shape[-1])
    return float(ent.mean())


def difference_interval(wins_a: int, n_a: int, wins_b: int, n_b: int) -> tuple[float, float]:
    """Return the 95% interval of the difference of two success rates (a - b).

    Newcombe's hybrid score method, from the two Wilson intervals: a difference is supported when it excludes 0.
    """
    p_a, p_b = wins_a / n_a, wins_b / n_b
    (low_a, high_a), (low_b, high_b) = wilson_interval(wins_a, n_a), wilson_interval(wins_b, n_b)
    d = p_a - p_b
    return (d - math.hypot(p_a - low_a, high_b - p_b), d + math.hypot(high_a - p_a, p_b - low_b))


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value of paired outcomes, from the discordant pairs (a won alone, b won alone).

    Under no difference each discordant pair is a fair coin: the p-value is the rarer side's binomial tail, doubled.
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def specialisation(usage: dict[str, list[list[float]]] | dict[str, np.ndarray]) -> float:
    """Return how differently groups (tasks or phases) are routed, 0 when every group is routed alike.

    The mean over groups and layers of the total variation distance between a group's expert shares and their mean.
    """
    if not usage:
        return float('nan')
    shares = np.stack([np.asarray(u, dtype=np.float64) for u in usage.values()])  # (groups, layers, experts)
    shares = shares / np.clip(shares.sum(axis=-1, keepdims=True), 1e-12, None)
    return float(0.5 * np.abs(shares - shares.mean(axis=0)).sum(axis=-1).mean())
