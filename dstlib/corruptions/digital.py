"""Digital corruptions: contrast, brightness, saturate, jpeg, pixelate, elastic (see noise.py)."""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch

from dstlib.corruptions import _ops


def apply_contrast(x, p, ctx, f):
    """(x - m) * c + m with m the per-image, per-channel mean."""
    m = x.mean(dim=(2, 3), keepdim=True)
    return ((x - m) * p + m).clamp(0, 1) * 255


def apply_brightness(x, p, ctx, f):
    """HSV value + c (skimage rgb2hsv / hsv2rgb); on gray images x + c, as the package."""
    if x.shape[1] == 1:
        return (x + p).clamp(0, 1) * 255
    hsv = _ops.rgb_to_hsv(x)
    hsv = torch.cat([hsv[:, :2], (hsv[:, 2:] + p).clamp(0, 1)], dim=1)
    return _ops.hsv_to_rgb(hsv).clamp(0, 1) * 255


def apply_saturate(x, p, ctx, f):
    """HSV saturation * a + b. A gray pixel has saturation 0 and hue 0, so severities
    with b = 0 leave gray images exactly unchanged; at b > 0 the pixel turns red
    (v, v(1-b), v(1-b)), read back as its luma: a 7% / 14% darkening at severities
    4 / 5 of the `cifar` table. (The package returns the red channel instead: no
    change at all.) Hence saturate is not in GRAY_NAMES."""
    a, b = p
    if x.shape[1] == 1:
        # gray pixel: h = 0, s = 0 -> s' = b -> RGB (v, v(1-b), v(1-b)) -> luma v (1 - 0.701 b)
        return (ctx.uint8.to(x.dtype) * (1 - (1 - _ops.LUMA[0]) * min(max(b, 0.0), 1.0))).clamp(0, 255)
    hsv = _ops.rgb_to_hsv(x)
    hsv = torch.cat([hsv[:, :1], (hsv[:, 1:2] * a + b).clamp(0, 1), hsv[:, 2:]], dim=1)
    return _ops.hsv_to_rgb(hsv).clamp(0, 1) * 255


def jpeg_roundtrip(x: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL JPEG encode/decode of each uint8 image (N, C, H, W) at `quality` (PIL's
    defaults: 4:2:0 chroma subsampling). Gray images go through RGB and back to L,
    as the package does."""
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
    return jpeg_roundtrip(ctx.uint8, int(p)).to(x.dtype)


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


def _pil_pass(x: torch.Tensor, k: np.ndarray, axis: int) -> torch.Tensor:
    kt = torch.from_numpy(k).to(x.device)
    y = torch.matmul(x, kt.T) if axis == -1 else torch.matmul(kt, x)
    return torch.floor((y + (1 << 21)) / (1 << 22)).clamp(0, 255)


def pil_box_resize(x: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """PIL Image.resize(..., BOX) on 8-bit values (float64 tensor), exact: horizontal
    pass, 8-bit rounding, vertical pass."""
    h, w = x.shape[-2:]
    if ow != w:
        x = _pil_pass(x, _pil_coeffs(w, ow), -1)
    if oh != h:
        x = _pil_pass(x, _pil_coeffs(h, oh), -2)
    return x


@lru_cache(maxsize=None)
def pil_nearest_index(in_size: int, out_size: int) -> torch.Tensor:
    """Pillow's NEAREST resize source index: int(a/2 + o*a) accumulated, a = in/out."""
    a, xo, idx = in_size / out_size, in_size / out_size * 0.5, []
    for _ in range(out_size):
        idx.append(int(xo))
        xo += a
    return torch.tensor(idx)


def apply_pixelate(x, p, ctx, f):
    """PIL: box-downsample to int(side * c), scale back up (nearest pixel; the scripts'
    BOX and the package's NEAREST pick the same pixel when upsampling)."""
    h, w = x.shape[-2:]
    y = pil_box_resize(ctx.uint8.double(), int(h * p), int(w * p))
    y = y.index_select(-1, pil_nearest_index(y.shape[-1], w).to(x.device))
    y = y.index_select(-2, pil_nearest_index(y.shape[-2], h).to(x.device))
    return y.to(x.dtype)


def draw_elastic(gen, p, ctx):
    h, w = ctx.shape[1], ctx.shape[2]
    out = {}
    if ctx.style["elastic"] == "affine":
        out["affine"] = torch.rand((3, 2), generator=gen, dtype=torch.float64) * 2 - 1
    out["displacement"] = torch.rand((2, h, w), generator=gen, dtype=torch.float64) * 2 - 1
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


def apply_elastic_transform(x, p, ctx, f):
    """Elastic deformation, sampled with scipy map_coordinates (order 1, mode 'reflect').

    `cifar`/`tiny` (the scripts): a random affine (cv2.warpAffine) first, then a
    displacement U(-1, 1) smoothed by a Gaussian (sigma, mode 'reflect', truncate 3)
    times alpha; (alpha, sigma, affine range) are fractions of the image size.
    `imagenet` (the package): displacement U(-0.005 H, 0.005 H) smoothed with
    sigma 0.01 * size, times alpha. Fields: `affine` (N, 3, 2) and `displacement`
    (N, 2, H, W) (dx then dy), all U[-1, 1).
    """
    n, c, h, w = x.shape
    disp = f["displacement"].to(x.device, torch.float64)
    if ctx.style["elastic"] == "affine":
        size = min(h, w)
        alpha, sigma, rng = p[0] * size, p[1] * size, p[2] * size
        x = _warp_affine(x, f["affine"].cpu().double(), rng)
        dx = _ops.gaussian_blur(disp[:, 0:1], sigma, "reflect", 3.0) * alpha if sigma > 0 else disp[:, 0:1] * alpha
        dy = _ops.gaussian_blur(disp[:, 1:2], sigma, "reflect", 3.0) * alpha if sigma > 0 else disp[:, 1:2] * alpha
    else:
        alpha, mx = float(p), h * 0.005
        kh, kw = _ops.gaussian_kernel1d(h * 0.01, 3.0), _ops.gaussian_kernel1d(w * 0.01, 3.0)
        dx = _ops.conv_separable(disp[:, 0:1] * mx, kh, kw, "reflect") * alpha
        dy = _ops.conv_separable(disp[:, 1:2] * mx, kh, kw, "reflect") * alpha
    dx, dy = dx.float()[:, 0], dy.float()[:, 0]
    ys = torch.arange(h, device=x.device).view(1, h, 1) + dy.double()
    xs = torch.arange(w, device=x.device).view(1, 1, w) + dx.double()
    return _ops.bilinear_sample(x, ys, xs, "reflect").clamp(0, 1) * 255


CORRUPTIONS = {
    "contrast": (apply_contrast, None),
    "brightness": (apply_brightness, None),
    "saturate": (apply_saturate, None),
    "jpeg_compression": (apply_jpeg_compression, None),
    "pixelate": (apply_pixelate, None),
    "elastic_transform": (apply_elastic_transform, draw_elastic),
}
