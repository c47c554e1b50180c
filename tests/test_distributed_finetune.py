"""``edgeft finetune`` under torchrun: two gloo processes on this CPU against one process on the
same recipe: the same optimizer steps per epoch (each process takes half of the global batch
from its half of the training split), one run folder written by rank 0 alone, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeft.train import Recipe, finetune
from edgeft.train.distributed import ProcessGroup
from tests.conftest import write_parts

OPTIONS = {"strategy": "full", "epochs": 2, "batch_size": 8, "image_size": 64, "precision": "fp32"}


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "edgeft", "finetune", *args,
    ]  # fmt: skip
    # One thread per process: two processes share the two cores.
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def cli_options() -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items()]


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(tmp_path_factory.mktemp("ddp") / "parts", 20, seed=3)


def test_two_gloo_processes_train_like_one(parts: Path, tmp_path: Path) -> None:
    single = finetune(Recipe(model="mobilenet_v2", data=str(parts), **OPTIONS), tmp_path / "one")
    done = torchrun("--data", str(parts), *cli_options(), "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "two"
    metrics = json.loads((run / "metrics.json").read_text())
    steps = [h["steps"] for h in metrics["history"]]
    assert steps == [h["steps"] for h in single.metrics["history"]] == [4, 4]  # 28 items, 8/step
    # rank 0 alone wrote the folder and the log: each epoch is logged once, the run said once
    log = (run / "train.log").read_text()
    assert [log.count(f"epoch {e}:") for e in (1, 2)] == [1, 1]
    assert done.stdout.count("run written to") == 1
    assert json.loads((run / "run.json").read_text())["labels"] == ["dent", "ok"]
    assert (run / "model.safetensors").is_file() and "test" in metrics

    resumed = torchrun("--resume", "--out", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 2" in resumed.stdout
    assert (run / "train.log").read_text().count("resuming after epoch 2") == 1


def test_qat_under_torchrun_is_refused_before_a_run_folder_exists(
    parts: Path, tmp_path: Path
) -> None:
    done = torchrun("--data", str(parts), "--qat", *cli_options(), "--out", str(tmp_path / "qat"))
    assert done.returncode != 0
    assert "--qat runs in one process" in done.stdout + done.stderr
    assert not (tmp_path / "qat").exists()


def test_without_torchrun_a_run_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    group = ProcessGroup.from_environment()
    assert (group.rank, group.world_size, group.is_main, group.distributed) == (0, 1, True, False)
    assert group.local_batch(32) == 32 and group.sampler([1, 2, 3], seed=0) is None
