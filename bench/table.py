"""README's benchmark table, made from bench/results/*.json (never typed by hand): one row per result, its figures
beside their baseline or goal, and when and on what machine each was measured.

Run: python bench/table.py           print the table
     python bench/table.py --write   replace the table in README.md (between the bench-table markers)
     python bench/table.py --check   exit 1 when README.md's table differs from the results (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- bench-table: begin (python bench/table.py --write) -->", "<!-- bench-table: end -->"


def _s(x: float) -> str:
    return f"{x:.1f} s" if x < 100 else f"{x:.0f} s"


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def generation(r: dict) -> tuple[str, str, str]:
    e = r["engines"]
    return (
        f"`bench/generation.py`: {r['prompts']} quickstart prompts (zero- and few-shot, mean "
        f"{r['prompt_tokens_mean']:.0f} tokens), greedy, {r['max_new_tokens']} new tokens",
        f"harness `hf` {e['harness_hf']['output_tok_s']} output tok/s ({_s(e['harness_hf']['wall_s'])})",
        f"lm-eval HFLM batch 1: {e['lm_eval_hflm_bs1']['output_tok_s']} tok/s, {r['ratio_vs_lm_eval_default_bs1']}x; "
        f"batch 8: {e['lm_eval_hflm_bs8']['output_tok_s']} tok/s, {r['ratio_vs_lm_eval_bs8']}x; identical outputs "
        f"{r['identical_outputs_harness_vs_lm_eval_bs1']}; goal >= {r['goals']['ratio_vs_lm_eval_default_bs1']}x and "
        f">= {r['goals']['ratio_vs_lm_eval_bs8']}x",
    )


def overhead(r: dict) -> tuple[str, str, str]:
    runs = r["runs"]
    first = runs[0]
    measured = (
        "; ".join(f"{x['cases']:,} cases: {_s(x['wall_s'])}, {_gb(x['peak_rss_mb'])}" for x in runs)
        + f" ({r['ratio_largest_over_first']:.2f}x for {runs[-1]['cases'] // first['cases']}x the cases)"
    )
    g = r["goals"]
    return (
        f"`bench/overhead.py`: fake backend, {first['strategies']} strategies, costs, token attribution and the decision",
        measured,
        f"goal at {first['cases']:,}: <= {g['wall_s_at_10k']} s, <= {g['peak_rss_mb_at_10k']} MB; "
        f"<= {g['ratio_20k_over_10k']}x",
    )


def quickstart(r: dict) -> tuple[str, str, str]:
    p, c = r["cold_zero_and_few_shot_only"], r["cold_all_strategies_with_lora_training"]
    same, new = r["warm_rerun_same_folder"], r["warm_rerun_new_folder_from_caches"]
    g = r["goals"]
    lora = c.get("lora", {})
    return (
        "`bench/quickstart.py`: the default suite, cold caches, then warm reruns",
        f"zero+few: {_s(p['wall_s'])}, {_gb(p['peak_rss_mb'])}; all with LoRA training: {_s(c['wall_s'])} (training "
        f"{_s(lora.get('training_wall_s', 0))}, {lora.get('train_tokens_per_s')} tok/s), {_gb(c['peak_rss_mb'])}; "
        f"rerun {_s(same['wall_s'])} (same folder) / {_s(new['wall_s'])} (new folder), "
        f"{new['counts']['model_calls']} model calls",
        f"goal: zero+few <= {g['cold_prompting_wall_s']} s; all <= {g['cold_all_wall_s']} s and "
        f"<= {_gb(g['cold_all_peak_rss_mb'])}; rerun <= {g['warm_wall_s']} s",
    )


def finetune_search(r: dict) -> tuple[str, str, str]:
    v, ratios = r["variants"], r["ratios"]
    parts = []
    for name in ("defaults", "grid"):
        if name in v:
            parts.append(
                f"{name} {_s(v[name]['setup_s'])} ({ratios.get(f'{name}_setup_vs_single')}x), test "
                f"{v[name]['test_label_accuracy']}"
            )
    single = v.get("single", {})
    return (
        "`bench/finetune_search.py`: the quickstart fine-tune alone, cold: one training, the defaults, a grid of "
        "learning rates x `epochs: auto`",
        "setup (trainings + dev answers): " + "; ".join(parts),
        f"one training: {_s(single.get('setup_s', 0))}, test {single.get('test_label_accuracy')}",
    )


def finetune_cpu(r: dict) -> tuple[str, str, str]:
    e = r["engines"]
    ours, best = e["harness_local"], e[r["best_hand_tuned_trl"]]
    return (
        f"`bench/finetune_cpu.py`: LoRA r=16, batch 8, {ours['examples']} quickstart examples",
        f"harness `local` tuner {ours['tokens_per_s']} trained tok/s, {_gb(ours['peak_rss_mb'])}",
        f"best hand-tuned trl ({r['best_hand_tuned_trl']}) {best['tokens_per_s']} tok/s, {_gb(best['peak_rss_mb'])}: "
        f"{r['ratio_vs_best_hand_tuned_trl']}x; trl defaults {e['trl_defaults']['tokens_per_s']} tok/s: "
        f"{r['ratio_vs_trl_defaults']}x; goal >= {r['goals']['ratio_vs_best_hand_tuned_trl']}x",
    )


def finetune_gpu(r: dict) -> tuple[str, str, str]:
    """One GPU, or the same benchmark's dry path on a CPU (random weights cut to 2 layers: not a GPU figure)."""
    e = r["engines"]
    dry = r["benchmark"].endswith("_dry_run_cpu")
    shape = "Llama-3.2-1B-shaped" if r.get("shape") == "llama1b" else "SmolLM2-shaped"
    ours = f"harness `local` {e['harness_local']['tokens_per_s']} tok/s"
    if not dry and e["harness_local"].get("mfu") is not None:
        ours += f", MFU {e['harness_local']['mfu']:.0%}"
    others = [f"trl defaults {e['trl_defaults']['tokens_per_s']} tok/s: {r['ratio_tokens_per_s_vs_trl_defaults']}x"]
    if "trl_best" in e:
        others.append(
            f"trl best (packing bfd) {e['trl_best']['tokens_per_s']} tok/s: {r['ratio_tokens_per_s_vs_trl_best']}x"
        )
    goal = r["goals"]["ratio_tokens_per_s_vs_trl_defaults"]
    return (
        f"`bench/finetune_gpu.py --device cpu`: the GPU benchmark's dry path ({shape}, 2 layers)"
        if dry
        else f"`bench/finetune_gpu.py`: one GPU, {shape}",
        ours,
        "; ".join(others) + ("; not a GPU figure" if dry else f"; goal >= {goal}x trl defaults"),
    )


