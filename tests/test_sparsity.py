"""dstlib.sparsity: invariants of every method, layer densities, schedules, state round-trips."""
from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import dstlib.sparsity as S
from dstlib.sparsity import distributions as D
from dstlib.sparsity import schedules as sch
from dstlib.sparsity.masks import find_classifier, top_k_mask

SPARSE = [m for m in S.METHODS if m not in ("dense", "chts")]  # chts: Linear layers only (test_cht.py)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * 6 * 6, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 5),
    )


def batch(t: int, n: int = 8):
    g = torch.Generator().manual_seed(1000 + t)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


def train_step(model, opt, sp, t):
    x, y = batch(t)
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    sp.step()


def expected_density(sp, t: int) -> float:
    """The method's overall density after step t, from the paper's formulas (independent of the hooks)."""
    b, T, dT = sp.density, sp.total_steps, sp.update_interval
    if sp.name in ("static", "set", "rigl"):
        return b
    if sp.name.startswith("mest"):
        last = ((T - 1) // dT) * dT  # the bound lasts the run, its last update before the last step
        t_upd = min((t // dT) * dT, last)
        return b * (1 + 0.1 * (1 - t_upd / last) ** 0.01)
    if sp.name.startswith("granet"):
        end = (math.floor(0.5 * T) // dT) * dT
        t_upd = min((t // dT) * dT, end)
        return b + (0.8 - b) * (1 - t_upd / end) ** 3
    if sp.name == "acdc":  # T = 100: dense 0-9, C/D 5-step phases from 10, D 75-84, C 85-99
        if t < 10 or 75 <= t < 85:
            return 1.0
        return b if t >= 85 or ((t - 10) // 5) % 2 == 0 else 1.0
    raise AssertionError(sp.name)


def test_methods_match_config():
    from dstlib import config

    assert S.METHODS == config.METHODS


@pytest.mark.parametrize("method", SPARSE)
def test_invariants_every_step(method):
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sp = S.create(method, model, optimizer=opt, total_steps=100, sparsity=0.7, update_interval=5, prune_rate=0.3)
    params = dict(model.named_parameters())
    assert set(sp.masks) == {"0.weight", "4.weight", "6.weight"}  # classifier, biases, BN dense
    updates = 0
    for t in range(1, 101):
        before = {n: m.clone() for n, m in sp.masks.items()}
        train_step(model, opt, sp, t)
        for n, m in sp.masks.items():
            w = params[n]
            assert m.dtype == torch.bool and m.shape == w.shape
            assert torch.count_nonzero(w[~m]) == 0, (t, n)
            new = m & ~before[n]
            if new.any():  # regrown: zero weight, zero momentum
                assert torch.count_nonzero(w[new]) == 0
                assert torch.count_nonzero(opt.state[w]["momentum_buffer"][new]) == 0
        updates += any(not torch.equal(before[n], sp.masks[n]) for n in sp.masks)
        total = sum(m.numel() for m in sp.masks.values())
        assert sum(int(m.sum()) for m in sp.masks.values()) == pytest.approx(expected_density(sp, t) * total, abs=3), t
        # per layer: the count of the uniform distribution at that density
        for n, m in sp.masks.items():
            assert int(m.sum()) == math.floor(expected_density(sp, t) * m.numel() + 0.5), (t, n)
    if method != "static":
        assert updates > 0
    else:
        assert updates == 0
    assert sp.densities()["overall"] == pytest.approx(0.3, abs=0.01)  # every method ends at the target


def test_regrown_state_reset_with_adam():
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sp = S.create("set", model, optimizer=opt, total_steps=40, sparsity=0.5, update_interval=4, prune_rate=0.5)
    params = dict(model.named_parameters())
    for t in range(1, 9):
        before = {n: m.clone() for n, m in sp.masks.items()}
        train_step(model, opt, sp, t)
    # the last step (8) was an update: exp_avg and exp_avg_sq are zero where grown
    for n, m in sp.masks.items():
        new = m & ~before[n]
        assert new.any()
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.count_nonzero(opt.state[params[n]][key][new]) == 0


def _manual_layer(method, **kw):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 2))
    sp = S.create(method, model, total_steps=1000, sparsity=0.5, update_interval=1, prune_rate=0.2,
                  prune_rate_decay="constant", **kw)
    return model, sp


def test_rigl_grows_exact_top_gradient_inactive():
    model, sp = _manual_layer("rigl")
    w = model[0].weight
    old = sp.masks["0.weight"].clone()
    g = torch.randn(10, 10)
    g[~old] = torch.round(g[~old])  # many ties among candidates: broken at random (seeded)
    w.grad = g.clone()
    forwards = []
    model.register_forward_hook(lambda *a: forwards.append(1))
    sp.step()
    new = sp.masks["0.weight"]
    assert not forwards  # no extra forward (hence no extra backward)
    assert torch.equal(w.grad, g)
    # reference: keep the 40 largest |w| among 50 active, grow the 10 largest |g| among the rest
    flat_w = torch.where(old, w.detach().abs(), torch.full_like(w, -1.0)).flatten()
    keep_idx = sorted(sorted(range(100), key=lambda i: -flat_w[i].item())[:40])  # |w| distinct a.s.
    kept = torch.zeros(100, dtype=torch.bool)
    kept[keep_idx] = True
    cand = [i for i in range(100) if not kept[i]]
    score = {i: abs(g.flatten()[i].item()) for i in cand}
    thr = sorted(score.values(), reverse=True)[9]
    grown = set(torch.nonzero(new.flatten() & ~kept).reshape(-1).tolist())
    assert len(grown) == 10 and torch.equal(new.flatten() & kept, kept)
    assert {i for i in cand if score[i] > thr} <= grown  # strictly above the threshold: always
    assert all(score[i] == thr for i in grown if score[i] <= thr)  # the rest: ties at the threshold


def test_set_regrowth_uniform_over_inactive():
    model, sp = _manual_layer("set")
    w = model[0].weight
    start = sp.masks["0.weight"].clone()
    with torch.no_grad():
        w.copy_(torch.arange(100.0).reshape(10, 10) + 1)
    w_start = w.detach().clone()
    hits = torch.zeros(100)
    for _ in range(600):
        sp.masks["0.weight"] = start.clone()
        sp._refresh()
        with torch.no_grad():
            w.copy_(w_start * start)
        sp.update(1)
        hits += (sp.masks["0.weight"] & ~start).flatten().float()
    # 10 dropped, 10 grown among the 60 non-kept positions (the 50 inactive + the 10 dropped)
    cand = (~start).flatten()
    rate = hits[cand] / 600
    assert rate.mean().item() == pytest.approx(10 / 60, rel=0.05)
    assert rate.min().item() > 0.09 and rate.max().item() < 0.25  # 600 draws: sd ~0.015


def test_top_k_mask_ties_and_counts():
    s = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0, 2.0])
    assert top_k_mask(s, 2).tolist() == [False, True, True, False, False, False]
    assert top_k_mask(s, 0).sum() == 0 and top_k_mask(s, 6).all()
    x = torch.randn(1000)
    assert top_k_mask(x, 321).sum() == 321
    assert torch.equal(top_k_mask(x, 321), x >= x.topk(321).values.min())


def test_erk_matches_formula():
    shapes = [(16, 3, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (10, 64)]
    n = [math.prod(s) for s in shapes]
    for d in (0.05, 0.2, 0.5):
        dens = D.erk(shapes, d)
        assert sum(x * k for x, k in zip(dens, n)) == pytest.approx(d * sum(n))
        raw = [sum(s) / math.prod(s) for s in shapes]
        free = [i for i in range(4) if dens[i] < 1]
        eps = dens[free[0]] / raw[free[0]]
        for i in free:
            assert dens[i] == pytest.approx(eps * raw[i])
        for i in range(4):
            if dens[i] == 1.0:  # made dense: its formula density would exceed 1
                assert eps * raw[i] >= 1.0 - 1e-9
    # d = 0.2: the linear (raw 0.116) then the first conv (0.058) would exceed 1 and are made dense
    dens = D.erk(shapes, 0.2)
    assert dens[0] == dens[3] == 1.0 and dens[1] < 1 and dens[2] < 1
    assert D.erk(shapes, 0.01)[3] < 1.0  # low enough: nothing dense
    # power scale
    d2 = D.erk(shapes, 0.1, power_scale=0.5)
    raw2 = [(sum(s) / math.prod(s)) ** 0.5 for s in shapes]
    assert d2[1] / d2[2] == pytest.approx(raw2[1] / raw2[2])
    assert D.uniform(shapes, 0.3) == [0.3] * 4


def test_erk_sparsifier_holds_target():
    model = tiny()
    sp = S.create("rigl", model, total_steps=50, sparsity=0.9, distribution="erk")
    dens = sp.densities()
    assert dens["overall"] == pytest.approx(0.1, abs=1e-3)
    assert dens["0.weight"] > dens["4.weight"]  # small layers denser


def test_schedules():
    assert sch.prune_rate(0, 0.1, "polynomial", 1000, 750) == pytest.approx(0.1)
    assert sch.prune_rate(500, 0.1, "polynomial", 1000, 750) == pytest.approx(0.1 * 0.5 ** 0.01)
    assert sch.prune_rate(375, 0.1, "cosine", 1000, 750) == pytest.approx(0.05)
    assert sch.prune_rate(750, 0.1, "cosine", 1000, 750) == pytest.approx(0.0, abs=1e-12)
    assert sch.prune_rate(900, 0.1, "constant", 1000, 750) == 0.1
    assert sch.last_update_step(1000, 100, 0.75) == 700
    assert [s for s in range(1, 1001) if sch.is_update_step(s, 100, 700)] == list(range(100, 701, 100))
    # MEST: density 0.3 starts at 0.33 (paper A.3.2), ends at 0.3 at the last update
    assert sch.mest_density(0, 0.3, 0.1, 700) == pytest.approx(0.33)
    assert sch.mest_density(700, 0.3, 0.1, 700) == pytest.approx(0.3)
    assert sch.mest_density(350, 0.3, 0.1, 700, power=1.0) == pytest.approx(0.315)
    # GraNet: 0.8 -> target, cubic, over n dT
    assert sch.granet_initial_density(0.5) == 0.8 and sch.granet_initial_density(0.9) == pytest.approx(0.95)
    assert sch.granet_density(0, 0.8, 0.3, 500) == pytest.approx(0.8)
    assert sch.granet_density(250, 0.8, 0.3, 500) == pytest.approx(0.3 + 0.5 * 0.125)
    assert sch.granet_density(500, 0.8, 0.3, 500) == pytest.approx(0.3)
    assert sch.granet_density(900, 0.8, 0.3, 500) == pytest.approx(0.3)
    # AC/DC: the ImageNet shape in 100 steps
    comp = [sch.acdc_compressed(t, 100, 0.1, 0.05, 0.15) for t in range(100)]
    ref = [False] * 10 + sum(([True] * 5 + [False] * 5 for _ in range(7)), []) + [True] * 5 + [False] * 10 + [True] * 15
    ref = ref[:10] + [10 <= t < 75 and ((t - 10) // 5) % 2 == 0 for t in range(10, 75)] + [False] * 10 + [True] * 15
    assert comp == ref
    # a CIFAR-like shape: 5% warm-up, 10% phases, 15% final (AC/DC's WRN CIFAR-100 config)
    comp = [sch.acdc_compressed(t, 200, 0.05, 0.1, 0.15) for t in range(200)]
    starts = [t for t in range(1, 200) if comp[t] and not comp[t - 1]]
    assert starts == [10, 50, 90, 130, 170]


def test_prune_rate_decay_in_updates():
    model = tiny()
    sp = S.create("set", model, total_steps=100, sparsity=0.5, update_interval=10, prune_rate=0.5,
                  prune_rate_decay="cosine")
    assert sp.last_update == 70 and sp.rate_at(70) == pytest.approx(0.0, abs=1e-12)
    assert sp.rate_at(80) == 0.0 and not sp.is_update(80)
    g = S.create("granet_r", model, total_steps=100, sparsity=0.5, update_interval=10)
    assert g.is_update(90) and g.rate_at(90) > 0  # regeneration runs to the end ...
    assert not g.is_update(100)  # ... but never after the last step


def test_layer_selection_options():
    model = tiny()
    assert find_classifier(model) == ["8.weight"]
    sp = S.create("static", model, total_steps=10, dense_first_layer=True)
    assert set(sp.masks) == {"4.weight", "6.weight"}
    sp = S.create("static", model, total_steps=10, sparse_classifier=True, dense_layers=("6.weight",))
    assert set(sp.masks) == {"0.weight", "4.weight", "8.weight"}
    conv_head = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1))
    assert find_classifier(conv_head) == ["2.weight"]
    assert find_classifier(nn.Sequential(nn.Conv2d(1, 4, 3))) == []

    class Named(nn.Module):  # a model that names its head: every weight in it is the classifier
        def __init__(self):
            super().__init__()
            self.features = nn.Linear(4, 4)
            self.classifier = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    assert find_classifier(Named()) == ["classifier.0.weight", "classifier.2.weight"]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"method": "foo"}, "method"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"distribution": "er"}, "distribution"),
        ({"update_interval": 0}, "update_interval"),
        ({"prune_rate": 0.0}, "prune_rate"),
        ({"prune_rate_decay": "linear"}, "prune_rate_decay"),
        ({"update_end": 1.5}, "update_end"),
        ({"drop_criterion": "grad"}, "drop_criterion"),
        ({"dense_layers": ("nope.weight",)}, "dense_layers"),
        ({"initial_density": 0.2, "sparsity": 0.5}, "initial_density"),
        ({"warmup": 0.9, "final": 0.2}, "warmup"),
        ({"total_steps": 0}, "total_steps"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_input_one_line_value_error(kwargs, word):
    kw = {"method": "rigl", "total_steps": 10, **kwargs}
    with pytest.raises(ValueError) as e:
        S.create(kw.pop("method"), tiny(), **kw)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_gradient_methods_need_grad():
    model, sp = _manual_layer("rigl")
    with pytest.raises(RuntimeError, match="zero_grad"):
        sp.step()


@pytest.mark.parametrize("method", ["set", "mest_g", "granet_r", "acdc"])
def test_state_round_trip_resume_exact(method):
    def build():
        model = tiny()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        sp = S.create(method, model, optimizer=opt, total_steps=60, sparsity=0.6, update_interval=4, seed=7)
        return model, opt, sp

    model, opt, sp = build()
    for t in range(1, 31):
        train_step(model, opt, sp, t)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sp": sp.state_dict()}, buf)
    for t in range(31, 61):
        train_step(model, opt, sp, t)

    model2, opt2, sp2 = build()
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)  # no pickle needed
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    sp2.load_state_dict(ck["sp"])
    assert sp2.steps == 30
    for t in range(31, 61):
        train_step(model2, opt2, sp2, t)
    for n in sp.masks:
        assert torch.equal(sp.masks[n], sp2.masks[n])
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), n
    assert sp.log() == sp2.log()


