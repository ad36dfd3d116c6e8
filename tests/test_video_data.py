"""Video data: Moving Fashion-MNIST (clips of real garments whose label is the motion) and UCF101 read from tiny
real .avi files and split files written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dstlib import data
from dstlib.data import moving, ucf101

av = pytest.importorskip("av")


# --- Moving Fashion-MNIST ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mfm():
    return data.load("moving_fashion_mnist", "train"), data.load("moving_fashion_mnist", "test")


def test_moving_fashion_mnist_splits_shapes_and_labels(mfm):
    train, test = mfm
    info = data.info("moving_fashion_mnist")
    assert isinstance(train, data.ClipSet) and info.frames == moving.FRAMES == 8
    assert train.images.shape == (moving.TRAIN_CLIPS, 8, 1, moving.SIZE, moving.SIZE)
    assert test.images.shape == (moving.TEST_CLIPS, 8, 1, moving.SIZE, moving.SIZE)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    counts = torch.bincount(train.labels, minlength=8)
    assert counts.sum() == moving.TRAIN_CLIPS and counts.min() > 0.8 * moving.TRAIN_CLIPS / 8
    x = train.images.float() / 255  # the normalisation constants are the training clips' statistics
    assert abs(float(x.mean()) - info.mean[0]) < 1e-3 and abs(float(x.std()) - info.std[0]) < 1e-3


def test_moving_fashion_mnist_is_deterministic_and_keeps_the_fashion_mnist_split(mfm):
    train, test = mfm
    p = moving.trajectories("test")
    fm_test = data.load("fashion_mnist", "test").images
    fm_train = data.load("fashion_mnist", "train").images
    again = moving.render(fm_test[:5], {k: v[:5] for k, v in p.items()}, moving.clip_frames())
    assert torch.equal(again, test.images[:5])
    wrong = moving.render(fm_train[:5], {k: v[:5] for k, v in p.items()}, moving.clip_frames())
    assert not torch.equal(wrong, test.images[:5])  # test clips show test images
    other = moving.trajectories("test", seed=1)
    assert not torch.equal(other["label"], p["label"])


def test_clips_are_the_uniform_sample_of_their_whole_videos(mfm):
    _, test = mfm
    videos = test.videos([3, 0, 11])
    assert [tuple(v.shape) for v in videos] == [(moving.LENGTH, 1, moving.SIZE, moving.SIZE)] * 3
    idx = moving.uniform_indices(moving.LENGTH, moving.FRAMES)
    for v, i in zip(videos, (3, 0, 11)):
        assert torch.equal(v[idx], test.images[i])
    sub = test.subset(torch.tensor([11, 3]))  # a subset keeps each clip's video
    assert torch.equal(sub.videos([0])[0], videos[2]) and torch.equal(sub.images[1], test.images[3])


def _centroid(clip):
    w = clip[:, 0].double()
    ys, xs = torch.meshgrid(torch.arange(w.shape[1]).double(), torch.arange(w.shape[2]).double(), indexing="ij")
    m = w.sum((1, 2))
    return (w * xs).sum((1, 2)) / m, (w * ys).sum((1, 2)) / m, m


def test_the_label_is_the_motion(mfm):
    _, test = mfm
    x, y = test.images[:600], test.labels[:600]
    votes = {k: 0 for k in range(8)}
    totals = {k: int((y == k).sum()) for k in range(8)}
    for clip, label in zip(x, y.tolist()):
        videos_x, videos_y, mass = _centroid(clip)
        dx, dy, grow = float(videos_x[-1] - videos_x[0]), float(videos_y[-1] - videos_y[0]), float(mass[-1] / mass[0])
        expected = {0: dx > 0, 1: dx < 0, 2: dy > 0, 3: dy < 0, 6: grow > 1, 7: grow < 1}
        votes[label] += expected.get(label, True)
    for k in (0, 1, 2, 3, 6, 7):  # the centroid moves, the garment grows or shrinks, as the label says
        assert votes[k] > 0.85 * totals[k], (moving.MOTIONS[k], votes[k], totals[k])


# --- UCF101 ---------------------------------------------------------------------------------------
CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "Hammering", "HammerThrow"]  # official order: case-insensitive


def _write_avi(path, frames, codec="ffv1"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture()
def ucf(tmp_path):
    """A tiny UCF101: 4 classes x 3 videos (groups g01-g03), lossless, 32 x 24 px, 9-20 frames; split 1 puts g01
    in the test list. The HandstandPushups folder holds v_HandStandPushups_* files, as the real set does."""
    rng = np.random.default_rng(0)
    root = tmp_path / "UCF-101"
    written = {}
    for ci, cls in enumerate(CLASSES):
        stem = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in (1, 2, 3):
            name = f"v_{stem}_g0{g}_c01.avi"
            frames = rng.integers(0, 256, (9 + 4 * g + ci, 24, 32, 3), dtype=np.uint8)
            _write_avi(root / cls / name, frames)
            written[f"{cls}/{name}"] = frames
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(CLASSES)))
    train = [f"{k} {CLASSES.index(k.split('/')[0]) + 1}" for k in written if "_g01_" not in k]
    test = [k for k in written if "_g01_" in k]
    # the real lists spell HandStandPushups' files as the disk does; one entry here differs in case
    test = [t.replace("v_ApplyEyeMakeup", "v_applyeyemakeup") for t in test]
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n\r\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, written


def test_ucf101_labels_follow_class_ind_and_files_resolve(ucf, monkeypatch, tmp_path):
    root, written = ucf
    files, labels = ucf101.entries(root, "train", 1)
    assert len(files) == 8 and all(f.is_file() for f in files)
    assert [CLASSES[i] for i in labels.tolist()] == [f.parent.name for f in files]
    test_files, test_labels = ucf101.entries(root, "test", 1)
    assert [f.name for f in test_files][0] == "v_ApplyEyeMakeup_g01_c01.avi"  # found case-insensitively
    assert test_labels.tolist() == [0, 1, 2, 3]


def test_ucf101_clips_are_uniform_frames_resized_and_cached(ucf, monkeypatch, tmp_path):
    root, written = ucf
    monkeypatch.setenv("DSTLIB_CACHE", str(tmp_path / "cache"))
    test = data.load("ucf101", "test", root=root)
    assert isinstance(test, data.ClipSet) and len(test) == 4
    clips = test.images
    assert clips.shape == (4, 8, 3, 224, 224) and clips.dtype == torch.uint8
    files, _ = ucf101.entries(root, "test", 1)
    for i, f in enumerate(files):
        frames = written[f"{f.parent.name}/{f.name}"]
        assert np.array_equal(ucf101.decode(f), frames)  # lossless files: decoding is exact
        want = ucf101.preprocess(frames[ucf101.clip_indices(len(frames), 8)])
        assert torch.equal(clips[i], want)
        whole = test.videos([i])[0]
        assert whole.shape == (len(frames), 3, 224, 224)
        assert torch.equal(whole[ucf101.clip_indices(len(frames))], clips[i])
    cached = list((tmp_path / "cache").glob("ucf101_test01_8x224_*.npy"))
    assert len(cached) == 1
    # a second read takes the cache and decodes nothing
    monkeypatch.setattr(ucf101, "decode", lambda path: (_ for _ in ()).throw(AssertionError("decoded again")))
    assert torch.equal(data.load("ucf101", "test", root=root).images, clips)


def test_ucf101_preprocess_is_the_reference_test_transform():
    tf = pytest.importorskip("torchvision.transforms.functional")
    frames = np.random.default_rng(1).integers(0, 256, (2, 240, 320, 3), dtype=np.uint8)
    ours = ucf101.preprocess(frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    ref = tf.resize(tf.center_crop(tf.resize(x, 280, antialias=True), 280), 224, antialias=True)
    assert ours.shape == (2, 3, 224, 224)
    assert (ours.float() - ref * 255).abs().max() <= 0.5 + 1e-3


def test_ucf101_reads_an_mpeg4_avi(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (12, 24, 32, 3), dtype=np.uint8)
    path = tmp_path / "v_X_g01_c01.avi"
    _write_avi(path, frames, codec="mpeg4")
    assert ucf101.decode(path).shape == (12, 24, 32, 3)
    assert ucf101.read_clip(path, 8, size=32).shape == (8, 3, 32, 32)


def test_ucf101_missing_or_malformed_gives_one_clear_error(ucf, tmp_path):
    root, _ = ucf
    with pytest.raises(FileNotFoundError) as e:
        data.load("ucf101", "test", root=tmp_path / "nowhere")
    assert "UCF101 not found in" in str(e.value) and "<root>/<Class>/v_<Class>_gXX_cYY.avi" in str(e.value)
    assert "\n" not in str(e.value)
    lists = root / "ucfTrainTestlist"
    (lists / "testlist01.txt").write_text("Hammering/v_Hammering_g09_c01.avi\n")
    with pytest.raises(FileNotFoundError, match=r"v_Hammering_g09_c01.avi: listed in testlist01.txt but missing"):
        ucf101.entries(root, "test")
    (lists / "trainlist01.txt").write_text("Hammering/v_Hammering_g02_c01.avi 1\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt:1: label 1 disagrees with classInd.txt \(3 for Hammering\)"):
        ucf101.entries(root, "train")
    (lists / "trainlist01.txt").write_text("just-a-name\n")
    with pytest.raises(ValueError, match=r"trainlist01.txt:1: malformed line 'just-a-name'"):
        ucf101.entries(root, "train")
    with pytest.raises(ValueError, match="fold=4 is invalid; allowed: 1, 2, 3"):
        ucf101.entries(root, "train", 4)
    bad = root / "Hammering" / "v_Hammering_g02_c01.avi"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="cannot decode video"):
        ucf101.decode(bad)
