"""dstlib.sparsity.cht (CHTs): CH3-L3 scores by hand and by path enumeration, soft sampling,
dead-link removal, CSTI and BSW, the sparsifier's invariants, CSR kernels, and the run spec."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import dstlib.sparsity as S
from dstlib.sparsity import cht, kernels

R2 = 1 / math.sqrt(2)

# outputs a0..a2 (rows), inputs i0..i3 (columns): a0-{i0,i1}, a1-{i0,i2,i3}, a2-{i1,i2}
HAND = torch.tensor([[1, 1, 0, 0],
                     [1, 0, 1, 1],
                     [0, 1, 1, 0]], dtype=torch.bool)
# CH3-L3 of each absent link, by hand (1 + de(z) = deg(z) minus z's links to the seeds and to the
# pair's local community):
#   (a0, i2): a0-i0-a1-i2: 1+de(i0) = 1 (links a0 seed, a1 LC); 1+de(a1) = 2 (i3 external) -> 1/sqrt(2)
#             a0-i1-a2-i2: 1+de(i1) = 1, 1+de(a2) = 1                                        -> 1
#   (a0, i3): a0-i0-a1-i3 only: 1+de(i0) = 1, 1+de(a1) = 2 (i2 external)                     -> 1/sqrt(2)
#   (a1, i1): a1-i0-a0-i1 and a1-i2-a2-i1, every 1+de = 1; i3 leads to no path             -> 2
#   (a2, i0): a2-i1-a0-i0: 1, 1 -> 1;  a2-i2-a1-i0: 1+de(i2) = 1, 1+de(a1) = 2 (i3)          -> 1/sqrt(2)
#   (a2, i3): a2-i2-a1-i3: 1+de(i2) = 1, 1+de(a1) = 2 (i0 external)                          -> 1/sqrt(2)
HAND_L3P = torch.tensor([[0, 0, 1 + R2, R2],
                         [0, 2, 0, 0],
                         [1 + R2, 0, 0, R2]])
# the node-based approximation sums 1 / (1 + de) over the community's nodes, each once:
#   (a0, i2): b = a1 (1/2), a2 (1); j = i0 (1), i1 (1) -> 3.5
#   (a0, i3): b = a1 (1/2); j = i0 (1/(2 - 1))         -> 1.5
#   (a1, i1): b = a0 (1), a2 (1); j = i0 (1), i2 (1)   -> 4
#   (a2, i0): b = a0 (1), a1 (1/2); j = i1 (1), i2 (1) -> 3.5
#   (a2, i3): b = a1 (1/2); j = i2 (1)                 -> 1.5
HAND_L3N = torch.tensor([[0, 0, 3.5, 1.5],
                         [0, 4, 0, 0],
                         [3.5, 0, 0, 1.5]])


def path_enumeration(mask: torch.Tensor) -> torch.Tensor:
    """CH3-L3 written plainly from its definition, as the CHT code's C++ computes it: per absent
    link (a, i), every simple path a-z1-z2-i; di(z) = the number of these paths through z;
    de(z) = deg(z) - (z's links to a and i) - di(z); add 1 / sqrt((1 + de(z1)) (1 + de(z2)))."""
    m = mask.numpy()
    out_f, in_f = m.shape
    # the bipartite network as one adjacency list: outputs 0..out_f-1, inputs out_f..
    nbrs = [set((out_f + np.flatnonzero(m[a])).tolist()) for a in range(out_f)]
    nbrs += [set(np.flatnonzero(m[:, j]).tolist()) for j in range(in_f)]
    scores = np.zeros((out_f, in_f))
    for a in range(out_f):
        for i in range(in_f):
            if m[a, i]:
                continue
            seed_a, seed_i = a, out_f + i
            paths = [(z1, z2) for z1 in nbrs[seed_a] for z2 in nbrs[z1]
                     if z2 not in (seed_a, seed_i) and seed_i in nbrs[z2]]
            di: dict[int, int] = {}
            for z1, z2 in paths:
                di[z1] = di.get(z1, 0) + 1
                di[z2] = di.get(z2, 0) + 1
            de = {z: len(nbrs[z]) - len(nbrs[z] & {seed_a, seed_i}) - d for z, d in di.items()}
            scores[a, i] = sum(1 / math.sqrt((1 + de[z1]) * (1 + de[z2])) for z1, z2 in paths)
    return torch.from_numpy(scores)


def test_ch3_l3_by_hand():
    assert torch.allclose(cht.ch3_l3_scores(HAND), HAND_L3P, atol=1e-6)
    # the score is symmetric in the two sides: the transposed network, and both batching directions
    assert torch.allclose(cht.ch3_l3_scores(HAND.T.contiguous()), HAND_L3P.T, atol=1e-6)
    for m, ref in ((HAND, HAND_L3P), (HAND.T.contiguous(), HAND_L3P.T)):
        raw = cht._ch3_l3_by_columns(m, block_floats=4)
        assert torch.allclose(raw.masked_fill(m, 0), ref, atol=1e-6)
    assert torch.allclose(cht.ch3_l3n_scores(HAND), HAND_L3N, atol=1e-6)
    assert torch.allclose(path_enumeration(HAND).float(), HAND_L3P, atol=1e-6)  # the plain reference too


@pytest.mark.parametrize("shape, density", [((9, 7), 0.35), ((12, 30), 0.2), ((25, 25), 0.15), ((40, 18), 0.3)])
def test_ch3_l3_matches_path_enumeration(shape, density):
    g = torch.Generator().manual_seed(sum(shape))
    mask = torch.rand(shape, generator=g) < density
    mask[0] = False  # an isolated node
    ref = path_enumeration(mask)
    for block in (1, 64, 1 << 19):  # batching must not change the sum
        got = cht.ch3_l3_scores(mask, block_floats=block).double()
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert ref.max() > 0 and torch.all(cht.ch3_l3_scores(mask)[mask] == 0)


def test_ch3_l3n_is_a_different_score():
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(20, 16, generator=g) < 0.25
    l3p, l3n = cht.ch3_l3_scores(mask), cht.ch3_l3n_scores(mask)
    assert torch.equal(l3p > 0, l3n > 0)  # the same candidates have a path ...
    assert not torch.allclose(l3p, l3n)  # ... but the numbers differ


def _inclusion_probabilities(p: list[float], n: int) -> list[float]:
    """Exact inclusion probability of each item in n successive draws proportional to p without replacement."""
    out = [0.0] * len(p)

    def walk(prob: float, chosen: tuple[int, ...]):
        if len(chosen) == n:
            for k in chosen:
                out[k] += prob
            return
        rest = sum(p[k] for k in range(len(p)) if k not in chosen)
        for k in range(len(p)):
            if k not in chosen and p[k] > 0:
                walk(prob * p[k] / rest, chosen + (k,))

    walk(1.0, ())
    return out


def test_soft_sample_is_multinomial_without_replacement():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 9.0])
    cand = torch.tensor([True, True, True, True, True, False])
    g = torch.Generator().manual_seed(0)
    draws = 6000
    hits = torch.zeros(6)
    for _ in range(draws):
        got = cht.soft_sample(scores, cand, 2, g)
        assert int(got.sum()) == 2 and not got[5] and not got[4]  # non-candidates and zero scores are never drawn
        hits += got.float()
    exact = _inclusion_probabilities([1.0, 2.0, 3.0, 4.0, 0.0], 2)
    for k in range(4):  # binomial sd <= 0.0065
        assert hits[k] / draws == pytest.approx(exact[k], abs=0.025)


