"""Model-graded scorers: a rubric graded on a scale (`model_graded`) and a preference between two strategies'
answers (`pairwise`), with any suite backend as the judge.

Both go through harness.scoring.judge: each judge call is cached, batched across cases, counted as evaluation
cost, admitted under `budget_usd`, constrained to the reply's JSON schema on the hf backend, and retried once with
the parse error shown when its reply does not parse (then left unscored and counted). When the cases carry
an answer a human graded and the grade (`human_answer_field`, `human_field`), the judge grades that answer too and
each case's detail keeps both grades; the summary reports the judge's agreement with the humans
(harness.verdict.scorer_stats), and below `min_agreement` the decision does not rest on the metric. `pairwise` asks twice with the answers' positions swapped and counts a win only when both orders
agree, so a judge that prefers whatever it reads first cannot make a strategy win; how often it does prefer the
first answer is reported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, PrivateAttr, create_model, model_validator

from harness.records.cases import CaseMeta
from harness.scoring.base import JudgeConfig, JudgedScorer, Score
from harness.scoring.judge import Judge, JudgeError
from harness.suite.data import Case
from harness.suite.schema import StrictModel


class GradingExample(StrictModel):
    """A graded answer shown to the judge before the one it grades."""

    input: str = Field(description="The case's input.")
    answer: str = Field(description="The answer that was graded.")
    score: int = Field(description="Its grade on the rubric's scale.")
    reason: str = Field("", description="Why, in a sentence.")


class ModelGradedConfig(JudgeConfig):
    rubric: str | None = Field(None, description="What a good answer is, in words the judge grades against.")
    rubric_file: str | None = Field(
        None, description="A text file with the rubric, relative to the suite's folder (instead of `rubric`)."
    )
    scale: tuple[int, int] = Field(
        (1, 5), description="The lowest and highest grade; the score is (grade - low) / (high - low), 0 to 1."
    )
    reference: bool = Field(True, description="Show the judge the case's target as a reference answer.")
    examples: list[GradingExample] = Field(default_factory=list, description="Graded examples shown first.")
    human_field: str | None = Field(
        None,
        description="Case field with a human's grade, on the same scale, of the answer in `human_answer_field`: the "
        "judge grades that answer too, and the run reports how far judge and human agree.",
    )
    human_answer_field: str | None = Field(
        None, description="Case field with the answer the human graded (with `human_field`)."
    )
    min_agreement: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Below this agreement (Cohen's kappa for a 2-point scale, else Spearman's rho) the decision "
        "does not rest on this metric.",
    )
    agreement: Literal["auto", "cohen_kappa", "spearman"] = Field(
        "auto", description="auto: Cohen's kappa for a 2-point scale (labels), Spearman's rho for longer scales."
    )
    _rubric_path: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_rubric(self) -> ModelGradedConfig:
        if (self.rubric is None) == (self.rubric_file is None):
            raise ValueError(
                "the rubric is given "
                + ("twice" if self.rubric is not None else "nowhere")
                + ". Fix: give it either inline (`rubric: ...`) or as a file (`rubric_file: rubric.md`)"
            )
        low, high = self.scale
        if high <= low:
            raise ValueError(
                f"scale {list(self.scale)}: the highest grade is not above the lowest. Fix: give [lowest, highest], "
                "e.g. [1, 5]"
            )
        if (self.human_field is None) != (self.human_answer_field is None):
            raise ValueError(
                "human_field and human_answer_field go together (the grade, and the answer it was given to). Fix: "
                "name both case fields, or neither"
            )
        if self.min_agreement is not None and self.human_field is None:
            raise ValueError(
                "min_agreement needs human grades to measure. Fix: set human_field and human_answer_field, or remove "
                "min_agreement"
            )
        for i, ex in enumerate(self.examples):
            if not low <= ex.score <= high:
                raise ValueError(
                    f"examples[{i}].score {ex.score} is outside the scale [{low}, {high}]. Fix: grade it on the scale"
                )
        return self

    @property
    def agreement_kind(self) -> str:
        if self.agreement != "auto":
            return self.agreement
        return "cohen_kappa" if self.scale[1] - self.scale[0] == 1 else "spearman"

    def rubric_text(self) -> str:
        if self.rubric is not None:
            return self.rubric
        assert self._rubric_path is not None, "the suite loader resolves rubric_file"
        return self._rubric_path.read_text(encoding="utf-8")


def case_field(case: Case, name: str) -> object:
    return case.metadata.get(name, case.fields.get(name) if case.fields else None)


def human_grade(case: Case, field_name: str | None) -> float | None:
    """The case's human grade, or None when it has none (or it is not a number)."""
    if not field_name:
        return None
    value = case_field(case, field_name)
    try:
        grade = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return grade if math.isfinite(grade) else None


