"""dstlib.sparsity under DistributedDataParallel: 2 CPU processes (gloo), different data, identical masks."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

METHODS = ("set", "rigl", "granet_g", "mest_r")


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    import dstlib.sparsity as S

    record = {}
    for method in METHODS:
        torch.manual_seed(rank)  # different initial weights: DDP broadcasts rank 0's
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
        # a different seed per rank: only the sparsifier's broadcast keeps the masks equal
        sp = S.create(method, ddp, optimizer=opt, total_steps=24, sparsity=0.6, update_interval=3, seed=100 + rank)
        g = torch.Generator().manual_seed(rank)
        history = []
        for _ in range(24):
            x, y = torch.randn(8, 12, generator=g), torch.randint(0, 3, (8,), generator=g)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(ddp(x), y).backward()
            opt.step()
            sp.step()
            history.append({n: m.clone() for n, m in sp.masks.items()})
        record[method] = {"masks": history, "weights": {n: p.detach().clone() for n, p in model.named_parameters()}}
    torch.save(record, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_masks_identical_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for method in METHODS:
        h0, h1 = r0[method]["masks"], r1[method]["masks"]
        assert len(h0) == len(h1) == 24
        changed = 0
        for t, (a, b) in enumerate(zip(h0, h1)):
            assert a.keys() == b.keys() == {"module.0.weight", "module.2.weight"}
            for n in a:
                assert a[n].numpy().tobytes() == b[n].numpy().tobytes(), (method, t, n)
                changed += t > 0 and not torch.equal(a[n], h0[t - 1][n])
        assert changed > 0, method  # topology did change during the run
        for n, w in r0[method]["weights"].items():
            assert torch.equal(w, r1[method]["weights"][n])


def _vgg_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    import dstlib.sparsity as S
    from dstlib import flops, models
    from dstlib.sparsity.masks import find_classifier

    torch.manual_seed(0)
    ddp = nn.parallel.DistributedDataParallel(models.create("vgg16", "cifar10"))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    sp = S.create("rigl", ddp, optimizer=opt, total_steps=10, sparsity=0.5, update_interval=1, seed=rank)
    x, y = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(rank)), torch.tensor([0, 1, 2, 3])
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(ddp(x), y).backward()
    opt.step()
    sp.step()  # one topology update under DDP
    count = flops.count(ddp, (3, 32, 32), sp.masks)
    torch.save({"classifier": find_classifier(ddp), "names": list(sp.masks), "params": count["params"],
                "masks": sp.masks}, os.path.join(out_dir, f"vgg{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_ddp_wrapped_vgg16_keeps_its_dense_head(tmp_path):
    """A DDP wrapper hides `classifier`: the model is inspected through it, so the paper's VGG16 keeps
    its whole 512-512-10 head dense and has Table 5's 7.89 M parameters at density 0.5."""
    mp.spawn(_vgg_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "vgg0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "vgg1.pt", weights_only=True)
    assert r0["classifier"] == ["module.classifier.0.weight", "module.classifier.3.weight",
                                "module.classifier.6.weight"]
    assert len(r0["names"]) == 13 and all(n.startswith("module.features.") for n in r0["names"])
    assert r0["params"] / 1e6 == pytest.approx(7.89, rel=0.005)  # Table 5, density 0.5
    assert r0["params"] == r1["params"] and all(torch.equal(r0["masks"][n], r1["masks"][n]) for n in r0["names"])
