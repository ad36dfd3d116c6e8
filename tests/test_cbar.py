"""ImageNet-C-bar / CIFAR-10-C-bar behaviour: tables, determinism and batch independence,
explicit fields, distributions of the drawn parameters against the reference's sampler,
grayscale, clear errors. Pixel fidelity against the oracles is in test_cbar_fidelity.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import corruptions as C
from dstlib.corruptions import cbar
from _cbar_refs import oracle, sample_parameters
from _corruption_refs import natural_images, to_hwc

stats = pytest.importorskip("scipy.stats")

REFERENCE_IMAGENET = ("blue_noise_sample", "brownish_noise", "caustic_refraction", "checkerboard_cutout",
                      "cocentric_sine_waves", "inverse_sparkles", "perlin_noise", "plasma_noise",
                      "single_frequency_greyscale", "sparkles")
TABLE_SIZE = {"cifar": 32, "imagenet": 224}
ALL = [(n, "imagenet") for n in C.CBAR_NAMES] + [(n, "cifar") for n in C.CIFAR_CBAR_NAMES]


def test_names_and_levels_are_the_reference_csvs():
    assert C.CBAR_NAMES == REFERENCE_IMAGENET
    assert set(C.CIFAR_CBAR_NAMES) == {"blue_noise_sample", "brownish_noise", "checkerboard_cutout",
                                       "circular_motion_blur", "inverse_sparkles", "lines", "pinch_and_twirl",
                                       "ripple", "sparkles", "transverse_chromatic_abberation"}
    assert cbar.IMAGENET_LEVELS["caustic_refraction"] == (2.35, 3.2, 4.9, 6.6, 9.15)
    assert cbar.CIFAR_LEVELS["sparkles"] == (0.7, 3.5, 5.6, 6.3, 7.0)
    assert cbar.level("imagenet", "plasma_noise", 1) == 4.75 and cbar.level("cifar", "lines", 5) == 2.5
    # derived parameters as the reference computes them (level * maxval / 10, in that order)
    assert cbar.fp(3.0, 0.1) * 224 == 6.7200000000000015
    assert [round(cbar.fp(v, 3.0) - 2.5, 2) for v in cbar.IMAGENET_LEVELS["blue_noise_sample"]] == \
        [-2.26, -2.02, -1.78, -1.3, -0.82]
    assert [int(cbar.fp(v, 1.0) * 32) for v in cbar.CIFAR_LEVELS["lines"]] == [1, 3, 4, 6, 8]


def test_default_table_by_size():
    assert cbar.default_table(28, 28) == "cifar" and cbar.default_table(84, 84) == "cifar"
    assert cbar.default_table(85, 85) == "imagenet" and cbar.default_table(224, 224) == "imagenet"
    x = natural_images(1, 28, seed=1, gray=True)
    assert C.corrupt(x, "sparkles", 2).shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="not in the imagenet C-bar set"):
        C.corrupt(natural_images(1, 96, seed=1), "ripple", 1)


@pytest.mark.parametrize("name,table", ALL)
def test_pure_function_of_image_index_and_seed(name, table):
    """The same image at the same dataset index gets the same pixels alone, in a batch
    spanning CPU parts, and again; another index or seed gives other draws."""
    size = TABLE_SIZE[table] if table == "cifar" else 96
    n = 3 if table == "imagenet" else 5
    x = natural_images(n, size, seed=2)
    idx = torch.tensor([7, 3, 11, 0, 5][:n])
    saved = cbar.PART_PIXELS
    try:
        cbar.PART_PIXELS = 2 * size * size  # parts of two images: the batch spans several
        whole = C.corrupt(x, name, 4, seed=9, table=table, index=idx)
    finally:
        cbar.PART_PIXELS = saved
    for i in range(n):
        alone = C.corrupt(x[i:i + 1], name, 4, seed=9, table=table, index=idx[i:i + 1])
        assert torch.equal(whole[i:i + 1], alone), (name, i)
    assert torch.equal(C.corrupt(x, name, 4, seed=9, table=table, index=idx), whole)
    if cbar.FIELDS[name]:
        other = C.corrupt(x, name, 4, seed=10, table=table, index=idx)
        assert not torch.equal(other, whole)
        f = C.random_fields(x[:1].expand(5, -1, -1, -1), name, 4, seed=9, table=table, index=torch.arange(5))
        assert any(not torch.equal(v[i], v[0]) for v in f.values() for i in range(1, 5))  # indices differ


@pytest.mark.parametrize("name", C.CIFAR_CBAR_NAMES)
def test_cifar_batch_beyond_a_cpu_chunk(name):
    """A batch longer than a CPU chunk (392 images at 32 px) and a part: image i as alone."""
    x = natural_images(6, 32, seed=3).repeat(70, 1, 1, 1)   # 420 images
    out = C.corrupt(x, name, 3, seed=1)
    for i in (0, 130, 391, 392, 419):
        assert torch.equal(out[i:i + 1], C.corrupt(x[i:i + 1], name, 3, seed=1, index=torch.tensor([i])))


@pytest.mark.parametrize("name,table", ALL)
def test_explicit_fields_reproduce_the_draws(name, table):
    x = natural_images(2, 40 if table == "cifar" else 96, seed=4)
    f = C.random_fields(x, name, 2, seed=3, table=table)
    assert set(f) == set(cbar.FIELDS[name]) and all(v.device.type == "cpu" and v.shape[0] == 2 for v in f.values())
    assert torch.equal(C.corrupt(x, name, 2, seed=3, table=table, fields=f), C.corrupt(x, name, 2, seed=3, table=table))
    if f:
        with pytest.raises(ValueError, match="fields="):
            C.corrupt(x, name, 2, table=table, fields={})


@pytest.mark.parametrize("name,table", ALL)
def test_severity_5_corrupts_more_than_severity_1(name, table):
    x = natural_images(6, 32 if table == "cifar" else 96, seed=5)
    diff = [(C.corrupt(x, name, s, seed=2, table=table).float() - x.float()).abs().mean().item() for s in (1, 5)]
    assert diff[1] > diff[0] > 0, diff


# ------------------------------------------------------------------ distributions
def _ours(name, im, n=3000):
    x = torch.zeros((n, 1, im, im), dtype=torch.uint8)
    return C.random_fields(x, name, 3, seed=0, table="cifar" if im <= 84 else "imagenet")


def _reference(name, im, n=3000):
    rs = np.random.RandomState(1234)
    draws = [sample_parameters(name, im, rs) for _ in range(n)]
    return {k: np.stack([np.asarray(d[k], dtype=np.float64) for d in draws]) for k in draws[0]}


@pytest.mark.parametrize("name,table", [a for a in ALL if cbar.FIELDS[a[0]]])
def test_drawn_parameters_follow_the_reference_distribution(name, table):
    """Each component of each field: two-sample Kolmogorov-Smirnov against the reference's
    sampler for continuous draws, equal support and chi-square for discrete ones."""
    im = TABLE_SIZE[table]
    ours, ref = _ours(name, im), _reference(name, im)
    assert set(ours) == set(ref)
    for k in ours:
        a = ours[k].double().numpy().reshape(len(ours[k]), -1)
        b = ref[k].reshape(len(ref[k]), -1)
        assert a.shape[1] == b.shape[1], k
        for j in range(a.shape[1]):
            u, v = a[:, j], b[:, j]
            if len(np.unique(v)) <= 200 and np.all(v == np.round(v)):   # discrete
                vals = np.union1d(np.unique(u), np.unique(v))
                assert set(np.unique(u)) <= set(np.unique(v)) | set(range(int(v.min()), int(v.max()) + 1)), k
                cu = np.array([(u == t).sum() for t in vals])
                cv = np.array([(v == t).sum() for t in vals])
                p = stats.chi2_contingency(np.stack([cu, cv]))[1] if len(vals) > 1 else 1.0
            else:
                p = stats.ks_2samp(u, v).pvalue
            assert p > 1e-4, (name, k, j, p)


def test_single_frequency_order_and_seeds_are_fair():
    f = _ours("single_frequency_greyscale", 224, 4000)
    first_is_larger = (f["freq"][:, 0].abs() >= f["freq"][:, 1].abs()).double().mean().item()
    assert abs(first_is_larger - 0.5) < 0.04  # permutation(2): either order
    s = _ours("perlin_noise", 224, 4000)["seed"]
    assert s.min() >= 0 and s.max() < 2 ** 32 and s.max() > 2 ** 31  # the full 32-bit range


def test_reseeded_random_state_is_a_fresh_one():
    for seed in (0, 1, 2 ** 32 - 1, 123456789):
        a = cbar.random_state(seed)
        got = (a.uniform(size=3), a.randn(5), a.randint(0, 2 ** 31, size=2))
        b = np.random.RandomState(seed)
        want = (b.uniform(size=3), b.randn(5), b.randint(0, 2 ** 31, size=2))
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


# ------------------------------------------------------------------ pieces and quirks
def test_line_aa_is_skimages():
    from skimage.draw import line_aa as ref

    from dstlib.corruptions.cbar_obscure import line_aa

    rng = np.random.default_rng(0)
    ends = rng.integers(-40, 80, (300, 4))
    ends[:5] = [[3, 3, 3, 3], [0, 0, 10, 0], [0, 0, 0, 10], [5, 9, 5, -9], [10, 10, 0, 0]]
    rr, cc, val, ok = line_aa(*(ends[:, i] for i in range(4)))
    for j, (r0, c0, r1, c1) in enumerate(ends.tolist()):
        er, ec, ev = ref(r0, c0, r1, c1)
        m = ok[j]
        assert np.array_equal(rr[j][m], er) and np.array_equal(cc[j][m], ec)
        assert np.allclose(val[j][m], ev, rtol=0, atol=1e-12)
        assert len(set(zip(er.tolist(), ec.tolist()))) == len(er)  # no pixel twice: the blend may read all first


def test_zero_perlin_gradient_gives_black_pixels_as_the_reference():
    """A gradient drawn as (0, 0) normalises to NaN; numpy casts the NaN pixels to 0."""
    from dstlib.corruptions.cbar_noise import perlin_tables

    seed = next(s for s in range(20000) if np.isnan(perlin_tables(s)[1][:256]).any())
    x = natural_images(1, 64, seed=6)
    f = {"seed": torch.tensor([seed])}
    ours = to_hwc(C.corrupt(x, "perlin_noise", 3, table="imagenet", fields=f))[0]
    assert (ours == 0).all(axis=2).mean() > 0.001
    ref = oracle("perlin_noise", to_hwc(x)[0], {"seed": seed}, cbar.level("imagenet", "perlin_noise", 3))
    assert np.mean(np.abs(ours.astype(int) - ref.astype(int)) <= 1) > 0.999


@pytest.mark.parametrize("name", ["plasma_noise", "transverse_chromatic_abberation"])
def test_gray_is_the_luma_of_the_colour_result(name):
    table = "imagenet" if name == "plasma_noise" else "cifar"
    g = natural_images(3, 64 if table == "imagenet" else 32, seed=7, gray=True)
    f = C.random_fields(g, name, 3, seed=1, table=table)
    gray = C.corrupt(g, name, 3, table=table, fields=f).float()
    rgb = C.corrupt(g.repeat(1, 3, 1, 1), name, 3, table=table, fields=f).float()
    luma = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    assert (gray - luma).abs().max() <= 1.0


@pytest.mark.parametrize("name", ["sparkles", "brownish_noise", "checkerboard_cutout", "lines"])
def test_gray_channel_is_the_first_channel_of_colour(name):
    """Channel-wise corruptions act on the one channel as on the first of three."""
    g = natural_images(3, 32, seed=8, gray=True)
    one = C.corrupt(g, name, 4, seed=2)
    three = C.corrupt(g.repeat(1, 3, 1, 1), name, 4, seed=2)
    assert torch.equal(one[:, 0], three[:, 0])


def test_clear_errors():
    x = natural_images(2, 32, seed=9)
    with pytest.raises(ValueError, match="square images"):
        C.corrupt(x[:, :, :, :30], "sparkles", 1)
    with pytest.raises(ValueError, match="table='tiny' is invalid for sparkles; allowed: None, cifar, imagenet"):
        C.corrupt(x, "sparkles", 1, table="tiny")
    with pytest.raises(ValueError, match="'caustic_refraction' is not in the cifar C-bar set"):
        C.corrupt(x, "caustic_refraction", 1)
    with pytest.raises(ValueError, match="severity=6"):
        C.corrupt(x, "lines", 6)
    with pytest.raises(ValueError, match="name='sparkle'.*sparkles"):
        C.corrupt(x, "sparkle", 1)
    with pytest.raises(ValueError, match="up to 48 px"):
        C.corrupt(natural_images(1, 64, seed=9), "circular_motion_blur", 1)
    with pytest.raises(ValueError, match="fields\\['seed'\\].shape"):
        C.corrupt(x, "lines", 1, fields={"angle": torch.zeros(2), "angle_variation": torch.zeros(2),
                                         "seed": torch.zeros(3)})


def test_saved_as_jpeg_for_the_imagenet_table_only():
    x = natural_images(2, 96, seed=10)
    y = C.corrupt(x, "sparkles", 2)
    assert torch.equal(C.corrupt_as_saved(x, "sparkles", 2), C.jpeg_roundtrip(y, 85))
    s = natural_images(2, 32, seed=10)
    assert torch.equal(C.corrupt_as_saved(s, "sparkles", 2), C.corrupt(s, "sparkles", 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,table", ALL)
def test_cuda_matches_cpu(name, table):
    x = natural_images(3, 32 if table == "cifar" else 224, seed=11)
    f = C.random_fields(x.cuda(), name, 3, seed=4, table=table)
    assert all(torch.equal(f[k], v) for k, v in C.random_fields(x, name, 3, seed=4, table=table).items())
    cpu = C.corrupt(x, name, 3, seed=4, table=table)
    gpu = C.corrupt(x.cuda(), name, 3, seed=4, table=table)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8
    d = (gpu.cpu().int() - cpu.int()).abs()
    assert (d <= 1).float().mean() >= 0.999 and (d <= 2).float().mean() >= 0.9999, (d.max(), (d > 1).sum())
    one = C.corrupt(x[1:2].cuda(), name, 3, seed=4, table=table, index=torch.tensor([1]))
    assert torch.equal(one, gpu[1:2])
