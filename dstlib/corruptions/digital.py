"""Digital corruptions: contrast, brightness, saturate, jpeg, pixelate, elastic (see noise.py)."""
from __future__ import annotations

import io
import warnings
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from dstlib.corruptions import _ops, _rng


def apply_contrast(x, p, ctx, f):
    """(x - m) * c + m with m the per-image, per-channel mean; in place, on the 0..255 scale
    (corrupt clamps and truncates)."""
    m = x.mean(dim=(2, 3), keepdim=True)
    return x.sub_(m).mul_(255.0 * p).add_(m.mul_(255.0))


TINY = 1e-20  # divisors in [0, 1] are raised to this: reciprocals times 255 stay finite (0 * them is 0)


def apply_brightness(x, p, ctx, f):
    """HSV value + c (skimage rgb2hsv / hsv2rgb); on gray images x + c, as the package.

    hsv2rgb is linear in v at fixed (h, s): every channel is v' - (v - x) v' / v, which
    is v' exactly for the largest channel and for every channel of a gray or black
    pixel. In place on x, on the 0..255 scale (corrupt clamps and truncates)."""
    if x.shape[1] == 1:
        return x.add_(p).mul_(255.0)
    v = x.amax(dim=1, keepdim=True)
    a = (v + p).clamp_(0, 1).mul_(255.0)  # 255 v'
    r = a / v.clamp_min(TINY)  # 255 v' / v (finite: v - x = 0 wherever v = 0)
    return x.sub_(v).mul_(r).add_(a)


def apply_saturate(x, p, ctx, f):
    """HSV saturation * a + b. A gray pixel has saturation 0 and hue 0, so severities
    with b = 0 leave gray images exactly unchanged; at b > 0 the pixel turns red
    (v, v(1-b), v(1-b)), read back as its luma: a 7% / 14% darkening at severities
    4 / 5 of the `cifar` table. (The package returns the red channel instead: no
    change at all.) Hence saturate is not in GRAY_NAMES.

    hsv2rgb is affine in s at fixed (h, v): channel = v - (v - x) s' / s with s = (v - min) / v,
    i.e. the ratio s' / s = clip(a + b q, 0, q), q = v / (v - min). In place on x, on the
    0..255 scale (corrupt clamps and truncates)."""
    a, b = p
    if x.shape[1] == 1:
        # gray pixel: h = 0, s = 0 -> s' = b -> RGB (v, v(1-b), v(1-b)) -> luma v (1 - 0.701 b)
        return (ctx.uint8.to(x.dtype) * (1 - (1 - _ops.LUMA[0]) * min(max(b, 0.0), 1.0))).clamp(0, 255)
    v = x.amax(dim=1, keepdim=True)
    delta = v - x.amin(dim=1, keepdim=True)
    q = v / delta.clamp_min(TINY)  # 1 / s (huge where gray: v - x = 0 there)
    if b != 0:
        ratio = torch.minimum(q.mul(b).add_(a), q).clamp_min_(0)
    else:  # clip(a s, 0, 1) / s
        ratio = q.clamp_(0, a) if a >= 0 else q.zero_()
    ratio.mul_(255.0)
    v255 = v.mul(255.0)
    y = x.sub_(v).mul_(ratio).add_(v255)
    if b > 0:  # gray pixels (delta = 0): (v, v (1 - s'), v (1 - s')), s' = min(b, 1)
        y[:, 1:].sub_((delta == 0).to(y.dtype).mul_(v255).mul_(min(b, 1.0)))
    return y


