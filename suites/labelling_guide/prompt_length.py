#!/usr/bin/env python3
"""How the fine-tune's saving moves with the length of the prompt it leaves out, before any run.

For the guide cut to its first quarter, half, the whole of it and twice over (the whole guide repeated, as a team
whose guide keeps growing would see), this runs `harness estimate` on the OpenAI variant of the suite
(suite.openai.yaml: gpt-4o-mini prompted with the guide against a fine-tuned gpt-4o-mini served with one line) and
prints a markdown table: tokens per prompted request, dollars per request on each side, the saving, the requests
after which the fine-tune's training pays back, and the monthly volume from which it is cheaper (setup spread over
the suite's 12-month horizon). Nothing is sent to any model and no key is needed.

    python suites/labelling_guide/prompt_length.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from harness.costs.estimate import estimate
from harness.suite.load import load_suite

HERE = Path(__file__).resolve().parent
SHARES = [0.25, 0.5, 1.0, 2.0]


def cut(guide: str, share: float) -> str:
    """The guide's first `share` of lines (whole lines), or the guide repeated for a share above 1."""
    if share > 1:
        return "\n\n".join([guide] * round(share))
    lines = guide.splitlines()
    return "\n".join(lines[: max(1, round(len(lines) * share))])


def rows() -> list[list[str]]:
    suite = yaml.safe_load((HERE / "suite.openai.yaml").read_text(encoding="utf-8"))
    guide = suite["task"]["instructions"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(HERE / "data", Path(tmp) / "data")
        for share in SHARES:
            suite["task"]["instructions"] = cut(guide, share)
            path = Path(tmp) / "suite.yaml"
            path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
            est = estimate(load_suite(path, machine=False))
            by_name = {s.strategy: s for s in est.strategies}
            for f in (f for f in est.finetune if f.against == "zero_shot"):
                prompted, tuned = by_name[f.against], by_name[f.strategy]
                out.append(
                    [
                        f"{share:g}x",
                        f"{prompted.input_tokens:,.0f}",
                        f"{tuned.input_tokens:,.0f}",
                        f"${(prompted.inference_usd or 0) / prompted.requests:.6f}",
                        f"${(tuned.inference_usd or 0) / tuned.requests:.6f}",
                        f"${f.saving_per_request_usd:.6f}" if f.saving_per_request_usd is not None else "-",
                        f"{f.payback_requests:,}" if f.payback_requests is not None else "never",
                        f"{f.break_even_monthly_volume:,}" if f.break_even_monthly_volume is not None else "never",
                    ]
                )
    return out


def main() -> None:
    header = [
        "guide",
        "zero-shot in tokens",
        "fine-tune in tokens",
        "zero-shot $/request",
        "fine-tune $/request",
        "saving $/request",
        "payback (requests)",
        "break-even (requests/month)",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
    for row in rows():
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
