"""C-bar distortions: caustic_refraction, pinch_and_twirl, ripple, circular_motion_blur,
transverse_chromatic_abberation (see cbar.py for the conventions).

Each function maps a uint8 batch (n, C, im, im) and its fields (CPU tensors) to the
uint8 result; `point = [row, col]` as in the reference's kernels. The reference's
bilinear_interpolation(image, point) reads the four neighbours of point (zero outside
the image) and mixes columns first: al = lu (1 - pc + u) + ld (1 - d + pc), then rows.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dstlib.corruptions import _ops
from dstlib.corruptions.cbar import fp, parts, pinch_cells
from dstlib.corruptions.cbar_noise import _arange, per_part, to_uint8

LUMA = _ops.LUMA


# ---------------------------------------------------------------- caustic refraction
CAUSTIC_TAU = 6.28318530718   # the reference's constant
CAUSTIC_SHIFT = 250.0         # p = (point / size % 1) * tau - 250


def _reduced(v: torch.Tensor) -> torch.Tensor:
    """v mod 2 pi in float64 (a whole number of turns removed: same sines and cosines)."""
    return torch.remainder(v, 2 * math.pi)


def caustic_map(time: torch.Tensor, size: torch.Tensor, im: int, device) -> torch.Tensor:
    """The reference's caustic_noise_kernel at every point [row, col] (n, im, im), float32:
    p = (point / size % 1) tau - 250; i = p, c = 1; 5 times: t = time (1 - 3.5 / (k + 1)),
    i = p + (cos(t - i0) + sin(t + i1), sin(t - i1) + cos(t + i0)), c += 1 / |(p0 / (sin(i0 + t)
    / 0.005), p1 / (cos(i1 + t) / 0.005))|; value = clip(|1.17 - (c / 5)^1.4|^8, 0, 1).
    We track e = i + 250 (values near 0..tau) and fold the -250 into each sine's
    per-image constant, reduced mod 2 pi in float64, so float32 arguments stay small; the
    first step depends on rows and columns apart. Buffers are reused in place."""
    c = _arange(im, str(device))
    q = torch.remainder(c / size.to(device, torch.float64)[:, None], 1) * CAUSTIC_TAU   # (n, im)
    p2 = ((q - CAUSTIC_SHIFT) * 0.005).square().float()      # (p * 0.005)^2: the length's numerators
    pr2, pc2 = p2[:, :, None], p2[:, None, :]
    qf = q.float()
    qr, qc = qf[:, :, None], qf[:, None, :]
    ts = time.double().to(device)[:, None] * torch.tensor([1.0 - 3.5 / (k + 1) for k in range(5)],
                                                          dtype=torch.float64, device=device)
    a = _reduced(ts + CAUSTIC_SHIFT)                         # t - i = a - e
    b = _reduced(ts - CAUSTIC_SHIFT)                         # t + i = b + e
    af, bf = a.float()[:, :, None, None], b.float()[:, :, None, None]
    a0, b0 = a[:, 0:1], b[:, 0:1]
    # step 1 (i = p): rows and columns apart
    e0 = torch.add((q + torch.cos(a0 - q)).float()[:, :, None], torch.sin(b0 + q).float()[:, None, :])
    e1 = torch.add((q + torch.sin(a0 - q)).float()[:, None, :], torch.cos(b0 + q).float()[:, :, None])
    t1, t2, t3, s, co = (torch.empty_like(e0) for _ in range(5))
    acc = None
    for k in range(5):
        ak, bk = af[:, k], bf[:, k]
        if k:
            torch.sub(ak, e0, out=t1).cos_()                 # cos(t - i0)
            torch.add(e1, bk, out=t2).sin_()                 # sin(t + i1)
            torch.sub(ak, e1, out=t3).sin_()                 # sin(t - i1)
            e0.add_(bk).cos_()                               # cos(t + i0), in place of the old e0
            t1.add_(t2).add_(qr)                             # the new e0
            t3.add_(e0).add_(qc)                             # the new e1
            e0, e1, t1, t3 = t1, t3, e0, e1
        torch.add(e0, bk, out=s).sin_().square_()            # sin(i0 + t)^2
        torch.add(e1, bk, out=co).cos_().square_()           # cos(i1 + t)^2
        torch.div(pc2, co, out=co).addcdiv_(pr2.expand_as(s), s).rsqrt_()  # 1 / length
        acc = co.add(1.0) if acc is None else acc.add_(co)
    v = acc.div_(5).log_().mul_(1.4).exp_().neg_().add_(1.17).abs_()   # |1.17 - (c / 5) ** 1.4|
    return v.square_().square_().square_().clamp_(0, 1)


def _pow2_side(im: int) -> int:
    """The smallest 2^k + 1 >= im: on a zero-padded input of that side, grid_sample's
    align_corners coordinates g = pixel / 2^(k-1) - 1 map whole pixels back exactly."""
    k = max(1, math.ceil(math.log2(max(im - 1, 1))))
    return 2 ** k + 1


def caustic_refraction(x, lev, f):
    """Caustics (caustic_map) blurred by scipy's gaussian_filter (sigma 1, mode reflect);
    at point [row, col], with n, s, w, e the caustic values at [row, col - 1], [row, col + 1],
    [row - 1, col], [row + 1, col] (0 outside: the reference's "north" is the column
    before), the lens normal is normalise(e - w, s - n, 1) and the view ray [0, 0, 1]
    refracts with eta = 4 (no refraction when the normal's z >= 0.999); its first two
    components, times lens_scale = fp(level, im / 2) and rounded to 3 decimals, move the
    sample point (row first). In closed form (R orthonormal, so inv(R) = R^T) the move is
    (e - w, s - n) nz (sqrt(1 - (1 - nz^2) / eta^2) - nz / eta) lens_scale. out = bilinear
    image / 255 (zero outside) + (n - s) L + (e - w) L, L = fp(level, 2), clipped to [0, 1],
    times 255, truncated. Sampling: grid_sample on the image zero-padded to 2^k + 1 px, so
    unmoved points read their pixel exactly (moved ones: float32 positions, ~1e-5 px)."""
    dev, im = x.device, x.shape[-1]
    lens, light, eta = fp(lev, 0.5 * im), fp(lev, 2.0), 4.0
    side = _pow2_side(im)
    half = (side - 1) // 2
    cf = _arange(im, str(dev), torch.float32)
    out = torch.empty_like(x)
    for sl in parts(x.shape[0], im * im, dev):
        cm = caustic_map(f["time"][sl], f["size"][sl], im, dev)
        cm = _ops.gaussian_blur(cm[:, None], 1.0, mode="reflect")[:, 0]
        z = F.pad(cm, (1, 1, 1, 1))
        ns = torch.sub(z[:, 1:-1, :-2], z[:, 1:-1, 2:])           # north - south = -(column gradient)
        ew = torch.sub(z[:, 2:, 1:-1], z[:, :-2, 1:-1])           # east - west: the row gradient
        nz = torch.mul(ns, ns).addcmul_(ew, ew).add_(1).rsqrt_()  # the normal's z
        refr = torch.mul(nz, nz).sub_(1).mul_(1 / (eta * eta)).add_(1).sqrt_().sub_(nz, alpha=1 / eta)
        refr.mul_(nz).mul_(lens).mul_(nz < 1.0 - 1e-3)
        dr = torch.mul(ew, refr).mul_(1000).round_().div_(1000)
        dc = torch.mul(ns, refr).mul_(-1000).round_().div_(1000)  # (s - n) = -(n - s)
        grid = torch.stack([dc.add_(cf).div_(half).sub_(1), dr.add_(cf[:, None]).div_(half).sub_(1)], dim=-1)
        img = F.pad(x[sl].to(torch.float32).div_(255), (0, side - im, 0, side - im))
        y = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        y.add_(ns.mul_(light).add_(ew, alpha=light)[:, None])
        out[sl] = to_uint8(y.clamp_(0, 1).mul_(255))
    return out


# ---------------------------------------------------------------- bilinear (the reference's)
def _padded(x: torch.Tensor) -> torch.Tensor:
    """x (n, C, H, W) with a border of zeros (1 pixel) as float32: neighbours outside read 0."""
    return F.pad(x.to(torch.float32), (1, 1, 1, 1))


def bilinear_reference(xp: torch.Tensor, pr: torch.Tensor, pc: torch.Tensor) -> torch.Tensor:
    """The reference's bilinear_interpolation of every channel of a zero-padded image xp
    (n, C, H + 2, W + 2) at float64 points (pr, pc) (n, H, W): float64, its operation order.
    Points must lie within one pixel of the image (the pad)."""
    n, ch, hp, wp = xp.shape
    l, u = torch.floor(pr), torch.floor(pc)
    r, d = l + 1, u + 1
    wu = (1.0 - pc) + u          # 1 - pc + u
    wd = (1.0 - d) + pc          # 1 - d + pc
    wl = (1.0 - pr) + l
    wr = (1.0 - r) + pr
    li = (l.long() + 1).clamp_(0, hp - 1)
    ri = (r.long() + 1).clamp_(0, hp - 1)
    ui = (u.long() + 1).clamp_(0, wp - 1)
    di = (d.long() + 1).clamp_(0, wp - 1)
    flat = xp.reshape(n, ch, hp * wp)

    def at(ii, jj):
        idx = (ii * wp + jj).view(n, 1, -1).expand(n, ch, -1)
        return torch.gather(flat, 2, idx).view(n, ch, *pr.shape[1:]).double()

    al = at(li, ui) * wu[:, None] + at(li, di) * wd[:, None]
    ar = at(ri, ui) * wu[:, None] + at(ri, di) * wd[:, None]
    return al * wl[:, None] + ar * wr[:, None]


# ---------------------------------------------------------------- pinch and twirl
@lru_cache(maxsize=16)
def _pinch_geometry(im: int, device: str):
    """Per pixel: its cell (i = column block, j = row block; -1 outside the k x k cells), the
    cell centre (row, col), and the offsets from it (float64)."""
    k = pinch_cells(im)
    g = im // k
    radius = g / 2
    y = torch.arange(im, dtype=torch.float64).view(im, 1).expand(im, im)
    xx = torch.arange(im, dtype=torch.float64).view(1, im).expand(im, im)
    inside = (y < k * g) & (xx < k * g)
    j = torch.div(y, g, rounding_mode="floor").long()
    i = torch.div(xx, g, rounding_mode="floor").long()
    cy, cx = j * g + radius, i * g + radius
    cell = torch.where(inside, i * k + j, torch.full_like(i, -1))
    return tuple(t.to(device) for t in (cell, cy.double(), cx.double(), y - cy, xx - cx, y.contiguous(),
                                        xx.contiguous())) + (radius,)


def pinch_and_twirl(x, lev, f):
    """k x k cells (k = 5 at 224 px, else 3) of side g = im // k, each a disk of radius g / 2
    about its centre pinched and twirled: a point at distance dist <= r (and not rounding
    to 0 at 3 decimals) reads from centre + rotate((dr, dc) * sin(pi / 2 * d)^-amount,
    angle (1 - d)^2), d = dist / r, amount = fp(level, 0.4) + 0.1, angle = sign *
    fp(level, pi / 2) with the cell's random sign (`signs[i, j]`, i the column block, as
    the reference's angles[i, j]). The reference warps cell after cell in place, but a
    cell only reads rows and columns from its own start on, which later cells have not
    yet changed: one warp of the original image. Values pass through float32 (the
    reference writes them into its float32 copy), then are clipped and truncated."""
    dev, im = x.device, x.shape[-1]
    n = x.shape[0]
    cell, cy, cx, oy, ox, y, xx, radius = _pinch_geometry(im, str(dev))
    k = pinch_cells(im)
    amount = fp(lev, 0.4) + 0.1
    ang = f["signs"].to(dev, torch.float64).view(n, k * k) * fp(lev, np.pi / 2)
    a_cell = ang[:, cell.clamp(min=0).view(-1)].view(n, im, im)
    dist = torch.sqrt(oy * oy + ox * ox)
    warp = (cell >= 0) & (dist <= radius) & (torch.round(dist * 1000) != 0)
    d = dist / radius
    t = torch.pow(torch.sin(np.pi * 0.5 * d), -amount)
    e = 1 - d
    a = a_cell * (e * e)
    ddy, ddx = oy * t, ox * t
    ca, sa = torch.cos(a), torch.sin(a)
    pr = torch.where(warp, cy + (ddy * ca - ddx * sa), y)
    pc = torch.where(warp, cx + (ddy * sa + ddx * ca), xx)
    out = bilinear_reference(_padded(x), pr, pc).float()
    return to_uint8(out)


# ---------------------------------------------------------------- ripple
def _axis_gather(v: torch.Tensor, axis: int, pad: int, lo: torch.Tensor, w_lo: torch.Tensor,
                 w_hi: torch.Tensor) -> torch.Tensor:
    """w_lo * v[lo] + w_hi * v[lo + 1] along `axis` (-1 or -2) of a float64 plane batch v
    (n, C, ., .) whose `axis` carries a zero border of `pad` pixels (lo: (n, L) pixel
    indices, reads beyond the border clamp into it, i.e. read 0); the other axis is kept."""
    n, ch = v.shape[:2]
    size = v.shape[axis]
    i0 = (lo + pad).clamp(0, size - 1)
    i1 = (lo + pad + 1).clamp(0, size - 1)
    if axis == -1:
        shape, view = (n, ch, v.shape[-2], -1), (n, 1, 1, -1)
    else:
        shape, view = (n, ch, -1, v.shape[-1]), (n, 1, -1, 1)
    dim = v.ndim + axis
    g0 = torch.gather(v, dim, i0.view(view).expand(shape))
    g1 = torch.gather(v, dim, i1.view(view).expand(shape))
    return g0 * w_lo.view(view) + g1 * w_hi.view(view)


def ripple(x, lev, f):
    """point [row, col] reads from point + A sin(2 pi point / wavelengths + phases),
    A = fp(level, 0.025) * im: the row moves by a function of the row, the column by one
    of the column, so the reference's bilinear read (zero outside) is a column pass then
    a row pass, each two taps, with its weights and its order (float64)."""
    dev, im = x.device, x.shape[-1]
    amp = fp(lev, 0.025) * im
    c = _arange(im, str(dev))
    wl = f["wavelengths"].to(dev, torch.float64)
    ph = f["phases"].to(dev, torch.float64)
    pr = c + amp * torch.sin(2 * np.pi * c / wl[:, 0:1] + ph[:, 0:1])   # (n, im) rows
    pc = c + amp * torch.sin(2 * np.pi * c / wl[:, 1:2] + ph[:, 1:2])   # (n, im) columns
    u, l = torch.floor(pc), torch.floor(pr)
    pad = int(math.ceil(amp)) + 1
    xp = F.pad(x.to(torch.float64), (pad, pad, pad, pad))
    cols = _axis_gather(xp, -1, pad, u.long(), (1.0 - pc) + u, (1.0 - (u + 1)) + pc)
    rows = _axis_gather(cols, -2, pad, l.long(), (1.0 - pr) + l, (1.0 - (l + 1)) + pr)
    return to_uint8(rows)


# ---------------------------------------------------------------- B-splines (scipy.ndimage, order 3)
def bspline3(t: np.ndarray) -> np.ndarray:
    """The cubic B-spline."""
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t * t + t ** 3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Whole-sample mirror (d c b | a b c d | c b a) of indices into a length-n axis: the
    extension scipy.ndimage's order-3 splines use in mode 'constant' for points inside."""
    if n == 1:
        return np.zeros_like(i)
    p = 2 * n - 2
    i = np.mod(i, p)
    return np.where(i >= n, p - i, i)


def spline_taps(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline taps at float coordinates on a length-n axis: source indices (mirrored)
    and weights, (len(coords), 4) each (support floor(c) - 1 .. floor(c) + 2)."""
    start = np.floor(coords).astype(np.int64) - 1
    idx = start[:, None] + np.arange(4)[None, :]
    return _mirror(idx, n), bspline3(coords[:, None] - idx)


@lru_cache(maxsize=8)
def spline_prefilter(n: int) -> np.ndarray:
    """(n, n) float64: the order-3 B-spline coefficients of a signal (scipy's spline_filter1d
    with mirror boundaries, which mode 'constant' uses): the inverse of the mirrored
    [1/6, 4/6, 1/6] filter."""
    m = np.zeros((n, n))
    for k, w in ((-1, 1 / 6), (0, 4 / 6), (1, 1 / 6)):
        m[np.arange(n), _mirror(np.arange(n) + k, n)] += w
    return np.linalg.inv(m)


EXACT_BITS = 30


def exact_weights(w: np.ndarray, bits: int = EXACT_BITS) -> np.ndarray:
    """w rounded to multiples of 2^-bits: a product with integers 0..255 summed over a few
    thousand terms is then exact in float64, whatever the summation order."""
    return np.round(w * 2.0 ** bits) / 2.0 ** bits


# ---------------------------------------------------------------- circular motion blur
CIRCULAR_MAX_SIDE = 48  # the blur is one dense (im^2 x im^2) matrix: 42 MB at 48 px


@lru_cache(maxsize=8)
def circular_matrix(im: int, amount: float) -> torch.Tensor:
    """(im^2, im^2) float64 M with out = M @ image (flattened, any scale): the mean of 21
    scipy.ndimage.rotate(image, angle_k, reshape=False) (order 3 with prefilter, mode
    'constant': points outside [0, im - 1] read 0), angle_k = (2k / 20 - 1) * amount
    degrees, weighted by exp(-2 (2k / 20 - 1)^2). Rotation as scipy's: input = R (out -
    centre) + centre, R = [[cos, sin], [-sin, cos]] in degrees (cosdg, sindg), centre
    (im - 1) / 2. Weights exact_weights."""
    from scipy.special import cosdg, sindg

    num = 21
    ctr = (im - 1) / 2
    orow, ocol = np.meshgrid(np.arange(im, dtype=np.float64), np.arange(im, dtype=np.float64), indexing="ij")
    orow, ocol = orow.ravel() - ctr, ocol.ravel() - ctr
    s = np.zeros((im * im, im * im))
    factors = [math.exp(-2 * (2 * k / (num - 1) - 1) ** 2) for k in range(num)]
    for k in range(num):
        angle = (2 * k / (num - 1) - 1) * amount
        c, sn = float(cosdg(angle)), float(sindg(angle))
        ir = c * orow + sn * ocol + ctr
        ic = -sn * orow + c * ocol + ctr
        ok = (ir >= 0) & (ir <= im - 1) & (ic >= 0) & (ic <= im - 1)
        tr, wr = spline_taps(ir, im)
        tc, wc = spline_taps(ic, im)
        out_idx = np.repeat(np.nonzero(ok)[0], 16)
        src = (tr[ok][:, :, None] * im + tc[ok][:, None, :]).ravel()
        w = (wr[ok][:, :, None] * wc[ok][:, None, :]).ravel() * factors[k]
        np.add.at(s, (out_idx, src), w)
    s /= sum(factors)
    p = spline_prefilter(im)
    m = s @ np.kron(p, p)
    return torch.from_numpy(exact_weights(m))


def circular_motion_blur(x, lev, f):
    """The weighted mean of 21 rotations by -amount .. amount degrees, amount = fp(level, 15)
    (circular_matrix), clipped and truncated: one exact float64 matrix product per batch."""
    dev, im = x.device, x.shape[-1]
    if im > CIRCULAR_MAX_SIDE:
        raise ValueError(f"x.shape={tuple(x.shape)} is invalid for circular_motion_blur; allowed: "
                         f"images up to {CIRCULAR_MAX_SIDE} px (the CIFAR-10-C-bar set is 32 px)")
    m = circular_matrix(im, fp(lev, 15)).to(dev)
    planes = x.reshape(-1, im * im).to(torch.float64)
    y = planes @ m.t()
    return to_uint8(y).view(x.shape)



# ---------------------------------------------------------------- transverse chromatic aberration
ZOOM_BITS = 21  # two weight factors per product: 8 + 2 * 21 bits of an exact float64


@lru_cache(maxsize=32)
def zoom_matrix(im: int, scale: float) -> torch.Tensor:
    """(im, im) float64 A with the 1-D scipy.ndimage.zoom(v, scale, order=3, prefilter=False)
    centre-cropped to im = A @ v: output length out = round(im * scale), output o reads
    o * (im - 1) / (out - 1) (grid_mode False), crop start (out - im) // 2; weights
    rounded to multiples of 2^-21 (exact_weights), so A X A^T is exact in float64."""
    out = int(round(im * scale))
    z = (im - 1) / (out - 1)
    edge = (out - im) // 2
    idx, w = spline_taps((np.arange(out) * z)[edge:edge + im], im)
    a = np.zeros((im, im))
    np.add.at(a, (np.repeat(np.arange(im), 4), idx.ravel()), w.ravel())
    return torch.from_numpy(exact_weights(a, ZOOM_BITS))


def transverse_chromatic_abberation(x, lev, f):
    """Channel c zoomed by scales[permutation[c]], scales = (1, 1 + s / 2, 1 + s),
    s = fp(level, 0.5), with scipy.ndimage.zoom (order 3, no prefilter, uint8 output:
    rounded half up) and centre-cropped: A X A^T (zoom_matrix, exact). The factor-1 zoom is
    not the identity: without the prefilter, B-spline interpolation at the pixels smooths
    by (1, 4, 1) / 6. Where scipy's sum lands within float rounding of a half (e.g.
    (a + 4 b + c) / 6), its rounding depends on its summation order; ours, exact, rounds
    up: a level apart there. Gray: the luma of the three zooms of the one channel."""
    dev, im = x.device, x.shape[-1]
    n = x.shape[0]
    s = fp(lev, 0.5)
    mats = torch.stack([zoom_matrix(im, sc) for sc in (1.0, 1.0 + s / 2, 1.0 + s)]).to(dev)
    a = mats[f["permutation"].long().to(dev).view(-1)]                   # (n * 3, im, im): channel c's scale
    planes = x.expand(n, 3, im, im).reshape(n * 3, im, im).to(torch.float64)
    z = torch.bmm(torch.bmm(a, planes), a.transpose(1, 2)).add_(0.5).floor_().clamp_(0, 255).view(n, 3, im, im)
    if x.shape[1] == 3:
        return z.to(torch.uint8)
    y = z[:, 0:1] * LUMA[0] + z[:, 1:2] * LUMA[1] + z[:, 2:3] * LUMA[2]
    return to_uint8(y)


CORRUPTIONS = {
    "caustic_refraction": caustic_refraction,
    "pinch_and_twirl": per_part(pinch_and_twirl, 8),
    "ripple": per_part(ripple, 8),
    "circular_motion_blur": circular_motion_blur,
    "transverse_chromatic_abberation": transverse_chromatic_abberation,
}
