"""Data-parallel fine-tuning under ``torchrun``: one process per device, gradients averaged by
DistributedDataParallel (NCCL on GPUs, gloo on CPUs).

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them a run is the usual single
process and nothing here does anything. The recipe's batch size is the global batch: each of N
processes takes 1/N of it per step from its shard of the training split, so a run takes the same
number of optimizer steps per epoch, and follows the same learning-rate schedule, whatever N is.
Rank 0 alone writes the run folder; the others wait for it where they read what it wrote, so the
folder must be one that every node sees (it is on one machine).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: rank 0 of 1 when not started by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> ProcessGroup:
        """Join torchrun's process group (once per process) when its variables are set."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        group = cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(group.local_rank)
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank if self.distributed else 0)
        return torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block (writing what the others then read) before the others do."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def local_batch(self, batch_size: int) -> int:
        """This process's share of the global batch."""
        return max(1, batch_size // self.world_size)

    def sampler(self, dataset: Dataset, seed: int) -> DistributedSampler | None:
        """This process's shuffled shard of a training split; None for a single process."""
        if not self.distributed:
            return None
        return DistributedSampler(dataset, self.world_size, self.rank, shuffle=True, seed=seed)

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` with its gradients averaged across processes at each backward pass.

        DistributedDataParallel registers the parameters that train when it is built, so a
        progressive run wraps again after each thaw."""
        if not self.distributed or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def total(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over processes (a loss summed over every shard)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def from_main(self, values: Sequence[float]) -> list[float]:
        """Rank 0's ``values`` on every process, so that decisions taken on them (the best
        epoch, early stopping, thawing) agree even where float sums differ in the last bit."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return tensor.tolist()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
