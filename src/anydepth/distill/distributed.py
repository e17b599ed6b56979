"""One process per GPU under `torchrun`: rank, world size and device from its environment (RANK,
WORLD_SIZE, LOCAL_RANK); the process group (NCCL on CUDA, gloo on CPU) is set up whenever torchrun
launched the process (also with one process, so `torchrun --nproc-per-node 1` runs the DDP path)
or WORLD_SIZE > 1. Shared by pseudo-labelling and training."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    grouped: bool = False  # a process group is set up (wrap models in DDP)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Distributed:
    """This process's place. device: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...;
    under torchrun with CUDA each process takes cuda:LOCAL_RANK."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    launched = "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":  # an explicit index: torch.cuda.set_device refuses a bare "cuda"
        if world_size > 1 or launched:
            chosen = torch.device("cuda", local_rank)
        elif chosen.index is None:
            chosen = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(chosen)
    if world_size <= 1 and not launched:
        return Distributed(0, 1, chosen)
    if not torch.distributed.is_initialized():
        if chosen.type == "cuda":  # device_id: NCCL binds this rank to its GPU instead of guessing
            torch.distributed.init_process_group("nccl", device_id=chosen)
        else:
            torch.distributed.init_process_group("gloo")
    return Distributed(torch.distributed.get_rank(), world_size, chosen, grouped=True)


def close_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
