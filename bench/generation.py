"""Generation speed: the harness `hf` backend against lm-eval's HFLM on the same model, prompts and max tokens.

Prompts: the quickstart suite's first N test cases under its zero-shot and few-shot strategies (chat template
applied once, the same strings for both engines). Greedy, max_new_tokens from the suite, stop at end of turn.
The harness backend runs each strategy's prompts as one call (as `harness compare` does) with its defaults
(length-sorted batches of 16, shared-prefix KV cache); lm-eval runs all prompts with batch size 1 (its default)
and 8. Goals (issue 3): >= 4x lm-eval's default, >= 1.2x its batch-8 figure, in output tokens per second.
Run: python bench/generation.py [--n 24]
"""

from __future__ import annotations

import argparse
import time

from _util import REPO, parse, save


def prompts(n: int):
    from harness.builtins import BACKENDS, STRATEGIES
    from harness.strategy import StrategyContext
    from harness.suite.load import load_suite

    loaded = load_suite(REPO / "suites/quickstart/suite.yaml")
    suite = loaded.suite
    spec = suite.backends[0]
    backend = BACKENDS.get(spec.kind)(spec, loaded.config("backends", spec.name))
    groups = {}
    for s in [s for s in suite.strategies if s.kind in ("zero_shot", "few_shot")]:  # no training here
        ctx = StrategyContext(suite, loaded.dataset, backend, REPO, suite.seed)
        strategy = STRATEGIES.get(s.kind)(s, loaded.config("strategies", s.name), ctx)
        strategy.prepare()
        groups[s.name] = [strategy.request(c).messages for c in loaded.dataset.test[:n]]
    return backend, groups, spec.generation


def run_harness(backend, groups, params):
    from harness.backends.base import GenRequest

    backend.load()
    outputs, tokens, started = [], 0, time.perf_counter()
    for messages in groups.values():
        results = dict(backend.generate([GenRequest(m, params) for m in messages]))
        for i in range(len(messages)):
            outputs.append(results[i].text)
            tokens += results[i].output_tokens
    return {"wall_s": time.perf_counter() - started, "output_tokens": tokens}, outputs


def run_lm_eval(model_dir, contexts, params, batch_size, tok):
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the same device and dtype the harness backend picks
    dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if device == "cuda" else "float32"
    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device=device, dtype=dtype)
    gen = {"until": ["<|im_end|>"], "max_gen_toks": params.max_new_tokens, "do_sample": False}

    def requests(items):
        return [
            Instance(request_type="generate_until", doc={}, arguments=(c, dict(gen)), idx=i)
            for i, c in enumerate(items)
        ]

    lm.generate_until(requests(contexts[:1]), disable_tqdm=True)  # warm-up, as the harness backend gets one
    started = time.perf_counter()
    outputs = lm.generate_until(requests(contexts), disable_tqdm=True)
    wall = time.perf_counter() - started
    tokens = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in outputs)
    return {"wall_s": wall, "output_tokens": tokens}, [o.strip() for o in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=24, help="test cases per strategy")
    args = parse(parser, n=2)
    backend, groups, params = prompts(args.n)
    tok = backend.tokenizer()
    contexts = [backend.render_prompt(m) for msgs in groups.values() for m in msgs]
    model_dir = backend.source()

    engines = {}
    engines["harness_hf"], ours = run_harness(backend, groups, params)
    backend.close()
    engines["lm_eval_hflm_bs8"], _theirs8 = run_lm_eval(model_dir, contexts, params, 8, tok)
    engines["lm_eval_hflm_bs1"], theirs1 = run_lm_eval(model_dir, contexts, params, 1, tok)
    for e in engines.values():
        e["output_tok_s"] = round(e["output_tokens"] / e["wall_s"], 2)
        e["wall_s"] = round(e["wall_s"], 2)
    same = sum(a.strip() == b for a, b in zip(ours, theirs1, strict=True))
    ours_speed = engines["harness_hf"]["output_tok_s"]
    save(
        "generation",
        {
            "what": __doc__.split("\n")[0],
            "model": f"smollm2-135m-instruct ({backend.identity()['dtype']}, {backend.identity()['device']})",
            "prompts": len(contexts),
            "prompt_tokens_mean": round(
                sum(len(tok(c, add_special_tokens=False)["input_ids"]) for c in contexts) / len(contexts), 1
            ),
            "max_new_tokens": params.max_new_tokens,
            "engines": engines,
            "identical_outputs_harness_vs_lm_eval_bs1": f"{same}/{len(contexts)}",
            "ratio_vs_lm_eval_default_bs1": round(ours_speed / engines["lm_eval_hflm_bs1"]["output_tok_s"], 2),
            "ratio_vs_lm_eval_bs8": round(ours_speed / engines["lm_eval_hflm_bs8"]["output_tok_s"], 2),
            "goals": {"ratio_vs_lm_eval_default_bs1": 4.0, "ratio_vs_lm_eval_bs8": 1.2},
        },
    )


if __name__ == "__main__":
    main()
