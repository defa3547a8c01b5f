"""lm train on tiny pre-tokenised data: the bundle, per-modality losses, exact resume."""

from __future__ import annotations

import json

import torch
from helpers import TINY_LM, lm_train_config
from safetensors.torch import load_file

from lm.train import train_lm


def test_train_writes_a_loadable_bundle(codes):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from speechtok.auto import load_tokenizer

    out = codes / "bundle"
    model, vocab = train_lm(out, TINY_LM, lm_train_config(codes))
    history = json.loads((out / "train_history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert {"train/loss/audio", "train/loss/image", "eval/loss/image"} <= set(history[-1])
    lm = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert len(tok) == len(vocab) == lm.config.vocab_size
    ids = torch.tensor([[vocab.bos_id, vocab.boi_id, *vocab.image_ids([1, 2]).tolist()]])
    with torch.no_grad():
        assert torch.allclose(lm(ids).logits, model.eval()(ids).logits, atol=1e-6)
    assert list((out / "logs" / "lm").glob("events.out.tfevents.*"))  # TensorBoard
    assert load_tokenizer(out / "speech_tokenizer").config.kind == "speech"
    assert load_tokenizer(out / "image_tokenizer").config.kind == "image"


def test_resume_is_exact(codes):
    train_lm(codes / "full", TINY_LM, lm_train_config(codes, grad_accum_steps=2))
    train_lm(codes / "split", TINY_LM,
             lm_train_config(codes, grad_accum_steps=2, stop_after_steps=2))
    assert not (codes / "split" / "model.safetensors").exists()
    train_lm(codes / "split", TINY_LM, lm_train_config(codes, grad_accum_steps=2), resume=True)
    a = load_file(codes / "full" / "model.safetensors")
    b = load_file(codes / "split" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_train_and_config_errors(codes, capsys):
    from lm.cli import main

    args = ["train", "--out", str(codes / "cli"), "--speech_codes", str(codes / "speech_codes"),
            "--steps", "2", "--eval_every", "1", "--block_size", "64", "--samples_per_step", "2",
            "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--num_kv_heads", "1",
            "--intermediate_size", "64", "--text_vocab_size", "280",
            "--task_weights", "{speech: 1.0}"]
    assert main(args) == 0
    assert (codes / "cli" / "model.safetensors").exists()
    assert main([*args, "--hiden_size", "8"]) == 2
    assert "hiden_size" in capsys.readouterr().err
    assert main(["train", "--out", str(codes / "x"), "--image_codes", str(codes / "image_codes"),
                 "--task_weights", "{speech: 1.0}"]) == 2
    assert "no data for task" in capsys.readouterr().err


def test_two_processes_train_the_same_model_as_one(codes):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lm.cli import main

    root = Path(__file__).resolve().parents[1]
    args = ["--speech_codes", str(codes / "speech_codes"), "--image_codes",
            str(codes / "image_codes"), "--steps", "20", "--eval_every", "5", "--save_every", "20",
            "--block_size", "48", "--samples_per_step", "6", "--hidden_size", "32",
            "--num_layers", "1", "--num_heads", "2", "--num_kv_heads", "1",
            "--intermediate_size", "64", "--text_vocab_size", "280", "--warmup_steps", "2"]
    assert main(["train", "--out", str(codes / "one"), *args]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "lm.cli", "train", "--out", str(codes / "two"), *args]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    assert "2 process(es)" in run.stdout + run.stderr
    one = json.loads((codes / "one" / "train_history.json").read_text())
    two = json.loads((codes / "two" / "train_history.json").read_text())
    assert [h["step"] for h in one] == [h["step"] for h in two] == [5, 10, 15, 20]
    diffs = [abs(a["train/loss"] - b["train/loss"]) for a, b in zip(one, two, strict=True)]
    print("max |loss(1 process) - loss(2 processes)| =", max(diffs), diffs)
    assert max(diffs) < 1e-4  # equal up to float32 reduction order (measured 1e-6)
    wa, wb = load_file(codes / "one" / "model.safetensors"), load_file(codes / "two" /
                                                                      "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


def test_lm_trains_the_same_with_two_loader_workers(codes):
    runs = {}
    for workers in (0, 2):
        train_lm(codes / f"lm{workers}", TINY_LM, lm_train_config(codes, num_workers=workers))
        runs[workers] = [{k: v for k, v in h.items()
                          if k not in ("seconds", "data_wait", "steps_per_second")}
                         for h in json.loads((codes / f"lm{workers}" /
                                              "train_history.json").read_text())]
    assert runs[0] == runs[2] and len(runs[0]) == 2


def _launch(codes, out, args, processes=2, extra=()):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "lm.cli", "train", "--out", str(codes / out), *args,
           *extra]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    return run.stdout + run.stderr


def test_fsdp_two_processes_train_like_one_and_resume_exactly(codes):
    from lm.cli import main

    args = ["--speech_codes", str(codes / "speech_codes"), "--image_codes",
            str(codes / "image_codes"), "--steps", "20", "--eval_every", "5", "--save_every", "5",
            "--block_size", "48", "--samples_per_step", "6", "--hidden_size", "32",
            "--num_layers", "2", "--num_heads", "2", "--num_kv_heads", "1",
            "--intermediate_size", "64", "--text_vocab_size", "280", "--warmup_steps", "2",
            "--grad_accum_steps", "2"]
    assert main(["train", "--out", str(codes / "one"), *args]) == 0
    assert "(FSDP)" in _launch(codes, "fsdp", args, extra=["--fsdp", "true"])
    one = json.loads((codes / "one" / "train_history.json").read_text())
    two = json.loads((codes / "fsdp" / "train_history.json").read_text())
    assert [h["step"] for h in one] == [h["step"] for h in two] == [5, 10, 15, 20]
    keys = [k for k in one[0] if k.startswith(("train/loss", "eval/loss"))]
    diffs = [abs(a[k] - b[k]) for a, b in zip(one, two, strict=True) for k in keys]
    print("max |loss(1 process) - loss(2 processes, FSDP)| =", max(diffs))
    assert max(diffs) < 1e-5
    wa, wb = (load_file(codes / d / "model.safetensors") for d in ("one", "fsdp"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    # killed at step 10 and resumed: the same weights as the uninterrupted sharded run
    _launch(codes, "split", args, extra=["--fsdp", "true", "--stop_after_steps", "10"])
    assert not (codes / "split" / "model.safetensors").exists()
    _launch(codes, "split", [*args, "--resume"], extra=["--fsdp", "true"])
    wc = load_file(codes / "split" / "model.safetensors")
    assert all(torch.equal(wb[k], wc[k]) for k in wb)
