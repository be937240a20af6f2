"""The learning curve of a fine-tune trained on nested subsets of its train split, each subset's model scored on the
same test cases: the saturating power law q(n) = a - b * n^(-c) (b >= 0, 0 < c <= 3) fitted by least squares
through the per-size means, and its interval from a case bootstrap (the same resampled cases for every point, since
the points are paired).

The fit profiles c over a fine grid: for a fixed c the model is linear in a and b, so each grid value is a small
least-squares problem solved in closed form, for the point fit and all bootstrap resamples at once (no starting
values to go wrong, and three points fit all but exactly). Where the metric has a ceiling, a may not pass it: a
curve that levels off at the ceiling is fitted with a on it.

It extrapolates only when the points show where the curve levels off: the largest subset beats the smallest beyond
noise ("flat" otherwise); the curve fitted with a free has at most RUNAWAY times the gain it has shown still to
come, and would level off no further past the ceiling than that gain (a straight line in log n, or a convex one,
has c pinned near 0 and a far off); and at least SUPPORTED of the bootstrap refits level off as well.
"""

from __future__ import annotations

import numpy as np

from harness.records.curve import CurveFit, CurvePrediction

C_GRID = np.geomspace(0.01, 3.0, 400)  # exponents tried (steps of 1.4%); c pinned at 0.01 means no levelling off
RUNAWAY = 4.0  # most gain still to come, as a multiple of the gain between the smallest and largest size
SUPPORTED = 0.8  # least share of bootstrap refits that must level off too
CHUNK = 100  # resamples per vectorised step (memory: CHUNK x cases x points floats)
MORE_POINTS = "more points, or larger fractions, are needed"


def resample_means(scores: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Resamples x points: column means over test cases drawn with replacement (the same rows for every column)."""
    n = scores.shape[0]
    out = []
    for start in range(0, resamples, CHUNK):
        rows = rng.integers(0, n, size=(min(CHUNK, resamples - start), n))
        out.append(scores[rows].mean(axis=1))
    return np.concatenate(out)


def fit_power_law(x: np.ndarray, y: np.ndarray, cap: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares a, b, c of y ~ a - b * x^(-c) for each row of y (rows x len(x)), b >= 0, c on C_GRID,
    a <= cap when given."""
    best = np.full(len(y), np.inf)
    a, b, c = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y))
    y_mean = y.mean(axis=1)
    for cg in C_GRID:
        z = x**-cg
        zc = z - z.mean()
        bg = np.maximum(-(y @ zc) / (zc @ zc), 0.0)
        ag = y_mean + bg * z.mean()
        if cap is not None:
            over = ag > cap
            bg = np.where(over, np.maximum((cap - y) @ z / (z @ z), 0.0), bg)
            ag = np.where(over, cap, ag)
        sse = ((y - ag[:, None] + bg[:, None] * z) ** 2).sum(axis=1)
        better = sse < best
        best[better], a[better], b[better], c[better] = sse[better], ag[better], bg[better], cg
    return a, b, c


def levels_off(x_min: float, a: np.ndarray, b: np.ndarray, c: np.ndarray, upper: float | None) -> np.ndarray:
    """Whether each free fit (x scaled so the largest size is 1) shows where the curve levels off."""
    shown = b * (x_min**-c - 1)  # the fitted gain from the smallest size to the largest
    to_come = b  # a - q(largest size)
    ok = (b > 0) & (to_come <= RUNAWAY * shown)
    return ok & (a - upper <= shown) if upper is not None else ok


def _clip(values: np.ndarray, bounds: tuple[float | None, float | None]) -> np.ndarray:
    low, high = bounds
    return np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)


def _no_fit(status: str, reason: str, params: dict[str, float] | None = None, **extra: object) -> CurveFit:
    return CurveFit.model_validate(
        {"status": status, "reason": reason, "params": params, "asymptote": None, "supported_share": None, **extra}
    )


def fit_learning_curve(
    sizes: list[int],
    scores: np.ndarray,
    *,
    targets: list[int],
    bounds: tuple[float | None, float | None] = (None, None),
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> CurveFit:
    """Fit q(n) = a - b * n^(-c) to per-case `scores` (cases x points, columns in the order of `sizes`, all on the
    same test cases) and predict it at `targets` training examples with a seeded case-bootstrap interval; `bounds`
    is the metric's range (predictions are clipped to it, the asymptote stays under its ceiling)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(sizes) or min(sizes, default=0) <= 0:
        raise ValueError("scores must be cases x points, one column per size, and sizes positive")
    if not np.all(np.isfinite(scores)) or resamples < 1:
        raise ValueError("scores must be finite and resamples at least 1")
    order = np.argsort(sizes, kind="stable")
    n, scores = np.asarray(sizes, dtype=float)[order], scores[:, order]
    distinct = len(set(sizes))
    few = f"{distinct} distinct training-set size(s) cannot show where a curve levels off: {MORE_POINTS}."
    if distinct < 2 or len(scores) < 2:
        return _no_fit("cannot_extrapolate", few)

    tail = (1 - confidence) / 2
    means = scores.mean(axis=0)
    boot = resample_means(scores, resamples, np.random.default_rng(seed))
    if means[-1] <= means[0] or np.quantile(boot[:, -1] - boot[:, 0], tail) <= 0:
        reason = (
            f"{int(n[-1])} examples score no better than {int(n[0])} beyond noise: the curve is flat, and more data "
            "is not expected to help."
        )
        return _no_fit("flat", reason, resamples=resamples)
    if distinct < 3:
        return _no_fit("cannot_extrapolate", few, resamples=resamples)

    x, upper = n / n[-1], bounds[1]
    free = fit_power_law(x, means[None, :])
    share = float(levels_off(x[0], *fit_power_law(x, boot), upper).mean())
    if not levels_off(x[0], *free, upper)[0]:
        a, b, c = (float(v[0]) for v in free)
        reason = f"The points do not rise by less and less per doubling of the data, so they do not show where the curve levels off: {MORE_POINTS}."
        params = {"a": a, "b": b * n[-1] ** c, "c": c}
        return _no_fit("cannot_extrapolate", reason, params, resamples=resamples, supported_share=share)
    if share < SUPPORTED:
        reason = (
            f"Only {share:.0%} of the bootstrap refits level off (at least {SUPPORTED:.0%} needed), so where the "
            f"curve levels off is within noise: more test cases, {MORE_POINTS}."
        )
        return _no_fit("cannot_extrapolate", reason, resamples=resamples, supported_share=share)

    a, b, c = (float(v[0]) for v in fit_power_law(x, means[None, :], upper))
    xt = np.asarray(targets, dtype=float) / n[-1]
    point = _clip(a - b * xt**-c, bounds)
    ba, bb, bc = fit_power_law(x, boot, upper)
    low, high = np.quantile(
        _clip(ba[:, None] - bb[:, None] * xt[None, :] ** -bc[:, None], bounds), [tail, 1 - tail], axis=0
    )
    predictions = [
        CurvePrediction(n_examples=int(t), factor=float(f), mean=float(m), low=float(lo), high=float(hi))
        for t, f, m, lo, hi in zip(targets, xt, point, low, high, strict=True)
    ]
    return CurveFit(
        status="extrapolated",
        reason=f"The gains shrink as the data grows; the fitted curve levels off at {a:.3g}.",
        params={"a": a, "b": b * n[-1] ** c, "c": c},
        asymptote=a,
        predictions=predictions,
        resamples=resamples,
        supported_share=share,
    )
