"""The 16 video corruptions: every name and severity, temporal ones frame by frame, appearance ones against the
image corruptions, PIL's rotate and the reference's formulas, determinism across batches, and errors."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import dstlib.corruptions as dc
from dstlib.corruptions import _rng, video as V


def clips(n=3, t=8, c=3, h=24, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, c, h, w), generator=g, dtype=torch.uint8)


def numbered(n=2, t=8, c=1, h=16, w=16):
    """Clips whose frame f is filled with the value f, so a frame's value says where it came from."""
    return torch.arange(t, dtype=torch.uint8).view(1, t, 1, 1, 1).expand(n, t, c, h, w).clone()


def sources(y):
    """The input frame each output frame of a `numbered` clip shows, (N, T)."""
    return y[:, :, 0, 0, 0].long()


# --- every corruption and severity -----------------------------------------------------------------
@pytest.mark.parametrize("name", V.VIDEO_NAMES)
@pytest.mark.parametrize("shape", [(2, 8, 3, 24, 32), (2, 5, 1, 20, 20)])
def test_every_corruption_and_severity_keeps_shape_dtype_and_changes_the_clip(name, shape):
    x = clips(*shape)
    for s in range(1, 6):
        y = dc.corrupt_video(x, name, s, index=torch.arange(len(x)))
        assert y.shape == x.shape and y.dtype == torch.uint8
        # a single chunk (box_jumble with chunks as long as the clip, jumble/freeze never on a 1-chunk identity)
        single_chunk = name == "box_jumble" and V._UCF101["box_jumble"][s - 1] >= shape[1]
        if not single_chunk:
            assert not torch.equal(y, x), (name, s)
        else:
            assert torch.equal(y, x)


def test_names_are_the_reference_table_in_order():
    assert dc.VIDEO_NAMES == ("motion_blur", "compression", "defocus_blur", "gaussian_noise", "shot_noise",
                              "impulse_noise", "zoom_blur", "rotate", "static_rotate", "speckle_noise", "sampling",
                              "reverse_sampling", "jumble", "box_jumble", "freeze", "translate")
    for table in V.VIDEO_TABLES.values():
        assert all(len(table[n]) == 5 for n in V.VIDEO_NAMES)


