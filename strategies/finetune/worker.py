"""Multi-process training for the local tuner: the parent writes a job file and runs `accelerate launch` on this
module; every rank trains (DDP/FSDP through the Trainer), rank 0 saves checkpoints and writes the result.

Run by the tuner, not by hand: python -m accelerate.commands.launch ... -m strategies.finetune.worker JOB.json
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.suite.schema import BackendSpec
from harness.tuner import Preflight, TrainExample, TuneContext, TuneResult

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(tuner, job: Path) -> list[str]:
    from harness.backends.hf import pick_device

    n = tuner.config.num_processes
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "--dynamo_backend",
        "no",
        "--mixed_precision",
        "no",
    ]
    if tuner.config.distributed == "fsdp" and pick_device(tuner.config.device) == "cuda":
        cmd += [
            "--use_fsdp",
            "--fsdp_sharding_strategy",
            "FULL_SHARD",
            "--fsdp_auto_wrap_policy",
            "TRANSFORMER_BASED_WRAP",
        ]
    else:
        cmd += ["--multi_gpu"]  # accelerate's DDP launcher; on CPUs the ranks join over gloo
    return [*cmd, "-m", "strategies.finetune.worker", str(job)]


def launch(tuner, examples: list[TrainExample], pre: Preflight) -> TuneResult:
    """Train with `accelerate launch` in child processes; resumable like in-process training."""
    workdir = tuner.ctx.workdir
    job = workdir / "job.json"
    job.write_text(
        json.dumps(
            {
                "config": tuner.config.model_dump(mode="json"),
                "base": tuner.ctx.base.model_dump(mode="json"),
                "base_source": tuner.ctx.base_source,
                "workdir": str(workdir),
                "seed": tuner.ctx.seed,
                "examples": [dataclasses.asdict(e) for e in examples],
                "preflight": pre.model_dump(mode="json"),
            }
        )
    )
    (workdir / "train_result.json").unlink(missing_ok=True)
    cmd = launch_command(tuner, job)
    log.info("training with %d processes: %s", tuner.config.num_processes, " ".join(cmd[1:4]))
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    result = workdir / "train_result.json"
    if proc.returncode != 0 or not result.exists():
        raise HarnessError(
            f"distributed training exited with status {proc.returncode}; its output is above. Checkpoints so far are in "
            f"{workdir / 'checkpoints'}; rerun the same command to resume from the last one."
        )
    return TuneResult.from_json(json.loads(result.read_text()))


def _trainable_digest(trainer) -> str:
    digest = hashlib.sha256()
    for name, param in sorted(trainer.model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def main(job_path: str) -> None:
    from strategies.finetune.local import LocalConfig, LocalTuner

    logging.basicConfig(level=logging.INFO, format="%(levelname)s rank%(rank)s %(name)s: %(message)s")
    rank = int(os.environ.get("RANK", "0"))
    logging.getLogger().handlers[0].addFilter(lambda record: setattr(record, "rank", rank) or True)
    job = json.loads(Path(job_path).read_text())
    ctx = TuneContext(
        base=BackendSpec.model_validate(job["base"]),
        base_source=job["base_source"],
        workdir=Path(job["workdir"]),
        seed=job["seed"],
    )
    tuner = LocalTuner(LocalConfig.model_validate({**job["config"], "num_processes": 1}), ctx)
    examples = [TrainExample(**e) for e in job["examples"]]
    trainers = []
    result = tuner.train_here(examples, Preflight.model_validate(job["preflight"]), trainer_hook=trainers.append)
    # Every rank records what it trained, so a test (or a user) can check the ranks agree.
    (ctx.workdir / f"rank-{rank}.sha256").write_text(_trainable_digest(trainers[0]) + "\n")
    if rank == 0:
        tmp = ctx.workdir / "train_result.json.tmp"
        tmp.write_text(json.dumps(result.to_json()))
        tmp.replace(ctx.workdir / "train_result.json")


if __name__ == "__main__":
    main(sys.argv[1])