def test_soft_sample_fallback_fills_uniformly():
    """Fewer positive scores than links to grow: every candidate gets +1e-5 (the CHT code)."""
    scores = torch.zeros(50)
    scores[3] = 1.0
    cand = torch.ones(50, dtype=torch.bool)
    cand[:2] = False
    g = torch.Generator().manual_seed(1)
    hits = torch.zeros(50)
    for _ in range(400):
        got = cht.soft_sample(scores, cand, 5, g)
        assert int(got.sum()) == 5 and got[3] and not got[:2].any()
        hits += got.float()
    rest = torch.cat([hits[2:3], hits[4:]]) / 400  # 4 of the 47 other candidates each time: 0.085
    assert rest.mean().item() == pytest.approx(4 / 47, rel=1e-6) and rest.min() > 0.03 and rest.max() < 0.17


def test_remove_dead_links():
    l0 = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=torch.bool)  # hidden h1 has no input
    l1 = torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=torch.bool)            # hidden h2 has no output
    l2 = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)
    out = cht.remove_dead_links([l0, l1, l2], [True, True, False])
    # backward: l0 loses the links into h2; forward: l1 loses the links out of h1 and h2 (no input now),
    # which leaves l1's output o1 without input, so l2 loses the link out of o1 (one pass each way)
    assert out[0].tolist() == [[True, True, False], [False, False, False], [False, False, False]]
    assert out[1].tolist() == [[True, False, False], [False, False, False]]
    assert out[2].tolist() == [[True, False], [True, False]]
    # not chained: nothing is judged across the break
    same = cht.remove_dead_links([l0, l1], [False, False])
    assert torch.equal(same[0], l0) and torch.equal(same[1], l1)


