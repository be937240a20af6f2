"""Why the verdict came out as it did, from the run's own numbers: the question teams ask before choosing between
retrieval and fine-tuning, "is my problem missing knowledge, or wrong behaviour and format?".

- What each adds over zero-shot on the primary metric, paired (the fine-tune closed-book, retrieval with its passages),
  and retrieval's hit rate where the gold documents are known.
- How each strategy's answers fail: on form (an invalid label or JSON, an empty answer, one cut at the token limit)
  or on content (well formed and wrong), or with an error.
- The pattern in one sentence, only when the paired tests settle it; "unclear" otherwise.
- Cautions: another scorer ranks the winner's lead the other way (both settled), or the winner's lead comes with much
  shorter answers on a metric that rewards brevity.
"""

from __future__ import annotations

from harness.records.cases import CaseResult
from harness.records.decision import Diagnosis, FailureMix, Gain, PairedComparison, Pattern
from harness.records.summary import StrategySummary
from harness.suite.schema import Suite
from harness.verdict.explain import difference
from harness.verdict.paired import adjust, compare_paired
from harness.verdict.pairs import find_pair
from harness.verdict.summary import per_case_scores

# Primary metrics whose score falls as an answer grows around the right fact (exact match, overlap measures).
BREVITY_REWARDED = {"exact_match", "token_f1", "chrf", "bleu", "rouge_l"}
SHORTER = 0.5  # "much shorter": under half the other strategy's output tokens
FORMAT_MOSTLY = 0.5  # a strategy's failures are "mostly format" from this share on


def failure_mix(name: str, rows: list[CaseResult], metric: str, *, binary: bool, max_new_tokens: int) -> FailureMix:
    """Each failed answer as a format failure (invalid, empty, cut at the limit) or a content failure."""
    fmt = content = errors = 0
    for r in rows:
        if r.error is not None:
            errors += 1
            continue
        score = r.scores.get(metric)
        if score is None or score.value is None or score.value >= (1.0 if binary else 0.5):
            continue
        cut = r.output_tokens >= max_new_tokens
        if score.invalid or not (r.output or "").strip() or cut:
            fmt += 1
        else:
            content += 1
    return FailureMix(
        strategy=name, answers=len(rows), failed=fmt + content + errors, format=fmt, content=content, errors=errors
    )


def diagnose(
    suite: Suite,
    by_strategy: dict[str, list[CaseResult]],
    summaries: dict[str, StrategySummary],
    pairs: list[PairedComparison],
    *,
    binary: dict[str, bool],
    conditional: set[str],
    winner: str | None,
) -> Diagnosis:
    """The diagnosis of one run (pure: the folder's rows and summaries, and the primary metric's pairs)."""
    kinds = {s.name: s.kind for s in suite.strategies if s.name in summaries}
    metric = suite.primary_metric
    zero = next((n for n, k in kinds.items() if k == "zero_shot"), None)
    gains = []
    for name, kind in kinds.items():
        pair = find_pair(pairs, name, zero) if zero and kind in ("finetune", "rag") else None
        if pair is not None:
            gains.append(Gain(strategy=name, kind=kind, over=zero or "", pair=pair))
    limits = {s.name: suite.backend_for(s).generation.max_new_tokens for s in suite.strategies}
    failures = [
        failure_mix(n, rows, metric, binary=binary.get(metric, False), max_new_tokens=limits[n])
        for n, rows in by_strategy.items()
        if n in summaries
    ]
    hit = {n: m.mean for n, s in summaries.items() if (m := s.metrics.get("hit_rate")) and m.mean is not None}
    d = Diagnosis(gains=gains, hit_rate=hit, failures=failures)
    d.pattern, d.sentence = _pattern(kinds, pairs, d, _terse(suite, summaries))
    if winner is not None:
        d.cautions = _other_metrics(suite, by_strategy, pairs, winner, binary, conditional)
        d.cautions += _brevity(suite, summaries, pairs, winner)
    return d


def _terse(suite: Suite, summaries: dict[str, StrategySummary]) -> set[tuple[str, str]]:
    """(a, b) where a answers in under half b's output tokens, on a primary metric that rewards brevity."""
    metric = suite.primary_metric
    kind = next((s.kind for s in suite.scorers if s.label == metric), "")
    if kind not in BREVITY_REWARDED:
        return set()
    tokens = {n: s.output_tokens_mean for n, s in summaries.items() if s.output_tokens_mean}
    return {(a, b) for a in tokens for b in tokens if tokens[a] < SHORTER * tokens[b]}


