"""Weather corruptions: snow, frost, fog, spatter (see noise.py for the pattern).

The apply functions overwrite x (the float copy `corrupt` makes) and return the
0..255-scale float image unclipped: `corrupt` clamps it to [0, 255], which gives
the reference's clip(y, 0, 1) * 255 bit for bit (float rounding is monotone and
255 * 1 is exact), so no second clamp is spent here."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dstlib.corruptions import _ops, _rng

ASSETS = Path(__file__).with_name("assets")
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


# ---------------------------------------------------------------- fog
def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 2 ** (n - 1).bit_length()


def plasma_draws(size: int) -> int:
    """How many uniforms one plasma map of side `size` consumes."""
    return 3 * sum(4 ** j for j in range(int(math.log2(size))))


@lru_cache(maxsize=16)
def _plasma_scales(size: int, decay: float, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per draw (a, b) with noise = a * u + b = wibble * (-wibble + 2 * wibble * u)."""
    a, b, wibble = [], [], 100.0
    for j in range(int(math.log2(size))):
        a.append(np.full(3 * 4 ** j, 2 * wibble * wibble))
        b.append(np.full(3 * 4 ** j, -wibble * wibble))
        wibble /= decay
    return (torch.from_numpy(np.concatenate(a)).float().to(device),
            torch.from_numpy(np.concatenate(b)).float().to(device))


def _add_rolled(a: torch.Tensor, b: torch.Tensor, dim: int, shift: int, out: torch.Tensor) -> torch.Tensor:
    """out = a + roll(b, shift, dim) for shift +-1, as two slice additions."""
    k = a.shape[dim]
    s = slice(1, None) if shift == 1 else slice(None, -1)
    t = slice(None, -1) if shift == 1 else slice(1, None)
    e, f = (0, k - 1) if shift == 1 else (k - 1, 0)
    torch.add(a.narrow(dim, s.start or 0, k - 1), b.narrow(dim, t.start or 0, k - 1),
              out=out.narrow(dim, s.start or 0, k - 1))
    torch.add(a.narrow(dim, e, 1), b.narrow(dim, f, 1), out=out.narrow(dim, e, 1))
    return out


def plasma_map(u: torch.Tensor, size: int, decay: float, h: int | None = None, w: int | None = None) -> torch.Tensor:
    """Batched diamond-square plasma (the reference's plasma_fractal) in float32,
    normalised to [0, 1] over the whole size x size map, top-left h x w returned.

    u (N, plasma_draws(size)) are U[0, 1) draws consumed in the reference's order
    (per level: squares, then the two diamond sets, each k x k row-major); each
    becomes wibble * U(-wibble, wibble), wibble starting at 100 and divided by
    `decay` per level. Each level's corner grid c (k x k) gives the squares
    dr = (c + c[i+1] + c[j+1] + c[i+1, j+1]) / 4 + noise and the diamonds from dr and
    c (wrapping around), interleaved into the next corner grid (2k x 2k); the last
    level is written, normalised, straight into the h x w crop.
    """
    h, w = h or size, w or size
    n, dev = u.shape[0], u.device
    sa, sb = _plasma_scales(size, float(decay), str(dev))
    nz = torch.addcmul(sb, u.to(torch.float32), sa)  # (N, draws): all levels' noise
    c = torch.zeros(n, 1, 1, dtype=torch.float32, device=dev)
    k, pos = 1, 0

    def noise():
        nonlocal pos
        v = nz[:, pos:pos + k * k].view(n, k, k)
        pos += k * k
        return v

    while True:
        p = _add_rolled(c, c, 1, -1, torch.empty_like(c))  # c + roll(c, -1, 1)
        sq = _add_rolled(p, p, 2, -1, torch.empty_like(c))
        dr = torch.add(noise(), sq, alpha=0.25)  # sq / 4 exact: one rounding, as sq / 4 + noise
        a = _add_rolled(c, c, 2, -1, sq)  # c + roll(c, -1, 2)
        a += _add_rolled(dr, dr, 1, 1, torch.empty_like(c))
        lt = torch.add(noise(), a, alpha=0.25)
        b = _add_rolled(dr, dr, 2, 1, a)
        b += p
        tt = torch.add(noise(), b, alpha=0.25)
        if 2 * k >= size:
            break
        m = torch.empty(n, k, 2, k, 2, dtype=torch.float32, device=dev)
        m[:, :, 0, :, 0] = c
        m[:, :, 0, :, 1] = lt
        m[:, :, 1, :, 0] = tt
        m[:, :, 1, :, 1] = dr
        c = m.view(n, 2 * k, 2 * k)
        k *= 2
    parts = (c, lt, tt, dr)
    mn = torch.stack([q.amin(dim=(1, 2)) for q in parts]).amin(0).view(n, 1, 1)
    mx = torch.stack([q.amax(dim=(1, 2)) for q in parts]).amax(0).view(n, 1, 1)
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    out = torch.empty(n, h2, 2, w2, 2, dtype=torch.float32, device=dev)
    for q, (i, j) in zip(parts, ((0, 0), (0, 1), (1, 0), (1, 1))):
        torch.sub(q[:, :h2, :w2], mn, out=out[:, :, i, :, j])
    out = out.view(n, 2 * h2, 2 * w2).div_(mx - mn)
    return out[:, :h, :w]