def test_feature_correlation_is_pearson():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (300, 12), generator=g, dtype=torch.uint8)
    x[:, 5] = 7  # zero variance
    x[:, 3] = x[:, 2] // 2 + torch.randint(0, 20, (300,), generator=g, dtype=torch.uint8)
    corr = cht.feature_correlation(x.reshape(300, 3, 4), chunk=64)
    with np.errstate(invalid="ignore"):  # numpy: NaN for the constant feature
        ref = np.corrcoef(x.double().numpy().T)
    ref = np.nan_to_num(ref, nan=0.0)
    np.fill_diagonal(ref, 0.0)
    assert np.allclose(corr.numpy(), ref, atol=1e-12)
    assert corr[5].abs().sum() == 0 and corr[2, 3] > 0.5


def test_csti_links_the_most_correlated_features():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(500, 1, generator=g)
    x = torch.randn(500, 10, generator=g)
    x[:, :4] += 3 * base   # features 0-3 strongly correlated
    x[:, 9] = 1.0          # constant
    corr = cht.feature_correlation(x)
    for shape in ((10, 10), (25, 10), (20, 20), (7, 10)):
        k = shape[0] * shape[1] // 10
        m = cht.csti_mask(corr, shape, k)
        assert int(m.sum()) == k
        tile = corr.abs()[torch.arange(shape[0])[:, None] % 10, torch.arange(shape[1])[None, :] % 10].float()
        assert tile[m].min() >= tile[~m].max()  # the top-k |correlation| of the tiled matrix
    m = cht.csti_mask(corr, (20, 10), 24)
    # degree distribution: hubs at the correlated features, none at the constant one or on the noise
    in_deg = m.sum(0)
    assert in_deg[:4].sum() == 24 and in_deg[9] == 0
    assert torch.equal(m[:10], m[10:])  # hidden neuron h stands for feature h mod 10


@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (250, 250)])
def test_bsw_density_lattice_and_rewiring(shape):
    n_small, n_large = min(shape), max(shape)
    k = int(0.05 * shape[0] * shape[1])
    g = torch.Generator().manual_seed(0)
    lat = cht.bsw_mask(shape, k, 0.0, g)
    assert lat.shape == shape and int(lat.sum()) == k
    big = lat if shape[0] > shape[1] else lat.T  # rows: the larger side
    deg_large, deg_small = big.sum(1), big.sum(0)
    K = k / n_large
    assert set(deg_large.unique().tolist()) <= {math.floor(K), math.floor(K) + 1}
    # every link is near the diagonal of the ring: small-side node within deg/2 + 1 of i * n_small / n_large
    i, s = big.nonzero().unbind(1)
    centre = i * n_small / n_large
    dist = torch.minimum((s - centre) % n_small, (centre - s) % n_small)
    assert dist.max() <= K / 2 + 2
    assert deg_small.float().std() < 1.5  # a lattice: nearly regular on both sides
    for beta in (0.25, 0.5, 1.0):
        m = cht.bsw_mask(shape, k, beta, torch.Generator().manual_seed(1))
        assert int(m.sum()) == k
        kept = (m & lat).sum().item() / k  # lattice links that survive the rewiring
        # removed with probability beta; the random re-adds hit a lattice position with probability ~ k / numel
        expected = (1 - beta) + beta * beta * k / (shape[0] * shape[1] - (1 - beta) * k)
        assert kept == pytest.approx(expected, abs=0.03)
    rnd = cht.bsw_mask(shape, k, 1.0, torch.Generator().manual_seed(2))
    big_r = rnd if shape[0] > shape[1] else rnd.T
    assert big_r.sum(0).float().std() > 2 * deg_small.float().std()  # random: binomial degrees
    assert torch.equal(cht.bsw_mask(shape, k, 0.25, torch.Generator().manual_seed(3)),
                       cht.bsw_mask(shape, k, 0.25, torch.Generator().manual_seed(3)))


