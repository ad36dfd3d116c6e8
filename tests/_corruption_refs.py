"""Test helpers for the corruption fidelity tests (not collected by pytest).

`natural_images` cuts deterministic crops of the photographs bundled with
scikit-image. `cifar_reference` is a plain test-only port of the deterministic
functions of Hendrycks and Dietterich's make_cifar_c.py (the `imagecorruptions`
package refuses images under 32 px and hard-codes the ImageNet constants), built
on the same library calls the script makes (skimage, OpenCV, scipy, PIL), with
the `cifar` or `tiny` table constants. `reference_with_fields` runs the
package's function for a stochastic corruption after seeding numpy, and
replays numpy's draws into our field layout.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg")


def lowbias32(v: int) -> int:
    """C. Wellons' lowbias32 on a 32-bit int, from the published constants, written out
    independently of dstlib's."""
    v ^= v >> 16
    v = (v * 0x7FEB352D) % 2 ** 32
    v ^= v >> 15
    v = (v * 0x846CA68B) % 2 ** 32
    return v ^ (v >> 16)


def natural_images(n: int, size: int, seed: int = 0, gray: bool = False) -> torch.Tensor:
    """n crops (uint8 N, C, size, size) of skimage's bundled photographs, resized with PIL."""
    import skimage

    root = Path(skimage.__file__).parent / "data"
    photos = [Image.open(root / p).convert("RGB") for p in PHOTOS]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        side = int(rng.integers(min(w, h) // 3, min(w, h)))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = im.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
        if gray:
            crop = crop.convert("L")
        a = np.asarray(crop, dtype=np.uint8)
        out.append(a[None] if gray else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------ CIFAR-script port (deterministic)
def cifar_reference(name: str, img: np.ndarray, p) -> np.ndarray:
    """The script's function `name` with parameter p on one uint8 HWC RGB image -> uint8."""
    import cv2
    import skimage as sk
    from imagecorruptions.corruptions import disk
    from scipy.ndimage import zoom as scizoom
    from skimage.filters import gaussian

    x = img / 255.0
    if name == "gaussian_blur":
        y = gaussian(x, sigma=p, channel_axis=-1)
    elif name == "defocus_blur":
        k = disk(radius=p[0], alias_blur=p[1])
        y = np.stack([cv2.filter2D(x[:, :, d], -1, k) for d in range(3)], axis=-1)
    elif name == "zoom_blur":
        xf = x.astype(np.float32)
        out = np.zeros_like(xf)
        h = xf.shape[0]
        for z in np.arange(*p):
            ch = int(np.ceil(h / z))
            top = (h - ch) // 2
            zz = scizoom(xf[top:top + ch, top:top + ch], (z, z, 1), order=1)
            t = (zz.shape[0] - h) // 2
            out += zz[t:t + h, t:t + h]
        y = (xf + out) / (len(np.arange(*p)) + 1)
    elif name == "contrast":
        m = np.mean(x, axis=(0, 1), keepdims=True)
        y = (x - m) * p + m
    elif name == "brightness":
        y = sk.color.rgb2hsv(x)
        y[:, :, 2] = np.clip(y[:, :, 2] + p, 0, 1)
        y = sk.color.hsv2rgb(y)
    elif name == "saturate":
        y = sk.color.rgb2hsv(x)
        y[:, :, 1] = np.clip(y[:, :, 1] * p[0] + p[1], 0, 1)
        y = sk.color.hsv2rgb(y)
    elif name == "jpeg_compression":
        buf = BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=p)
        return np.asarray(Image.open(buf).convert("RGB"))
    elif name == "pixelate":
        h, w = img.shape[:2]
        im = Image.fromarray(img).resize((int(w * p), int(h * p)), Image.BOX).resize((w, h), Image.BOX)
        return np.asarray(im)
    else:
        raise KeyError(name)
    return np.uint8(np.clip(y, 0, 1) * 255)


# ------------------------------------------------------------------ package with replayed draws
def reference_with_fields(name: str, img: np.ndarray, severity: int, seed: int):
    """(reference uint8 HWC, our fields for one image) for a stochastic corruption of the
    `imagecorruptions` package (ImageNet constants)."""
    import imagecorruptions.corruptions as ref
    from imagecorruptions.corruptions import plasma_fractal

    h, w, c = img.shape
    pil = Image.fromarray(img)
    fields = {}
    np.random.seed(seed)
    if name in ("gaussian_noise", "speckle_noise"):
        fields["normal"] = torch.from_numpy(np.random.normal(size=img.shape).transpose(2, 0, 1).copy())
    elif name == "shot_noise":
        c_ = [60, 25, 12, 5, 3][severity - 1]
        fields["counts"] = torch.from_numpy(np.random.poisson(img / 255.0 * c_).transpose(2, 0, 1).copy())
    elif name == "motion_blur":
        fields["angle"] = torch.tensor(np.random.uniform(-45, 45))
    elif name == "snow":
        c_ = [(0.1, 0.3), (0.2, 0.3), (0.55, 0.3), (0.55, 0.3), (0.55, 0.3)][severity - 1]
        z = np.random.normal(size=(h, w), loc=c_[0], scale=c_[1])
        fields["normal"] = torch.from_numpy((z - c_[0]) / c_[1])[None]
        fields["angle"] = torch.tensor(np.random.uniform(-135, -45))
    elif name == "spatter":
        c_ = [(0.65, 0.3), (0.65, 0.3), (0.65, 0.3), (0.65, 0.3), (0.67, 0.4)][severity - 1]
        z = np.random.normal(size=(h, w), loc=c_[0], scale=c_[1])
        fields["normal"] = torch.from_numpy((z - c_[0]) / c_[1])[None]
    elif name == "fog":
        decay = [2, 2, 1.7, 1.5, 1.4][severity - 1]
        size = 1 << (max(h, w) - 1).bit_length()
        fields["plasma"] = torch.from_numpy(plasma_fractal(mapsize=size, wibbledecay=decay))
    elif name == "frost":
        i = np.random.randint(6)
        fields["frost_index"] = torch.tensor(i)
        fields["crop"] = None  # filled below from the reference's crop draw
    elif name == "elastic_transform":
        mx = h * 0.005
        dx = np.random.uniform(-mx, mx, size=(h, w))
        dy = np.random.uniform(-mx, mx, size=(h, w))
        fields["displacement"] = torch.from_numpy(np.stack([dx, dy]) / mx)
    elif name == "impulse_noise":
        rng = np.random.default_rng(seed)
        fields["flipped"] = torch.from_numpy((rng.random(img.shape) <= [.03, .06, .09, .17, .27][severity - 1]).transpose(2, 0, 1).copy())
        fields["salted"] = torch.from_numpy((rng.random(img.shape) <= 0.5).transpose(2, 0, 1).copy())
    elif name == "glass_blur":
        d, iters = [(1, 2), (2, 1), (2, 3), (3, 2), (4, 2)][severity - 1]
        np.random.seed(seed)
        off = np.zeros((iters, h, w, 2), dtype=np.int64)
        for it in range(iters):
            for hh in range(h - d, d, -1):
                for ww in range(w - d, d, -1):
                    dx, dy = np.random.randint(-d, d, size=(2,))
                    off[it, hh, ww] = (dy, dx)
        fields["offsets"] = torch.from_numpy(off)
    else:
        raise KeyError(name)
    if name == "frost":
        fields.pop("crop")
    np.random.seed(seed)
    if name == "impulse_noise":
        y = ref.impulse_noise(pil, severity, seed=seed)
    elif name == "glass_blur":
        y = _glass_reference(img, severity, seed)
    else:
        y = getattr(ref, name)(pil, severity)
    return np.uint8(y), fields


def _glass_reference(img, severity, seed):
    """The package's glass_blur with its numba loop run as plain Python (same numpy draws)."""
    import imagecorruptions.corruptions as ref
    from skimage.filters import gaussian

    c = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    x = np.uint8(gaussian(img / 255.0, sigma=c[0], channel_axis=-1) * 255)
    x = ref._shuffle_pixels_njit_glass_blur.py_func(x.shape[0], x.shape[1], x, c, seed)
    return np.clip(gaussian(x / 255.0, sigma=c[0], channel_axis=-1), 0, 1) * 255


def frost_crop_fields(img: np.ndarray, severity: int, seed: int):
    """Replays the package's frost draws (index, crop) for one image."""
    import cv2
    import imagecorruptions

    np.random.seed(seed)
    i = np.random.randint(6)
    files = ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"]
    fr = cv2.imread(str(Path(imagecorruptions.__file__).parent / "frost" / files[i]))
    h, w = img.shape[:2]
    sf = 1.0
    if fr.shape[0] < h or fr.shape[1] < w:
        sf = max(h / fr.shape[0], w / fr.shape[1])
    sf *= 1.1
    th, tw = int(np.ceil(fr.shape[0] * sf)), int(np.ceil(fr.shape[1] * sf))
    top, left = np.random.randint(0, th - h), np.random.randint(0, tw - w)
    return {"frost_index": torch.tensor(i), "crop": torch.tensor([top, left])}


def cifar_elastic_reference(img: np.ndarray, p, affine: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """make_cifar_c.py's elastic_transform (fractions p of the image size) with given draws:
    affine (3, 2) and displacement (2, H, W), all in [-1, 1)."""
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    size = img.shape[0]
    c = (size * p[0], size * p[1], size * p[2])
    image = np.array(img, dtype=np.float32) / 255.0
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + (affine * c[2]).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, m, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(disp[0], c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(disp[1], c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., None], dy[..., None]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    ind = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    out = map_coordinates(image, ind, order=1, mode="reflect").reshape(shape)
    return np.uint8(np.clip(out, 0, 1) * 255)