def _pattern(
    kinds: dict[str, str], pairs: list[PairedComparison], d: Diagnosis, terse: set[tuple[str, str]]
) -> tuple[Pattern, str]:
    tuned = [n for n, k in kinds.items() if k == "finetune"]
    if not tuned:
        return "none", ""
    gain = {g.strategy: g for g in d.gains}
    for rag in (n for n, k in kinds.items() if k == "rag"):
        for ft in tuned:
            over = find_pair(pairs, rag, ft)
            mine = gain[rag].pair if rag in gain else None
            if mine and mine.settled and mine.diff > 0 and over and over.settled and over.diff > 0:
                hits = f"; it finds a gold passage for {d.hit_rate[rag]:.0%} of questions" if rag in d.hit_rate else ""
                return "knowledge", (
                    f"Knowledge task: retrieval ({rag}) supplies facts the fine-tune ({ft}) never learned: {rag} gains "
                    f"{difference(mine)} over zero-shot and beats {ft} by {difference(over)}{hits}."
                )
    mix = {f.strategy: f for f in d.failures}
    prompted = [n for n, k in kinds.items() if k != "finetune"]
    for ft in tuned:
        for other in prompted:
            over = find_pair(pairs, ft, other)
            share, own = mix[other].format_share, mix[ft].format
            if (
                over
                and over.settled
                and over.diff > 0
                and share is not None
                and share >= FORMAT_MOSTLY
                and (own <= 0.5 * mix[other].format)
            ):
                if (ft, other) in terse:  # the "fix" may be the short answers the metric rewards, not right ones
                    return "unclear", (
                        f"Unclear: the fine-tune ({ft}) leads {other} by {difference(over)} and leaves fewer cut, "
                        f"empty or invalid answers ({own} against {mix[other].format}), but with much shorter answers "
                        "on a metric that rewards brevity: it may have learned the answer style rather than the "
                        "content (check with a scorer that reads the content, e.g. `includes`)."
                    )
                return "format", (
                    f"Format/behaviour task: the fine-tune ({ft}) fixes format errors that prompting leaves: {share:.0%} "
                    f"of {other}'s wrong answers are invalid, empty or cut ({mix[other].format} of {mix[other].answers}),"
                    f" {ft} has {own}; {ft} leads {other} by {difference(over)}."
                )
    return "unclear", (
        "Unclear whether the gap is missing knowledge or format: the paired tests do not settle "
        "either pattern (see the gains over zero-shot and the failure mix)."
    )


def _other_metrics(
    suite: Suite,
    by_strategy: dict[str, list[CaseResult]],
    pairs: list[PairedComparison],
    winner: str,
    binary: dict[str, bool],
    conditional: set[str],
) -> list[str]:
    """Another scorer that ranks the winner and a rival the other way, both differences settled."""
    metric = suite.primary_metric
    out = []
    confidence = suite.decision.confidence if suite.decision else 0.95
    for other in (m for m in binary if m != metric and m not in conditional):
        scores = per_case_scores(by_strategy, other)
        rivals = [n for n in scores if n != winner and scores[n] and scores.get(winner)]
        found = adjust(
            [
                compare_paired(winner, n, scores[winner], scores[n], binary=binary[other], confidence=confidence)
                for n in rivals
            ]
        )
        for theirs in found:
            ours = find_pair(pairs, winner, theirs.b)
            if ours and ours.settled and theirs.settled and (ours.diff > 0) != (theirs.diff > 0) and theirs.diff != 0:
                out.append(
                    f"{metric} ranks {winner} above {theirs.b} ({difference(ours)}) but {other} ranks {theirs.b} "
                    f"above {winner} ({difference(theirs.flipped())}), both settled: the verdict follows the primary "
                    f"metric, {metric}; check which one measures what matters (for short factual answers, whether "
                    "the answer contains the target: an `includes` scorer)."
                )
    return out


def _brevity(
    suite: Suite, summaries: dict[str, StrategySummary], pairs: list[PairedComparison], winner: str
) -> list[str]:
    """The winner's lead comes with much shorter answers, on a metric that rewards brevity."""
    metric = suite.primary_metric
    kind = next((s.kind for s in suite.scorers if s.label == metric), "")
    ours = summaries[winner].output_tokens_mean
    if kind not in BREVITY_REWARDED or not ours:
        return []
    leads = []
    for name, s in summaries.items():
        pair = find_pair(pairs, winner, name)
        theirs = s.output_tokens_mean
        if name != winner and pair and pair.diff > 0 and theirs and ours < SHORTER * theirs:
            leads.append((name, pair, theirs))
    if not leads:
        return []
    over = _listed([f"{n} ({difference(p)})" for n, p, _ in leads])
    against = _listed([f"{t:.0f}" for _, _, t in leads])
    names = _listed([n for n, _, _ in leads])
    return [
        f"{winner}'s lead{'s' if len(leads) > 1 else ''} over {over} come{'' if len(leads) > 1 else 's'} with much "
        f"shorter answers ({ours:.0f} output tokens against {against}), and {metric} ({kind}) rewards brevity: the "
        f"verdict follows {metric}; check whether the longer answers of {names} hold the right fact (an `includes` "
        "scorer)."
    ]


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