# --- temporal corruptions: which frame ends up where ------------------------------------------------
@pytest.mark.parametrize("s", range(1, 6))
def test_sampling_and_reverse_sampling_hold_every_rth_frame(s):
    r = (2, 4, 8, 16, 32)[s - 1]
    x = numbered(t=37)
    t = torch.arange(37)
    assert torch.equal(sources(dc.corrupt_video(x, "sampling", s)), ((t // r) * r).expand(2, -1))
    assert torch.equal(sources(dc.corrupt_video(x, "reverse_sampling", s)),
                       sources(dc.corrupt_video(x, "sampling", s)).flip(1))


@pytest.mark.parametrize("s", range(1, 6))
def test_jumble_shuffles_within_chunks_only(s):
    seg, t = 64 // 2 ** s, 70
    src = sources(dc.corrupt_video(numbered(n=20, t=t), "jumble", s, index=torch.arange(20)))
    for row in src.tolist():
        for start in range(0, t, seg):
            assert sorted(row[start:start + seg]) == list(range(start, min(start + seg, t)))
    assert len({tuple(r) for r in src.tolist()}) == 20  # every clip its own order


def test_jumble_order_is_uniform_within_a_chunk():
    # severity 4: chunks of 4 frames; over 4,000 clips each frame lands on position 0 about 1,000 times
    src = V.frame_map("jumble", 4, 4, seed=3, n=4000)
    counts = torch.bincount(src[:, 0], minlength=4).numpy()
    chi2 = ((counts - 1000) ** 2 / 1000).sum()
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001


@pytest.mark.parametrize("s", range(1, 6))
def test_box_jumble_moves_whole_chunks(s):
    seg, t = (s + 1) ** 2, 80
    src = sources(dc.corrupt_video(numbered(n=10, t=t), "box_jumble", s, index=torch.arange(10)))
    chunks = [list(range(a, min(a + seg, t))) for a in range(0, t, seg)]
    for row in src.tolist():
        pieces, i = [], 0
        while i < t:  # read the row back as a sequence of whole chunks
            chunk = next(c for c in chunks if c[0] == row[i])
            assert row[i:i + len(chunk)] == chunk
            pieces.append(chunk[0])
            i += len(chunk)
        assert sorted(pieces) == [c[0] for c in chunks]
    assert len({tuple(r) for r in src.tolist()}) > 1


@pytest.mark.parametrize("s", range(1, 6))
@pytest.mark.parametrize("t", [8, 40, 180])
def test_freeze_holds_k_random_frames_from_frame_zero(s, t):
    k = V.freeze_count(s, t)
    assert k == min(t, max(1, [int(0.4 * t), int(0.2 * t), int(0.1 * t), int(max(0.05 * t, 2)), 1][s - 1]))
    src = V.frame_map("freeze", s, t, seed=1, n=30)
    for row in src.tolist():
        assert row[0] == 0 and all(a <= b for a, b in zip(row, row[1:]))
        held = sorted(set(row))
        assert all(row[f] == f for f in held)            # a frozen frame starts where it is
        assert len(set(held) - {0}) in (k, k - 1)        # k picks (frame 0 may be one of them)


def test_whole_video_mode_corrupts_then_samples_the_clip():
    video = numbered(n=3, t=32)
    idx = V.uniform_indices(32, 8)
    assert idx.tolist() == [1, 5, 9, 13, 17, 21, 25, 29]
    for name in V.TEMPORAL:
        for s in (1, 3, 5):
            y = dc.corrupt_video(video, name, s, seed=2, index=torch.tensor([4, 5, 6]), frames=8)
            want = V.frame_map(name, s, 32, seed=2, index=torch.tensor([4, 5, 6]))[:, idx]
            assert y.shape == (3, 8, 1, 16, 16) and torch.equal(sources(y), want)
    rgb = clips(n=2, t=32)
    for name in ("gaussian_noise", "rotate", "translate"):  # the others act on the sampled frames
        assert torch.equal(dc.corrupt_video(rgb, name, 2, frames=8), dc.corrupt_video(rgb[:, idx], name, 2))


def test_uniform_indices_agree_with_the_data_modules():
    from dstlib.data import moving, ucf101
    for length in (1, 5, 8, 13, 32, 181):
        for frames in (1, 8, 16):
            want = V.uniform_indices(length, frames)
            assert torch.equal(moving.uniform_indices(length, frames), want)
            assert ucf101.clip_indices(length, frames).tolist() == want.tolist()
            assert all(0 <= i < length for i in want.tolist())


# --- appearance corruptions ----------------------------------------------------------------------
def _image_fields(x, name, s, seed, index):
    """The per-frame random fields corrupt_video draws for a per-frame corruption (through the image drawer)."""
    image = V.PER_FRAME[name]
    drawer = dc._REGISTRY[image][1]
    n, t = x.shape[:2]
    frames = x.reshape(n * t, *x.shape[2:])
    if drawer is None:
        return frames, {}
    ctx = dc._Ctx("video", V._STYLE, tuple(frames.shape[1:]), uint8=frames)
    p = V.video_params(V.default_video_table(*x.shape[-2:]), name, s)
    return frames, drawer(V.frame_seeds(seed, name, s, index, t), p, ctx)


# video name -> (image table whose entry equals the video table's at 224 px, at 20 px)
IMAGE_TABLE = {"gaussian_noise": ("imagenet", "imagenet"), "impulse_noise": ("imagenet", "imagenet"),
               "shot_noise": ("tiny", "tiny"), "speckle_noise": ("tiny", "tiny"),
               "compression": ("imagenet", "imagenet"), "defocus_blur": ("imagenet", "cifar"),
               "motion_blur": ("imagenet", "cifar")}


@pytest.mark.parametrize("name", sorted(IMAGE_TABLE))
@pytest.mark.parametrize("size", [64, 20])
def test_per_frame_corruptions_are_the_image_corruptions_with_the_reference_parameters(name, size):
    table = IMAGE_TABLE[name][0 if size > 45 else 1]
    x = clips(n=2, t=3, h=size, w=size)
    index = torch.tensor([7, 9])
    for s in range(1, 6):
        assert dc.TABLES[table][V.PER_FRAME[name]][s - 1] == V.video_params(V.default_video_table(size, size), name, s)
        y = dc.corrupt_video(x, name, s, seed=5, index=index)
        frames, fields = _image_fields(x, name, s, 5, index.tolist())
        want = dc.corrupt(frames, V.PER_FRAME[name], s, table=table, fields=fields or None).view_as(x)
        if name == "motion_blur" and table == "imagenet":
            # the reference reads ImageMagick's 8-bit PNG back (rounded); the imagenet image table truncates
            assert (y.int() - want.int()).abs().max() <= 1
        else:
            assert torch.equal(y, want), (name, s)


def test_per_frame_noise_differs_between_frames_and_clips():
    x = torch.full((2, 4, 1, 16, 16), 128, dtype=torch.uint8)
    y = dc.corrupt_video(x, "gaussian_noise", 3)
    planes = y.reshape(8, -1)
    assert len({tuple(p.tolist()) for p in planes}) == 8
    resid = (y.float() - 128) / 255
    assert abs(float(resid.std()) - 0.18) < 0.01  # sigma 0.18 at severity 3, no clipping at mid-gray


def test_compression_is_pil_jpeg_per_frame():
    x = clips(n=1, t=2, h=32, w=32)
    for s, q in enumerate((25, 18, 15, 10, 7), 1):
        y = dc.corrupt_video(x, "compression", s)
        for f in range(2):
            buf = io.BytesIO()
            Image.fromarray(x[0, f].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=q)
            ref = np.asarray(Image.open(buf))
            assert np.array_equal(y[0, f].permute(1, 2, 0).numpy(), ref)


def _reference_zoom_blur(frame, factors):
    """The reference's zoom_blur on a square float frame (H, W, C) in [0, 1] (scipy's order-1 zoom)."""
    from scipy.ndimage import zoom as scizoom
    h = frame.shape[0]
    out = np.zeros_like(frame)
    for z in factors:
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        img = scizoom(frame[top:top + ch, top:top + ch], (z, z, 1), order=1)
        trim = (img.shape[0] - h) // 2
        out += img[trim:trim + h, trim:trim + h]
    return np.uint8(np.clip((frame + out) / (len(factors) + 1), 0, 1) * 255)


@pytest.mark.parametrize("s", [1, 3, 5])
def test_zoom_blur_matches_the_reference_on_square_frames(s):
    x = clips(n=1, t=2, h=40, w=40)
    y = dc.corrupt_video(x, "zoom_blur", s)
    factors = np.arange(*V._UCF101["zoom_blur"][s - 1])
    for f in range(2):
        ref = _reference_zoom_blur((x[0, f].permute(1, 2, 0).numpy() / 255.0).astype(np.float32), factors)
        assert np.abs(y[0, f].permute(1, 2, 0).numpy().astype(int) - ref).max() <= 1


def test_defocus_blur_matches_the_reference_kernel():
    cv2 = pytest.importorskip("cv2")
    x = clips(n=1, t=1, h=48, w=48)
    for s, (r, a) in enumerate(V._UCF101["defocus_blur"], 1):
        L = np.arange(-8, 9) if r <= 8 else np.arange(-r, r + 1)
        X, Y = np.meshgrid(L, L)
        disk = np.array((X ** 2 + Y ** 2) <= r ** 2, dtype=np.float32)
        disk /= disk.sum()
        kernel = cv2.GaussianBlur(disk, (3, 3) if r <= 8 else (5, 5), a)
        img = x[0, 0].permute(1, 2, 0).numpy() / 255.0
        ref = np.uint8(np.clip(np.stack([cv2.filter2D(img[..., d], -1, kernel) for d in range(3)], 2), 0, 1) * 255)
        got = dc.corrupt_video(x, "defocus_blur", s)[0, 0].permute(1, 2, 0).numpy()
        assert np.abs(got.astype(int) - ref).max() <= 1


# --- rotation and translation ----------------------------------------------------------------------
@pytest.mark.parametrize("h,w", [(24, 32), (33, 33), (20, 20), (17, 30)])
def test_rotation_is_pil_rotate_exactly(h, w):
    img = np.random.default_rng(h * w).integers(0, 256, (h, w), dtype=np.uint8)
    for angle in list(range(-31, 32)) + [7.5, 15, 30, 45, 90, 180, 270]:
        src = V.rotation_source(angle, h, w).numpy()
        ours = np.where(src < 0, 0, img.ravel()[np.clip(src, 0, None)]).reshape(h, w)
        assert np.array_equal(ours, np.asarray(Image.fromarray(img).rotate(angle))), angle


def test_static_rotate_turns_every_frame_by_the_same_angle():
    x = clips(n=2, t=3, h=24, w=24)
    for s, angle in enumerate((7.5, 15, 30, 45, 90), 1):
        y = dc.corrupt_video(x, "static_rotate", s)
        for i in range(2):
            for f in range(3):
                ref = np.asarray(Image.fromarray(x[i, f].permute(1, 2, 0).numpy()).rotate(angle))
                assert np.array_equal(y[i, f].permute(1, 2, 0).numpy(), ref)


@pytest.mark.parametrize("s", [1, 5])
def test_rotate_turns_each_frame_by_its_own_integer_angle_in_range(s):
    m = 6 * s + 1
    x = clips(n=2, t=6, c=1, h=20, w=20)
    y = dc.corrupt_video(x, "rotate", s, seed=4)
    seen = set()
    for i in range(2):
        for f in range(6):
            img = x[i, f, 0].numpy()
            match = [a for a in range(-m, m + 1)
                     if np.array_equal(y[i, f, 0].numpy(), np.asarray(Image.fromarray(img).rotate(a)))]
            assert match, (i, f)
            seen.add(match[0])
    assert len(seen) > 1


def test_translate_shifts_the_whole_clip_by_one_offset_in_range():
    x = clips(n=40, t=3, c=1, h=48, w=48)
    for s, bound in enumerate((8, 16, 24, 32, 40), 1):
        y = dc.corrupt_video(x, "translate", s, index=torch.arange(40))
        offsets = _rng.integers(V.clip_seeds(0, "translate", s, range(40)), 0, (2,), bound)
        assert int(offsets.max()) < bound and int(offsets.min()) >= 0
        for i, (dy, dx) in enumerate(offsets.tolist()):
            want = torch.zeros_like(x[i])
            want[:, :, :48 - dy, :48 - dx] = x[i, :, :, dy:, dx:]
            assert torch.equal(y[i], want)


# --- determinism, devices, errors -------------------------------------------------------------------
@pytest.mark.parametrize("name", V.VIDEO_NAMES)
def test_a_clip_gets_the_same_corruption_in_any_batch(name):
    x = clips(n=5, t=16, h=24, w=24)
    index = torch.tensor([10, 3, 77, 4, 0])
    s = 1 if name == "box_jumble" else 3  # box_jumble's chunks at severity 3 (16 frames) would hold the whole clip
    whole = dc.corrupt_video(x, name, s, seed=9, index=index)
    for i in range(5):
        assert torch.equal(dc.corrupt_video(x[i:i + 1], name, s, seed=9, index=index[i:i + 1]), whole[i:i + 1])
    assert torch.equal(dc.corrupt_video(x[1:4], name, s, seed=9, index=index[1:4]), whole[1:4])
    if name not in ("compression", "defocus_blur", "zoom_blur", "static_rotate", "sampling", "reverse_sampling"):
        other = dc.corrupt_video(x, name, s, seed=10, index=index)
        assert not torch.equal(other, whole), name  # a random corruption depends on the seed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", V.VIDEO_NAMES)
def test_cuda_agrees_with_the_cpu(name):
    x = clips(n=2, t=8, h=32, w=32)
    cpu = dc.corrupt_video(x, name, 3)
    gpu = dc.corrupt_video(x.cuda(), name, 3)
    assert gpu.device.type == "cuda" and gpu.shape == cpu.shape
    assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1


def test_bad_arguments_give_one_line_errors():
    x = clips(n=1)
    cases = [
        (dict(name="blur"), "name='blur' is invalid; allowed: motion_blur"),
        (dict(severity=0), "severity=0 is invalid; allowed: 1, 2, 3, 4, 5"),
        (dict(severity=True), "severity=True is invalid"),
        (dict(severity=2.0), "severity=2.0 is invalid"),
        (dict(x=x.float()), "x.dtype=torch.float32 is invalid; allowed: torch.uint8"),
        (dict(x=x[0]), "x.shape=(8, 3, 24, 32) is invalid; allowed: (N, T, C, H, W)"),
        (dict(x=x[:, :, :2]), "x.shape=(1, 8, 2, 24, 32) is invalid"),
        (dict(x=x.numpy()), "x=ndarray is invalid"),
        (dict(table="cifar"), "table='cifar' is invalid; allowed: None, ucf101, small"),
        (dict(frames=0), "frames=0 is invalid"),
        (dict(index=torch.tensor([1, 2])), "index=(2,) torch.int64 is invalid"),
    ]
    for kwargs, message in cases:
        args = dict(x=x, name="gaussian_noise", severity=1)
        args.update(kwargs)
        with pytest.raises(ValueError) as e:
            dc.corrupt_video(args.pop("x"), args.pop("name"), args.pop("severity"), **args)
        assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)