def draw_fog(seeds, p, ctx):
    size = next_pow2(max(ctx.shape[1], ctx.shape[2]))
    return {"plasma_u": _rng.uniform(seeds, 0, (plasma_draws(size),), ctx.device, torch.float32)}


def apply_fog(x, p, ctx, f):
    """clip((x + s * plasma) * max / (max + s)); max over all channels and pixels.

    Fields: `plasma` (N, S, S) a ready map, or `plasma_u` its uniform draws.
    """
    s, decay = float(p[0]), float(p[1])
    n, c, h, w = x.shape
    if "plasma" in f:
        pl = f["plasma"].to(x.device, x.dtype)[:, None, :h, :w] * s
    else:
        pl = plasma_map(f["plasma_u"].to(x.device), next_pow2(max(h, w)), decay, h, w)[:, None].mul_(s)
    mx = x.amax(dim=(1, 2, 3), keepdim=True)
    y = x.add_(pl)  # overwrites x, the float copy `corrupt` makes: no fresh batch-sized buffer
    return y.mul_(mx.mul(255).div_(mx + s))


# ---------------------------------------------------------------- frost
@lru_cache(maxsize=None)
def _frost_raw(i: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(ASSETS / FROST_FILES[i]) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float()[None]


@lru_cache(maxsize=None)
def frost_textures(kind: str, scale: float, count: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """The frost textures (1, 3, th, tw) float 0..255, resized as the table's script does.

    kind "scaled": resize by `scale` with bilinear interpolation (OpenCV
    INTER_LINEAR, fx = fy = scale), enlarged if needed so a crop fits.
    kind "fit": the package's rule: 1.1 x the factor that makes the texture
    cover the image, bicubic (INTER_CUBIC) to ceil(side * factor).
    """
    out = []
    for i in range(count):
        t = _frost_raw(i)
        th, tw = t.shape[-2:]
        if kind == "scaled":
            sc = max(scale, (h + 1) / th, (w + 1) / tw)
            if sc == scale:
                r = F.interpolate(t, scale_factor=(sc, sc), mode="bilinear", align_corners=False,
                                  recompute_scale_factor=False)
            else:
                r = F.interpolate(t, size=(math.ceil(th * sc), math.ceil(tw * sc)), mode="bilinear",
                                  align_corners=False)
        else:
            sf = 1.0
            if th < h or tw < w:
                sf = max(h / th, w / tw)
            sf *= scale
            r = F.interpolate(t, size=(int(np.ceil(th * sf)), int(np.ceil(tw * sf))), mode="bicubic",
                              align_corners=False)
        out.append(torch.round(r.clamp(0, 255)))
    return tuple(out)


def _textures(ctx):
    st = ctx.style
    return frost_textures(st["frost"], float(st["frost_scale"]), int(st["frost_count"]),
                          ctx.shape[1], ctx.shape[2])


def draw_frost(seeds, p, ctx):
    tex = _textures(ctx)
    i = _rng.integers(seeds, 0, (), len(tex)).long()
    th = torch.tensor([t.shape[-2] for t in tex])[i]
    tw = torch.tensor([t.shape[-1] for t in tex])[i]
    top = _rng.integers(seeds, 1, (), th - ctx.shape[1])
    left = _rng.integers(seeds, 2, (), tw - ctx.shape[2])
    return {"frost_index": i, "crop": torch.stack([top, left], dim=1)}


def apply_frost(x, p, ctx, f):
    """clip(a * x + b * frost) on the 0..255 scale; frost is a random crop of a random
    texture (`frost_index` (N,), `crop` (N, 2) top-left). Gray images get the texture's luma.
    Overwrites x (the float copy `corrupt` makes)."""
    a, b = float(p[0]), float(p[1])
    n, c, h, w = x.shape
    tex = _textures(ctx)
    idx, crop = f["frost_index"].tolist(), f["crop"].tolist()
    c0 = tex[0].shape[1]
    # the crops tex[i][:, :, t:t + h, l:l + w] as one as_strided view each (cheaper than two slices)
    views = [(q, q.stride(), q.storage_offset()) for q in tex]
    fr = torch.cat([views[i][0].as_strided((1, c0, h, w), views[i][1], views[i][2] + t * views[i][1][2] + l)
                    for i, (t, l) in zip(idx, crop)]).to(x.device, x.dtype)
    if c == 1:
        fr = _ops.to_gray(fr)
    # a * (x * 255) + b * fr, in place on x and the fresh crops (same products, same sum)
    return x.mul_(255).mul_(a).add_(fr.mul_(b))


# ---------------------------------------------------------------- snow
def _below(thr: float) -> float:
    """The float32 just below float32(thr): F.threshold(v, _below(thr), 0) zeroes exactly
    the float32 v with v < thr (a Python float compares with a float32 tensor as float32)."""
    return float(np.nextafter(np.float32(thr), np.float32(-np.inf)))


def draw_snow(seeds, p, ctx):
    z = _rng.normal(seeds, 0, (1, ctx.shape[1], ctx.shape[2]), ctx.device)
    return {"normal": z, "angle": _rng.uniform(seeds, 1, (), "cpu", torch.float64) * 90 - 135}


def apply_snow(x, p, ctx, f):
    """Snow layer N(loc, scale) zoomed, thresholded, motion-blurred at U(-135, -45) degrees,
    added as is and turned 180 degrees, after blending x with max(x, 1.5 gray + 0.5).

    `cifar`/`tiny`: the zoomed layer is centre-trimmed and goes through 8 bits
    before the blur, as the scripts' PNG hand-off to ImageMagick; `imagenet`: the
    package blurs the untrimmed zoomed layer and keeps its top-left H x W. All
    tables round the blurred layer to 8 bits.
    """
    loc, scale, zoom, thr, rad, sig, blend = p
    layer = loc + scale * f["normal"].to(x.device, x.dtype)
    center = ctx.style["zoom_trim"] == "center"
    layer = _ops.clipped_zoom(layer, float(zoom), "center" if center else None)
    layer = F.threshold(layer, _below(thr), 0.0).clamp_(0, 1).mul_(255)  # where(layer < thr, 0, layer)
    if ctx.style["snow_quantize"]:
        layer = torch.floor(layer)
    layer = _ops.motion_blur(layer, int(rad), float(sig), f["angle"])
    layer = layer[:, :, :x.shape[2], :x.shape[3]]  # the package blurs the whole zoomed layer, then crops
    layer = torch.round(layer).div_(255)
    # blend * x + (1 - blend) * max(x, 1.5 gray + 0.5), in place (same operations, same order)
    # (overwrites x, the float copy `corrupt` makes, with x * blend)
    g = (x if x.shape[1] == 1 else _ops.to_gray(x)).mul(1.5).add_(0.5)
    y = torch.maximum(x, g).mul_(1 - blend).add_(x.mul_(blend))
    y.add_(layer).add_(torch.flip(layer, dims=(2, 3)))
    return y.mul_(255)


WATER = (175 / 255.0, 238 / 255.0, 238 / 255.0)
MUD = (63 / 255.0, 42 / 255.0, 20 / 255.0)
_TG22 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)


def canny(img: torch.Tensor, low: int = 50, high: int = 150) -> torch.Tensor:
    """OpenCV cv2.Canny(img, low, high) on 8-bit images (N, H, W) of integer values:
    3x3 Sobel with BORDER_REPLICATE, L1 magnitude, OpenCV's non-maximum
    suppression (tan 22.5 in 15-bit fixed point), 8-connected hysteresis. Bool edges.

    The Sobel runs separably in int16 (|g| <= 1020, |gx| + |gy| <= 2040: exact).
    OpenCV's direction tests ay 2^15 < ax TG22 (horizontal) and ay 2^15 > ax (TG22 +
    2^16) (vertical) are, with t = ax TG22 / 2^15, ay <= floor(t) and ay - 2 ax >
    floor(t) (t is an integer only for ax = 0, where m > 0 needs ay > 0: both agree)."""
    n, h, w = img.shape
    p = _ops.pad2d(img.to(torch.int16), 1, 1, "nearest")
    sv = p[:, 1:-1] * 2  # vertical [1, 2, 1] and [-1, 0, 1] over all padded columns
    sv += p[:, :-2]
    sv += p[:, 2:]
    dv = p[:, 2:] - p[:, :-2]
    gx = sv[:, :, 2:] - sv[:, :, :-2]
    gy = dv[:, :, 1:-1] * 2
    gy += dv[:, :, :-2]
    gy += dv[:, :, 2:]
    ax, ay = gx.abs(), gy.abs()
    mp = torch.zeros(n, h + 2, w + 2, dtype=torch.int16, device=img.device)  # magnitude, zero border
    m = torch.add(ax, ay, out=mp[:, 1:-1, 1:-1])
    # int16 words whose sign bit is the test (a < b <=> a - b < 0; & of words = & of tests):
    # torch's int16 -> bool comparisons are scalar loops, int16 arithmetic is vectorised
    fl = ax.to(torch.int32).mul_(_TG22).bitwise_right_shift_(15).to(torch.int16)  # floor(t)
    hw = ay - fl
    hw -= 1  # horizontal: ay <= floor(t)
    vw = fl - ay
    vw += ax
    vw += ax  # vertical: ay - 2 ax > floor(t)
    dw = hw | vw
    dw.bitwise_not_()  # diagonal: neither
    opp = gx ^ gy  # OpenCV: s = (dx ^ dy) < 0 ? -1 : 1
    m1 = m + 1
    z = lambda dy, dx: mp[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    keep = (z(0, -1) - m).bitwise_and_(z(0, 1) - m1).bitwise_and_(hw)
    keep |= (z(-1, 0) - m).bitwise_and_(z(1, 0) - m1).bitwise_and_(vw)
    dw_same = dw & ~opp
    keep |= (z(-1, -1) - m).bitwise_and_(z(1, 1) - m).bitwise_and_(dw_same)
    keep |= (z(-1, 1) - m).bitwise_and_(z(1, -1) - m).bitwise_and_(dw.bitwise_and_(opp))
    keep &= low - m  # m > low
    keep >>= 15  # -1 where every test holds: the candidates
    strong = torch.sub(high, m).bitwise_right_shift_(15).bitwise_and_(keep)  # and m > high
    cand = keep.to(torch.uint8).bitwise_and_(1).view(torch.bool)
    edge = strong.to(torch.uint8).bitwise_and_(1).view(torch.bool)
    row, spare = torch.empty_like(edge), torch.empty_like(edge)
    while True:
        grown = _dilate3(edge, row, spare).bitwise_and_(cand)
        # grown contains edge: done when nothing was added (a byte max: ~50x faster than equal)
        if not int(torch.bitwise_xor(grown, edge, out=row).view(torch.uint8).amax()):
            return edge
        edge, spare = grown, edge


def _dilate3(e: torch.Tensor, r: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """3x3 binary dilation of a bool (N, H, W) tensor (outside counts as False); r and out
    are optional buffers of e's shape for the row pass and the result."""
    r = e.clone() if r is None else r.copy_(e)
    r[:, :, 1:] |= e[:, :, :-1]
    r[:, :, :-1] |= e[:, :, 1:]
    out = r.clone() if out is None else out.copy_(r)
    out[:, 1:] |= r[:, :-1]
    out[:, :-1] |= r[:, 1:]
    return out


_CHAMFER_A, _CHAMFER_B, _CHAMFER_C = 65536, 91750, 143976  # 1, 1.4, 2.1969 in 16-bit fixed point
# the 16 moves of the 5x5 chamfer mask by angle: straight, knight, diagonal, knight, straight, ...
_RAYS = ((0, 1), (1, 2), (1, 1), (2, 1), (1, 0), (2, -1), (1, -1), (1, -2),
         (0, -1), (-1, -2), (-1, -1), (-2, -1), (-1, 0), (-2, 1), (-1, 1), (-1, 2))


def _ray_cost(g: tuple) -> int:
    return _CHAMFER_A if 0 in g else (_CHAMFER_B if abs(g[0]) == abs(g[1]) else _CHAMFER_C)


def _doubling(count: int) -> list[int]:
    """Shifts 1, 2, 4, ..., r whose running minima cover every multiple 0..count."""
    out, covered = [], 0
    while covered < count:
        out.append(min(covered + 1, count - covered))
        covered += out[-1]
    return out


@lru_cache(maxsize=32)
def _chamfer_plan(cap: float, h: int, w: int) -> tuple:
    """Per pair of neighbouring rays (g, k): the linear potential (wy, wx) with
    w.g = cost(g), w.k = cost(k), and the (dy, dx) shifts of their doubling passes:
    enough moves of each kind for any path shorter than `cap`, none longer than the image."""
    lim = int(cap * 65536)
    plan = []
    for i in range(0, 16, 2):
        g, k = _RAYS[i], _RAYS[i + 1]
        cg, ck = _ray_cost(g), _ray_cost(k)
        det = g[0] * k[1] - g[1] * k[0]  # +-1 or +-2; the potentials come out integer
        wy, wx = (cg * k[1] - ck * g[1]) // det, (ck * g[0] - cg * k[0]) // det
        assert wy * g[0] + wx * g[1] == cg and wy * k[0] + wx * k[1] == ck
        shifts = tuple((r[0] * s, r[1] * s) for r, c in ((g, cg), (k, ck)) for s in _doubling((lim - 1) // c)
                       if abs(r[0]) * s < h and abs(r[1]) * s < w)
        plan.append(((wy, wx), shifts))
    return tuple(plan)


def distance_to_zero(src: torch.Tensor, cap: float = 20.0) -> torch.Tensor:
    """OpenCV distanceTransform(src, DIST_L2, 5), then min(., cap): the 5x5 chamfer
    distance (1, 1.4, 2.1969 in 16-bit fixed point) to the nearest zero pixel.

    A shortest path needs only two neighbouring moves of the 16 (straight + knight or
    knight + diagonal; the costs are convex and each such pair spans the lattice), and
    their moves in any order stay inside the pixels' bounding box, hence the image. So
    the distance is a sequence of 16 one-dimensional min-plus passes, one per move, each
    over at most (cap / cost) moves, done by doubling shifts (1, 2, 4, ...). Subtracting
    a linear potential phi with phi(q) - phi(q - g) = cost(g) for both moves of a pair
    turns each pass into plain minima of shifted views. int32 throughout: exact.
    Distances above `cap` are only known to be: exact up to `cap`."""
    n, h, w = src.shape
    plan = _chamfer_plan(float(cap), h, w)
    big = int(cap * 65536) + 1
    r = max([1] + [max(abs(dy), abs(dx)) for _, sh in plan for dy, dx in sh])
    # two buffers with a border of r that stays "infinite": shifted views read it past the edge
    bufs = [torch.full((n, h + 2 * r, w + 2 * r), 1 << 30, dtype=torch.int32, device=src.device) for _ in range(2)]
    cur, nxt = (b[:, r:r + h, r:r + w] for b in bufs)
    cur.copy_(src if src.dtype == torch.bool else src != 0)  # bool src: True = not zero
    cur.mul_(big)
    ys = torch.arange(h, dtype=torch.int32, device=src.device).view(h, 1)
    xs = torch.arange(w, dtype=torch.int32, device=src.device).view(1, w)
    (wy0, wx0), i = (0, 0), 0
    for (wy, wx), shifts in plan:
        cur.sub_(ys * (wy - wy0) + xs * (wx - wx0))  # values are now d - phi
        wy0, wx0 = wy, wx
        for dy, dx in shifts:
            torch.minimum(cur, bufs[i][:, r - dy:r - dy + h, r - dx:r - dx + w], out=nxt)
            i ^= 1
            cur, nxt = nxt, cur
    cur.add_(ys * wy0 + xs * wx0).clamp_(max=big)
    return cur.float().mul_(1.0 / 65536).clamp_(max=cap)  # d < 2^24: exact in float32


def equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image (N, H, W), integer values 0..255 in and out (float).
    Image i's values index bins 256 i .. 256 i + 255: one bincount and one lookup for the batch."""
    n = img.shape[0]
    v = img.reshape(n, -1).to(torch.int32)
    v += (torch.arange(n, dtype=torch.int32, device=img.device) * 256).view(n, 1)
    hist = torch.bincount(v.view(-1), minlength=256 * n).view(n, 256)
    first = (hist > 0).to(torch.uint8).argmax(dim=1, keepdim=True)
    total = v.shape[1]
    hfirst = torch.gather(hist, 1, first)
    cs = torch.cumsum(hist, 1)
    scale = 255.0 / (total - hfirst).clamp(min=1).float()
    lut = torch.round((cs - torch.gather(cs, 1, first)).float() * scale).clamp(0, 255)
    lut = torch.where(hfirst == total, first.float(), lut)  # one value: OpenCV returns the image as is
    return lut.view(-1).index_select(0, v.view(-1)).view(img.shape)


def _water_mask(liquid: torch.Tensor) -> torch.Tensor:
    """The reference's water-drop mask m (before /max), (N, H, W), from the thresholded liquid layer."""
    n, h, w = liquid.shape
    l8 = (liquid * 255).to(torch.int16).bitwise_and_(255)  # numpy float -> uint8 truncates and wraps (liquid >= 0)
    edges = canny(l8)
    dist = distance_to_zero(edges.logical_not_())
    # cv2.blur 3x3 (BORDER_REFLECT_101): the sums of nine multiples of 2^-16 below 20 are exact
    p = F.pad(dist[:, None], (1, 1, 1, 1), mode="reflect")[:, 0]
    s = p[:, :-2] + p[:, 1:-1]
    s += p[:, 2:]
    d = s[:, :, :-2] + s[:, :, 1:-1]
    d += s[:, :, 2:]
    dist = equalize_hist(d.mul_(1.0 / 9.0).floor_())
    # filter2D with [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], clip to 8 bits, 3x3 box with rounding:
    # small integers, exact in int16 (|sum| <= 5 * 255, box sums <= 9 * 255)
    e = F.pad(dist[:, None], (1, 1, 1, 1), mode="reflect")[:, 0].to(torch.int16)
    v = lambda dy, dx: e[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    c = v(1, 1) - v(-1, -1)
    c *= 2
    c += v(0, 0)
    c += v(0, 1)
    c += v(1, 0)
    c -= v(-1, 0)
    c -= v(0, -1)
    c.clamp_(0, 255)
    p = torch.empty(n, h + 2, w + 2, dtype=torch.int16, device=liquid.device)  # reflect-101 pad of c
    p[:, 1:-1, 1:-1] = c
    p[:, 0, 1:-1], p[:, -1, 1:-1] = c[:, 1], c[:, -2]
    p[:, :, 0], p[:, :, -1] = p[:, :, 2], p[:, :, -3]
    s = p[:, :-2] + p[:, 1:-1]
    s += p[:, 2:]
    b = s[:, :, :-2] + s[:, :, 1:-1]
    b += s[:, :, 2:]
    # floor(b / 9 + 0.5) in float32: b <= 2295, so (b + 4.5) / 9 stays >= 1/18 from the next
    # integer, far beyond the rounding (exhaustively equal; integer division has no SIMD path)
    bf = b.to(torch.float32).add_(4.5).mul_(1.0 / 9.0).floor_()
    return bf.mul_(l8.to(torch.float32))  # same dtypes: mixed-dtype in-place ops take a slow path


def draw_spatter(seeds, p, ctx):
    return {"normal": _rng.normal(seeds, 0, (1, ctx.shape[1], ctx.shape[2]), ctx.device)}


def apply_spatter(x, p, ctx, f):
    """Liquid layer N(loc, scale) smoothed (sigma) and thresholded; mode 0 adds
    pale-turquoise water drops shaped by the layer's Canny edges (the reference's
    OpenCV chain), mode 1 covers x with mud. Gray images get the colour's luma.

    float32 throughout (the reference smooths in float64: a handful of 8-bit layer
    values and threshold tests move, VERSION 3); the layer is loc + scale * G(normal)."""
    loc, scale, sigma, thr, inten, mode = p
    n, c, h, w = x.shape
    k = _ops.gaussian_kernel1d(float(sigma))
    z = f["normal"].to(x.device, torch.float32)[:, 0]
    liquid = _ops.separable_shifted(z, k, k, "nearest") if len(k) > 1 else z.clone()
    liquid.mul_(float(scale)).add_(float(loc))
    colour = torch.tensor(WATER if mode == 0 else MUD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if c == 1:
        colour = _ops.to_gray(colour)
    if mode == 0:
        # liquid[liquid < thr] = 0 (thr as float32) as one threshold op: x <= prev(thr) <=> x < thr
        F.threshold(liquid, _below(thr), 0.0, inplace=True)
        m = _water_mask(liquid)
        mx = m.amax(dim=(1, 2)).view(n, 1, 1, 1)
        # x + (m / max) * intensity * colour; no drops where m is all zero
        sc = torch.where(mx > 0, colour * float(inten) / torch.where(mx > 0, mx, torch.ones_like(mx)), 0.0)
        y = x.addcmul_(m[:, None], sc.to(x.dtype))  # overwrites x, the float copy `corrupt` makes
        return y.mul_(255)
    m = (liquid > thr).to(x.dtype)[:, None]
    m = _ops.gaussian_blur(m, float(inten))
    m = torch.where(m < 0.8, torch.zeros_like(m), m)
    return x.mul_(1 - m).add_(colour * m).mul_(255)


CORRUPTIONS = {
    "snow": (apply_snow, draw_snow),
    "frost": (apply_frost, draw_frost),
    "fog": (apply_fog, draw_fog),
    "spatter": (apply_spatter, draw_spatter),
}
