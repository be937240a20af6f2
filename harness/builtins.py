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
        "exact_match": "harness.scoring.text:ExactMatch",
        "label_accuracy": "harness.scoring.text:LabelAccuracy",
        "token_f1": "harness.scoring.text:TokenF1",
        "chrf": "harness.scoring.text:ChrF",
        "bleu": "harness.scoring.text:Bleu",
        "rouge_l": "harness.scoring.text:RougeL",
        "json_match": "harness.scoring.json_match:JsonMatch",
        "includes": "harness.scoring.pattern:Includes",
        "regex": "harness.scoring.pattern:Regex",
        "numeric": "harness.scoring.pattern:Numeric",
        "python": "harness.scoring.python_code:PythonFunction",
        "recall_at_k": "harness.scoring.retrieval:RecallAtK",
        "hit_rate": "harness.scoring.retrieval:HitRate",
        "mrr": "harness.scoring.retrieval:MRR",
        "faithfulness": "harness.scoring.ragas:Faithfulness",
        "answer_relevancy": "harness.scoring.ragas:AnswerRelevancy",
        "context_precision": "harness.scoring.ragas:ContextPrecision",
        "context_recall": "harness.scoring.ragas:ContextRecall",
        "model_graded": "harness.scoring.rubric:ModelGraded",
        "pairwise": "harness.scoring.rubric:Pairwise",
    },
)

TUNERS: Registry = Registry(
    "tuner",
    "harness.tuners",
    {
        "local": "strategies.finetune.local:LocalTuner",
        "openai": "strategies.finetune.openai_tuner:OpenAITuner",
        "azure": "strategies.finetune.azure_tuner:AzureTuner",
        "unsloth": "strategies.finetune.unsloth_tuner:UnslothTuner",
        "autotrain": "strategies.finetune.autotrain_tuner:AutoTrainTuner",
    },
)

ALL = {"backends": BACKENDS, "strategies": STRATEGIES, "scorers": SCORERS, "tuners": TUNERS}
