"""C-bar occlusions: sparkles, inverse_sparkles, checkerboard_cutout, lines (see cbar.py).

Each function maps a uint8 batch (n, C, im, im) and its fields (CPU tensors) to the
uint8 result; `point = [row, col]` as in the reference's kernels.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from dstlib.corruptions.cbar import fp, parts, random_state
from dstlib.corruptions.cbar_noise import _arange, _scalar, to_uint8

RANDOMNESS = 25  # the star rays' spread, percent of the radius
MAX_RAYS = 200   # nrays ~ randint(50, 200): at most 199 rays, 200 table entries (the first again)


# ---------------------------------------------------------------- sparkles (shared star kernel)
def _ray_tables(lengths: list[np.ndarray]) -> torch.Tensor:
    """(len(lengths) * MAX_RAYS, 2) float32: for star s, row s * MAX_RAYS + i holds
    (L[i % r], L[(i + 1) % r] - L[i % r]) for i = 0..r, r = len(L): the ray length at
    d = i + frac is the first plus frac times the second (the reference's lerp)."""
    out = np.zeros((len(lengths), MAX_RAYS, 2), dtype=np.float64)
    for s, lens in enumerate(lengths):
        r = len(lens)
        i = np.arange(r + 1)
        a, b = lens[i % r], lens[(i + 1) % r]
        out[s, :r + 1, 0] = a
        out[s, :r + 1, 1] = b - a
    return torch.from_numpy(out.reshape(-1, 2).astype(np.float32))


class _Stars:
    """Per-image star geometry for a batch, precomputed once: for star k of image b, row and
    column offsets from its centre (`centers[b, k]` = (row, col)) and their squares (float32),
    ray count r, d's scale r / (2 pi) and offset r / 2, and the star's first row in the pair
    table (_ray_tables viewed as float64: one gather reads a pair)."""

    def __init__(self, centers: torch.Tensor, rays: torch.Tensor, lengths: list, im: int, device):
        n, k = rays.shape
        c = _arange(im, str(device), torch.float32)
        ctr = centers.to(device, torch.float32)                         # (n, k, 2)
        self.dy = (c - ctr[..., 0:1])[..., None]                        # (n, k, im, 1)
        self.dx = (c - ctr[..., 1:2])[..., None, :]                     # (n, k, 1, im)
        self.dy2 = self.dy * self.dy + 1e-4
        self.dx2 = self.dx * self.dx
        r = rays.to(device, torch.float32).view(n, k, 1, 1)
        self.kr, self.hr = r / (2 * math.pi), r / 2
        self.base = (torch.arange(n * k, device=device, dtype=torch.int32) * MAX_RAYS).view(n, k, 1, 1)
        self.table = _ray_tables(lengths).to(device).view(torch.float64).view(-1)

    def kernel(self, sl: slice, k: int, exponent: float, bufs: tuple) -> torch.Tensor:
        """The reference's star kernel without its final blend, star k of images sl:
        f = clip((1 - (frac - 1/2)^2) * (length^2 / (dist^2 + 1e-4))^exponent, 0, 1) with
        d = (arctan2(dcol, drow) + pi) / (2 pi) * rays, frac = d - int(d), length the ray
        lengths interpolated at d. float32, in bufs[2] (d >= 0 up to float32 rounding, and
        int(d) <= r: the table holds rays 0..r)."""
        d, f, w = bufs
        torch.add(self.dy2[sl, k], self.dx2[sl, k], out=w)                # dist^2 + 1e-4
        torch.atan2(self.dx[sl, k], self.dy[sl, k], out=d)
        d.mul_(self.kr[sl, k]).add_(self.hr[sl, k])
        i = d.to(torch.int32)
        torch.sub(d, i, out=f)                                          # frac
        pair = self.table.index_select(0, i.add_(self.base[sl, k]).view(-1)).view(torch.float32)
        pair = pair.view(*d.shape, 2)
        g = torch.addcmul(pair[..., 0], f, pair[..., 1], out=d)          # length
        g.mul_(g).div_(w)
        if exponent != 1.0:                                             # g ** e, g >= 0 (log 0 -> exp(-inf) = 0)
            g.log_().mul_(exponent).exp_()
        torch.addcmul(f, f, f, value=-1, out=w).add_(0.75)              # 1 - (frac - 1/2)^2
        return w.mul_(g).clamp_(0, 1)


def _buffers(m: int, im: int, device) -> tuple:
    return tuple(torch.empty((m, im, im), dtype=torch.float32, device=device) for _ in range(3))


def sparkles(x, lev, f):
    """Five white stars per image at `centers` (row, col), radius fp(level, 0.1) * im,
    `nrays` rays of length max(1, radius (1 + 0.25 z)), z ~ RandomState(seed).randn drawn
    star by star; each star moves every pixel toward white by its kernel value f
    (exponent (100 - 50) / 50 = 1), one star after the other. The stars' factors (1 - f)
    are multiplied first: 255 - (255 - v) * prod(1 - f_k) is the reference's sequence
    v += f_k (255 - v) (the same f on every channel), computed once per channel."""
    dev, im = x.device, x.shape[-1]
    radius = fp(lev, 0.1) * im
    nrays = f["nrays"].long()
    lengths = []
    for s, nr in zip(f["seed"].tolist(), nrays.tolist()):
        rs = random_state(s)
        for k in range(5):
            z = rs.randn(nr[k])
            lengths.append(np.maximum(1, radius + RANDOMNESS / 100.0 * radius * z))
    stars = _Stars(f["centers"], nrays, lengths, im, dev)
    out = torch.empty_like(x)
    for sl in parts(x.shape[0], im * im, dev):
        m = sl.stop - sl.start
        bufs = _buffers(m, im, dev)
        q = torch.ones((m, im, im), dtype=torch.float32, device=dev)
        for k in range(5):
            q.addcmul_(q, stars.kernel(sl, k, 1.0, bufs), value=-1)      # q *= 1 - f
        for ch in range(x.shape[1]):                                     # 255 - (255 - v) q
            out[sl, ch] = to_uint8(bufs[0].copy_(x[sl, ch]).sub_(255).mul_(q).add_(255))
    return out


def inverse_sparkles(x, lev, f):
    """One star per image at `center` (row, col), radius 0.25 im, `rays` rays of length
    radius (1 + 0.25 z) (no lower bound here), amount 100 - fp(level, 65): out = 255 +
    f (v - 255), the image kept inside the star and faded to white outside; f with the
    exponent (100 - amount) / 50."""
    dev, im = x.device, x.shape[-1]
    radius = 0.25 * im
    amount = 100 - fp(lev, 65)
    rays = f["rays"].long()
    lengths = [radius + RANDOMNESS / 100.0 * radius * random_state(s).randn(nr)
               for s, nr in zip(f["seed"].tolist(), rays.tolist())]
    stars = _Stars(f["center"][:, None], rays[:, None], lengths, im, dev)
    out = torch.empty_like(x)
    for sl in parts(x.shape[0], im * im, dev):
        bufs = _buffers(sl.stop - sl.start, im, dev)
        v = stars.kernel(sl, 0, (100 - amount) / 50.0, bufs)
        for ch in range(x.shape[1]):                                     # 255 + f (v - 255)
            out[sl, ch] = to_uint8(bufs[0].copy_(x[sl, ch]).sub_(255).mul_(v).add_(255))
    return out


# ---------------------------------------------------------------- checkerboard
def checkerboard_cutout(x, lev, f):
    """Cells of side s = `scale` on axes turned by `angle`: for point [row, col],
    nx = (cos a row + sin a col) / s, ny = (-sin a row + cos a col) / s (float64); a pixel
    turns gray (128) where int(nx % 2) == int(ny % 2) and grid[int(nx), int(ny)], grid =
    RandomState(seed).uniform(size=(G, G)) < fp(level, 1), G = int(4 im // s). int()
    truncates toward zero and negative indices wrap around (numpy): we read a 2G x 2G tiling
    of the grid at (int(nx) + G, int(ny) + G). The parity int(nx % 2) (Python floor modulo) is
    floor(nx) mod 2, except where nx % 2 rounds to 2.0 (-1e-16 < nx < 0), which whole pixels
    on turned axes do not meet."""
    dev, im = x.device, x.shape[-1]
    frac = fp(lev, 1.0)
    scale = f["scale"].double()
    sizes = [int(4 * im // s) for s in scale.tolist()]
    tiles = [np.tile(random_state(sd).uniform(size=(g, g)) < frac, (2, 2)) for sd, g in zip(f["seed"].tolist(), sizes)]
    table = torch.from_numpy(np.concatenate([t.ravel() for t in tiles])).to(dev)
    size = torch.tensor(sizes, dtype=torch.int32)
    start = torch.from_numpy(np.concatenate([[0], np.cumsum([4 * g * g for g in sizes])[:-1]])).to(torch.int32)
    width = _scalar(2 * size, dev, torch.int32)                           # a tiling row
    origin = _scalar(start + size * 2 * size + size, dev, torch.int32)    # where (0, 0) sits
    c = _arange(im, str(dev))
    ang = f["angle"].double()
    ca, sa = torch.cos(ang).to(dev)[:, None], torch.sin(ang).to(dev)[:, None]
    rx, cx, ry, cy = ca * c, sa * c, -sa * c, ca * c                      # (n, im) row and column terms
    s = _scalar(scale, dev, torch.float64)
    gray = torch.tensor(128, dtype=torch.uint8, device=dev)
    out = torch.empty_like(x)
    for sl in parts(x.shape[0], im * im, dev):
        nx = torch.add(rx[sl, :, None], cx[sl, None, :]).div_(s[sl])
        ny = torch.add(ry[sl, :, None], cy[sl, None, :]).div_(s[sl])
        par = torch.floor(nx).to(torch.int32).add_(torch.floor(ny).to(torch.int32)).bitwise_and_(1)
        idx = nx.to(torch.int32).mul_(width[sl]).add_(ny.to(torch.int32)).add_(origin[sl])
        cut = table.index_select(0, idx.view(-1)).view(idx.shape).logical_and_(par == 0)
        out[sl] = torch.where(cut[:, None], gray, x[sl])
    return out


# ---------------------------------------------------------------- lines
def line_aa(r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray):
    """Anti-aliased lines from (r0, c0) to (r1, c1) (int arrays, one line each), the
    pixels and values skimage.draw.line_aa gives (Zingl's algorithm: its integer error
    term, ed = sqrt(dc^2 + dr^2), values 1 - |error| / ed), all lines in
    lockstep. Returns rows, cols, values (lines, K) and a mask of the entries present."""
    dc, dr = np.abs(c0 - c1), np.abs(r0 - r1)
    sc = np.where(c0 < c1, 1, -1)
    sr = np.where(r0 < r1, 1, -1)
    ed = np.where(dc + dr == 0, 1.0, np.sqrt((dc * dc + dr * dr).astype(np.float64)))
    err = (dc - dr).astype(np.float64)
    c, r = c0.copy(), r0.copy()
    live = np.ones(len(r0), dtype=bool)
    rows, cols, vals, ok = [], [], [], []

    def emit(rr, cc, v, m):
        rows.append(rr.copy())
        cols.append(cc.copy())
        vals.append(1.0 - v / ed)
        ok.append(m.copy())

    while live.any():
        emit(r, c, np.abs(err - dc + dr), live)
        e, cp = err.copy(), c.copy()
        a = live & (2 * e >= -dc)
        live &= ~(a & (c == c1))
        a &= live
        emit(r + sr, c, np.abs(e + dr), a & (e + dr < ed))
        err = np.where(a, err - dr, err)
        c = np.where(a, c + sc, c)
        b = live & (2 * e <= dr)
        live &= ~(b & (r == r1))
        b &= live
        emit(r, cp + sc, np.abs(dc - e), b & (dc - e < ed))
        err = np.where(b, err + dc, err)
        r = np.where(b, r + sr, r)
    return np.stack(rows, 1), np.stack(cols, 1), np.stack(vals, 1), np.stack(ok, 1)


def lines(x, lev, f):
    """int(fp(level, 1) * im) lines per image; line k's centre (x, y) = im * (u1, u2) and angle
    a = angle + 2 pi angle_variation (u3 - 1/2), (u1, u2, u3) from RandomState(seed), half
    length im, endpoints int(x -+ cos a * im), int(y -+ sin a * im), x the ROW (line_aa's
    first coordinate). Pixels inside the image blend toward 128: (1 - val) v + 128 val,
    truncated to uint8 after each line (the reference writes into its uint8 array). A line
    never lists a pixel twice, so a line's pixels are all computed from the image before it."""
    dev, im = x.device, x.shape[-1]
    n, ch = x.shape[0], x.shape[1]
    num = int(fp(lev, 1.0) * im)
    if num == 0:
        return x.clone()
    length = 1.0 * im
    u = np.stack([random_state(s).uniform(size=(num, 3)) for s in f["seed"].tolist()])   # (n, num, 3)
    ang = f["angle"].double().numpy()[:, None]
    var = f["angle_variation"].double().numpy()[:, None]
    px, py = im * u[..., 0], im * u[..., 1]
    a = ang + 2 * np.pi * var * (u[..., 2] - 0.5)
    s, cs = np.sin(a) * length, np.cos(a) * length
    trunc = lambda v: np.trunc(v).astype(np.int64)  # noqa: E731  (Python int())
    rr, cc, val, ok = line_aa(trunc(px - cs).ravel(), trunc(py - s).ravel(), trunc(px + cs).ravel(),
                              trunc(py + s).ravel())
    ok &= (rr >= 0) & (cc >= 0) & (rr < im) & (cc < im)
    k = rr.shape[1]
    rr, cc, val, ok = (v.reshape(n, num, k) for v in (rr, cc, val, ok))
    out = x.clone()
    flat = out.view(n, ch, im * im)
    for j in range(num):                                    # lines in order: each sees the ones before
        img, ent = np.nonzero(ok[:, j])
        if not len(img):
            continue
        pix = torch.from_numpy(img * (ch * im * im) + rr[img, j, ent] * im + cc[img, j, ent]).to(dev)
        w = torch.from_numpy(val[img, j, ent]).to(dev)
        for q in range(ch):
            at = pix + q * im * im
            v = flat.view(-1)[at].to(torch.float64)
            # (1 - val) * v + val * 128 in float64, then numpy's float -> uint8 cast (truncation)
            flat.view(-1)[at] = ((1.0 - w) * v + w * 128).to(torch.uint8)
    return out


CORRUPTIONS = {
    "sparkles": sparkles,
    "inverse_sparkles": inverse_sparkles,
    "checkerboard_cutout": checkerboard_cutout,
    "lines": lines,
}
