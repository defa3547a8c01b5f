"""Two CPU processes (gloo) keep one codebook: k-means init, EMA statistics and dead-code restarts
are synchronised, and the EMA update equals one process fed both ranks' data."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from speechtok.quantization import ResidualVQ, VectorQuantizer

WORLD = 2
DIM, K, STEPS = 8, 32, 4


def _full_batch(step: int) -> torch.Tensor:
    """The concatenation of both ranks' inputs at a step: (WORLD * 2, 8, DIM)."""
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(WORLD * 2, 8, DIM, generator=g)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        # (1) k-means init + EMA + dead-code restart, each rank with different data and RNG.
        torch.manual_seed(0)  # same construction on every rank
        vq = VectorQuantizer(DIM, K, ema_decay=0.9, kmeans_init=True, dead_code_steps=1)
        init = vq.codebook.detach().clone()
        torch.manual_seed(100 + rank)  # from here on the ranks' random streams differ
        for _ in range(STEPS):
            # 12 vectors per rank, 24 in all, for 32 codes: some codes are dead at every step,
            # so restarts (random choices) happen each step.
            vq(torch.randn(1, 12, DIM) + 3 * rank)
        state = torch.stack([vq.codebook.detach(), vq.embed_sum / vq.cluster_size[:, None]])
        gathered = [torch.empty_like(state) for _ in range(WORLD)]
        dist.all_gather(gathered, state)
        counters = [torch.empty_like(vq.unused_steps) for _ in range(WORLD)]
        dist.all_gather(counters, vq.unused_steps)

        # (2) EMA only, no k-means, no restarts: rank r gets slice r of the full batch.
        torch.manual_seed(0)
        ema = VectorQuantizer(DIM, K, ema_decay=0.9, kmeans_init=False)
        for step in range(STEPS):
            ema(_full_batch(step).chunk(WORLD)[rank])
        # (3) the other stateful codebooks: SimVQ's frozen codes (k-means, restarts) and every
        # stage of a residual VQ, each rank with its own data
        torch.manual_seed(0)
        simvq = VectorQuantizer(DIM, K, simvq=True, kmeans_init=True, dead_code_steps=1)
        rvq = ResidualVQ(3, DIM, K, ema_decay=0.9, kmeans_init=True, dead_code_steps=1)
        torch.manual_seed(100 + rank)
        for _ in range(STEPS):
            simvq(torch.randn(1, 12, DIM) + 3 * rank)
            rvq(torch.randn(1, 12, DIM) + 3 * rank)
        others = torch.cat([simvq.codebook.detach()]
                           + [stage.codebook for stage in rvq.stages])
        others_all = [torch.empty_like(others) for _ in range(WORLD)]
        dist.all_gather(others_all, others)
        if rank == 0:
            save_file({"init": init, "ranks": torch.stack(gathered),
                       "counters": torch.stack(counters), "ema": ema.codebook.contiguous(),
                       "others": torch.stack(others_all)},
                      os.path.join(out_dir, "result.safetensors"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return load_file(tmp / "result.safetensors")


def test_codebooks_identical_across_ranks(result):
    ranks = result["ranks"]  # (WORLD, 2, K, DIM)
    assert torch.equal(ranks[0], ranks[1])
    assert torch.equal(result["counters"][0], result["counters"][1])
    assert not torch.allclose(ranks[0, 0], result["init"])  # the codebook did train


def test_simvq_and_residual_codebooks_identical_across_ranks(result):
    others = result["others"]  # (WORLD, 4 * K, DIM): SimVQ, then the 3 residual stages
    assert torch.equal(others[0], others[1])


def test_distributed_ema_equals_single_process_on_concatenated_data(result):
    torch.manual_seed(0)
    single = VectorQuantizer(DIM, K, ema_decay=0.9, kmeans_init=False)
    half = VectorQuantizer(DIM, K, ema_decay=0.9, kmeans_init=False)
    half.load_state_dict(single.state_dict())
    for step in range(STEPS):
        single(_full_batch(step))
        half(_full_batch(step).chunk(WORLD)[0])
    assert torch.allclose(result["ema"], single.codebook, atol=1e-5)
    # and the statistics really were summed: rank 0's data alone gives another codebook
    assert not torch.allclose(result["ema"], half.codebook, atol=1e-3)
