"""Training checkpoints: safetensors only, written atomically, resumable.

A checkpoint is a folder: `model.safetensors`, `optimizer.safetensors` (tensors of the
optimizer state, its non-tensor parts in the file's metadata), `scheduler.json` and
`trainer_state.json` (step, metrics). It is written to a temporary sibling and swapped in with
a rename, so a run killed mid-write leaves the previous checkpoint intact. Nothing is pickled,
so loading a checkpoint cannot execute code (unlike `torch.load` of accelerate's save_state).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file, save_model


def _optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            key = f"state.{idx}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    return tensors, meta


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    items = list(tensors.items()) + list(json.loads(meta["scalars"]).items())
    for key, value in items:
        # "state.<index>.<name>"; a sharded run's optimiser state is keyed by parameter name
        # ("state.model.layers.0.mlp.up_proj.weight.exp_avg"), the state names have no dots
        idx, name = key[len("state."):].rsplit(".", 1)
        state.setdefault(int(idx) if idx.isdigit() else idx, {})[name] = value
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


def tied_names(model: torch.nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one tensor (e.g. tied input and output embeddings)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def save_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None,
                    trainer_state: dict | None = None,
                    extra: dict[str, tuple[torch.nn.Module, Any]] | None = None,
                    full_state: tuple[dict, dict | None] | None = None) -> Path:
    """Atomically write a checkpoint folder (see module docstring). `extra` maps a name to a
    further (module, optimizer or None), e.g. a GAN discriminator: `NAME.safetensors` and
    `NAME_optimizer.safetensors`. `full_state`: the (model, optimiser) state of a sharded model,
    gathered (speechtok.training.sharding.full_state), written instead of `model`'s own."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if full_state is None:
        save_model(model, str(tmp / "model.safetensors"))
        optim_state = optimizer.state_dict() if optimizer is not None else None
    else:
        model_state, optim_state = full_state
        model_state = dict(model_state)
        for names in tied_names(model):  # one copy of a tied tensor, as save_model keeps
            for name in names[1:]:
                model_state.pop(name, None)
        save_file({k: v.contiguous() for k, v in model_state.items()},
                  str(tmp / "model.safetensors"))
    if optim_state is not None:
        tensors, meta = _optimizer_to_flat(optim_state)
        save_file(tensors, str(tmp / "optimizer.safetensors"), metadata=meta)
    if scheduler is not None:
        (tmp / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
    for name, (module, opt) in (extra or {}).items():
        save_model(module, str(tmp / f"{name}.safetensors"))
        if opt is not None:
            tensors, meta = _optimizer_to_flat(opt.state_dict())
            save_file(tensors, str(tmp / f"{name}_optimizer.safetensors"), metadata=meta)
    state = dict(trainer_state or {})
    state["torch_rng_state"] = torch.get_rng_state().tolist()
    if torch.cuda.is_available():  # dropout and sampling on the GPU draw from these
        state["cuda_rng_states"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    (tmp / "trainer_state.json").write_text(json.dumps(state))
    for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def find_checkpoint(folder: str | Path) -> Path | None:
    """The complete checkpoint at `folder`, or the `.old` one a crash mid-swap left behind."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "trainer_state.json").exists():
            return candidate
    return None


def _optimizer_state(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    return _optimizer_from_flat(load_file(str(path)), meta)


def _load_optimizer(path: Path, optimizer) -> None:
    optimizer.load_state_dict(_optimizer_state(path))


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None,
                    scheduler=None, extra: dict[str, tuple[torch.nn.Module, Any]] | None = None,
                    sharded: bool = False) -> dict:
    """Restore model/optimizer/scheduler (and `extra`, as given to `save_checkpoint`) and the
    global RNG; return the trainer state. `sharded`: `model` is sharded across processes
    (speechtok.training.sharding); every process reads the files and keeps its shard."""
    folder = Path(folder)
    from safetensors.torch import load_model

    if sharded:
        from .sharding import load_full_state

        model_state = load_file(str(folder / "model.safetensors"))
        for names in tied_names(model):
            kept = next(n for n in names if n in model_state)
            model_state.update({n: model_state[kept] for n in names})
        optim_file = folder / "optimizer.safetensors"
        load_full_state(model, model_state, optimizer,
                        _optimizer_state(optim_file) if optim_file.exists() else None)
    else:
        load_model(model, str(folder / "model.safetensors"))
        if optimizer is not None and (folder / "optimizer.safetensors").exists():
            _load_optimizer(folder / "optimizer.safetensors", optimizer)
    for name, (module, opt) in (extra or {}).items():
        if not (folder / f"{name}.safetensors").exists():
            raise FileNotFoundError(f"{folder} has no {name}.safetensors to resume from")
        load_model(module, str(folder / f"{name}.safetensors"))
        if opt is not None and (folder / f"{name}_optimizer.safetensors").exists():
            _load_optimizer(folder / f"{name}_optimizer.safetensors", opt)
    if scheduler is not None and (folder / "scheduler.json").exists():
        scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    state = json.loads((folder / "trainer_state.json").read_text())
    torch.set_rng_state(torch.tensor(state.pop("torch_rng_state"), dtype=torch.uint8))
    cuda_states = state.pop("cuda_rng_states", None)
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            warnings.warn(f"{folder} holds the RNG states of {len(cuda_states)} GPUs, this "
                          f"machine has {torch.cuda.device_count()}: they are not restored, so "
                          "random draws on the GPU differ from the uninterrupted run",
                          stacklevel=2)
        else:
            torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8)
                                          for s in cuda_states])
    return state
