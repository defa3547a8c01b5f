"""Fully sharded data parallelism (FSDP2, torch.distributed.fsdp.fully_shard; Zhao et al. 2023).

With several processes, each keeps only its shard of every parameter, gradient and optimiser
state; a layer's full weights are gathered just before its forward and backward and freed after,
and gradients are reduce-scattered (averaged over processes, as DDP averages them). The LM
trainer shards each decoder layer and then the whole model (the embeddings and the head).

The same calls run on CPUs (gloo) and GPUs (NCCL); accelerate's own FSDP plugin only runs on
GPUs, so the trainer shards the model itself and gives accelerate the rest of the work
(processes, autocast, backward). A checkpoint stays one file per kind, as unsharded runs write
it: the full state is gathered to the first process to be written, and every process reads the
files back on resume and keeps its shard, so a sharded run can resume unsharded and the other
way round (multi-node: the checkpoint folder must be on a file system every machine sees).
"""

from __future__ import annotations

import os

import torch


def fsdp_requested(flag: bool) -> bool:
    """`--fsdp`, or an accelerate config with `distributed_type: FSDP` (it sets
    ACCELERATE_USE_FSDP in the processes it launches)."""
    return flag or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def shard(model: torch.nn.Module, blocks: list[torch.nn.Module], device: torch.device
          ) -> torch.nn.Module:
    """Shard each of `blocks` (e.g. the decoder layers) and then `model` in place, across all
    processes, on `device`. Build the optimiser after this: the parameters become DTensors."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model.to(device)
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_state(model: torch.nn.Module, optimizer=None) -> tuple[dict, dict | None]:
    """(model state, optimiser state) of a sharded model, whole, on the CPU of the first
    process (empty dicts on the others). A collective: every process must call it."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = _options(cpu_offload=True)
    model_state = get_model_state_dict(model, options=opts)
    optim_state = get_optimizer_state_dict(model, optimizer, options=opts) \
        if optimizer is not None else None
    return model_state, optim_state


def load_full_state(model: torch.nn.Module, model_state: dict, optimizer=None,
                    optim_state: dict | None = None) -> None:
    """Give each process its shard of a whole (model, optimiser) state. A collective."""
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    set_model_state_dict(model, model_state, options=_options())
    if optimizer is not None and optim_state is not None:
        set_optimizer_state_dict(model, optimizer, optim_state, options=_options())
