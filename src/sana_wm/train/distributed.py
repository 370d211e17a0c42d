"""Process groups and data-parallel wrapping, applied from outside the model.

Launch with ``torchrun`` (or anything that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``); without those variables training runs in one process.

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every transformer block and then the root. It runs
on CPU with gloo as well as on GPU with nccl (checked with torch 2.13), so the CPU tests exercise the
same code path as a GPU run. Gradients are averaged over ranks, so with a loss that is a mean over
the rank's samples the update equals that of one process holding the whole global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from sana_wm.errors import ConfigError

__all__ = ["DistEnv", "all_gather_objects", "all_reduce_mean", "barrier", "init_distributed", "shutdown",
           "wrap_model"]


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this module created the process group and destroys it at the end

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str = "auto", device: str = "auto") -> DistEnv:
    """Join the process group described by the environment (if any) and pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("distributed.device is 'cuda' but no CUDA device is available")
    dev = torch.device("cuda", local_rank % torch.cuda.device_count()) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                device_id=dev if use_cuda else None)
        owns = True
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistEnv(rank, world_size, local_rank, dev, owns)


def shutdown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv, strategy: str = "auto") -> nn.Module:
    """FSDP2 (per block, then the root), DDP, or nothing; ``auto`` is FSDP2 when distributed."""
    if not env.distributed or strategy == "none":
        return model
    if strategy in ("auto", "fsdp2"):
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    if strategy == "ddp":
        # Some parameters are never used by the forward (the legacy raymap input, GDN gates of softmax blocks).
        return nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda"
                                                   else None, find_unused_parameters=True)
    raise ConfigError(f"unknown distributed strategy {strategy!r}")


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= env.world_size
    return value


def all_gather_objects(obj, env: DistEnv) -> list:
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out