def _to_hwc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 CPU -> contiguous (N, H, W, C): a view when the memory already is,
    else per-channel copies in numpy (faster than a strided permute of uint8, and than
    torch's per-channel copies)."""
    hwc = x.permute(0, 2, 3, 1)
    if hwc.is_contiguous():
        return hwc
    out = np.empty(tuple(hwc.shape), dtype=np.uint8)
    src = x.numpy()
    for ch in range(x.shape[1]):
        out[..., ch] = src[:, ch]
    return torch.from_numpy(out)


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG encode/decode of each uint8 image (N, C, H, W) at `quality`, bit-identical to
    PIL's `save(..., "JPEG", quality=q)` and decode (libjpeg-turbo defaults: 4:2:0 chroma
    subsampling, integer DCT, fancy upsampling). Runs torchvision's libjpeg-turbo
    bindings on the CPU (tests/test_corruptions.py checks the identity with PIL);
    PIL where torchvision is missing. Gray images go through RGB and back to L with
    PIL's luma ((19595 R + 38470 G + 7471 B + 2^15) >> 16), as the package does.
    RGB results are NCHW tensors in channels_last memory, the codec's interleaved layout
    (transposing the bytes would cost ~15% of the round trip)."""
    dev, c = x.device, x.shape[1]
    xc = x.cpu()
    if c == 1:
        xc = xc.expand(-1, 3, -1, -1)
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return _pil_jpeg_roundtrip(x, quality)
    if xc.shape[0] == 0:
        return x.clone()
    # the codec reads and writes interleaved RGB: hand it channels-last memory
    hwc = _to_hwc(xc)
    with warnings.catch_warnings():  # torchvision 0.29 flags its image I/O as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enc = encode_jpeg(list(hwc.permute(0, 3, 1, 2).unbind(0)), quality=int(quality))
        dec = decode_jpeg(enc, mode=ImageReadMode.RGB)
    yh = torch.stack([d.permute(1, 2, 0) for d in dec])  # (N, H, W, 3): a plain copy of the decoded pixels
    if c == 1:
        y32 = yh.to(torch.int32)
        y = ((y32[..., 0] * 19595 + y32[..., 1] * 38470 + y32[..., 2] * 7471 + 0x8000) >> 16).to(torch.uint8)[:, None]
    else:
        y = yh.permute(0, 3, 1, 2)  # NCHW shape, channels_last memory
    return y.to(dev)


def _pil_jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """The same round trip through PIL, one image at a time."""
    from PIL import Image

    dev, n, c = x.device, x.shape[0], x.shape[1]
    arr = x.permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(arr)
    for i in range(n):
        im = Image.fromarray(arr[i, :, :, 0], "L").convert("RGB") if c == 1 else Image.fromarray(arr[i], "RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as dec:
            dec = dec.convert("L") if c == 1 else dec.convert("RGB")
            a = np.asarray(dec)
        out[i] = a[..., None] if c == 1 else a
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(dev)


def apply_jpeg_compression(x, p, ctx, f):
    """JPEG at quality c (PIL)."""
    return jpeg_roundtrip(ctx.uint8, int(p))


@lru_cache(maxsize=None)
def _pil_coeffs(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's box-filter resampling weights (out, in) in 22-bit fixed point (Resample.c)."""
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = 0.5 * fscale
    k = np.zeros((out_size, in_size))
    for o in range(out_size):
        center = (o + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        t = (np.arange(xmin, xmax) - center + 0.5) / fscale
        wts = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if wts.sum():
            wts = wts / wts.sum()
        k[o, xmin:xmax] = np.where(wts < 0, np.trunc(-0.5 + wts * (1 << 22)), np.trunc(0.5 + wts * (1 << 22)))
    return k


@lru_cache(maxsize=None)
def _pil_windows(in_size: int, out_size: int, device: str):
    """Pillow's box windows as gathers: for tap j, the indices start + j (clipped) and,
    past the shortest window, a 0/1 mask; and the one fixed-point weight per output."""
    k = _pil_coeffs(in_size, out_size)
    nz = k != 0
    start = nz.argmax(axis=1)
    length = nz.sum(axis=1)
    wt = k[np.arange(out_size), start]
    assert np.all(k[nz] == np.repeat(wt, length))  # one weight per window
    taps = []
    for j in range(int(length.max())):
        idx = torch.from_numpy(np.minimum(start + j, in_size - 1)).to(device)
        mask = None if j < length.min() else torch.from_numpy((j < length).astype(np.int32)).to(device)
        taps.append((idx, mask))
    return taps, torch.from_numpy(wt.astype(np.int32)).to(device)


def _pil_pass(x: torch.Tensor, in_size: int, out_size: int, axis: int) -> torch.Tensor:
    """One exact pass on 8-bit values (int32): (window sum * weight + 2^21) >> 22, clipped;
    window sum * weight <= 255 * 2^22 + 255 * length fits int32."""
    taps, wt = _pil_windows(in_size, out_size, str(x.device))
    view = (lambda t: t) if axis == -1 else (lambda t: t.view(-1, 1))  # noqa: E731
    tot = None
    for idx, mask in taps:
        v = x.index_select(axis, idx)
        if mask is not None:
            v *= view(mask)
        tot = v if tot is None else tot.add_(v)
    tot *= view(wt)
    tot += 1 << 21
    return torch.bitwise_right_shift(tot, _rng._shift(22, str(x.device))).clamp_(0, 255)


def pil_box_resize(x: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """PIL Image.resize(..., BOX) on 8-bit values (any dtype; int32 result), exact:
    horizontal pass, 8-bit rounding, vertical pass, by prefix sums over the windows."""
    h, w = x.shape[-2:]
    x = x.to(torch.int32)
    if ow != w:  # gathers along rows are fast: run the horizontal pass on the transpose
        x = _pil_pass(x.transpose(-1, -2).contiguous(), w, ow, -2).transpose(-1, -2).contiguous()
    if oh != h:
        x = _pil_pass(x, h, oh, -2)
    return x


@lru_cache(maxsize=None)
def pil_nearest_index(in_size: int, out_size: int) -> torch.Tensor:
    """Pillow's NEAREST resize source index: int(a/2 + o*a) accumulated, a = in/out."""
    a, xo, idx = in_size / out_size, in_size / out_size * 0.5, []
    for _ in range(out_size):
        idx.append(int(xo))
        xo += a
    return torch.tensor(idx)


PIL_PIXELATE_MIN_PIXELS = 96 * 96  # CPU images this big: Pillow per image (measured faster there)


def _pil_pixelate(x: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """The CPU path of pixelate for big images: Pillow's BOX downsample on each image (its C
    loop is faster there than the batched gathers), entered as zero-copy views of the
    channel planes; then the NEAREST upsample as two batched gathers (Pillow's source
    index, exact): contiguous NCHW out. The same pixels as Pillow throughout (tested)."""
    from PIL import Image

    n, c, h, w = x.shape
    planes = x.contiguous().numpy()
    small = np.empty((n, oh, ow, c), dtype=np.uint8)
    for i in range(n):
        if c == 1:
            im = Image.fromarray(planes[i, 0], "L")
        else:
            im = Image.merge("RGB", [Image.fromarray(planes[i, ch], "L") for ch in range(3)])
        a = np.asarray(im.resize((ow, oh), Image.BOX))
        small[i] = a[..., None] if c == 1 else a
    y = torch.from_numpy(small).permute(0, 3, 1, 2)
    y = y.index_select(-1, pil_nearest_index(ow, w))  # columns first: fewer rows
    return y.index_select(-2, pil_nearest_index(oh, h))


def apply_pixelate(x, p, ctx, f):
    """PIL: box-downsample to int(side * c), scale back up (nearest pixel; the scripts'
    BOX and the package's NEAREST pick the same pixel when upsampling). uint8 in and out.
    Big images on the CPU: Pillow itself; otherwise an exact batched port of its box filter."""
    u8 = ctx.uint8
    h, w = u8.shape[-2:]
    if u8.device.type == "cpu" and h * w >= PIL_PIXELATE_MIN_PIXELS:
        return _pil_pixelate(u8, int(h * p), int(w * p))
    y = pil_box_resize(u8, int(h * p), int(w * p)).to(torch.uint8)
    y = y.index_select(-1, pil_nearest_index(y.shape[-1], w).to(u8.device))  # columns first: fewer rows
    return y.index_select(-2, pil_nearest_index(y.shape[-2], h).to(u8.device))


def draw_elastic(seeds, p, ctx):
    h, w = ctx.shape[1], ctx.shape[2]
    out = {}
    if ctx.style["elastic"] == "affine":
        out["affine"] = _rng.uniform(seeds, 0, (3, 2), "cpu", torch.float64) * 2 - 1
    # 24-bit float32 uniforms: the field is smoothed in float32 anyway
    out["displacement"] = _rng.uniform(seeds, 1, (2, h, w), ctx.device, torch.float32).mul_(2).sub_(1)
    return out


def _cv_affine(pts1: np.ndarray, pts2: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform followed by cv2.invertAffineTransform (float64)."""
    a = np.zeros((6, 6))
    b = np.zeros(6)
    for i in range(3):
        a[i, 0:2], a[i, 2] = pts1[i], 1
        a[i + 3, 3:5], a[i + 3, 5] = pts1[i], 1
        b[i], b[i + 3] = pts2[i]
    m = np.linalg.solve(a, b).reshape(2, 3)
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22, a12, a21 = m[1, 1] * d, m[0, 0] * d, -m[0, 1] * d, -m[1, 0] * d
    return np.array([[a11, a12, -a11 * m[0, 2] - a12 * m[1, 2]], [a21, a22, -a21 * m[0, 2] - a22 * m[1, 2]]])


def _warp_affine(x: torch.Tensor, rnd: torch.Tensor, rng: float) -> torch.Tensor:
    """cv2.warpAffine(x, M, BORDER_REFLECT_101) with M mapping three fixed points to
    themselves plus rng * rnd (N, 3, 2): coordinates in OpenCV's 1/32-pixel fixed point."""
    n, c, h, w = x.shape
    cs = np.array([h // 2, w // 2], dtype=np.float32)
    sq = min(h, w) // 3
    pts1 = np.array([cs + sq, [cs[0] + sq, cs[1] - sq], cs - sq], dtype=np.float32)
    ys = torch.arange(h, dtype=torch.float64).view(h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, w)
    gy, gx = [], []
    for i in range(n):
        pts2 = pts1 + (rnd[i].numpy() * rng).astype(np.float32)
        a = _cv_affine(pts1.astype(np.float64), pts2.astype(np.float64))
        bx = torch.round((a[0, 1] * ys + a[0, 2]) * 1024) + 16 + torch.round(a[0, 0] * xs * 1024)
        by = torch.round((a[1, 1] * ys + a[1, 2]) * 1024) + 16 + torch.round(a[1, 0] * xs * 1024)
        gx.append(torch.floor(bx / 32) / 32)
        gy.append(torch.floor(by / 32) / 32)
    return _ops.bilinear_sample(x, torch.stack(gy).to(x.device), torch.stack(gx).to(x.device), "mirror")


@lru_cache(maxsize=32)
def _grid_base(h: int, w: int, device: str) -> torch.Tensor:
    """(2, H, W): grid_sample's normalised coordinates (align_corners=False) of the pixel
    centres plus 1, (2 j + 1) / W and (2 i + 1) / H."""
    base = torch.empty((2, h, w), dtype=torch.float32)
    base[0] = (torch.arange(w, dtype=torch.float64) * 2 + 1).div_(w).float()
    base[1] = (torch.arange(h, dtype=torch.float64) * 2 + 1).div_(h).float().view(h, 1)
    return base.to(device)


ELASTIC_CHUNK_PIXELS = 2 * 224 * 224  # CPU: sample and truncate this many pixels per image chunk (cache-sized)


def _sample_reflect(u8: torch.Tensor, x: torch.Tensor | None, d: torch.Tensor) -> torch.Tensor:
    """scipy map_coordinates(order=1, mode='reflect') of every channel at (x + dx, y + dy),
    truncated to uint8 as `corrupt` does (clamp to 0..255, then cast). The image is x
    (float, 0..255) or, when None, u8 converted chunk by chunk; d (N, 2, H, W) are the
    displacements (dx, dy) in normalised units (2 / W, 2 / H per pixel), below the
    image size; d is overwritten.

    The positions u = normalised + 1 are reflected about the edges (u = 0 and 2: pixel
    positions -0.5 and size - 0.5) in place, 1 - ||u| - 2|; then grid_sample (bilinear,
    'border': positions in [-0.5, 0] read pixel 0, as the half-sample symmetric fold of
    the neighbours does; grid_sample's own 'reflection' padding is slower) reads the grid
    as a (N, H, W, 2) view of the two planes. On the CPU images go in chunks of about
    ELASTIC_CHUNK_PIXELS (image, grid and result stay in cache; each image is computed
    alone). Positions in float32 (~1e-5 px from float64)."""
    n, c, h, w = u8.shape
    g = d.add_(_grid_base(h, w, str(d.device))).abs_().sub_(2).abs_().neg_().add_(1).permute(0, 2, 3, 1)
    step = max(1, ELASTIC_CHUNK_PIXELS // (h * w)) if u8.device.type == "cpu" else n
    out = torch.empty(u8.shape, dtype=torch.uint8, device=u8.device)
    for i in range(0, n, step):
        xi = u8[i:i + step].to(torch.float32) if x is None else x[i:i + step]
        y = F.grid_sample(xi, g[i:i + step], mode="bilinear", padding_mode="border", align_corners=False)
        # bilinear weights sum to 1 (to float32 rounding): y lies in [-eps, 255 + eps], and the
        # int16 cast truncates toward zero, as clamping first would
        out[i:i + step] = y.to(torch.int16)
    return out


def apply_elastic_transform(x, p, ctx, f):
    """Elastic deformation, sampled with scipy map_coordinates (order 1, mode 'reflect').

    `cifar`/`tiny` (the scripts): a random affine (cv2.warpAffine) first, then a
    displacement U(-1, 1) smoothed by a Gaussian (sigma, mode 'reflect', truncate 3)
    times alpha; (alpha, sigma, affine range) are fractions of the image size.
    `imagenet` (the package): displacement U(-0.005 H, 0.005 H) smoothed with
    sigma 0.01 * size, times alpha. Fields: `affine` (N, 3, 2) and `displacement`
    (N, 2, H, W) (dx then dy), all U[-1, 1). Smoothing and sampling run in float32
    on the 0..255 scale, the scale factors folded into the kernels (the reference:
    float64 on 0..1; measured within 1 level, a fraction of a percent of pixels off by one).
    """
    u8 = ctx.uint8
    n, c, h, w = u8.shape
    x = None  # the image, float 0..255 (sampling is linear): converted just before sampling
    disp = f["displacement"].to(u8.device, torch.float32)
    if ctx.style["elastic"] == "affine":
        size = min(h, w)
        alpha, sigma, rng = p[0] * size, p[1] * size, p[2] * size
        x = _warp_affine(u8.to(torch.float32), f["affine"].cpu().double(), rng)
        kh = kw = _ops.gaussian_kernel1d(sigma, 3.0) if sigma > 0 else np.ones(1)
        scale = alpha
    else:
        alpha, mx = float(p), h * 0.005
        kh, kw = _ops.gaussian_kernel1d(h * 0.01, 3.0), _ops.gaussian_kernel1d(w * 0.01, 3.0)
        scale = alpha * mx
    # |displacement| <= scale (normalised kernels): one reflection per side suffices below the size
    fold = scale < min(h, w) - 1
    sx = 2.0 / w if fold else 1.0  # normalised units per pixel, folded into the kernel
    if len(kh) > 1 or len(kw) > 1:
        d = _ops.conv_separable(disp, kh * (scale * sx), kw, "reflect")
    else:
        d = disp * (scale * sx)
    if fold:
        if h != w:
            d[:, 1].mul_(w / h)
        return _sample_reflect(u8, x, d)
    # displacements beyond the image: grid_sample's own repeated reflection
    x = u8.to(torch.float32) if x is None else x
    g = torch.stack([d[:, 0] + torch.arange(w, dtype=x.dtype, device=x.device),
                     d[:, 1] + torch.arange(h, dtype=x.dtype, device=x.device).view(h, 1)], dim=-1)
    g[..., 0].mul_(2.0 / w).add_(1.0 / w - 1)
    g[..., 1].mul_(2.0 / h).add_(1.0 / h - 1)
    return F.grid_sample(x, g, mode="bilinear", padding_mode="reflection", align_corners=False)


CORRUPTIONS = {
    "contrast": (apply_contrast, None),
    "brightness": (apply_brightness, None),
    "saturate": (apply_saturate, None),
    "jpeg_compression": (apply_jpeg_compression, None),
    "pixelate": (apply_pixelate, None),
    "elastic_transform": (apply_elastic_transform, draw_elastic),
}
