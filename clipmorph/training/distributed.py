"""Data-parallel training across processes (``torchrun --nproc-per-node N``).

One training step takes one global batch of ``batch_size`` sample numbers; process ``rank`` of
``size`` takes every ``size``-th of them, starting at its rank. Every random choice (the crop, its
style, the temporal terms' noise and motion) is a function of (seed, sample number), so a run
gives the same updates with any number of processes, and a resumed run can change the number.
Gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on the CPU).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from clipmorph.errors import BadInput

TIMEOUT = datetime.timedelta(minutes=30)  # a rank that saves a large checkpoint keeps the others waiting


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when run alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        """What torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK); alone without them."""
        try:
            rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
            local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as error:
            raise BadInput(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers: {error}") from None
        if size < 1 or not 0 <= rank < size:
            raise BadInput(f"rank {rank} is not one of the {size} processes")
        return cls(rank, size, local_rank)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, shows progress, draws previews and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """Each process on a node takes its own GPU."""
        if self.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def join(self, device: torch.device) -> None:
        """Start the process group (once per process), with the backend the device needs."""
        if not self.distributed or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)

    def local_batch(self, batch_size: int) -> int:
        if batch_size % self.size:
            raise BadInput(f"the batch size ({batch_size}) must be a multiple of the {self.size} processes")
        return batch_size // self.size

    def positions(self, batch_size: int) -> list[int]:
        """The places in each global batch that this process takes."""
        return list(range(self.rank, batch_size, self.size))

    def samples(self, step: int, batch_size: int) -> list[int]:
        """The sample numbers this process trains on at ``step``."""
        return [step * batch_size + position for position in self.positions(batch_size)]

    def highest(self, value: int, device: torch.device) -> int:
        """The largest of every process's ``value``, on every process (so that all stop at the
        same step, never one of them waiting in a collective the others left)."""
        if not self.distributed:
            return value
        agreed = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        return int(agreed.item())

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the processes (for logs: the global batch's losses)."""
        if not self.distributed:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.size

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every process's ``values`` (same length each), in global batch order."""
        if not self.distributed:
            return values
        parts = [torch.empty_like(values) for _ in range(self.size)]
        dist.all_gather(parts, values.contiguous())
        # Process r holds positions r, r + size, ...: interleave them back.
        return torch.stack(parts, 1).reshape(-1)

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


class ShardedSampleStream(Sampler[int]):
    """This process's endless sample numbers from ``step`` on: resuming continues the stream."""

    def __init__(self, step: int, batch_size: int, world: World) -> None:
        self.step, self.batch_size, self.world = step, batch_size, world

    def __iter__(self) -> Iterator[int]:
        step = self.step
        while True:
            yield from self.world.samples(step, self.batch_size)
            step += 1
