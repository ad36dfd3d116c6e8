"""Slow, plainly written per-pixel oracles of the ImageNet-C-bar / CIFAR-10-C-bar
corruptions (not collected by pytest).

Each oracle follows the reference's `transform(image, **params)`
(facebookresearch/augmentation-corruption, imagenet_c_bar/corrupt.py) one pixel at a
time, in its order of operations: Python scalars and loops, numpy where the reference
calls numpy or scipy on whole arrays (the FFT noises, the rotations and zooms). The
parameters are a dict of one image's drawn fields (as `random_fields` gives them,
converted to Python / numpy values) and the reference's level. `pixels`: optionally
a list of (row, col) where per-pixel oracles are evaluated (big images); the result
is then those pixels' values (len(pixels), C), else the whole uint8 image (H, W, C).
`sample_parameters(name, im, rng)` replays the reference's draws with numpy's global-
state calls made on a RandomState `rng`, for the distribution tests.
"""
from __future__ import annotations

import math

import numpy as np


def fp(level, maxval):
    return float(level) * maxval / 10.


def _u8(v):
    """np.clip(v, 0, 255).astype(np.uint8) of one value (NaN -> 0, as numpy's cast on x86)."""
    v = float(v)
    if math.isnan(v):
        return 0
    return int(min(max(v, 0.0), 255.0))


def _run(kernel, img, pixels):
    """Evaluate kernel(row, col) -> per-channel values at every pixel (or the given ones)."""
    h, w, c = img.shape
    pts = pixels if pixels is not None else [(r, q) for r in range(h) for q in range(w)]
    out = np.array([[_u8(v) for v in kernel(r, q)] for r, q in pts], dtype=np.uint8)
    return out if pixels is not None else out.reshape(h, w, c)


# ------------------------------------------------------------------ additive noises
def single_frequency_greyscale(img, p, level, pixels=None):
    freq, phase = p["freq"], p["phase"]
    inten = fp(level, 196)

    def kernel(y, x):
        noise = np.sin(x * freq[0] + y * freq[1] + phase)
        return [float(img[y, x, c]) + inten * noise for c in range(img.shape[2])]
    return _run(kernel, img, pixels)


def cocentric_sine_waves(img, p, level, pixels=None):
    x0, y0 = p["offset"]
    freq, amp, rw = p["freq"], p["amplitude"], p["ring_width"]
    inten = fp(level, 128)

    def kernel(y, x):
        angle = np.arctan2(x - x0, y - y0) * freq
        d = ((np.sqrt((x - x0) ** 2 + (y - y0) ** 2) + np.sin(angle) * amp) % rw) / rw
        d -= 1 / 2
        return [float(img[y, x, c]) + inten * d for c in range(img.shape[2])]
    return _run(kernel, img, pixels)


def plasma_noise(img, p, level, pixels=None):
    """Colour output; a 1-channel image gets the luma of the three clipped channels."""
    t, iters, sharp, scale = p["time"], int(p["iterations"]), p["sharpness"], p["scale"]
    inten = fp(level, 64)

    def noise(x, y):
        x, y = x / scale, y / scale
        i = [1.0, 1.0, 1.0, 0.0]
        for _ in range(iters):
            r0 = np.cos(y * i[0] - i[3] + t / i[1]) / i[2]
            r1 = np.sin(x * i[0] - i[3] + t / i[1]) / i[2]
            r0, r1 = r0 - r1 * 0.3, r1 + r0 * 0.3
            x += r0
            y += r1
            i = [i[0] * 1.93, i[1] * 1.15, i[2] * (2.25 - sharp), i[3] * (t * i[1])]
        return [np.sin(x - t), np.sin((x + y + np.sin(t)) * 0.5), np.sin(y + t)]

    def kernel(y, x):
        nz = noise(x, y)
        if img.shape[2] == 3:
            return [(1 - inten / 255) * float(img[y, x, c]) + inten * nz[c] for c in range(3)]
        vals = [min(max((1 - inten / 255) * float(img[y, x, 0]) + inten * nz[c], 0.0), 255.0) for c in range(3)]
        return [0.299 * vals[0] + 0.587 * vals[1] + 0.114 * vals[2]]
    return _run(kernel, img, pixels)


