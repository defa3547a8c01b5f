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
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


def save_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None,
                    trainer_state: dict | None = None,
                    extra: dict[str, tuple[torch.nn.Module, Any]] | None = None) -> Path:
    """Atomically write a checkpoint folder (see module docstring). `extra` maps a name to a
    further (module, optimizer or None), e.g. a GAN discriminator: `NAME.safetensors` and
    `NAME_optimizer.safetensors`."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    if optimizer is not None:
        tensors, meta = _optimizer_to_flat(optimizer.state_dict())
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


def _load_optimizer(path: Path, optimizer) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    optimizer.load_state_dict(_optimizer_from_flat(load_file(str(path)), meta))


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer=None,
                    scheduler=None, extra: dict[str, tuple[torch.nn.Module, Any]] | None = None
                    ) -> dict:
    """Restore model/optimizer/scheduler (and `extra`, as given to `save_checkpoint`) and the
    global RNG; return the trainer state."""
    folder = Path(folder)
    from safetensors.torch import load_model

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