# ----- the sparsifier -----------------------------------------------------------------------------------
def mlp(widths=(40, 30)) -> nn.Module:
    torch.manual_seed(0)
    layers, prev = [nn.Flatten()], 64
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU()]
        prev = w
    return nn.Sequential(*layers, nn.Linear(prev, 5))


def batch(t: int, n: int = 8):
    g = torch.Generator().manual_seed(1000 + t)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


FEATURES = torch.randint(0, 256, (200, 1, 8, 8), generator=torch.Generator().manual_seed(9), dtype=torch.uint8)


def build(total=60, **kw):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    kw.setdefault("sparsity", 0.7)
    if kw.get("topology_init") == "csti":
        kw["features"] = FEATURES
    sp = S.create("chts", model, optimizer=opt, total_steps=total, update_interval=4, prune_rate=0.3, seed=7, **kw)
    return model, opt, sp


def train_step(model, opt, sp, t):
    x, y = batch(t)
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    sp.step()


@pytest.mark.parametrize("options", [
    {},
    {"topology_init": "csti", "cht_removal": "magnitude_soft"},
    {"topology_init": "bsw", "cht_score": "ch3_l3n", "distribution": "erk", "chain_removal": False},
])
def test_invariants_every_step(options):
    model, opt, sp = build(total=100, **options)
    params = dict(model.named_parameters())
    assert list(sp.masks) == ["1.weight", "3.weight"]  # the classifier stays dense
    counts = sp.counts(sp.density)
    updates = 0
    for t in range(1, 101):
        before = {n: m.clone() for n, m in sp.masks.items()}
        train_step(model, opt, sp, t)
        for (n, m), c in zip(sp.masks.items(), counts):
            w = params[n]
            assert m.dtype == torch.bool and m.shape == w.shape
            assert torch.count_nonzero(w[~m]) == 0, (t, n)
            assert int(m.sum()) == c, (t, n)  # the density holds after every step
            new = m & ~before[n]
            if new.any():  # grown: zero weight and momentum
                assert torch.count_nonzero(w[new]) == 0
                assert torch.count_nonzero(opt.state[w]["momentum_buffer"][new]) == 0
        updates += any(not torch.equal(before[n], sp.masks[n]) for n in sp.masks)
    assert updates == 18  # dT 4 until 75% of 100 steps
    assert sp.densities()["overall"] == pytest.approx(0.3, abs=0.01)
    assert sp.itop() > 0.35


def test_update_is_removal_chain_removal_and_soft_growth():
    """One update against the pipeline written out: magnitude removal, chain removal, CH3-L3 scores of
    what remains, soft sampling from the sparsifier's generator."""
    model, opt, sp = build(sparsity=0.9)
    with torch.no_grad():  # a dead hidden neuron: no input links left after removal
        model[1].weight[5] *= 1e-3
    for t in range(1, 4):
        train_step(model, opt, sp, t)
    x, y = batch(4)  # step 4 up to the optimiser step: the update ranks the weights it leaves
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    names = sp.names
    rate = sp.rate_at(4)
    target = sp.counts(sp.density)
    weights = [dict(model.named_parameters())[n].detach().clone() for n in names]
    old = [sp.masks[n].clone() for n in names]
    kept = []
    for w, m, c in zip(weights, old, target):
        n_keep = c - math.floor(rate * c)
        order = torch.argsort(torch.where(m, w.abs(), torch.full_like(w, -1.0)).flatten(), descending=True, stable=True)
        k = torch.zeros(m.numel(), dtype=torch.bool)
        k[order[:n_keep]] = True
        kept.append(k.view(m.shape))
    kept = cht.remove_dead_links(kept, [True, False])
    gen = torch.Generator()
    gen.set_state(sp.generator.get_state())
    expected = [k | cht.soft_sample(cht.ch3_l3_scores(k), ~k, c - int(k.sum()), gen) for k, c in zip(kept, target)]
    sp.step()
    for n, e in zip(names, expected):
        assert torch.equal(sp.masks[n], e)


