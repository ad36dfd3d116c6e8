"""Batched building blocks shared by the corruptions (float images in [0, 1], NCHW).

Border modes follow the libraries the reference code calls, named as scipy
names them: "nearest" (edge repeated: skimage's gaussian default, OpenCV's
BORDER_REPLICATE), "reflect" (half-sample symmetric, d c b a | a b c d: scipy's
"reflect"), "mirror" (whole-sample, d c b | a b c d: OpenCV's BORDER_REFLECT_101,
torch's "reflect"). Borders are built by index gathers, so any pad width works.

Every op here treats each image on its own with a fixed order of floating-point
operations, so a result never depends on the batch it was computed in.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as OpenCV's RGB2GRAY


def border_index(n: int, pad: int, mode: str) -> torch.Tensor:
    """Indices into a length-`n` axis for positions -pad .. n-1+pad under `mode`."""
    i = np.arange(-pad, n + pad)
    if mode == "nearest":
        i = np.clip(i, 0, n - 1)
    elif mode == "reflect":
        p = 2 * n
        i = np.mod(i, p)
        i = np.where(i >= n, p - 1 - i, i)
    elif mode == "mirror":
        if n == 1:
            i = np.zeros_like(i)
        else:
            p = 2 * n - 2
            i = np.mod(i, p)
            i = np.where(i >= n, p - i, i)
    else:
        raise ValueError(f"mode={mode!r} is invalid; allowed: nearest, reflect, mirror")
    return torch.from_numpy(i.astype(np.int64))


def _pad_axis(x: torch.Tensor, axis: int, before: int, after: int, mode: str) -> torch.Tensor:
    """Pad one axis (-2 or -1) by `before` / `after` positions: the copy of x goes to the
    middle of a new tensor, the border slices are small index gathers."""
    n = x.shape[axis]
    idx = border_index(n, max(before, after), mode).to(x.device)
    shape = list(x.shape)
    shape[axis] = n + before + after
    out = x.new_empty(shape)
    out.narrow(axis, before, n).copy_(x)
    m = max(before, after)
    if before:
        out.narrow(axis, 0, before).copy_(x.index_select(axis, idx[m - before:m]))
    if after:
        out.narrow(axis, before + n, after).copy_(x.index_select(axis, idx[m + n:m + n + after]))
    return out


def pad2d(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by (ph, pw) on each side (a new contiguous tensor)."""
    return pad2d_asym(x, ph, ph, pw, pw, mode)


def pad2d_asym(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by (top, bottom, left, right). Floating 3-D/4-D tensors use
    torch's own replicate / reflect padding where it equals `mode` (one copy); the rest
    pads axis by axis with small border gathers. Either way a pure copy: same values."""
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[-2], x.shape[-1]
    if x.is_floating_point() and x.ndim in (3, 4) and (
            mode == "nearest" or (mode == "mirror" and max(top, bottom) < h and max(left, right) < w)):
        return F.pad(x, (left, right, top, bottom), mode="replicate" if mode == "nearest" else "reflect")
    if top or bottom:
        x = _pad_axis(x, -2, top, bottom, mode)
    if left or right:
        x = _pad_axis(x, -1, left, right, mode)
    return x


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's kernel: radius int(truncate*sigma + 0.5), normalised, float64."""
    r = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or r == 0:
        return np.ones(1)
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 / (float(sigma) ** 2) * t * t)
    return k / k.sum()


def _shifted_sum(y: torch.Tensor, k: np.ndarray, axis: int) -> torch.Tensor:
    """Correlation along `axis` (-2 or -1) of a padded tensor as a sum of weighted shifted views."""
    n = y.shape[axis] - len(k) + 1
    out = None
    for i, w in enumerate(k.tolist()):
        v = y.narrow(axis, i, n)
        out = v * w if out is None else out.add_(v, alpha=w)
    return out


