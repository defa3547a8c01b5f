"""The one training loop of the speech, image and LM trainers.

A trainer builds its model, optimiser and data, then hands the loop two functions: `train_step`
(one optimiser step: step number in, logged training terms out) and `evaluate` (held-out metrics
now). The loop owns everything else, the same for all three: resuming from the checkpoint, the
progress bar, the loss curve, the schedule of evaluation and saving, stopping early
(`stop_after_steps`, `max_minutes`), and the final save. Batches are a function of the step
number and the checkpoint holds the model, optimiser(s), schedule and RNG states, so a killed
run resumed with `resume()` continues exactly where it would have gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .batches import StepBatchLoader
from .checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from .config import check_resumed_config
from .loss_curve import LossCurve
from .options import TrainLoopConfig
from .run_lock import acquire_run_lock, release_run_lock

HISTORY_FILE = "train_history.json"


class TrainLoop:
    """Runs `cfg.steps` steps of a trainer under the accelerator `acc`, checkpointing `model`,
    `optimizer`, `scheduler` and `extra` ({name: (module, optimizer)}, e.g. a discriminator)
    into `out/checkpoints/last`."""

    def __init__(self, acc, cfg: TrainLoopConfig, out: str | Path, name: str, model, optimizer,
                 scheduler, extra: dict[str, tuple[Any, Any]] | None = None,
                 sharded: bool = False):
        self.acc, self.cfg, self.out, self.name = acc, cfg, Path(out), name
        self.sharded = sharded  # model sharded across processes (speechtok.training.sharding)
        self.model, self.optimizer, self.scheduler, self.extra = model, optimizer, scheduler, extra
        self.ckpt_dir = self.out / "checkpoints" / "last"
        self.start_step, self.done, self.history = 0, 0, []
        self.curve = LossCurve(cfg.log_every)
        # one run writes to `out` at a time (a second one would interleave checkpoints)
        self.lock = acquire_run_lock(self.out) if acc.is_main_process else None

    def resume(self, *configs) -> bool:
        """Restore the last checkpoint if there is one (model, optimisers, schedule, RNG, history,
        curve); say so either way. True when training continues from a checkpoint. `configs`
        (the run's resolved configs) must match the run's saved train_config.yaml but for the
        fields a resumed run may change (config.RESUMABLE_FIELDS)."""
        found = find_checkpoint(self.ckpt_dir)
        if found is None:
            self.acc.print(f"--resume: no checkpoint in {self.ckpt_dir}, starting fresh")
            return False
        check_resumed_config(self.out / "train_config.yaml", *configs)
        state = load_checkpoint(found, self.model, self.optimizer, self.scheduler, self.extra,
                                sharded=self.sharded)
        self.start_step = self.done = state["step"]
        self.history = state.get("history", [])
        self.curve = LossCurve(self.cfg.log_every, state.get("curve"))
        self.acc.print(f"resuming from {found} at step {self.start_step}")
        return True

    def save_checkpoint(self) -> None:
        """Write the checkpoint from the main process (every process calls this: a sharded
        model's state is first gathered from all of them)."""
        full = None
        if self.sharded:
            from .sharding import full_state

            full = full_state(self.model, self.optimizer)
        if self.acc.is_main_process:
            save_checkpoint(self.ckpt_dir, self.model, self.optimizer, self.scheduler,
                            {"step": self.done, "history": self.history,
                             "curve": self.curve.points}, self.extra, full_state=full)

    def run(self, train_step: Callable[[int], dict[str, float]],
            evaluate: Callable[[int], dict[str, float]],
            shown: tuple[str, ...] = ("train/loss",), printed: str = "",
            loader: StepBatchLoader | None = None) -> int:
        """Train from the start (or resumed) step; return the number of steps done.

        `train_step(step)` → the step's training terms ("train/<name>": float); `shown` of them
        go in the progress bar. `evaluate(done)` → held-out metrics, stored as "eval/<name>" in
        the history; those whose names start with `printed` are printed. With the trainer's
        `loader`, the history also holds the share of the steps' time spent waiting for data
        ("data_wait") and the steps per second of training alone ("steps_per_second").
        """
        cfg, acc = self.cfg, self.acc
        bar = tqdm(range(self.start_step, cfg.steps), initial=self.start_step, total=cfg.steps,
                   disable=not acc.is_local_main_process, desc=f"train {self.name}",
                   dynamic_ncols=True)
        t0 = time.time()
        step_seconds = 0.0
        for step in bar:
            t_step = time.perf_counter()
            logs = train_step(step)
            step_seconds += time.perf_counter() - t_step
            bar.set_postfix({k.split("/", 1)[-1]: logs[k] for k in shown if k in logs})
            self.done = done = step + 1
            self.curve.add(done, logs)
            last = (done == cfg.steps or done == cfg.stop_after_steps
                    or (cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes))
            if done % cfg.eval_every == 0 or last:
                metrics = evaluate(done)
                timing = {"seconds": round(time.time() - t0, 2)}
                if loader is not None:
                    timing.update(data_wait=round(loader.waited / step_seconds, 4),
                                  steps_per_second=round((done - self.start_step)
                                                         / step_seconds, 3))
                self.history.append({"step": done, **logs,
                                     **{f"eval/{k}": v for k, v in metrics.items()}, **timing})
                acc.print(f"step {done}: " + json.dumps(
                    {k: round(v, 4) for k, v in metrics.items() if k.startswith(printed)}))
            if done % cfg.save_every == 0 or last:
                self.save_checkpoint()
            if last:
                break
        if loader is not None and step_seconds > 0:
            share = loader.waited / step_seconds
            acc.print(f"waiting for data: {share:.1%} of the training steps' time"
                      + (" (more --num_workers would help)" if share > 0.1 else ""))
        acc.wait_for_everyone()
        return self.done

    @property
    def complete(self) -> bool:
        """Whether every step of the run is done (not stopped early)."""
        return self.done >= self.cfg.steps

    def finish(self, save_model: Callable[[Path], None], only_if_complete: bool = False) -> None:
        """On the main process: `save_model(out)` (the hub-shaped result), the history and the
        loss curve. With `only_if_complete`, nothing is written for a run stopped early (its
        checkpoint is where it lives on)."""
        if not self.acc.is_main_process or (only_if_complete and not self.complete):
            return
        save_model(self.out)
        (self.out / HISTORY_FILE).write_text(json.dumps(self.history, indent=1))
        self.curve.save(self.out)
        if self.lock is not None:
            release_run_lock(self.lock)


def apply_gradients(acc, model, optimizer, scheduler, max_grad_norm: float) -> None:
    """The end of every optimiser step: clip the gradient norm (when > 0), step, advance the
    schedule."""
    if max_grad_norm > 0:
        acc.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()


def scalars(terms: dict[str, Any], prefix: str = "train/") -> dict[str, float]:
    """Loss terms (tensors or floats) as rounded floats named `prefix<name>`, for the logs."""
    return {f"{prefix}{k}": round(float(v.detach() if hasattr(v, "detach") else v), 4)
            for k, v in terms.items()}
