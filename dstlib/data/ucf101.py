"""UCF101 (Soomro et al. 2012) from its videos and official split files, decoded with PyAV.

Layout (`LAYOUT`): the videos at `<root>/<Class>/v_<Class>_gXX_cYY.avi` and
the split files of `ucfTrainTestlist` (`classInd.txt`, `trainlist0N.txt`,
`testlist0N.txt`, N = 1, 2, 3) in `<root>` or `<root>/ucfTrainTestlist`.
Labels come from classInd.txt ("<1-based index> <Class>", the official
case-insensitive alphabetical order), 0-based; a trainlist's own label must
agree with it. Known quirks handled: Windows line ends and blank lines in
the lists; the class of an entry taken from its folder, not its file name
(the HandstandPushups folder holds v_HandStandPushups_* files); an entry
whose file differs in letter case from the disk is found case-insensitively
within its class folder.

Clips (the reference's `ActionRecognitionUniformFrames`, with its evident
intent): T frames (8) sampled uniformly, the middle frame of each of T equal
intervals of the decoded video (the released code takes the first, a
`fix_start` default); each frame resized so its shorter side is 280 px
(bilinear, antialiased), centre-cropped to 280 x 280 and resized to 224 x 224,
then rounded to uint8: the reference's test transform
(Resize(280), CenterCrop(280), Resize(224)) before normalisation. Training
clips are the same; the training loop's `rrc_flip` takes a random-resized
crop of area 0.5-1 and a flip from them (the reference crops the native
320 x 240 frame instead). Whole videos (`ClipSet.videos`) get every frame
the same transform.

Whole videos (for the temporal corruptions) are decoded on request, a batch's
videos in threads. Decoding all clips of a split takes long (13,320 videos), so
it runs once in `workers` processes and the uint8 clips are cached as a .npy file in
`$DSTLIB_CACHE` or `<root>/.dstlib_cache` (written to a temporary name and
renamed), memory-mapped on later reads.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FOLDS = (1, 2, 3)
FRAMES = 8
RESIZE = 280
SIZE = 224
LAYOUT = ("<root>/<Class>/v_<Class>_gXX_cYY.avi and the split files classInd.txt, trainlist0N.txt, "
          "testlist0N.txt (N = 1, 2, 3) in <root> or <root>/ucfTrainTestlist")


def split_folder(root: Path) -> Path:
    """The folder holding classInd.txt: <root> or <root>/ucfTrainTestlist."""
    for folder in (root, root / "ucfTrainTestlist"):
        if (folder / "classInd.txt").is_file():
            return folder
    raise FileNotFoundError(f"UCF101 split files not found in {root}; expected {LAYOUT}")


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; expected {LAYOUT}")
    return [(i, ln.strip()) for i, ln in enumerate(path.read_text(errors="replace").splitlines(), 1) if ln.strip()]


def class_index(root: Path) -> dict[str, int]:
    """{Class: 0-based label} from classInd.txt."""
    path = split_folder(root) / "classInd.txt"
    out = {}
    for i, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{i}: malformed line {line!r}; expected '<1-based index> <Class>'")
        out[parts[1]] = int(parts[0]) - 1
    if sorted(out.values()) != list(range(len(out))):
        raise ValueError(f"{path}: class indices are not 1..{len(out)}")
    return out


def _resolve(root: Path, entry: str, listed_in: Path) -> Path:
    path = root / entry
    if path.is_file():
        return path
    folder = path.parent
    if folder.is_dir():
        for f in folder.iterdir():
            if f.name.lower() == path.name.lower():
                return f
    raise FileNotFoundError(f"{path}: listed in {listed_in.name} but missing; expected {LAYOUT}")


def entries(root: str | os.PathLike, split: str, fold: int = 1) -> tuple[list[Path], torch.Tensor]:
    """(video paths, int64 labels) of trainlist0<fold> (split "train") or testlist0<fold> ("test")."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is invalid; allowed: train, test")
    if fold not in FOLDS:
        raise ValueError(f"fold={fold!r} is invalid; allowed: 1, 2, 3")
    classes = class_index(root)
    lower = {c.lower(): i for c, i in classes.items()}
    path = split_folder(root) / f"{split}list0{fold}.txt"
    files, labels = [], []
    for i, line in _lines(path):
        parts = line.split()
        if not 1 <= len(parts) <= 2 or "/" not in parts[0] or (len(parts) == 2 and not parts[1].isdigit()):
            raise ValueError(f"{path}:{i}: malformed line {line!r}; expected '<Class>/<file>.avi[ <label>]'")
        cls = parts[0].split("/")[0]
        if cls.lower() not in lower:
            raise ValueError(f"{path}:{i}: class {cls!r} is not in classInd.txt")
        label = lower[cls.lower()]
        if len(parts) == 2 and int(parts[1]) - 1 != label:
            raise ValueError(f"{path}:{i}: label {parts[1]} disagrees with classInd.txt ({label + 1} for {cls})")
        files.append(_resolve(root, parts[0], path))
        labels.append(label)
    if not files:
        raise ValueError(f"{path}: lists no videos; expected {LAYOUT}")
    return files, torch.tensor(labels, dtype=torch.int64)


