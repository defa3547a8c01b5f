"""Build the multimodal LM: a stock Hugging Face causal LM, new or extended from a local one.

New: a Llama-style decoder (RMSNorm, SwiGLU, rotary positions; Touvron et al. 2023) sized by
`LMConfig`. Extended: any `AutoModelForCausalLM` given by local path keeps its weights; its
embedding (and output head, when untied) grow to the multimodal vocabulary, the new rows set to
the mean of the existing ones (so new tokens start as an "average" token instead of noise that
dominates the logits; Hewitt 2021, "Initializing new word embeddings"), and the text rows can be
frozen. Either way the result is a plain `PreTrainedModel`: `save_pretrained` and
`AutoModelForCausalLM.from_pretrained` work with no project code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from speechtok.fields import option


@dataclass
class LMConfig:
    """The size of a new Llama-style LM (ignored when `pretrained` extends a local one)."""

    hidden_size: int = option(256, "width of the transformer")
    num_layers: int = option(4, "transformer layers")
    num_heads: int = option(4, "attention heads")
    num_kv_heads: int = option(4, "key/value heads (fewer than num_heads: grouped-query "
                               "attention)")
    intermediate_size: int = option(688, "width of the SwiGLU MLP (≈ 8/3 · hidden, a multiple "
                                    "of 16)")
    max_positions: int = option(1024, "longest sequence, tokens")
    rope_theta: float = option(10000.0, "base of the rotary position embedding")
    tie_embeddings: bool = option(True, "share the input embedding and the output head")
    dropout: float = option(0.0, "attention dropout")

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads "
                             f"{self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads "
                             f"{self.num_kv_heads}")


def new_lm(cfg: LMConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    """A randomly initialised LlamaForCausalLM over `vocab_size` tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads, max_position_embeddings=cfg.max_positions,
        rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
        attention_dropout=cfg.dropout, pad_token_id=pad_id, bos_token_id=bos_id,
        eos_token_id=eos_id)
    return LlamaForCausalLM(config)


@torch.no_grad()
def extend_lm(path: str | Path, vocab_size: int, freeze_rows: int = 0):
    """Load the causal LM at local `path`, grow its vocabulary to `vocab_size` with new rows at
    the mean of the old ones, and optionally freeze the first `freeze_rows` rows (the text
    tokens) by zeroing their gradients. Returns (model, number of old rows)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"pretrained LM folder not found: {path} (local paths only)")
    model = AutoModelForCausalLM.from_pretrained(str(path))
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size < old:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the model's {old} rows")
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(head.weight)
    for w in matrices:
        w[old:] = w[:old].mean(0)
    if freeze_rows:
        freeze_embedding_rows(model, freeze_rows)
    return model, old


def freeze_embedding_rows(model, rows: int) -> None:
    """Zero the gradient of the first `rows` rows of the input embedding and output head, so
    training leaves those token vectors as they are (use weight_decay = 0 for them too)."""
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:rows] = 0
        return grad

    seen = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and id(module.weight) not in seen:
            seen.add(id(module.weight))
            module.weight.register_hook(hook)