def _grade_model(low: int, high: int) -> type[BaseModel]:
    """The judge's reply: a reason first (it grades better having said why), then an integer grade on the scale."""
    grades = tuple(range(low, high + 1))
    return create_model(
        "Grade",
        reason=(str, Field(description="One or two sentences on how the answer meets the rubric.")),
        score=(Literal[grades], Field(description=f"The grade, {low} (worst) to {high} (best).")),  # type: ignore[arg-type]
    )


class ModelGraded(JudgedScorer):
    """A judge grades each answer against a rubric on a scale (1-5 by default), scaled to 0-1; with human grades
    on the cases, the run reports the judge's agreement with them."""

    kind = "model_graded"
    Config = ModelGradedConfig
    config: ModelGradedConfig

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self.config.scale[1] - self.config.scale[0] == 1

    @classmethod
    def resolve_files(cls, config: ModelGradedConfig, base: Path) -> list[tuple[tuple[str, ...], Path]]:
        """The rubric file, resolved against the suite's folder (the loader checks it exists and fingerprints it)."""
        if config.rubric_file is None:
            return []
        config._rubric_path = (base / config.rubric_file).resolve()
        return [(("rubric_file",), config._rubric_path)]

    def score(self, answer, case):
        raise TypeError(f"{self.kind} is judged by a model after generation, in the run's judge phase (ascore)")

    def prepare(self, judge: Judge) -> None:
        self.judge = judge
        self.reply = _grade_model(*self.config.scale)
        self.rubric = self.config.rubric_text().strip()

    def prompt(self, answer: str, case: Case) -> str:
        low, high = self.config.scale
        parts = [
            "You grade one answer to a task against a rubric.",
            f"Task: {(self.task.instructions or '').strip()}",
            f"Rubric:\n{self.rubric}",
            f"Grade from {low} (worst) to {high} (best).",
        ]
        for ex in self.config.examples:
            parts.append(
                f"Example input:\n{ex.input}\nExample answer:\n{ex.answer}\nGrade: {ex.score}"
                + (f" ({ex.reason})" if ex.reason else "")
            )
        parts.append(f"Input:\n{case.input_text()}")
        if self.config.reference:
            parts.append(f"Reference answer:\n{case.target}")
        parts.append(f"Answer to grade:\n{answer}")
        parts.append('Reply with a JSON object only: {"reason": "<one or two sentences>", "score": <grade>}.')
        return "\n\n".join(parts)

    async def _trust(self, case: Case) -> dict[str, Any]:
        """With human grades: the judge's grade of the answer the human graded, beside the human's (the same
        prompt for every strategy, so the response cache asks the judge once per case)."""
        cfg = self.config
        human = human_grade(case, cfg.human_field)
        graded = case_field(case, cfg.human_answer_field) if cfg.human_answer_field else None
        if human is None or not isinstance(graded, str):
            return {}
        trust: dict[str, Any] = {"human": human, "agreement_kind": cfg.agreement_kind}
        if cfg.min_agreement is not None:
            trust["min_agreement"] = cfg.min_agreement
        try:
            reply = await self.judge.ask(self.prompt(graded, case), self.reply)
        except JudgeError:
            return {}
        trust["judge_grade"] = int(reply.score)  # type: ignore[attr-defined]
        return trust

    async def ascore(self, answer: str, case: Case, meta: CaseMeta) -> Score | None:
        trust = await self._trust(case)
        if not answer.strip():
            return Score(0.0, invalid=True, detail={"error": "empty answer", **trust})
        try:
            reply = await self.judge.ask(self.prompt(answer, case), self.reply)
        except JudgeError as exc:
            return Score(None, detail={"error": str(exc), **trust})
        grade = int(reply.score)  # type: ignore[attr-defined]
        low, high = self.config.scale
        return Score(
            (grade - low) / (high - low),
            detail={"grade": grade, "reason": reply.reason, **trust},  # type: ignore[attr-defined]
        )


