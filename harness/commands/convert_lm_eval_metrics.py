"""lm-eval's metrics, filters and generation settings as a suite's scorers and generation parameters (for
harness.commands.convert_lm_eval)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from harness.commands.convert_tools import Conversion, FunctionRef

if TYPE_CHECKING:
    from harness.commands.convert_lm_eval import _Task as Task

MC_METRICS = {"acc": "label_accuracy", "acc_norm": "label_accuracy"}
GEN_METRICS = {
    "exact_match": "exact_match",
    "f1": "token_f1",
    "bleu": "bleu",
    "chrf": "chrf",
    "rouge": "rouge_l",
    "rougeL": "rouge_l",
    "rougeLsum": "rouge_l",
}
GEN_HOW = {
    "exact_match": "exact_match (white space collapsed)",
    "token_f1": "token_f1, SQuAD-style token overlap per answer (lm-eval's f1 is a corpus-level F1)",
    "bleu": "bleu, sentence BLEU averaged over cases (lm-eval's is corpus BLEU)",
    "chrf": "chrf, sentence chrF averaged over cases (lm-eval's is corpus chrF)",
    "rouge_l": "rouge_l, ROUGE-L F-measure",
}


def scorers_for(task: Task, mc: bool, conv: Conversion, refs_field: str | None) -> list[dict[str, Any]]:
    metrics = task.data.get("metric_list") or [{"metric": "acc" if mc else "exact_match"}]
    if not task.data.get("metric_list"):
        conv.mapped.append(("metric_list (none given)", f"lm-eval's default, {metrics[0]['metric']}"))
    table = MC_METRICS if mc else GEN_METRICS
    out: list[dict[str, Any]] = []
    for i, item in enumerate(metrics):
        item = item if isinstance(item, dict) else {"metric": item}
        name = item.get("metric")
        if isinstance(name, FunctionRef) or name is None:
            continue
        name, kind = str(name), table.get(str(name))
        if kind is None:
            why = (
                "the choices' log-likelihoods or a corpus-level statistic" if mc else "a measure no harness scorer has"
            )
            conv.not_mapped(f"metric_list[{i}] ({name}): {why}; not scored")
            continue
        if any(s["kind"] == kind for s in out):
            conv.not_mapped(f"metric_list[{i}] ({name}): the same measure as {out[0]['name']} for a generated answer")
            continue
        config: dict[str, Any] = {}
        if kind == "exact_match":
            config = {
                "case_sensitive": not item.get("ignore_case", False),
                "keep_punctuation": not item.get("ignore_punctuation", False),
            }
            for option in ("regexes_to_ignore", "ignore_numbers"):
                if item.get(option):
                    conv.not_mapped(f"metric_list[{i}].{option}: exact_match has no such option; not applied")
        if item.get("aggregation", "mean") != "mean":
            conv.not_mapped(
                f"metric_list[{i}].aggregation: harness averages over cases; {item['aggregation']} not used"
            )
        out.append({"name": name, "kind": kind, **({"config": config} if config else {})})
        how = "label_accuracy (the answer must be the right choice)" if mc else GEN_HOW[kind]
        if kind == "exact_match":
            ignored = [
                w
                for w, on in (("case", not config["case_sensitive"]), ("punctuation", not config["keep_punctuation"]))
                if on
            ]
            how += f", ignoring {' and '.join(ignored)}" if ignored else ", case- and punctuation-sensitive"
        conv.mapped.append((f"metric_list[{i}] ({name})", f"scorer {name}: {how}"))
    if not mc:
        out = _filters(task, out, conv)
    if not out:
        out = [{"name": "acc", "kind": "label_accuracy"} if mc else {"kind": "exact_match"}]
        conv.differences.append(f"No metric maps onto a harness scorer: the suite scores {out[0]['kind']}.")
    for scorer in out:
        if refs_field and scorer["kind"] != "label_accuracy":
            scorer.setdefault("config", {})["references_field"] = refs_field
    return out


def _filters(task: Task, scorers: list[dict[str, Any]], conv: Conversion) -> list[dict[str, Any]]:
    """A filter pipeline that is a regex (then take_first) becomes a regex scorer comparing the captured answer as
    exact_match would; a pipeline of take_first alone scores the answer as it is; any other is noted."""
    pipelines = task.data.get("filter_list") or []
    if not pipelines:
        return scorers
    plain, found = False, []
    exact = next((s.get("config", {}) for s in scorers if s["kind"] == "exact_match"), None)
    for i, pipeline in enumerate(pipelines):
        steps = pipeline.get("filter") or [] if isinstance(pipeline, dict) else []
        name = str(pipeline.get("name", f"filter{i}")) if isinstance(pipeline, dict) else f"filter{i}"
        functions = [s.get("function") if isinstance(s, dict) else s for s in steps]
        if not functions or functions == ["take_first"]:
            plain = True
        elif functions[0] == "regex" and all(f == "take_first" for f in functions[1:]) and exact is not None:
            pattern = str(steps[0].get("regex_pattern", r"#### (\-?[0-9\.\,]+)"))  # lm-eval's default pattern
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                conv.not_mapped(f"filter_list[{i}] ({name}): {pattern!r} is not a Python regular expression ({exc})")
                continue
            if steps[0].get("group_select", 0) != 0 or groups > 1:
                conv.not_mapped(f"filter_list[{i}] ({name}): harness compares the first match's first group only")
            config = {"pattern": pattern, "group": 1 if groups else 0, **exact}
            found.append(
                {
                    "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "regex",
                    "kind": "regex",
                    "config": config,
                }
            )
            conv.mapped.append(
                (
                    f"filter_list[{i}] ({name}): regex then exact_match",
                    f"scorer {found[-1]['name']}: regex with group {config['group']}, the capture compared as exact_match",
                )
            )
        else:
            conv.not_mapped(f"filter_list[{i}] ({name}): filters {functions} have no harness equivalent")
    return (scorers if plain or not found else [s for s in scorers if s["kind"] != "exact_match"]) + found


def generation_settings(task: Task, mc: bool, choice_tokens: int, conv: Conversion) -> dict[str, Any]:
    kwargs = task.data.get("generation_kwargs") or {}
    if mc:
        if kwargs:
            conv.not_mapped("generation_kwargs: multiple_choice tasks generate nothing in lm-eval; not used")
        return {"max_new_tokens": max(16, choice_tokens), "temperature": 0.0}
    until = kwargs.get("until", [task.data.get("fewshot_delimiter", "\n\n")])  # lm-eval's default stop
    stop = [until] if isinstance(until, str) else [str(u) for u in until]
    temperature = kwargs.get("temperature", 1.0 if kwargs.get("do_sample") else 0.0)
    generation = {
        "max_new_tokens": int(kwargs.get("max_gen_toks", 256)),
        "temperature": 0.0 if kwargs.get("do_sample") is False else min(5.0, float(temperature)),
        "stop": stop,
    }
    if "top_p" in kwargs:
        generation["top_p"] = float(kwargs["top_p"])
    for key in kwargs:
        if key not in ("until", "max_gen_toks", "temperature", "do_sample", "top_p"):
            conv.not_mapped(f"generation_kwargs.{key}: no harness generation setting; not used")
    conv.mapped.append(
        (
            "generation_kwargs (until, max_gen_toks, temperature)",
            f"backend generation: stop {stop}, max_new_tokens {generation['max_new_tokens']}, temperature {generation['temperature']:g}",
        )
    )
    return generation