@lru_cache(maxsize=64)
def _kernel_spectrum_np(kbytes: bytes, kshape: tuple, fh: int, fw: int) -> np.ndarray:
    """rfft2 of the (fh, fw) array holding k[t, s] at (-t mod fh, -s mod fw) (float64):
    multiplying by it correlates with k, output i reading inputs i .. i + kh - 1."""
    k = np.frombuffer(kbytes, dtype=np.float64).reshape(kshape)
    kc = np.zeros((fh, fw))
    t = (-np.arange(kshape[0])) % fh
    u = (-np.arange(kshape[1])) % fw
    kc[np.ix_(t, u)] = k
    return np.fft.rfft2(kc)


def _kernel_spectrum(k: np.ndarray, fh: int, fw: int, dtype, device) -> torch.Tensor:
    spec = _kernel_spectrum_np(np.ascontiguousarray(k, dtype=np.float64).tobytes(), k.shape, fh, fw)
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    return torch.from_numpy(spec).to(device=device, dtype=cdt)


def _fft_correlate(y: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    """'valid' 2-D correlation of a padded (.., Hp, Wp) tensor with k via real FFTs."""
    hp, wp = y.shape[-2:]
    kh, kw = k.shape
    fh, fw = fft_size(hp), fft_size(wp)  # zero padding beyond hp, wp leaves the valid part alone
    spec = torch.fft.rfft2(y, s=(fh, fw))
    spec.mul_(_kernel_spectrum(k, fh, fw, y.dtype, y.device))
    return torch.fft.irfft2(spec, s=(fh, fw))[..., :hp - kh + 1, :wp - kw + 1]


MOTION_GATHER_MAX_PIXELS = 64 * 64  # motion blur: batched row copies up to this size, per-image shifted views above


@lru_cache(maxsize=None)
def fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (sizes the FFT handles fastest)."""
    m = n
    while True:
        r = m
        for f in (2, 3, 5):
            while r % f == 0:
                r //= f
        if r == 1:
            return m
        m += 1


FFT_MIN_TAPS = 48  # separable kernels longer than this go through the FFT (measured: shifted views win below)


DENSE_MAX_RATIO = 4  # an axis of length <= 4 x taps is filtered by one small matmul per plane


@lru_cache(maxsize=128)
def _axis_matrix(n: int, k: tuple, mode: str) -> np.ndarray:
    """(n, n) float64 M with out[j] = sum_i M[i, j] x[i]: correlation with k (centred) on a
    length-n axis, the `mode` border folded into the matrix."""
    r = len(k) // 2
    idx = border_index(n, r, mode).numpy()
    m = np.zeros((n, n))
    cols = np.arange(n)
    for t, w in enumerate(k):
        np.add.at(m, (idx[cols + t], cols), w)
    return m


def _dense_axis(x: torch.Tensor, k: np.ndarray, mode: str, axis: int) -> torch.Tensor:
    """Correlation along `axis` as a batched matmul with the (n, n) border-folded matrix, one
    plane per batch entry (the same product for every plane: batch-independent)."""
    h, w = x.shape[-2:]
    x3 = x.reshape(-1, h, w)
    n = w if axis == -1 else h
    m = torch.from_numpy(_axis_matrix(n, tuple(float(v) for v in k), mode)).to(device=x.device, dtype=x.dtype)
    if axis == -1:
        y = torch.bmm(x3, m.expand(x3.shape[0], n, n))
    else:
        y = torch.bmm(m.t().expand(x3.shape[0], n, n), x3)
    return y.view(x.shape)


def _filter_axis(x: torch.Tensor, k: np.ndarray, mode: str, axis: int) -> torch.Tensor:
    """Correlation along one axis: a small matmul for short axes, else shifted views."""
    if len(k) <= 1:  # one tap: a scale (1 for a one-tap Gaussian)
        return x if float(k[0]) == 1.0 else x * float(k[0])
    n = x.shape[axis]
    if n <= DENSE_MAX_RATIO * len(k) and x.is_floating_point():
        return _dense_axis(x, k, mode, axis)
    r = len(k) // 2
    return _shifted_sum(pad2d(x, r, 0, mode) if axis == -2 else pad2d(x, 0, r, mode), k, axis)


def conv_separable(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate every channel with kh (vertical) then kw (horizontal); odd lengths, centred.

    Long kernels (> FFT_MIN_TAPS): one FFT correlation with the outer product
    (differences ~1e-6); else per axis a matmul with a border-folded matrix (axes of
    at most DENSE_MAX_RATIO x taps) or sums of shifted views (~1e-7 apart). Either
    way each image is computed alone."""
    if max(len(kh), len(kw)) > FFT_MIN_TAPS:
        return conv2d_same(x, np.outer(kh, kw), mode)
    if _depthwise_pays(x, kh, kw):
        return _depthwise_separable(x, kh, kw, mode)
    return _filter_axis(_filter_axis(x, kh, mode, -2), kw, mode, -1)


# measured on the CPU: with fewer planes, shorter kernels or smaller planes, shifted views win
DEPTHWISE_MIN_PLANES, DEPTHWISE_MIN_TAPS, DEPTHWISE_MIN_PIXELS = 16, 15, 128 * 128


def _depthwise_pays(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray) -> bool:
    """Whether conv_separable takes the depthwise path (CPU, float32 or uint8 input, kernels
    short of the FFT and long against neither axis, enough planes, taps and pixels)."""
    h, w = x.shape[-2:]
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.uint8) and x.ndim in (3, 4)
            and math.prod(x.shape[:-2]) >= DEPTHWISE_MIN_PLANES and h * w >= DEPTHWISE_MIN_PIXELS
            and DEPTHWISE_MIN_TAPS <= max(len(kh), len(kw)) <= FFT_MIN_TAPS
            and h > DENSE_MAX_RATIO * len(kh) and w > DENSE_MAX_RATIO * len(kw))