class _Perlin:
    """The reference's PerlinNoiseGenerator, scalar."""

    B, N = 256, 4096

    def __init__(self, rs):
        b = self.B
        self.p = list(range(2 * b + 2))
        g = []
        for _ in range(2 * b + 2):
            v = (rs.randint(low=0, high=2 ** 31, size=2) % (2 * b) - b) / b
            with np.errstate(invalid="ignore", divide="ignore"):
                g.append(v / np.linalg.norm(v))
        self.g = np.array(g)
        for i in range(b - 1, -1, -1):
            k = self.p[i]
            j = rs.randint(low=0, high=2 ** 31) % b
            self.p[i] = self.p[j]
            self.p[j] = k
        for i in range(b + 2):
            self.p[b + i] = self.p[i]
            self.g[b + i, :] = self.g[i, :]

    def noise(self, x, y):
        s_curve = lambda t: t ** 2 * (3.0 - 2.0 * t)  # noqa: E731
        t = x + self.N
        bx0 = int(t) % self.B
        bx1 = (bx0 + 1) % self.B
        rx0 = t % 1
        rx1 = rx0 - 1.0
        t = y + self.N
        by0 = int(t) % self.B
        by1 = (by0 + 1) % self.B
        ry0 = t % 1
        ry1 = ry0 - 1.0
        i, j = self.p[bx0], self.p[bx1]
        b00, b10, b01, b11 = self.p[i + by0], self.p[j + by0], self.p[i + by1], self.p[j + by1]
        sx, sy = s_curve(rx0), s_curve(ry0)
        g = self.g
        u = rx0 * g[b00, 0] + ry0 * g[b00, 1]
        v = rx1 * g[b10, 0] + ry0 * g[b10, 1]
        a = u + sx * (v - u)
        u = rx0 * g[b01, 0] + ry1 * g[b01, 1]
        v = rx1 * g[b11, 0] + ry1 * g[b11, 1]
        b = u + sx * (v - u)
        return 1.5 * (a + sy * (b - a))

    def turbulence(self, x, y, octaves):
        t, f = 0.0, 1.0
        while f <= octaves:
            t += np.abs(self.noise(f * x, f * y)) / f
            f = f * 2
        return t


def perlin_noise(img, p, level, pixels=None):
    im = img.shape[0]
    gen = _Perlin(np.random.RandomState(int(p["seed"])))
    m = np.array([[1, 0], [0, 1]]) / (32 * im / 224)
    alpha = fp(level, 0.50)

    def kernel(y, x):
        npoint = np.matmul(np.array([y, x]), m)
        f = 0.5 * gen.turbulence(npoint[0], npoint[1], 16.0) + 0.5
        f = np.clip(f, 0, 1.0)
        return [(1 - alpha) * np.float32(img[y, x, c]) + 255 * alpha * f for c in range(img.shape[2])]
    return _run(kernel, img, pixels)


