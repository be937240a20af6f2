#!/usr/bin/env python3
"""Build the data for the ``labelling_guide`` suite: the quickstart's SNIPS intent cut, unchanged.

This suite asks the quickstart's question again (which of 7 SNIPS intents a voice-assistant request expresses)
with a long labelling guide in the prompt, so it uses the same cases: the quickstart's build script, run with the
same seed, over the same ``bigbench==1.0.0`` source distribution (see ``quickstart/build_data.py`` for every step;
its provenance, checksums and licence apply here). The output is byte-identical to ``quickstart/data`` apart from
the description in ``SOURCE.json``, so the two suites' READMEs compare a two-line prompt and a 1,200-token guide
on the same 150 test cases.

Usage::

    python suites/labelling_guide/build_data.py
    python suites/labelling_guide/build_data.py --sdist /path/to/bigbench-1.0.0.tar.gz
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from harness.commands.init import templates_root
from harness.suite.bigbench import run_cli

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "data"
# the quickstart's script, from this checkout or from the templates an installed harness ships
QUICKSTART = runpy.run_path(str(templates_root() / "quickstart" / "build_data.py"))


def build(sdist: Path, out_dir: Path, seed: int) -> None:
    QUICKSTART["build"](sdist, out_dir, seed)
    path = out_dir / "SOURCE.json"
    source = json.loads(path.read_text(encoding="utf-8"))
    source["description"] = (
        "SNIPS intent classification, cut from the BIG-bench intent_recognition task "
        "(the quickstart suite's cut, same seed, for the labelling_guide suite)"
    )
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps(source, ensure_ascii=False, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    run_cli(build, __doc__, DEFAULT_OUT_DIR, QUICKSTART["DEFAULT_SEED"], "seed for the split", argv)


if __name__ == "__main__":
    main()