def _planes_last_padded(x: torch.Tensor, rh: int, rw: int, mode: str) -> torch.Tensor:
    """x (..., H, W) padded by (rh, rw) under `mode` as a float32 (1, P, H + 2 rh, W + 2 rw)
    channels_last tensor. A uint8 x is converted and transposed in one copy into the middle
    of the buffer, the borders copied from it (whole rows, then whole columns)."""
    h, w = x.shape[-2:]
    p = math.prod(x.shape[:-2])
    if x.dtype != torch.uint8:  # measured: torch's padding and channels_last copy are faster here
        return pad2d(x, rh, rw, mode).reshape(1, p, h + 2 * rh, w + 2 * rw).contiguous(
            memory_format=torch.channels_last)
    buf = torch.empty((h + 2 * rh, w + 2 * rw, p), dtype=torch.float32, device=x.device)
    buf[rh:rh + h, rw:rw + w] = x.reshape(p, h * w).t().view(h, w, p)
    if rh:
        idx = border_index(h, rh, mode).to(x.device) + rh
        buf[:rh] = buf.index_select(0, idx[:rh])
        buf[rh + h:] = buf.index_select(0, idx[rh + h:])
    if rw:
        idx = border_index(w, rw, mode).to(x.device) + rw
        buf[:, :rw] = buf.index_select(1, idx[:rw])
        buf[:, rw + w:] = buf.index_select(1, idx[rw + w:])
    # a standard channels_last view: a batch stride of the buffer's size (oneDNN falls back
    # to a slow kernel for an unsqueezed view's stride)
    return buf.view(1, *buf.shape).permute(0, 3, 1, 2)