def _gen_noise(rs, im, power_of_distance):
    center = im / 2
    power = np.array([[power_of_distance(np.linalg.norm(np.array([x, y]) - center))
                       for x in range(im)] for y in range(im)])
    phases = rs.uniform(low=0, high=2 * np.pi, size=(im, im // 2))
    if im % 2 == 0:
        phases = np.concatenate((phases, phases[::-1, ::-1]), axis=1)
    else:
        cf = rs.uniform(low=0, high=2 * np.pi, size=(im // 2, 1))
        cf = np.concatenate((cf, np.array([[0.0]]), cf[::-1, :]), axis=0)
        phases = np.concatenate((phases, cf, phases[::-1, ::-1]), axis=1)
    spec = power * (np.cos(phases) + np.sin(phases) * 1j)
    spec = np.roll(spec, im // 2, axis=0)
    spec = np.roll(spec, im // 2, axis=1)
    from scipy.fftpack import ifft2
    noise = np.real(ifft2(spec))
    return noise / np.std(noise)


def blue_noise_sample(img, p, level, pixels=None):
    im = img.shape[0]
    noise = _gen_noise(np.random.RandomState(int(p["seed"])), im, lambda d: d)
    mask = noise > fp(level, 3.0) - 2.5
    out = np.clip(img * mask.reshape(im, im, 1), 0, 255).astype(np.uint8)
    return out if pixels is None else np.array([out[r, q] for r, q in pixels])


def brownish_noise(img, p, level, pixels=None):
    """One noise per channel, drawn R, G, B in turn (a 1-channel image: the first)."""
    im, ch = img.shape[0], img.shape[2]
    rs = np.random.RandomState(int(p["seed"]))
    noise = np.stack([_gen_noise(rs, im, lambda d: 1 / (d ** 2 + 1)) for _ in range(ch)], axis=2)
    out = np.clip(img + fp(level, 64) * noise, 0, 255).astype(np.uint8)
    return out if pixels is None else np.array([out[r, q] for r, q in pixels])


# ------------------------------------------------------------------ occlusions
def _star_kernel(point, value, center, radius, ray_lengths, amount, color, inverse):
    rays = len(ray_lengths)
    dp = point - center
    dist = np.linalg.norm(dp)
    angle = np.arctan2(dp[1], dp[0])
    d = (angle + np.pi) / (2 * np.pi) * rays
    i = int(d)
    f = d - i
    if radius != 0:
        length = ray_lengths[i % rays] + f * (ray_lengths[(i + 1) % rays] - ray_lengths[i % rays])
        g = length ** 2 / (dist ** 2 + 1e-4)
        g = g ** ((100 - amount) / 50.0)
        f -= 0.5
        f = 1 - f ** 2
        f *= g
    f = np.clip(f, 0, 1)
    return color + f * (value - color) if inverse else value + f * (color - value)


def sparkles(img, p, level, pixels=None):
    im, ch = img.shape[0], img.shape[2]
    centers, nrays = np.asarray(p["centers"]), [int(v) for v in p["nrays"]]
    radius = fp(level, 0.1) * im
    color = np.full(ch, 255)
    rs = np.random.RandomState(int(p["seed"]))
    rays_all = [[max(1, radius + 25 / 100.0 * radius * rs.randn()) for _ in range(r)] for r in nrays]

    def kernel(y, x):
        value = img[y, x, :].astype(np.float32)
        for center, lengths in zip(centers, rays_all):
            value = _star_kernel(np.array([y, x]), value, center, radius, lengths, 50, color, False)
        return value
    return _run(kernel, img, pixels)


def inverse_sparkles(img, p, level, pixels=None):
    im, ch = img.shape[0], img.shape[2]
    center = np.asarray(p["center"])
    radius = 0.25 * im
    amount = 100 - fp(level, 65)
    rs = np.random.RandomState(int(p["seed"]))
    lengths = [radius + 25 / 100.0 * radius * rs.randn() for _ in range(int(p["rays"]))]

    def kernel(y, x):
        return _star_kernel(np.array([y, x]), img[y, x, :].astype(np.float32), center, radius, lengths,
                            amount, np.full(ch, 255), True)
    return _run(kernel, img, pixels)


def checkerboard_cutout(img, p, level, pixels=None):
    im = img.shape[0]
    angle, s = p["angle"], p["scale"]
    rs = np.random.RandomState(int(p["seed"]))
    grid = rs.uniform(size=(int(4 * im // s), int(4 * im // s))) < fp(level, 1.0)

    def kernel(y, x):
        nx = (np.cos(angle) * y + np.sin(angle) * x) / s
        ny = (-np.sin(angle) * y + np.cos(angle) * x) / s
        keep = (int(nx % 2) != int(ny % 2)) or not grid[int(nx), int(ny)]
        return img[y, x, :] if keep else np.full(img.shape[2], 128)
    return _run(kernel, img, pixels)


def lines(img, p, level, pixels=None):
    from skimage.draw import line_aa

    im = img.shape[0]
    num = int(fp(level, 1.0) * im)
    ln = 1.0 * im
    rs = np.random.RandomState(int(p["seed"]))
    out = img.copy()
    for _ in range(num):
        x = im * rs.uniform()
        y = im * rs.uniform()
        a = p["angle"] + 2 * np.pi * p["angle_variation"] * (rs.uniform() - 0.5)
        s, c = np.sin(a) * ln, np.cos(a) * ln
        rxc, ryc, rval = line_aa(int(x - c), int(y - s), int(x + c), int(y + s))
        xc, yc, val = [], [], []
        for rx, ry, rv in zip(rxc, ryc, rval):
            if 0 <= rx < im and 0 <= ry < im:
                xc.append(rx)
                yc.append(ry)
                val.append(rv)
        xc, yc, val = np.array(xc, dtype=np.int64), np.array(yc, dtype=np.int64), np.array(val)
        out[xc, yc, :] = (1.0 - val.reshape(-1, 1)) * out[xc, yc, :].astype(np.float32) + val.reshape(-1, 1) * 128
    return out.astype(np.uint8) if pixels is None else np.array([out[r, q] for r, q in pixels])


# ------------------------------------------------------------------ distortions
def bilinear_interpolation(image, point):
    """The reference's utils/image.py bilinear_interpolation (zero outside), any channel count."""
    zero = np.zeros(image.shape[2])
    l = int(np.floor(point[0]))
    u = int(np.floor(point[1]))
    r, d = l + 1, u + 1
    ok = lambda a, b: 0 <= a < image.shape[0] and 0 <= b < image.shape[1]  # noqa: E731
    lu = image[l, u, :] if ok(l, u) else zero
    ld = image[l, d, :] if ok(l, d) else zero
    ru = image[r, u, :] if ok(r, u) else zero
    rd = image[r, d, :] if ok(r, d) else zero
    al = lu * (1.0 - point[1] + u) + ld * (1.0 - d + point[1])
    ar = ru * (1.0 - point[1] + u) + rd * (1.0 - d + point[1])
    return al * (1.0 - point[0] + l) + ar * (1.0 - r + point[0])


def caustic_refraction(img, p, level, pixels=None):
    from scipy.ndimage import gaussian_filter

    im = img.shape[0]
    time, size = p["time"], p["size"]
    eta, lens_scale, lighting = 4.0, fp(level, 0.5 * im), fp(level, 2.0)

    def caustic(y, x):
        point = np.array([y, x]) / size
        pp = (point % 1) * 6.28318530718 - 250
        i = pp.copy()
        c = 1.0
        inten = 0.005
        for n in range(5):
            t = time * (1.0 - (3.5 / (n + 1)))
            i = pp + np.array([math.cos(t - i[0]) + math.sin(t + i[1]), math.sin(t - i[1]) + math.cos(t + i[0])])
            length = math.sqrt((pp[0] / (math.sin(i[0] + t) / inten)) ** 2
                               + (pp[1] / (math.cos(i[1] + t) / inten)) ** 2)
            c += 1.0 / length
        c /= 5.0
        c = 1.17 - c ** 1.4
        v = min(max(abs(c) ** 8.0, 0.0), 1.0)
        return [v, v, v]

    noise = gaussian_filter(np.array([[caustic(y, x) for x in range(im)] for y in range(im)]), sigma=1)
    image = img.astype(np.float32) / 255

    def luma(o0, o1):
        if 0 <= o0 < im and 0 <= o1 < im:
            return np.dot(noise[o0, o1, :], np.array([0.2126, 0.7152, 0.0722]))
        return 0.0

    def refract(incident, normal):
        if np.abs(np.dot(incident, normal)) >= 1.0 - 1e-3:
            return incident
        angle = np.arccos(np.dot(incident, normal))
        out_angle = np.arcsin(np.sin(angle) / eta)
        out_unrotated = np.array([np.cos(out_angle), np.sin(out_angle), 0.0])
        spectator = np.cross(incident, normal)
        spectator /= np.linalg.norm(spectator)
        orthogonal = np.cross(normal, spectator)
        rot = np.stack((normal, orthogonal, spectator), axis=0)
        return np.matmul(np.linalg.inv(rot), out_unrotated)

    def kernel(y, x):
        north, south = luma(y, x - 1), luma(y, x + 1)
        west, east = luma(y - 1, x), luma(y + 1, x)
        normal = np.array([east - west, south - north, 1.0])
        normal = normal / np.linalg.norm(normal)
        vec = np.round(refract(np.array([0.0, 0.0, 1.0]), normal) * lens_scale, 3)
        out = bilinear_interpolation(image, np.array([y, x]) + vec[0:2])
        out = out + (north - south) * lighting
        out = out + (east - west) * lighting
        out = np.clip(out, 0, 1)
        return [int(v) for v in (out * 255).astype(np.uint8)]
    return _run(kernel, img, pixels)


def pinch_and_twirl(img, p, level, pixels=None):
    im = img.shape[0]
    k = 5 if im == 224 else 3
    angles = np.asarray(p["signs"]).reshape(k, k) * fp(level, np.pi / 2)
    amount = fp(level, 0.4) + 0.1

    def warp(point, center, radius, angle):
        dx, dy = point[0] - center[0], point[1] - center[1]
        dist = np.linalg.norm(point - center)
        if dist > radius or np.round(dist, 3) == 0.0:
            return point
        d = dist / radius
        t = np.sin(np.pi * 0.5 * d) ** (-amount)
        dx *= t
        dy *= t
        e = 1 - d
        a = angle * (e ** 2)
        return center + np.array([dx * np.cos(a) - dy * np.sin(a), dx * np.sin(a) + dy * np.cos(a)])

    out = img.copy().astype(np.float32)
    g = im // k
    radius = g / 2
    for i in range(k):
        for j in range(k):
            l, r = i * g, (i + 1) * g
            u, d = j * g, (j + 1) * g
            center = np.array([u + radius, l + radius])
            out[u:d, l:r, :] = np.array([[bilinear_interpolation(out, warp(np.array([y, x]), center, radius,
                                                                             angles[i, j]))
                                          for x in np.arange(l, r)] for y in np.arange(u, d)])
    out = np.clip(out, 0, 255).astype(np.uint8)
    return out if pixels is None else np.array([out[r, q] for r, q in pixels])


def ripple(img, p, level, pixels=None):
    im = img.shape[0]
    amps = np.array([fp(level, 0.025) for _ in range(2)]) * im
    wl, ph = np.asarray(p["wavelengths"]), np.asarray(p["phases"])

    def kernel(y, x):
        point = np.array([y, x])
        return bilinear_interpolation(img, point + amps * np.sin(2 * np.pi * point / wl + ph))
    return _run(kernel, img, pixels)


def circular_motion_blur(img, p, level, pixels=None):
    from scipy.ndimage import rotate

    amount = fp(level, 15)
    num = 21
    image = img.astype(np.float32) / 255
    factors, rotated = [], []
    for i in range(num):
        angle = (2 * i / (num - 1) - 1) * amount
        rotated.append(rotate(image, angle, reshape=False))
        factors.append(np.exp(-2 * (2 * i / (num - 1) - 1) ** 2))
    out = np.zeros_like(image)
    for r, f in zip(rotated, factors):
        out += f * r
    out /= sum(factors)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def transverse_chromatic_abberation(img, p, level, pixels=None):
    """Colour output; a 1-channel image gets the luma of the three zooms of its channel."""
    from scipy.ndimage import zoom

    im = img.shape[0]
    scale = fp(level, 0.5)
    scales = np.array([1.0, 1.0 + scale / 2, 1.0 + scale])[np.asarray(p["permutation"])]
    src = img if img.shape[2] == 3 else np.repeat(img, 3, axis=2)
    out = src.copy()
    for c in range(3):
        zoomed = zoom(src[:, :, c], scales[c], prefilter=False)
        edge = (zoomed.shape[0] - im) // 2
        out[:, :, c] = zoomed[edge:edge + im, edge:edge + im]
    if img.shape[2] == 3:
        return out.astype(np.uint8)
    y = 0.299 * out[:, :, 0].astype(np.float64) + 0.587 * out[:, :, 1] + 0.114 * out[:, :, 2]
    return y.astype(np.uint8)[:, :, None]


ORACLES = {f.__name__: f for f in (
    single_frequency_greyscale, cocentric_sine_waves, plasma_noise, perlin_noise, blue_noise_sample,
    brownish_noise, sparkles, inverse_sparkles, checkerboard_cutout, lines, caustic_refraction,
    pinch_and_twirl, ripple, circular_motion_blur, transverse_chromatic_abberation)}


def oracle(name, img, fields, level, pixels=None):
    """The oracle of `name` for one HWC uint8 image and its fields (tensors or arrays)."""
    p = {}
    for k, v in fields.items():
        v = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        p[k] = v.item() if v.ndim == 0 else v.tolist()
    return ORACLES[name](img, p, level, pixels)


# ------------------------------------------------------------------ the reference's draws
def sample_parameters(name, im, rs):
    """One image's parameters drawn as the reference's sample_parameters draws them (the
    global numpy state's calls made on RandomState rs), under our field names."""
    if name == "single_frequency_greyscale":
        mag = rs.uniform(low=-np.pi, high=np.pi)
        other = rs.uniform(low=-abs(mag), high=abs(mag))
        freq = np.array([mag, other])[rs.permutation(2)]
        return {"freq": freq, "phase": rs.uniform(low=0, high=2 * np.pi)}
    if name == "cocentric_sine_waves":
        return {"offset": rs.uniform(low=0, high=im, size=2), "freq": rs.uniform(low=0, high=10),
                "amplitude": rs.uniform(low=0, high=im / 10), "ring_width": rs.uniform(low=0, high=im / 10)}
    if name == "plasma_noise":
        return {"time": rs.uniform(low=0.0, high=6 * np.pi), "iterations": rs.randint(low=4, high=7),
                "sharpness": rs.uniform(low=0.5, high=1.0), "scale": rs.uniform(low=0.075, high=0.2) * im}
    if name == "sparkles":
        centers = rs.uniform(low=0, high=im, size=(5, 2))
        seed = rs.randint(low=0, high=2 ** 32, dtype=np.int64)
        return {"centers": centers, "seed": seed, "nrays": rs.randint(low=50, high=200, size=5)}
    if name == "inverse_sparkles":
        center = rs.uniform(low=0.25, high=0.75, size=2) * im
        seed = rs.randint(low=0, high=2 ** 32, dtype=np.int64)
        return {"center": center, "seed": seed, "rays": rs.randint(low=50, high=200)}
    if name in ("perlin_noise", "blue_noise_sample", "brownish_noise"):
        return {"seed": rs.randint(low=0, high=2 ** 32, dtype=np.int64)}
    if name == "checkerboard_cutout":
        angle = rs.uniform(low=0, high=2 * np.pi)
        scale = np.maximum(rs.uniform(low=0.1, high=0.25) * im, 1)
        return {"angle": angle, "scale": scale, "seed": rs.randint(low=0, high=2 ** 32, dtype=np.int64)}
    if name == "caustic_refraction":
        return {"time": rs.uniform(low=0.5, high=2.0), "size": rs.uniform(low=0.75, high=1.25) * im}
    if name == "pinch_and_twirl":
        k = 5 if im == 224 else 3
        return {"signs": np.array([rs.choice([1, -1]) for _ in range(k * k)]).reshape(k, k)}
    if name == "ripple":
        return {"wavelengths": rs.uniform(low=0.1, high=0.3, size=2) * im,
                "phases": rs.uniform(low=0, high=2 * np.pi, size=2)}
    if name == "lines":
        angle = rs.uniform(low=0.0, high=2 * np.pi)
        var = rs.uniform(low=0.1, high=1.0)
        return {"angle": angle, "angle_variation": var, "seed": rs.randint(low=0, high=2 ** 32, dtype=np.int64)}
    if name == "transverse_chromatic_abberation":
        return {"permutation": rs.permutation(3)}
    if name == "circular_motion_blur":
        return {}
    raise KeyError(name)
