"""The one list of built-in components. Plugins add to the same registries through entry points."""

from __future__ import annotations

from harness.registry import Registry

BACKENDS: Registry = Registry(
    "backend",
    "harness.backends",
    {
        "fake": "harness.backends.fake:FakeBackend",
        "hf": "harness.backends.hf:HFBackend",
        "openai": "harness.backends.openai_api:OpenAIBackend",
    },
)

STRATEGIES: Registry = Registry(
    "strategy",
    "harness.strategies",
    {
        "zero_shot": "strategies.zero_shot:ZeroShot",
        "few_shot": "strategies.few_shot:FewShot",
        "finetune": "strategies.finetune.strategy:FineTune",
        "rag": "strategies.rag.strategy:Rag",
    },
)

SCORERS: Registry = Registry(
    "scorer",
    "harness.scorers",
    {
        "exact_match": "harness.scorers:ExactMatch",
        "label_accuracy": "harness.scorers:LabelAccuracy",
        "token_f1": "harness.scorers:TokenF1",
        "chrf": "harness.scorers:ChrF",
        "bleu": "harness.scorers:Bleu",
        "rouge_l": "harness.scorers:RougeL",
        "json_match": "harness.scorers:JsonMatch",
        "recall_at_k": "harness.scorers:RecallAtK",
        "hit_rate": "harness.scorers:HitRate",
        "mrr": "harness.scorers:MRR",
        "faithfulness": "harness.ragas_scorers:Faithfulness",
        "answer_relevancy": "harness.ragas_scorers:AnswerRelevancy",
        "context_precision": "harness.ragas_scorers:ContextPrecision",
        "context_recall": "harness.ragas_scorers:ContextRecall",
    },
)

TUNERS: Registry = Registry("tuner", "harness.tuners", {"local": "strategies.finetune.local:LocalTuner",
                                                     "openai": "strategies.finetune.openai_tuner:OpenAITuner",
                                                     "azure": "strategies.finetune.azure_tuner:AzureTuner",
                                                     "unsloth": "strategies.finetune.unsloth_tuner:UnslothTuner",
                                                     "autotrain": "strategies.finetune.autotrain_tuner:AutoTrainTuner"})

ALL = {"backends": BACKENDS, "strategies": STRATEGIES, "scorers": SCORERS, "tuners": TUNERS}
