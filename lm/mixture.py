"""A mixture of datasets with sampling weights (AnyGPT, Zhan et al. 2024; T5's mixing rates).

Each draw picks a source with probability ∝ its weight, then an item of it uniformly. Draws are
a function of (seed, step), so a resumed run sees the samples the killed run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class Mixture:
    def __init__(self, sources: dict[str, Sequence], weights: dict[str, float], seed: int = 0):
        unknown = set(weights) - set(sources)
        if unknown:
            raise ValueError(f"weights for unknown sources: {', '.join(sorted(unknown))}")
        bad = {k: w for k, w in weights.items() if w < 0}
        if bad:
            raise ValueError(f"sampling weights must be ≥ 0, got {bad}")
        self.names = [k for k in sources if weights.get(k, 0) > 0]
        if not self.names:
            raise ValueError("every source has weight 0 (or no weight)")
        empty = [k for k in self.names if len(sources[k]) == 0]
        if empty:
            raise ValueError(f"sources with weight but no items: {', '.join(empty)}")
        self.sources, self.seed = sources, seed
        total = sum(weights[k] for k in self.names)
        self.probs = [weights[k] / total for k in self.names]

    def draw(self, step: int, n: int, process_index: int = 0) -> list[tuple[str, object]]:
        """`n` (source name, item) pairs for training step `step` (deterministic)."""
        rng = random.Random(hash((self.seed, step, process_index)))
        picks = rng.choices(self.names, weights=self.probs, k=n)
        return [(name, self.sources[name][rng.randrange(len(self.sources[name]))])
                for name in picks]
