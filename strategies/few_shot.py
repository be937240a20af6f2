"""Few-shot: k exemplars from the train split (never dev or test), chosen at random, balanced per label,
or most similar to each case (TF-IDF cosine); seeded, so a rerun sends the same prompts."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Literal

from pydantic import Field

from harness.records.cases import CaseMeta
from harness.records.setup import DataUsed, FewShotGiven
from harness.strategy import Strategy, StrategyPlan, StrategyRequest
from harness.suite.data import Case
from harness.suite.prompts import build_messages, prompt_parts
from harness.suite.schema import StrictModel


class FewShotConfig(StrictModel):
    k: int = Field(8, ge=1, le=256, description="Number of exemplars.")
    selection: Literal["random", "balanced", "similar"] = Field(
        "balanced", description="random; balanced (equal per label, needs task.labels); similar (lexical, per case)."
    )


class FewShot(Strategy):
    kind = "few_shot"
    Config = FewShotConfig

    @classmethod
    def check(cls, config: FewShotConfig, dataset, suite):
        if config.k > len(dataset.train):
            yield (
                ("k",),
                (
                    f"k={config.k} exemplars asked for, but the train split has {len(dataset.train)} cases. "
                    f"Fix: set k to at most {len(dataset.train)}, or add train cases."
                ),
            )
        if config.selection == "balanced" and not suite.task.labels:
            yield ("selection",), "'balanced' needs task.labels. Fix: list the labels, or use selection: random."

    @classmethod
    def unseeded(cls, config: FewShotConfig, suite):
        if config.selection == "similar":
            return "selection: similar picks the same exemplars for a case every time (no draw to vary)"
        return None

    @classmethod
    def data_used(cls, config: FewShotConfig, dataset, suite):
        """Its exemplars; `similar` picks from the whole train pool, so all of it must be labelled."""
        return DataUsed(train=len(dataset.train) if config.selection == "similar" else config.k)

    @classmethod
    def plan(cls, config: FewShotConfig, dataset, suite):
        train = dataset.train
        per = sum(len(c.input_text()) + len(c.target) + 1 for c in train) / max(len(train), 1)
        return StrategyPlan(
            exemplars_chars=config.k * per, exemplars=config.k, exemplars_shared=config.selection != "similar"
        )

    def prepare(self) -> FewShotGiven:
        train = self.ctx.dataset.train
        rng = random.Random(self.ctx.seed)
        self._fixed: list[Case] | None = None
        self._index = None
        if self.config.selection == "random":
            self._fixed = rng.sample(train, self.config.k)
        elif self.config.selection == "balanced":
            self._fixed = self._balanced(train, rng)
        else:
            from harness.errors import require

            text = require("sklearn.feature_extraction.text", extra="local", purpose="few_shot selection: similar")
            self._vectorizer = text.TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True)
            self._index = self._vectorizer.fit_transform([c.input_text() for c in train])
        return FewShotGiven(
            k=self.config.k,
            selection=self.config.selection,
            pool="train",
            pool_size=len(train),
            exemplar_ids=None if self._fixed is None else [c.id for c in self._fixed],
        )

    def _balanced(self, train: list[Case], rng: random.Random) -> list[Case]:
        by_label: dict[str, list[Case]] = defaultdict(list)
        for case in train:
            by_label[case.target].append(case)
        labels = sorted(by_label)
        rng.shuffle(labels)
        for label in labels:
            rng.shuffle(by_label[label])
        chosen: list[Case] = []
        depth = 0
        while len(chosen) < self.config.k:
            for label in labels:
                if depth < len(by_label[label]) and len(chosen) < self.config.k:
                    chosen.append(by_label[label][depth])
            depth += 1
        rng.shuffle(chosen)  # no label runs at the end of the prompt
        return chosen

    def _similar(self, case: Case) -> list[Case]:
        query = self._vectorizer.transform([case.input_text()])
        scores = (self._index @ query.T).toarray().ravel()
        top = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: self.config.k]
        # Most similar last, nearest to the question.
        return [self.ctx.dataset.train[i] for i in reversed(top)]

    def request(self, case):
        exemplars = self._fixed if self._fixed is not None else self._similar(case)
        messages = build_messages(self.ctx.suite.task, case, exemplars=exemplars)
        meta = CaseMeta(exemplar_ids=None if self._fixed is not None else [c.id for c in exemplars])
        return StrategyRequest(messages, meta, parts=prompt_parts(self.ctx.suite.task, case, exemplars=exemplars))
