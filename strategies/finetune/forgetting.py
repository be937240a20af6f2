"""Forgetting check: score the base model and the fine-tuned model on a small general task through lm-eval
(HFLM with the adapter, a local task file shipped here) and report the change in accuracy."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import require

DATA = Path(__file__).resolve().parent / "forgetting_data" / "general_knowledge.jsonl"
TASK = "harness_general_knowledge"

TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def _accuracy(model_source: str, adapter: str | None, device: str, include: Path) -> tuple[float, float]:
    evaluator = require("lm_eval", extra="eval", purpose="the forgetting check")
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(
        pretrained=model_source,
        peft=adapter,
        device=device,
        batch_size=16,
        dtype="float32" if device == "cpu" else "auto",
    )
    out = evaluator.simple_evaluate(
        model=lm,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(include)),
        num_fewshot=0,
        log_samples=False,
        verbosity="ERROR",
    )
    metrics = out["results"][TASK]
    return float(metrics["acc,none"]), float(metrics.get("acc_stderr,none") or 0.0)


def forgetting_check(
    base_source: str, adapter: str | None, model: str | None, device: str, cache: Path
) -> dict[str, Any]:
    """Accuracy before and after fine-tuning on the shipped general-knowledge task; cached in `cache`."""
    if cache.exists():
        return json.loads(cache.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=DATA))
        before, before_se = _accuracy(base_source, None, device, Path(tmp))
        after, after_se = _accuracy(model or base_source, adapter, device, Path(tmp))
    n = sum(1 for _ in DATA.open())
    result = {
        "task": "BIG-bench general_knowledge (70 multiple-choice questions, lm-eval acc)",
        "n": n,
        "before": before,
        "after": after,
        "delta": after - before,
        "stderr": {"before": before_se, "after": after_se},
    }
    cache.write_text(json.dumps(result))
    return result