class PairwiseConfig(JudgeConfig):
    against: str = Field(description="The strategy every answer is compared with (e.g. few_shot).")
    criteria: str = Field(
        "Which answer is better: more correct, more complete and better suited to the task?",
        description="What the judge is asked when it compares two answers.",
    )
    reference: bool = Field(False, description="Show the judge the case's target as a reference answer.")


class Preference(StrictModel):
    reason: str = Field(description="One or two sentences comparing the answers.")
    winner: Literal["A", "B", "tie"] = Field(description="A, B, or tie when neither is better.")


class Pairwise(JudgedScorer):
    """The judge compares each answer with the `against` strategy's answer to the same case, in both orders; a
    win (1) or loss (0) counts only when both orders agree, anything else is a tie (0.5). The mean is the win rate
    against that strategy (ties count half); the `against` strategy itself scores 0.5 on every case."""

    kind = "pairwise"
    Config = PairwiseConfig
    config: PairwiseConfig
    needs_other_answers: ClassVar[bool] = True

    def score(self, answer, case):
        raise TypeError(f"{self.kind} is judged by a model after generation, in the run's judge phase (ascompare)")

    def prepare(self, judge: Judge) -> None:
        self.judge = judge

    def prompt(self, first: str, second: str, case: Case) -> str:
        parts = [
            "You compare two answers to the same task.",
            f"Task: {(self.task.instructions or '').strip()}",
            f"Input:\n{case.input_text()}",
        ]
        if self.config.reference:
            parts.append(f"Reference answer:\n{case.target}")
        parts += [
            f"Answer A:\n{first}",
            f"Answer B:\n{second}",
            self.config.criteria,
            'Reply with a JSON object only: {"reason": "<one or two sentences>", "winner": "A" | "B" | "tie"}.',
        ]
        return "\n\n".join(parts)

    async def ascore(self, answer: str, case: Case, meta: CaseMeta) -> Score | None:
        raise TypeError("pairwise needs the other strategy's answer: the judge phase calls ascompare")

    async def ascompare(self, answer: str, other: str, case: Case) -> Score:
        """`answer` against `other` in both orders: A = answer first, then A = other first."""
        try:
            ahead = await self.judge.ask(self.prompt(answer, other, case), Preference)
            behind = await self.judge.ask(self.prompt(other, answer, case), Preference)
        except JudgeError as exc:
            return Score(None, detail={"error": str(exc)})
        # Who each order says is better: "this" (the strategy scored), "other", or "tie".
        first = {"A": "this", "B": "other", "tie": "tie"}[ahead.winner]  # type: ignore[attr-defined]
        second = {"A": "other", "B": "this", "tie": "tie"}[behind.winner]  # type: ignore[attr-defined]
        value = 1.0 if first == second == "this" else 0.0 if first == second == "other" else 0.5
        picks = [ahead.winner, behind.winner]  # type: ignore[attr-defined]
        return Score(
            value,
            detail={
                "orders": [first, second],
                "decisive": sum(p != "tie" for p in picks),
                "first_picks": sum(p == "A" for p in picks),
                "reasons": [ahead.reason, behind.reason],  # type: ignore[attr-defined]
            },
        )


def self_score() -> Score:
    """The `against` strategy compared with itself: a tie on every case, without asking the judge."""
    return Score(0.5, detail={"self": True})