def rag_index(r: dict) -> tuple[str, str, str]:
    sizes = sorted(r["results"], key=int)
    ours = [r["results"][n]["harness_rag_index"] for n in sizes]
    base = [r["results"][n]["baseline_sentence_transformers"] for n in sizes]
    largest = ours[-1]
    return (
        "`bench/rag_index.py`: index N chunks (squad_qa sentences), MiniLM on CPU; retrieval one query at a time",
        "; ".join(f"{int(n):,} chunks: {_s(o['build_s'])}" for n, o in zip(sizes, ours, strict=True))
        + f"; warm rebuild {largest['warm_load_s']:.2f} s, {largest['warm_embedding_calls']} embedding calls; "
        f"at {int(sizes[-1]):,}: dense p50 {largest['dense']['p50_ms']:.1f} ms, BM25 {largest['bm25']['p50_ms']:.1f} "
        f"ms, hybrid {largest['hybrid']['p50_ms']:.1f} ms",
        "plain sentence-transformers `encode`: "
        + "; ".join(
            f"{_s(b['encode_s'])} ({r['results'][n]['build_over_plain_encode']}x)"
            for n, b in zip(sizes, base, strict=True)
        )
        + f"; goal <= {r['results'][sizes[0]]['goal_build_over_plain_encode']}x",
    )


def report_load(r: dict) -> tuple[str, str, str]:
    return (
        f"`bench/report_load.py`: the report on a run of {r['what'].split('run of ')[1].split(' (')[0]}",
        f"first render {_s(r['first_render_s'])} (reading the folder {_s(r['load_run_s'])}); cached rerender "
        f"{r['cached_rerender_s']} s; slowest page {max(r['page_render_s'].values())} s; HTML export "
        f"{_s(r['html_export_s'])}",
        f"plain `pandas.read_json` of the same cases.jsonl: {r['baseline_pandas_read_json_s']} s; goal: cached load "
        f"<= {r['goal']['cached_load_s']} s",
    )


def api_concurrency(r: dict) -> tuple[str, str, str]:
    pf = r.get("promptfoo")
    return (
        f"`bench/api_concurrency.py`: {r['what']}",
        f"`openai` backend {_s(r['backend_generate_s'])} ({r['backend_over_ideal']:.2f}x the ideal "
        f"{_s(r['ideal_s'])}); whole `harness compare` {_s(r['harness_compare_s'])} ({r['compare_over_ideal']:.2f}x)",
        (f"promptfoo {pf['version']}: {_s(pf['wall_s'])} ({pf['over_ideal']:.2f}x); " if pf else "")
        + f"goal <= {r['goal_over_ideal']}x",
    )


def rag_judge(r: dict) -> tuple[str, str, str]:
    return (
        f"`bench/rag_judge.py`: ragas' four metrics, {r['cases']} squad_qa cases, k={r['top_k']}",
        f"{r['judge_calls_per_case_cold']} judge model calls per case cold, {r['judge_calls_rerun']} on a rerun",
        f"ragas' own count: {r['ragas_requests_per_case_measured']:.2f} requests per case (6 + k)",
    )


ROWS: dict[str, Callable[[dict], tuple[str, str, str]]] = {
    "generation": generation,
    "overhead": overhead,
    "quickstart": quickstart,
    "finetune_search": finetune_search,
    "finetune_cpu": finetune_cpu,
    "finetune_gpu": finetune_gpu,
    "finetune_gpu_dry_run_cpu": finetune_gpu,
    "finetune_gpu_llama1b": finetune_gpu,
    "finetune_gpu_llama1b_dry_run_cpu": finetune_gpu,
    "rag_index": rag_index,
    "report_load": report_load,
    "api_concurrency": api_concurrency,
    "rag_judge": rag_judge,
}


def table(results: Path = RESULTS) -> str:
    lines = ["| benchmark | measured | baseline / goal | when, where |", "|---|---|---|---|"]
    for name, row in ROWS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        machine = r.get("machine", {})
        where = f"{r['measured_at'][:10]}, {machine.get('cpus', '?')} CPUs"
        cells = (*row(r), where)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def readme_with(text: str, new_table: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block for the table")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{new_table}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    made = table()
    readme = README.read_text(encoding="utf-8")
    if args.write:
        README.write_text(readme_with(readme, made), encoding="utf-8")
        print(f"wrote the table into {README}")
    elif args.check:
        if readme_with(readme, made) != readme:
            print("README.md's benchmark table differs from bench/results: run python bench/table.py --write")
            sys.exit(1)
        print("README.md's benchmark table matches bench/results")
    else:
        print(made)


if __name__ == "__main__":
    main()