# --- decoding -----------------------------------------------------------------------------------------
def decode(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a video, uint8 (L, H, W, 3) RGB (PyAV)."""
    import av
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.FFmpegError, IndexError, ValueError) as e:
        raise ValueError(f"{path}: cannot decode video ({e})") from None
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    return np.stack(frames)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def preprocess(frames: np.ndarray, resize: int = RESIZE, size: int = SIZE) -> torch.Tensor:
    """uint8 (k, H, W, 3) -> uint8 (k, 3, size, size): shorter side to `resize` (torchvision's Resize: the
    longer side int(resize * long / short)), centre crop resize x resize (offsets rounded), resize to `size`."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    nh, nw = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
    x = _resize(x, (nh, nw))
    top, left = int(round((nh - resize) / 2.0)), int(round((nw - resize) / 2.0))
    x = _resize(x[..., top:top + resize, left:left + resize], (size, size))
    return x.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


def clip_indices(length: int, frames: int = FRAMES) -> np.ndarray:
    """The middle frame of each of `frames` equal intervals of [0, length)."""
    edges = [(k * length) // frames for k in range(frames + 1)]
    return np.array([max(edges[k], (edges[k] + edges[k + 1] - 1) // 2) for k in range(frames)])


def read_clip(path, frames: int = FRAMES, resize: int = RESIZE, size: int = SIZE) -> np.ndarray:
    """One video's clip, uint8 (frames, 3, size, size)."""
    video = decode(path)
    return preprocess(video[clip_indices(len(video), frames)], resize, size).numpy()


def read_video(path, resize: int = RESIZE, size: int = SIZE) -> torch.Tensor:
    """One whole video, uint8 (L, 3, size, size)."""
    return preprocess(decode(path), resize, size)


def _cache_path(root: Path, files: list[Path], split: str, fold: int, frames: int, size: int) -> Path:
    base = Path(os.environ["DSTLIB_CACHE"]) if os.environ.get("DSTLIB_CACHE") else root / ".dstlib_cache"
    ident = hashlib.sha256("\n".join(str(f.relative_to(root)) for f in files).encode()).hexdigest()[:12]
    return base / f"ucf101_{split}0{fold}_{frames}x{size}_{ident}.npy"


def decode_clips(files: list[Path], frames: int = FRAMES, size: int = SIZE, workers: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (n, frames, 3, size, size): every file's clip, decoded in `workers` processes (default: one per CPU)."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    out = np.empty((len(files), frames, 3, size, size), dtype=np.uint8) if out is None else out
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 64:  # starting processes costs more than a few videos
        for i, f in enumerate(files):
            out[i] = read_clip(f, frames, RESIZE, size)
        return out
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, clip in enumerate(pool.map(read_clip, files, [frames] * len(files), [RESIZE] * len(files),
                                          [size] * len(files), chunksize=8)):
            out[i] = clip
    return out


def cached_clips(root: Path, files: list[Path], split: str, fold: int, frames: int = FRAMES,
                 size: int = SIZE) -> torch.Tensor:
    """The split's clips from the .npy cache, decoding and caching them first when missing."""
    path = _cache_path(root, files, split, fold, frames, size)
    shape = (len(files), frames, 3, size, size)
    if path.is_file():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == shape and arr.dtype == np.uint8:
            return torch.from_numpy(np.array(arr))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        decode_clips(files, frames, size, out=arr)
        arr.flush()
        del arr
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return torch.from_numpy(np.load(path))


def read(roots: list[Path], split: str, info, fold: int = 1):
    """The split's `ClipSet` (lazy: clips are decoded, or read from the cache, on first access to `images`)."""
    from dstlib.data import ClipSet

    tried = []
    for root in map(Path, roots):
        tried.append(str(root))
        try:
            split_folder(root)
        except FileNotFoundError:
            continue
        files, labels = entries(root, split, fold)

        def videos(index: torch.Tensor, files=files) -> list[torch.Tensor]:
            from concurrent.futures import ThreadPoolExecutor  # PyAV and torch release the GIL while they work
            paths = [files[int(i)] for i in index]
            with ThreadPoolExecutor(max(1, min(len(paths), os.cpu_count() or 1))) as pool:
                return list(pool.map(lambda f: read_video(f, RESIZE, info.image_size), paths))
        return ClipSet(info, None, labels, read_videos=videos,
                       load_clips=lambda: cached_clips(root, files, split, fold, info.frames, info.image_size))
    raise FileNotFoundError(f"UCF101 not found in {', '.join(tried)}; expected {LAYOUT} "
                            "(set DSTLIB_DATA to the folder holding ucf101/)")