def test_growth_prefers_high_scores():
    model, opt, sp = build(sparsity=0.8)
    for t in range(1, 4):
        train_step(model, opt, sp, t)
    scored = []
    score = sp.link_scores
    sp.link_scores = lambda m: (scored.append(m.clone()), score(m))[1]
    train_step(model, opt, sp, 4)
    kept = scored[1]  # the second layer's links after removal
    grown = sp.masks["3.weight"] & ~kept
    scores = cht.ch3_l3_scores(kept)
    assert grown.sum() > 20 and scores[grown].mean() > 1.5 * scores[~kept].mean()


@pytest.mark.parametrize("options", [{}, {"topology_init": "bsw", "cht_removal": "magnitude_soft"}])
def test_resume_is_exact(options):
    model, opt, sp = build(**options)
    for t in range(1, 31):
        train_step(model, opt, sp, t)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sp": sp.state_dict()}, buf)
    for t in range(31, 61):
        train_step(model, opt, sp, t)
    model2, opt2, sp2 = build(**options)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    sp2.load_state_dict(ck["sp"])
    for t in range(31, 61):
        train_step(model2, opt2, sp2, t)
    for n in sp.masks:
        assert torch.equal(sp.masks[n], sp2.masks[n])
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), n


def test_initial_topology_keeps_the_model_weights():
    torch.manual_seed(0)
    ref = mlp()
    for init in ("csti", "bsw"):
        model, _, sp = build(topology_init=init)
        for n, p in model.named_parameters():
            if n in sp.masks:
                assert torch.equal(p[sp.masks[n]], dict(ref.named_parameters())[n][sp.masks[n]])
                assert int(sp.masks[n].sum()) == sp.counts(0.3)[sp.names.index(n)]
    _, _, csti = build(topology_init="csti")
    corr = cht.feature_correlation(FEATURES)
    assert torch.equal(csti.masks["1.weight"], cht.csti_mask(corr, (40, 64), csti.counts(0.3)[0]))


def test_paper_mlp_shapes():
    from dstlib import models

    model = models.create("mlp", "fashion_mnist", widths=(1568, 1568, 1568))
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(1568, 784), (1568, 1568), (1568, 1568), (10, 1568)]
    sp = S.create("chts", model, total_steps=10, sparsity=0.95)
    assert [tuple(sp.masks[n].shape) for n in sp.names] == shapes[:3]  # the output layer is dense


@pytest.mark.parametrize("kwargs, word", [
    ({"topology_init": "ws"}, "topology_init"),
    ({"bsw_beta": 1.5}, "bsw_beta"),
    ({"cht_score": "ch2_l3p"}, "cht_score"),
    ({"cht_removal": "ri"}, "cht_removal"),
    ({"chain_removal": 1}, "chain_removal"),
    ({"topology_init": "csti"}, "features"),
])
def test_bad_input_one_line_value_error(kwargs, word):
    with pytest.raises(ValueError) as e:
        S.create("chts", mlp(), total_steps=10, **kwargs)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_conv_layers_are_refused():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 20), nn.ReLU(), nn.Linear(20, 5))
    with pytest.raises(ValueError, match="Linear layers only"):
        S.create("chts", model, total_steps=10)
    sp = S.create("chts", model, total_steps=10, dense_first_layer=True)
    assert sp.names == ["2.weight"]


# ----- CSR kernels --------------------------------------------------------------------------------------
def test_sparse_kernels_match_masked_dense_training():
    runs = []
    for sk in (False, True):
        model, opt, sp = build(sparsity=0.9, sparse_kernels=sk)
        for t in range(1, 41):
            train_step(model, opt, sp, t)
        runs.append((model, sp))
    (m1, s1), (m2, s2) = runs
    for n in s1.masks:
        assert torch.equal(s1.masks[n], s2.masks[n])
    for (n, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), n
    x, _ = batch(99)
    with torch.no_grad():
        assert torch.allclose(m1(x), m2(x), atol=1e-5)
    kernels.detach(m2)
    assert "forward" not in m2[1].__dict__