def _depthwise_planes_last(xp: torch.Tensor, kh: np.ndarray, kw: np.ndarray) -> torch.Tensor:
    """The 'valid' separable correlation of a padded channels_last (1, P, Hp, Wp) tensor as
    two depthwise convolutions (oneDNN, planes as channels: vectorised across planes, each
    plane alone); (1, P, H, W) in channels_last memory."""
    p = xp.shape[1]
    wh = torch.from_numpy(np.asarray(kh, dtype=np.float32)).view(1, 1, -1, 1).expand(p, 1, -1, 1)
    ww = torch.from_numpy(np.asarray(kw, dtype=np.float32)).view(1, 1, 1, -1).expand(p, 1, 1, -1)
    return F.conv2d(F.conv2d(xp, wh, groups=p), ww, groups=p)


def _depthwise_separable(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray, mode: str) -> torch.Tensor:
    """conv_separable on the CPU as two depthwise convolutions. Each output is the same
    tap-ordered sum as the shifted views'; the tests pin the equality."""
    y = _depthwise_planes_last(_planes_last_padded(x, len(kh) // 2, len(kw) // 2, mode), kh, kw)
    return y[0].contiguous().view(x.shape)


def gaussian_blur_uint8(u8: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0):
    """np.uint8(clip(gaussian_blur(u8 / 255), 0, 1) * 255) for a uint8 batch where the depthwise
    path pays (else None): the division, clamp and truncation run in planes-last memory around
    the same convolutions, so the values equal the float path's; one byte transpose at the end."""
    k = gaussian_kernel1d(sigma, truncate)
    if len(k) <= 1 or not _depthwise_pays(u8, k, k):
        return None
    y = _depthwise_planes_last(_planes_last_padded(u8, len(k) // 2, len(k) // 2, mode).div_(255.0), k, k)
    q = y.clamp_(0, 1).mul_(255).to(torch.int16)  # in 0..255: truncation as np.uint8
    return torch.empty(u8.shape, dtype=torch.uint8, device=u8.device).copy_(q[0].view(u8.shape))


def separable_shifted(x: torch.Tensor, kh: np.ndarray, kw: np.ndarray, mode: str) -> torch.Tensor:
    """conv_separable always as sums of shifted views (no FFT, no matmul), any kernel
    length, in x's dtype: the same sums in the same order whatever the image size."""
    y = _shifted_sum(pad2d(x, len(kh) // 2, 0, mode), kh, -2)
    return _shifted_sum(pad2d(y, 0, len(kw) // 2, mode), kw, -1)


SHIFTED_MAX_TAPS = 49  # 2-D kernels with at most this many nonzero taps: shifted views


def _trim(k: np.ndarray) -> np.ndarray:
    """Drop zero border rows and columns symmetrically (the kernel stays centred)."""
    nz = np.nonzero(k)
    if not len(nz[0]):
        return k[:1, :1] * 0
    th = min(nz[0].min(), k.shape[0] - 1 - nz[0].max())
    tw = min(nz[1].min(), k.shape[1] - 1 - nz[1].max())
    return k[th:k.shape[0] - th, tw:k.shape[1] - tw]


def conv2d_same(x: torch.Tensor, k: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate every channel with a centred 2-D kernel (odd sizes), `mode` borders:
    zero borders trimmed, then shifted views (<= SHIFTED_MAX_TAPS nonzero taps) or an FFT.

    The FFT path pads the image by `mode` straight to the transform size (fft_size of
    H + kh - 1): the extra rows and columns only meet outputs that are cut off."""
    n, c, h, w = x.shape
    k = _trim(k)
    rh, rw = k.shape[0] // 2, k.shape[1] // 2
    if np.count_nonzero(k) <= SHIFTED_MAX_TAPS:  # few taps: a sum of shifted views
        y = pad2d(x, rh, rw, mode)
        out = None
        for i, j in zip(*np.nonzero(k)):
            v = y[..., i:i + h, j:j + w]
            out = v * float(k[i, j]) if out is None else out.add_(v, alpha=float(k[i, j]))
        return out
    fh, fw = fft_size(h + 2 * rh), fft_size(w + 2 * rw)  # many taps: one FFT correlation
    spec_k = _kernel_spectrum(k, fh, fw, x.dtype, x.device)
    if x.device.type != "cpu":
        return _fft_chunk(x, spec_k, rh, rw, fh, fw, mode)
    # on the CPU a few planes at a time (~1 MB): the transforms' buffers are then reused
    # from the heap instead of being fresh pages each call (page faults cost more than the FFT)
    planes = x.reshape(n * c, 1, h, w)
    out = torch.empty(n * c, 1, h, w, dtype=x.dtype)
    step = max(1, FFT_CHUNK_BYTES // (fh * fw * x.element_size()))
    for i in range(0, n * c, step):
        out[i:i + step] = _fft_chunk(planes[i:i + step], spec_k, rh, rw, fh, fw, mode)
    return out.view(n, c, h, w)


FFT_CHUNK_BYTES = 1 << 20


def _fft_chunk(x: torch.Tensor, spec_k: torch.Tensor, rh: int, rw: int, fh: int, fw: int, mode: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    spec = torch.fft.rfft2(pad2d_asym(x, rh, fh - h - rh, rw, fw - w - rw, mode))
    spec.mul_(spec_k)
    return torch.fft.irfft2(spec, s=(fh, fw))[..., :h, :w]


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian / scipy.ndimage.gaussian_filter over H and W (default mode 'nearest')."""
    k = gaussian_kernel1d(sigma, truncate)
    return conv_separable(x, k, k, mode) if len(k) > 1 else x


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma with ITU-R 601 weights (OpenCV RGB2GRAY)."""
    return (LUMA[0] * x[:, 0:1] + LUMA[1] * x[:, 1:2] + LUMA[2] * x[:, 2:3])


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """skimage.color.rgb2hsv on (N, 3, H, W) in [0, 1]; hue in [0, 1), ties as skimage (B over G over R)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.max(dim=1).values
    delta = v - x.min(dim=1).values
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    s = torch.where(delta == 0, torch.zeros_like(v), delta / torch.where(v == 0, torch.ones_like(v), v))
    h = torch.where(r == v, (g - b) / safe, torch.zeros_like(v))
    h = torch.where(g == v, 2.0 + (b - r) / safe, h)
    h = torch.where(b == v, 4.0 + (r - g) / safe, h)
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(delta == 0, torch.zeros_like(h), h)
    return torch.stack([h, s, v], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb on (N, 3, H, W)."""
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    h6 = h * 6.0
    hi = torch.remainder(torch.floor(h6), 6).long()
    f = h6 - torch.floor(h6)
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    table = torch.stack([
        torch.stack([v, t, p]), torch.stack([q, v, p]), torch.stack([p, v, t]),
        torch.stack([p, q, v]), torch.stack([t, p, v]), torch.stack([v, p, q]),
    ])  # (6, 3, N, H, W)
    out = torch.gather(table, 0, hi[None, None].expand(1, 3, *hi.shape)).squeeze(0)
    return out.permute(1, 0, 2, 3)


def scipy_zoom_size(n: int, z: float) -> int:
    """Output length of scipy.ndimage.zoom: Python round(n * z)."""
    return int(round(n * z))


def clipped_zoom(x: torch.Tensor, z: float, trim: str) -> torch.Tensor:
    """Centre-crop ceil(n/z), zoom back with corner-aligned linear interpolation, trim to (H, W).

    trim="center" drops (extra // 2) rows/columns first (the CIFAR / Tiny-ImageNet
    scripts); trim="topleft" keeps the first H x W (imagecorruptions); trim=None
    returns the whole zoomed crop.
    """
    n, c, h, w = x.shape
    ch, cw = int(math.ceil(h / float(z))), int(math.ceil(w / float(z)))
    t0, l0 = (h - ch) // 2, (w - cw) // 2
    crop = x[:, :, t0:t0 + ch, l0:l0 + cw]
    oh, ow = scipy_zoom_size(ch, z), scipy_zoom_size(cw, z)
    if (oh, ow) == (ch, cw):
        big = crop
    else:
        big = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    if trim is None:
        return big
    th, tw = ((oh - h) // 2, (ow - w) // 2) if trim == "center" else (0, 0)
    return big[:, :, th:th + h, tw:tw + w]


def bilinear_sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample every channel of x (N, C, H, W) at float positions ys, xs (N, H', W').

    Linear interpolation between the four neighbours; neighbour indices outside
    the image are folded back by `mode` (see border_index).
    """
    n, c, h, w = x.shape
    y0f, x0f = torch.floor(ys), torch.floor(xs)
    fy, fx = (ys - y0f).to(x.dtype), (xs - x0f).to(x.dtype)
    y0, x0 = y0f.long(), x0f.long()

    def fold(i, size):
        if mode == "nearest":
            return i.clamp(0, size - 1)
        if int(i.min()) >= -size + (mode == "mirror") and int(i.max()) < 2 * size - (mode == "mirror"):
            # one reflection is enough (the usual case: small displacements)
            first = -1 if mode == "reflect" else 0
            i = torch.where(i < 0, first - i, i)
            return torch.where(i >= size, 2 * size - 2 - first - i, i)
        if mode == "reflect":
            p = 2 * size
            i = torch.remainder(i, p)
            return torch.where(i >= size, p - 1 - i, i)
        p = max(2 * size - 2, 1)
        i = torch.remainder(i, p)
        return torch.where(i >= size, p - i, i)

    flat = x.reshape(n, c, h * w)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        yi = fold(y0 + dy, h)
        for dx, wx in ((0, 1 - fx), (1, fx)):
            idx = (yi * w + fold(x0 + dx, w)).reshape(n, 1, -1).expand(n, c, -1)
            out = out + (wy * wx).reshape(n, 1, *ys.shape[1:]) * torch.gather(flat, 2, idx).reshape(n, c, *ys.shape[1:])
    return out


@lru_cache(maxsize=None)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel: a normalised float32 disk on a 17x17 grid (radius <= 8) or
    (2r+1)^2, anti-aliased with OpenCV's GaussianBlur (3x3, or 5x5 for big radii,
    BORDER_REFLECT_101)."""
    if radius <= 8:
        grid, ks = np.arange(-8, 9), 3
    else:
        grid, ks = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    d = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    d /= np.sum(d)
    t = np.arange(ks, dtype=np.float64) - (ks - 1) / 2
    g = np.exp(-t * t / (2 * alias_blur ** 2))
    g = (g / g.sum()).astype(np.float32).astype(np.float64)
    dt = torch.from_numpy(d.astype(np.float64))[None, None]
    out = conv_separable(dt, g, g, "mirror")[0, 0].numpy()
    return out.astype(np.float32)


def motion_blur(x: torch.Tensor, radius: int, sigma: float, angle_deg: torch.Tensor) -> torch.Tensor:
    """Blur each image along its own angle (degrees, (N,) float64 on the CPU).

    Kernel k_i = exp(-i^2 / (2 sigma^2)), i = 0 .. 2*radius, normalised; tap i reads
    (y + ceil(i sin(a) - 0.5), x + ceil(i cos(a) - 0.5)) scaled to unit length as
    in MagickCore's MotionBlurImage; edge pixels repeat. Output is the unclipped sum.
    """
    n, c, h, w = x.shape
    width = 2 * int(radius) + 1
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i ** 2) / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    k = k / k.sum()
    ang = np.deg2rad(angle_deg.double().cpu().numpy())
    py, px = width * np.sin(ang), width * np.cos(ang)
    hyp = np.hypot(py, px)
    dy = np.ceil(i[None] * py[:, None] / hyp[:, None] - 0.5)  # the port negates twice: reads y + this
    dx = np.ceil(i[None] * px[:, None] / hyp[:, None] - 0.5)
    bad = (np.abs(dy) >= h) | (np.abs(dx) >= w)
    live = np.cumsum(bad, axis=1) == 0
    if h * w <= MOTION_GATHER_MAX_PIXELS:
        return _motion_gather(x, k, dy, dx, live)
    pad = int(max(np.abs(dy[live]).max(initial=0), np.abs(dx[live]).max(initial=0)))
    xp = pad2d(x, pad, pad, "nearest")  # edges repeated, as the clamped reads
    out = torch.empty_like(x)
    kl = k.tolist()
    for b in range(n):  # one image at a time: every tap is a plain shifted view
        acc = None
        for t in range(width):
            if not live[b, t]:
                break
            y0, x0 = pad + int(dy[b, t]), pad + int(dx[b, t])
            v = xp[b, :, y0:y0 + h, x0:x0 + w]
            acc = torch.mul(v, kl[t]) if acc is None else acc.add_(v, alpha=kl[t])
        out[b] = acc if acc is not None else 0
    return out


def _motion_gather(x: torch.Tensor, k: np.ndarray, dy: np.ndarray, dx: np.ndarray, live: np.ndarray) -> torch.Tensor:
    """motion_blur for small images: one batched row copy per tap.

    A channels-last copy of the batch, its columns padded by repeated edges, is read
    as overlapping windows of W pixels (all channels);
    a tap's output row y of image b is the window at row clamp(y + dy), column dx, so
    a tap is one index_select of N*H contiguous rows (not one gather per value). Values
    are only moved, and each tap is weighted and added in tap order as before: the
    same float operations, the same result."""
    n, c, h, w = x.shape
    cp = c
    dev = x.device
    dyl, dxl = np.where(live, dy, 0).astype(np.int64), np.where(live, dx, 0).astype(np.int64)
    left, right = max(0, -int(dxl.min())), max(0, int(dxl.max()))
    wp = w + left + right
    buf = x.new_empty((n, h, wp, cp))
    buf[:, :, left:left + w, :c] = x.permute(0, 2, 3, 1)
    if left:
        buf[:, :, :left, :c] = x[..., :1].permute(0, 2, 3, 1).expand(n, h, left, c)
    if right:
        buf[:, :, left + w:, :c] = x[..., -1:].permute(0, 2, 3, 1).expand(n, h, right, c)
    npix = n * h * wp
    win = buf.view(-1).as_strided((npix - w + 1, w * cp), (cp, 1))  # window p: pixels p .. p + W - 1
    idt = np.int32 if n * h * wp < 2 ** 31 else np.int64
    rows = np.clip(np.arange(h, dtype=idt)[None, None] + np.ascontiguousarray(dyl.T, dtype=idt)[..., None], 0, h - 1)  # (T, N, H)
    rows *= wp
    rows += (np.arange(n, dtype=idt)[None, :] * (h * wp) + left + np.ascontiguousarray(dxl.T, dtype=idt))[..., None]
    starts = torch.from_numpy(rows).to(dev)  # (T, N, H) window starts
    wk = torch.from_numpy(np.where(live, k[None], 0.0)).to(dev, x.dtype)
    out = rows = None
    for t in range(dy.shape[1]):
        if not live[:, t].any():
            break
        # later taps reuse one buffer for their rows (fresh pages per tap cost more than the copy)
        rows = torch.index_select(win, 0, starts[t].view(-1), out=rows if out is not None else None)
        g = rows.view(n, h * w * cp).mul_(wk[:, t].view(n, 1))
        if out is None:
            out, rows = g, None
        else:
            out.add_(g)
    if out is None:
        return torch.zeros_like(x)
    return out.view(n, h, w, cp)[..., :c].permute(0, 3, 1, 2).contiguous()
