"""Cannistraci-Hebb soft training (CHTs) for MLPs: link prediction, soft sampling, CSTI, BSW.

Sources: the CHT papers (Zhang et al., ICLR 2024, "Epitopological learning and
Cannistraci-Hebb network shape intelligence ..."; Zhang et al. 2024,
preprints 202406.1136, "Brain-inspired sparse training in MLP and Transformers
with network science modeling via Cannistraci-Hebb soft rule") and their public
code, github.com/biomedical-cybernetics/Cannistraci-Hebb-training ("the CHT
code"; files named below are in ``mlp_and_cnn/`` unless a path says otherwise).
The robustness paper (section 6.1, Table 2; A.3.1 and Table 4) uses CHTs with
this code on an MLP on Fashion-MNIST.

Every sparse layer is a bipartite network: its ``out`` output neurons and
``in`` input neurons are the nodes, the active weights ``M[a, j] = 1`` (the
mask, shaped like ``nn.Linear.weight``) the links. Output nodes are written
``a, b``, input nodes ``i, j``; ``N(x)`` is a node's neighbour set, ``deg(x)``
its size.

**CH3-L3, path-based** (:func:`ch3_l3_scores`; the CHT code's ``CH3_L3p``,
C++ ``CH_scores_new_v2.cpp`` with model code 3 and path length 3, called from
``dst_scheduler.py``). In a bipartite network every path of length 3 between
an output ``a`` and an input ``i`` is ``a - j - b - i`` with ``j in N(a)``,
``b in N(j) & N(i)``. The score of an absent link (a, i) sums over these paths::

    CH3-L3(a, i) = sum_{paths a-j-b-i} 1 / sqrt((1 + de(j)) (1 + de(b)))

where ``de(z)`` is z's external degree in the pair's local community (the
intermediate nodes of all its L3 paths): ``deg(z)`` minus z's links to the two
seeds minus its internal degree, which the C++ counts as the number of L3
paths through z. For a bipartite network this gives::

    1 + de(j) = deg(j) - |N(j) & N(i)|        (j is linked to a, not to i)
    1 + de(b) = deg(b) - |N(a) & N(b)|        (b is linked to i, not to a)

so with ``V[a, b] = (deg(b) - (M M^T)[a, b])^(-1/2)`` and
``U[j, i] = (deg(j) - (M^T M)[j, i])^(-1/2)``::

    S[a, i] = sum_j M[a, j] U[j, i] sum_b V[a, b] M[b, j] M[b, i]

Present links score 0 (the CHT code multiplies by ``mask == 0``), so a link
just removed can be regrown. The C++ enumerates the paths one by one (a
depth-first search from every node, O(N d^3)); here the sum is batched per
input node j: ``V[N(j), N(j)] @ M[N(j), :]`` is one small dense matrix product,
scaled by ``U[j, :]`` and added to the rows ``N(j)`` (float32; the C++ sums in
float64 in path order, so values agree to float32 rounding).

**CH3-L3, node-based** (:func:`ch3_l3n_scores`, ``cht_score="ch3_l3n"``; the
CHT code's ``CH3_L3n``, ``dst_scheduler.py``, the GPU approximation of the
CHTs paper). A different score: each local-community node counts once and
without the geometric mean, ``sum_{b} 1 / (deg(b) - |N(a) & N(b)|) +
sum_{j} 1 / (deg(j) - |N(j) & N(i)|)`` over the community's output nodes
``b in N(i)`` sharing an input with ``a`` and input nodes ``j in N(a)``
sharing an output with ``i``. Four matrix products; offered as a named option,
never substituted for the path-based score.

**Soft regrowth** (CHTs; ``dst_scheduler.py`` for ``*_soft``): the links to
grow are drawn without replacement with probability proportional to the score
(``torch.multinomial(score / sum, n, replacement=False)`` upstream; no
temperature on regrowth). Drawn here with exponential keys, ``score / E`` with
``E ~ Exp(1)``, the ``n`` largest kept: the same distribution as successive
draws proportional to the score among the links not yet drawn, from the
sparsifier's own generator. If fewer than ``n`` candidates have a positive
score, every candidate gets ``+1e-5`` first (the CHT code's fallback), so the
rest are filled uniformly at random.

**Removal** (:class:`CHTs`): ``cht_removal="magnitude"`` (default) drops the
smallest |w| per layer, as every method of the robustness paper (section 3) and
the CHT code's ``weight_magnitude`` (its current README CHTs command);
``"magnitude_soft"`` keeps ``n_keep`` active links drawn with probability
proportional to ``|w|^T``, ``T = 1 + 2 t / T_end`` (t the step, T_end the step
at which updates stop; the CHT code's ``weight_magnitude_soft``, the CHTs
README command of October 2024). Then, with ``chain_removal`` (default on:
the CHT code runs CH regrowth only in its chain-removal branch), links of dead
neurons are removed (:func:`remove_dead_links`), and as many links are regrown
as were removed in all, so the density stays at its target.

**Topology initialisation** (``topology_init``): ``"random"`` (the default of
every dstlib method), ``"csti"`` (:func:`csti_mask`) or ``"bsw"``
(:func:`bsw_mask`).

Upstream defects not copied: the hard-threshold fallback that makes a mask
dense, CSTI's ``k + 1`` links plus ties, BSW's degree list one entry too long
(here every initialisation has exactly the layer's count of links), the path
code's model-code mix-up in the older ``sparse.py`` (code 1 is CH1, not CH3).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dstlib.sparsity import kernels
from dstlib.sparsity import masks as masklib
from dstlib.sparsity.methods import SET

TOPOLOGY_INITS = ("random", "csti", "bsw")
CHT_SCORES = ("ch3_l3p", "ch3_l3n")
CHT_REMOVALS = ("magnitude", "magnitude_soft")

#: Added to every candidate's score when too few have a positive one (the CHT code's fallback).
ZERO_SCORE_FALLBACK = 1e-5


# ----- link prediction ------------------------------------------------------------------------
def _common_neighbours(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``m m^T`` and ``m^T m`` of a 0/1 float32 matrix: counts of common neighbours.

    In bfloat16 when every degree is at most 256: every partial sum is then an
    integer of at most 256, which bfloat16 holds exactly, so the counts are
    exact (and the product ~9x faster on a CPU with bfloat16 units)."""
    if m.numel() == 0 or max(int(m.sum(0).max()), int(m.sum(1).max())) <= 256:
        h = m.to(torch.bfloat16)
        return (h @ h.T).float(), (h.T @ h).float()
    return m @ m.T, m.T @ m