def test_sparse_kernel_gradients():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(30, 20)
    mask = torch.rand(20, 30, generator=g) < 0.2
    x = torch.randn(2, 3, 30, generator=g, requires_grad=True)
    y = kernels.sparse_linear(x, lin.weight, lin.bias, kernels._Structure(mask))
    gy = torch.randn(y.shape, generator=g)
    (y * gy).sum().backward()
    gx, gw, gb = x.grad.clone(), lin.weight.grad.clone(), lin.bias.grad.clone()
    x.grad = None
    lin.zero_grad()
    ref = nn.functional.linear(x, lin.weight * mask, lin.bias)
    (ref * gy).sum().backward()
    assert torch.allclose(y, ref, atol=1e-6) and torch.allclose(gx, x.grad, atol=1e-6)
    assert torch.allclose(gw, lin.weight.grad * mask, atol=1e-6) and torch.count_nonzero(gw[~mask]) == 0
    assert torch.allclose(gb, lin.bias.grad, atol=1e-6)


def test_sparse_kernels_refuse_gradient_methods():
    model = mlp()
    with pytest.raises(ValueError, match="dense gradient"):
        kernels.attach(S.create("rigl", model, total_steps=10))


# ----- run spec and training loop -----------------------------------------------------------------------
def test_run_spec_options_and_identity():
    from dstlib.config import RunSpec

    spec = RunSpec(method="chts", sparsity=0.95, topology_init="bsw", bsw_beta=0.5)
    opts = spec.sparsity_options()
    assert opts["topology_init"] == "bsw" and opts["bsw_beta"] == 0.5 and "drop_criterion" not in opts
    assert spec.hash() != spec.replace(bsw_beta=0.25).hash()
    csti = spec.replace(topology_init="csti")
    assert csti.hash() == csti.replace(bsw_beta=0.25).hash()  # beta only matters for BSW
    assert spec.hash() == spec.replace(sparse_kernels=True).hash()  # like the device
    with pytest.raises(ValueError, match="topology_init"):
        RunSpec(method="chts", topology_init="er")


def test_trainer_passes_training_images_for_csti(tiny_spec):
    from dstlib.train import Trainer

    spec = tiny_spec.replace(epochs=1, method="chts", sparsity=0.9, update_interval=2, topology_init="csti")
    t = Trainer(spec)
    corr = cht.feature_correlation(t.train_set.images)
    first = t.sparsifier.names[0]
    assert torch.equal(t.sparsifier.masks[first], cht.csti_mask(corr, (32, 784), t.sparsifier.counts(0.1)[0]))
    t.train_epoch()
    assert t.history[-1]["density"] == pytest.approx(0.1, abs=1e-3)


def test_attach_masks_for_evaluation():
    model, opt, sp = build(sparsity=0.9)
    for t in range(1, 9):
        train_step(model, opt, sp, t)
    x, _ = batch(50, n=300)  # more rows than one CSR chunk
    with torch.no_grad():
        dense = model(x)
        kernels.attach_masks(model, {n: m.clone() for n, m in sp.masks.items()})
        assert isinstance(model[1].__dict__["forward"], kernels._Forward)
        assert torch.allclose(model(x), dense, atol=1e-5)
    with pytest.raises(ValueError, match="masks"):
        kernels.attach_masks(model, {"1.weight": torch.ones(3, 3, dtype=torch.bool)})


def test_chain_follows_module_order():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                          nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 5))
    assert S.create("chts", model, total_steps=10).chained == [True, True, False]
    # with the middle layer dense, the first and last sparse layers do not feed each other
    sp = S.create("chts", model, total_steps=10, dense_layers=("3.weight",))
    assert sp.names == ["1.weight", "5.weight"] and sp.chained == [False, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_scores_and_updates_match_the_cpu():
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(60, 50, generator=g) < 0.15
    for score in (cht.ch3_l3_scores, cht.ch3_l3n_scores):
        assert torch.allclose(score(mask.cuda()).cpu(), score(mask), rtol=1e-5, atol=1e-5)
    model = mlp().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sp = S.create("chts", model, optimizer=opt, total_steps=40, sparsity=0.8, update_interval=4,
                  topology_init="bsw", cht_removal="magnitude_soft", sparse_kernels=True)
    for t in range(1, 21):
        x, y = batch(t)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x.cuda()), y.cuda()).backward()
        opt.step()
        sp.step()
    for n, m in sp.masks.items():
        assert m.is_cuda and int(m.sum()) == sp.counts(0.2)[sp.names.index(n)]
        assert torch.count_nonzero(dict(model.named_parameters())[n][~m]) == 0
