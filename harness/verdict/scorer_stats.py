"""What some scorers' per-case details add up to over the test set: structured-output pairs micro-averaged (with
F1 per key), and how far a model judge agrees with the human grades the cases carry (Cohen's kappa for labels,
Spearman's rho for scales, each with a bootstrap interval) and how often a pairwise judge prefers the first
answer it is shown. Pure functions of cases.jsonl rows, like the rest of the summary."""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import stats

from harness.records.cases import CaseResult
from harness.records.summary import FieldScores, JudgeTrust
from harness.scoring.json_match import prf
from harness.verdict.stats import CONFIDENCE

RESAMPLES = 2000


def _details(rows: list[CaseResult], metric: str) -> list[dict]:
    return [
        s.detail for r in rows if r.error is None and (s := r.scores.get(metric)) is not None and s.detail is not None
    ]


def field_scores(rows: list[CaseResult], metric: str) -> FieldScores | None:
    """Micro precision / recall / F1 of the (key, value) pairs the metric counted per case, and F1 per key; None
    when the metric does not count pairs."""
    details = [d for d in _details(rows, metric) if isinstance(d.get("pairs"), dict)]
    if not details:
        return None
    total: Counter = Counter()
    per_key: dict[str, Counter] = {}
    for d in details:
        total.update(d["pairs"])
        for key, counts in (d.get("keys") or {}).items():
            per_key.setdefault(key, Counter()).update(counts)
    precision, recall, f1 = prf(total["tp"], total["fp"], total["fn"])
    return FieldScores(
        precision=precision,
        recall=recall,
        f1=f1,
        tp=total["tp"],
        fp=total["fp"],
        fn=total["fn"],
        per_key_f1={k: prf(c["tp"], c["fp"], c["fn"])[2] for k, c in sorted(per_key.items())},
        per_key_support={k: c["tp"] + c["fn"] for k, c in sorted(per_key.items())},
    )


def agreement(judge: list[float], human: list[float], kind: str, *, seed: int = 0) -> tuple[float, float, float]:
    """Cohen's kappa (kind "cohen_kappa", labels) or Spearman's rho ("spearman", scales) between judge and human
    grades, with a percentile bootstrap interval over cases (NaN where undefined)."""
    j, h = np.asarray(judge, dtype=float), np.asarray(human, dtype=float)

    def measure(a: np.ndarray, b: np.ndarray) -> float:
        if kind == "spearman":
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                return float("nan")
            return float(stats.spearmanr(a, b).statistic)
        labels = np.union1d(a, b)
        observed = float(np.mean(a == b))
        expected = float(sum(np.mean(a == x) * np.mean(b == x) for x in labels))
        return float("nan") if expected == 1 else (observed - expected) / (1 - expected)

    point = measure(j, h)
    rng = np.random.default_rng(seed)
    draws = [measure(j[i], h[i]) for i in rng.integers(0, len(j), size=(RESAMPLES, len(j)))]
    draws = [d for d in draws if not np.isnan(d)]
    if len(draws) < RESAMPLES // 2:
        return point, float("nan"), float("nan")
    tail = (1 - CONFIDENCE) / 2 * 100
    return point, float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


AGREEMENT_NAMES = {"cohen_kappa": "Cohen's kappa", "spearman": "Spearman's rho"}


def agreement_text(t: JudgeTrust) -> str | None:
    """The judge's agreement as a reader takes it in: "Spearman's rho 0.71 [0.52, 0.84]"; None when not measured."""
    if t.agreement is None:
        return None
    interval = f" [{t.ci_low:.2f}, {t.ci_high:.2f}]" if t.ci_low is not None and t.ci_high is not None else ""
    return f"{AGREEMENT_NAMES.get(t.agreement_kind or '', t.agreement_kind or '')} {t.agreement:.2f}{interval}"


def judge_trust(rows: list[CaseResult], metric: str, *, seed: int = 0) -> JudgeTrust | None:
    """The judge's agreement with the human grades (details carrying "human" and "judge_grade") and its position
    bias (details carrying "first_picks" / "decisive"); None when the metric's details carry neither."""
    details = _details(rows, metric)
    graded = [d for d in details if d.get("human") is not None and d.get("judge_grade") is not None]
    orders = [d for d in details if "decisive" in d]
    if not graded and not orders:
        return None
    trust = JudgeTrust()
    if graded:
        kind = graded[0].get("agreement_kind", "spearman")
        point, low, high = agreement([d["judge_grade"] for d in graded], [d["human"] for d in graded], kind, seed=seed)
        trust.agreement = None if np.isnan(point) else point
        trust.ci_low, trust.ci_high = (None, None) if np.isnan(low) else (low, high)
        trust.agreement_kind = kind
        trust.n_graded = len(graded)
        trust.min_agreement = graded[0].get("min_agreement")
    decisive = sum(d["decisive"] for d in orders)
    if orders:
        trust.n_position = decisive
        trust.position_first_share = sum(d["first_picks"] for d in orders) / decisive if decisive else None
    return trust