def _degree_terms(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``V[a, b] = (deg(b) - |N(a) & N(b)|)^(-1/2)`` over rows and
    ``U[j, i] = (deg(j) - |N(j) & N(i)|)^(-1/2)`` over columns of the float mask ``m``;
    0 where two nodes share no neighbour, on the diagonal, and where the
    difference is 0 (terms that reach only present links)."""
    common_r, common_c = _common_neighbours(m)
    diff_r = m.sum(1)[None, :] - common_r
    diff_c = m.sum(0)[:, None] - common_c
    zero = torch.zeros((), dtype=m.dtype, device=m.device)
    v = torch.where((common_r > 0) & (diff_r > 0), diff_r.clamp_min(1).rsqrt(), zero)
    u = torch.where((common_c > 0) & (diff_c > 0), diff_c.clamp_min(1).rsqrt(), zero)
    v.fill_diagonal_(0)
    u.fill_diagonal_(0)
    return v, u


def _pivot_cost(mask: torch.Tensor) -> int:
    """Multiply-adds of :func:`_ch3_l3_by_columns` on ``mask``: sum over columns of deg^2 x columns."""
    deg = mask.sum(0, dtype=torch.int64)
    return int((deg * deg).sum()) * mask.shape[1]


def _ch3_l3_by_columns(mask: torch.Tensor, block_floats: int) -> torch.Tensor:
    """CH3-L3 scores of all pairs (float32, present links not yet zeroed), batched per column node j."""
    rows, cols = mask.shape
    m = mask.to(torch.float32)
    v, u = _degree_terms(m)
    deg = mask.sum(0, dtype=torch.int64)
    # padded neighbour lists: nbr[j, :deg(j)] = N(j), the rest the dummy row `rows` (zero in m_pad, v_pad)
    width = max(int(deg.max()), 1)
    pairs = mask.T.nonzero()  # (j, a) sorted by j then a
    start = torch.cumsum(deg, 0) - deg
    rank = torch.arange(len(pairs), device=mask.device) - start[pairs[:, 0]]
    nbr = torch.full((cols, width), rows, dtype=torch.int64, device=mask.device)
    nbr[pairs[:, 0], rank] = pairs[:, 1]
    m_pad = torch.cat([m, m.new_zeros(1, cols)])
    v_pad = torch.nn.functional.pad(v, (0, 1, 0, 1))
    out = m.new_zeros(rows + 1, cols)
    # columns in order of degree, so a block's padding is small; blocks sized to stay in cache
    order = torch.argsort(deg, stable=True).tolist()
    deg_list = deg.tolist()
    pos = 0
    while pos < cols:
        size = max(1, min(cols - pos, block_floats // (max(deg_list[order[pos]], 1) * cols)))
        block = order[pos:pos + size]
        pos += size
        d = deg_list[block[-1]]
        if d == 0:
            continue
        js = torch.tensor(block, device=mask.device)
        idx = nbr[js, :d]                                        # (size, d)
        vb = v_pad[idx[:, :, None], idx[:, None, :]]            # V[N(j), N(j)]
        mb = m_pad.index_select(0, idx.reshape(-1)).view(size, d, cols)  # M[N(j), :]
        g = torch.bmm(vb, mb).mul_(u[js][:, None, :])             # sum_b V[a, b] M[b, i], times U[j, i]
        out.index_add_(0, idx.reshape(-1), g.view(-1, cols))      # (on CUDA in no fixed order)
    return out[:rows]


def ch3_l3_scores(mask: torch.Tensor, block_floats: int | None = None) -> torch.Tensor:
    """Path-based CH3-L3 score of every absent link of a layer's bipartite network.

    ``mask``: bool (out, in), the layer's links (``nn.Linear.weight`` layout).
    Returns float32 (out, in): the sum over the L3 paths of each absent link of
    ``1 / sqrt((1 + de(z1)) (1 + de(z2)))`` (module docstring), 0 at present
    links and at pairs without an L3 path. The score is symmetric in the two
    sides, so the sum is batched over whichever side costs fewer multiply-adds
    (``sum deg^2`` times the other side's size). ``block_floats``: size of a
    batch's largest temporary (default: 2^19 floats on the CPU, 2 MB, to
    stay in cache; 2^26 elsewhere).
    """
    if mask.ndim != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask: {tuple(mask.shape)} {mask.dtype} is not a 2-D bool tensor")
    if block_floats is None:
        block_floats = 1 << 19 if mask.device.type == "cpu" else 1 << 26
    if _pivot_cost(mask.T) < _pivot_cost(mask):
        scores = _ch3_l3_by_columns(mask.T.contiguous(), block_floats).T.contiguous()
    else:
        scores = _ch3_l3_by_columns(mask, block_floats)
    return scores.masked_fill_(mask, 0.0)


def ch3_l3n_scores(mask: torch.Tensor) -> torch.Tensor:
    """Node-based CH3-L3 approximation (the CHT code's ``CH3_L3n``; module docstring).

    ``score[a, i] = sum_b W_r[a, b] M[b, i] + sum_j M[a, j] W_c[j, i]`` with
    ``W_r[a, b] = 1 / (deg(b) - |N(a) & N(b)|)`` where a and b share an input,
    ``W_c[j, i] = 1 / (deg(j) - |N(j) & N(i)|)`` where j and i share an output
    (0 elsewhere and where the difference is 0); 0 at present links. float32.
    """
    if mask.ndim != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask: {tuple(mask.shape)} {mask.dtype} is not a 2-D bool tensor")
    m = mask.to(torch.float32)
    v, u = _degree_terms(m)  # the square roots of the weights wanted here
    scores = (v * v) @ m + m @ (u * u)
    return scores.masked_fill_(mask, 0.0)


SCORERS = {"ch3_l3p": ch3_l3_scores, "ch3_l3n": ch3_l3n_scores}


def soft_sample(scores: torch.Tensor, candidates: torch.Tensor, n: int, generator: torch.Generator,
                scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of ``n`` candidates drawn without replacement with probability proportional to ``scores``.

    Exponential keys ``score / E``, ``E = -log U ~ Exp(1)`` with ``U`` uniform
    from ``generator`` (CPU), the ``n`` largest taken (Efraimidis-Spirakis):
    the distribution of ``torch.multinomial(scores, n, replacement=False)``.
    Where fewer than ``n`` candidates score above 0, every candidate's score
    gets ``+1e-5`` first (the CHT code's fallback for regrowth; upstream's soft
    removal would raise instead). ``scratch``: an optional float32 CPU buffer
    of the same shape for the keys.
    """
    n = min(int(n), int(torch.count_nonzero(candidates)))
    if n <= 0:
        return torch.zeros_like(candidates)
    weights = torch.where(candidates, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
    if int(torch.count_nonzero(weights > 0)) < n:
        weights = torch.where(candidates, weights + ZERO_SCORE_FALLBACK, weights)
    if scratch is None or scratch.device.type != "cpu" or scratch.shape != scores.shape:
        scratch = torch.empty(scores.shape)
    keys = scratch.uniform_(0.0, 1.0, generator=generator).log_().neg_().to(scores.device)  # U = 0: key 0
    keys = torch.where(candidates, weights.float() / keys, torch.full((), -1.0, device=scores.device))
    return masklib.top_k_mask(keys, n)


# ----- dead neurons ---------------------------------------------------------------------------
def remove_dead_links(masks: list[torch.Tensor], chained: list[bool]) -> list[torch.Tensor]:
    """Remove links of neurons that lead nowhere or are fed by nothing (the CHT code's chain removal).

    ``masks``: the sparse layers in data-flow order, (out, in) each;
    ``chained[l]``: layer l's outputs are layer l+1's inputs. One backward
    sweep (from the second-to-last layer down: drop the links into an output
    neuron of layer l with no outgoing link in layer l+1), then one forward
    sweep (from the second layer up: drop the links out of an input neuron of
    layer l with no incoming link in layer l-1), each using the masks already
    swept (``dst_scheduler.py``, ``remove_unactive_links_backward/forward``).
    A dense layer outside ``masks`` (the classifier) ends the chain, so the last
    sparse layer's outputs are never judged from behind.
    """
    out = list(masks)
    for l in reversed(range(len(out) - 1)):
        if chained[l]:
            out[l] = out[l] & out[l + 1].any(0)[:, None]
    for l in range(1, len(out)):
        if chained[l - 1]:
            out[l] = out[l] & out[l - 1].any(1)[None, :]
    return out


# ----- topology initialisation ----------------------------------------------------------------
@torch.no_grad()
def feature_correlation(features: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Pearson correlation between the features of ``features`` (float64, d x d).

    ``features``: (n, ...) samples of any dtype, flattened to (n, d): for
    images, the pixels (CSTI's "vectorisation"; the CHT code uses the whole
    training set as ``ToTensor`` gives it, and a correlation does not change
    under the dataset's normalisation). Two passes in float64 over chunks of
    rows. Features with zero variance get correlation 0 (the CHT code turns
    numpy's NaN into 0), and so does the diagonal (CHT code,
    ``dst_scheduler.py``).
    """
    x = features.reshape(len(features), -1)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"features: {n} samples; the correlation needs at least 2")
    total = torch.zeros(d, dtype=torch.float64)
    for s in range(0, n, chunk):
        total += x[s:s + chunk].to(device="cpu", dtype=torch.float64).sum(0)
    mean = total / n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for s in range(0, n, chunk):
        c = x[s:s + chunk].to(device="cpu", dtype=torch.float64) - mean
        cov.addmm_(c.T, c)
    std = cov.diagonal().clamp_min(0).sqrt()
    ok = std > 0
    corr = cov / torch.where(ok, std, torch.ones(())).outer(torch.where(ok, std, torch.ones(())))
    corr[~ok, :] = 0.0
    corr[:, ~ok] = 0.0
    corr.fill_diagonal_(0.0)
    return corr


def csti_mask(corr: torch.Tensor, shape: tuple[int, int], k: int) -> torch.Tensor:
    """Correlated sparse topological initialisation of one (out, in) layer with exactly ``k`` links.

    The links are the ``k`` largest ``|corr|`` of the correlation tiled to the
    layer's shape, ``T[r, c] = corr[r mod d, c mod d]`` (d = the number of
    features; ties go to the lower flat index). This is the CHT code's
    construction (``dst_scheduler.py``, ``--self_correlated_sparse --dim 2``):
    every sparse layer, hidden ones included, takes its slice of the input
    correlation tiled 2 x 2, so hidden neuron h stands for feature h mod d;
    the tile generalises that to any width (a layer narrower than d takes its
    first d features only: hidden neuron h stands for pixel h, the top rows of
    an image; CSTI is meant for widths that are multiples of d, as the CHT code's
    784 and 1568). The CSTI paper's steps (preprints
    202207.0139 v3, section 3.2): vectorise, Pearson correlation, top-k% links,
    assemble the blocks. Unlike the CHT code (``k + 1`` links plus every tie),
    the count is exact.
    """
    out_f, in_f = shape
    d = corr.shape[0]
    rows = torch.arange(out_f) % d
    cols = torch.arange(in_f) % d
    tile = corr.abs().to(torch.float32)[rows[:, None], cols[None, :]]
    return masklib.top_k_mask(tile, k)


def bsw_mask(shape: tuple[int, int], k: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """Bipartite small-world (Watts-Strogatz-like) mask of one (out, in) layer with exactly ``k`` links.

    The CHT code's construction (``sparse_topology_initialization.py``,
    ``create_ws_sparse_scheduler``): every node of the larger side gets degree
    ``floor(K)`` or ``floor(K) + 1`` (K = k / larger side; the two counts chosen
    so the degrees sum to exactly ``k``, assigned in a random order); larger-side
    node i links to the ``deg(i)`` consecutive smaller-side nodes starting at
    ``trunc(i n_small / n_large - deg(i) / 2)``, wrapping around (a bipartite
    ring lattice). Rewiring: every lattice link is removed independently with
    probability ``beta``, then links are added uniformly at random among the
    empty positions until there are ``k`` (as the CHT code; rewired links do not
    keep an endpoint, unlike Watts-Strogatz, so ``beta = 1`` is a uniform random
    mask and degrees are not preserved). Randomness from ``generator``.
    """
    out_f, in_f = shape
    n_small, n_large = min(shape), max(shape)
    if not 0 <= k <= out_f * in_f:
        raise ValueError(f"k: {k} is not in [0, {out_f * in_f}]")
    low = k // n_large
    degrees = torch.full((n_large,), low, dtype=torch.int64)
    degrees[: k - low * n_large] += 1
    degrees = degrees[torch.randperm(n_large, generator=generator)]
    width = int(degrees.max()) if n_large else 0
    large = torch.arange(n_large)
    start = torch.trunc(large * (n_small / n_large) - degrees / 2).to(torch.int64)
    offsets = torch.arange(width)
    small = (start[:, None] + offsets[None, :]) % n_small
    keep = offsets[None, :] < degrees[:, None]
    lattice = torch.zeros(n_large, n_small, dtype=torch.bool)
    lattice[large[:, None].expand_as(small)[keep], small[keep]] = True
    if beta > 0:
        removed = torch.rand(n_large, n_small, generator=generator) < beta
        lattice &= ~removed
        missing = k - int(lattice.sum())
        keys = torch.rand(n_large, n_small, generator=generator)
        keys[lattice] = -1.0
        lattice |= masklib.top_k_mask(keys, missing)
    # rows of `lattice` are the larger side; a square layer is laid out as the CHT code does
    return lattice if out_f > in_f else lattice.T.contiguous()


# ----- the method -----------------------------------------------------------------------------
class CHTs(SET):
    """``chts``: Cannistraci-Hebb soft training for MLPs (module docstring).

    Every dT steps, per sparse layer: remove by ``cht_removal`` down to
    ``c - floor(rate c)`` links (c the layer's count at the target density),
    remove dead neurons' links (``chain_removal``), score the absent links with
    ``cht_score`` on the network that remains, and grow back to ``c`` links by
    soft sampling. Grown weights start at zero with zeroed optimiser state (CHT
    code: ``--update_mode zero``, momentum masked); a removed link grown again
    keeps its weight. The density schedule, prune rate and dT are the
    sparsifier's common options (the robustness paper's Table 4 MLP row: ERK,
    dT 300, rate 0.1 with polynomial decay); updates stop at 75% of training
    (CHT code: ``T_end = 0.75 epochs`` with its CHTs schedule ``--EM_S``).
    The CHT code's step-wise ``EM_S`` density schedule, its skipped optimiser
    step on update iterations and its ``swi`` weight initialisation are not
    used: weights keep the model's own initialisation, as for every method.

    Only ``nn.Linear`` weights can be sparse (any 2-D weight is accepted);
    consecutive sparse layers whose sizes match are taken to feed each other
    (an MLP in module order) for chain removal. ``features``: the training
    inputs (n, ...) for ``topology_init="csti"``.
    """

    name = "chts"
    default_update_end = 0.75

    def __init__(self, model: nn.Module, *, features: torch.Tensor | None = None, **options: Any) -> None:
        init = options.get("topology_init", "random")
        layers = masklib.sparse_weights(model, options.get("dense_layers", ()),
                                        options.get("dense_first_layer", False),
                                        options.get("sparse_classifier", False),
                                        options.get("dense_patterns", ()), options.get("dense_types", ()))
        for name, p in layers:
            if p.ndim != 2:
                raise ValueError(
                    f"chts: sparse weight {name!r} has shape {tuple(p.shape)}; CHTs scores links of Linear "
                    "layers only (keep other layers dense with dense_layers or dense_first_layer)")
        corr = None
        if init == "csti":
            if features is None or not torch.is_tensor(features) or features.ndim < 2:
                raise ValueError("features: topology_init='csti' needs the training inputs as a tensor (n, ...), "
                                 f"got {type(features).__name__}")
            corr = feature_correlation(features)
        # the base class draws a random mask and zeroes the weights outside it: keep the weights to restore
        saved = [p.detach().clone() for _, p in layers] if init != "random" else None
        super().__init__(model, **options)
        if init != "random":
            self._initial_topology(init, corr, saved)
        self.chained = self._chain(model)
        if self.sparse_kernels:
            kernels.attach(self)

    def configure(self, topology_init: str = "random", bsw_beta: float = 0.25, cht_score: str = "ch3_l3p",
                  cht_removal: str = "magnitude", chain_removal: bool = True, sparse_kernels: bool = False) -> None:
        """CHTs's own options (module docstring). ``bsw_beta`` 0.25: the CHT code's only
        BSW command (``Transformer/iwslt_CHTs.sh``: ``--WS --ws_beta 0.25``); ``run.py``'s
        default 1.0 would make BSW a uniform random mask. The papers state no value.
        ``sparse_kernels``: compute the masked layers with CSR kernels (``dstlib.sparsity.kernels``)."""
        self.topology_init = topology_init
        self.bsw_beta = float(bsw_beta)
        self.cht_score = cht_score
        self.cht_removal = cht_removal
        self.chain_removal = bool(chain_removal)
        self.sparse_kernels = bool(sparse_kernels)

    def method_options(self) -> dict[str, Any]:
        return {"topology_init": self.topology_init, "bsw_beta": self.bsw_beta, "cht_score": self.cht_score,
                "cht_removal": self.cht_removal, "chain_removal": self.chain_removal}

    @torch.no_grad()
    def _initial_topology(self, init: str, corr: torch.Tensor | None, saved: list[torch.Tensor]) -> None:
        for p, w in zip(self.params, saved):
            p.copy_(w)
        counts = self.counts(self.density_at(0))
        for name, p, k in zip(self.names, self.params, counts):
            if init == "csti":
                m = csti_mask(corr, tuple(p.shape), k)
            else:
                m = bsw_mask(tuple(p.shape), k, self.bsw_beta, self.generator)
            self.masks[name] = m.to(p.device)
        self._sync_masks()
        self.ever_active = {n: m.clone() for n, m in self.masks.items()}
        self._refresh()
        self._mask_state()

    def _chain(self, model: nn.Module) -> list[bool]:
        """``chained[l]``: sparse layer l+1 is the conv/linear layer right after layer l in module
        order and takes its outputs (sizes match): an MLP's layers feed each other in this order."""
        order = [masklib._param_name(n, a) for n, _, a in masklib._weighted_layers(model)]
        pos = [order.index(n) for n in self.names]
        return [pos[l + 1] == pos[l] + 1 and self.params[l].shape[0] == self.params[l + 1].shape[1]
                for l in range(len(self.names) - 1)] + [False]

    def link_scores(self, mask: torch.Tensor) -> torch.Tensor:
        """Scores of the absent links of one layer (``cht_score``); 0 at present links."""
        return SCORERS[self.cht_score](mask)

    def _keep(self, i: int, p: torch.Tensor, active: torch.Tensor, n_keep: int, step: int) -> torch.Tensor:
        """The ``n_keep`` active links that stay (``cht_removal``)."""
        if self.cht_removal == "magnitude":
            return active ^ self._drop(i, p, active, self.active[self.names[i]] - n_keep)
        t_end = max(1.0, self.update_end * self.total_steps)
        temperature = 1.0 + 2.0 * step / t_end
        return soft_sample(p.detach().abs().float().pow_(temperature), active, n_keep, self.generator,
                           scratch=self._buffer(i, "cht_keys"))

    @torch.no_grad()
    def update(self, step: int) -> None:
        rate = self.rate_at(step)
        target = self.counts(self.density_at(step))
        kept = []
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            n_keep = min(target[i] - math.floor(rate * target[i]), self.active[name])
            kept.append(self._keep(i, p, self.masks[name], n_keep, step))
        if self.chain_removal:
            kept = remove_dead_links(kept, self.chained)
        new_masks, counts = {}, []
        for i, (name, keep) in enumerate(zip(self.names, kept)):
            n_grow = max(target[i] - int(torch.count_nonzero(keep)), 0)
            if n_grow > 0:
                scores = self.link_scores(keep)
                keep = keep | soft_sample(scores, ~keep, n_grow, self.generator, scratch=self._buffer(i, "cht_keys"))
            new_masks[name] = keep
            counts.append(int(torch.count_nonzero(keep)))
        # CH scores are topological: no update reads the dense gradient
        self._commit([(new_masks[n], c) for n, c in zip(self.names, counts)], False)