def test_state_dict_rejects_other_method():
    sp = S.create("set", tiny(), total_steps=10)
    with pytest.raises(ValueError, match="method"):
        S.create("rigl", tiny(), total_steps=10).load_state_dict(sp.state_dict())


def test_log_and_itop():
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sp = S.create("rigl", model, optimizer=opt, total_steps=40, sparsity=0.5, update_interval=5, prune_rate=0.3)
    first = sp.log()
    assert first["itop"] == pytest.approx(0.5, abs=0.01)
    for t in range(1, 21):
        train_step(model, opt, sp, t)
    out = sp.log()
    assert {"density", "mean_density", "dense_grad_steps", "itop", "density/0.weight"} <= set(out)
    assert out["density"] == pytest.approx(0.5, abs=0.01) and out["mean_density"] == pytest.approx(0.5, abs=0.01)
    assert out["dense_grad_steps"] == 4  # updates at 5, 10, 15, 20
    assert 0.5 < out["itop"] <= 1.0
    assert sp.log()["dense_grad_steps"] == 0  # reset by log()
    mest = S.create("mest_r", tiny(), total_steps=40, sparsity=0.5, update_interval=5)
    assert mest.log()["dense_grad_steps"] == 0


def test_dense_method():
    model = tiny()
    before = [p.clone() for p in model.parameters()]
    sp = S.create("dense", model, total_steps=10)
    sp.step()
    assert sp.masks == {} and sp.densities() == {"overall": 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    sp2 = S.create("dense", tiny())
    sp2.load_state_dict(sp.state_dict())
    assert sp2.steps == 1 and sp.log()["density"] == 1.0


def test_paper_parameter_counts():
    models = pytest.importorskip("dstlib.models")

    def count(model, density, **kw):
        sp = S.create("static", model, total_steps=10, sparsity=1 - density, **kw)
        total = sum(p.numel() for p in model.parameters())
        return (total - sum(m.numel() - int(m.sum()) for m in sp.masks.values())) / 1e6

    r34 = models.create("resnet34", "cifar100")
    for d, ref in zip((0.3, 0.4, 0.5, 0.6, 0.7), (6.45, 8.57, 10.70, 12.82, 14.95)):  # Table 6
        assert round(count(r34, d), 2) == ref
    vgg = models.create("vgg16", "cifar10")
    # Table 5's counts imply only VGG16's convolutions are sparse: its whole 512-512-10 head is `classifier`
    for d, ref in zip((0.3, 0.4, 0.5, 0.6, 0.7), (4.95, 6.43, 7.89, 9.37, 10.81)):  # Table 5
        assert count(vgg, d) == pytest.approx(ref, rel=0.005)


def test_magnitude_gradient_drop_criterion():
    model, sp = _manual_layer("mest_r", drop_criterion="magnitude_gradient", drop_lambda=10.0, soft_bound=0.0)
    w = model[0].weight
    old = sp.masks["0.weight"].clone()
    g = torch.randn(10, 10)
    w.grad = g.clone()
    sp.step()
    score = (w.detach().abs() + 10.0 * g.abs()).flatten()
    act = [i for i in range(100) if old.flatten()[i]]
    dropped = set(sorted(act, key=lambda i: score[i].item())[:10])  # floor(0.2 * 50)
    new = sp.masks["0.weight"].flatten()
    survivors = {i for i in act if new[i]}
    # every surviving old weight outranks every dropped one (dropped ones may be regrown at random)
    assert set(act) - dropped <= survivors
    assert int(new.sum()) == 50
    assert sp.log()["dense_grad_steps"] == 0  # |g| of the active weights only: no dense gradient needed


def test_masks_are_independent_of_a_weight_init_with_the_same_seed():
    """Regression: a generator seeded like the init's torch.manual_seed reuses its uniforms, and a
    static mask then kept exactly the negative weights of kaiming-uniform layers (dead ReLUs)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))
    sp = S.create("static", model, total_steps=10, sparsity=0.5, seed=0)
    for name, p in model.named_parameters():
        if name in sp.masks:
            kept = p[sp.masks[name]]
            assert 0.45 < float((kept < 0).float().mean()) < 0.55, name
