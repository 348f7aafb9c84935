"""Image sources -> uint8 arrays; stratified train/validation split; on-disk cache.

CIFAR-10 (torchvision's download, its python batches, or an image folder of its classes) is
the default; any image folder (`train/<class>/*`, optional `val/` and `test/`) of any
number of classes and any image size works too, its images resized to a square of the size
the spec sets (data.image_size: the short side scaled, then the center cropped). Every
source is decoded once into uint8 arrays of shape (N, S, S, 3) with int64 labels and its
class names, and cached as an .npz keyed by the source (path, size and mtime) and S, so a
second load reads raw arrays instead of decoding every image again.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_sweeps.errors import DataSourceError

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IMAGE_FORMATS = ("JPEG", "PNG", "BMP")  # Pillow's names of the suffixes' formats: no other decoder runs
MAX_IMAGE_PIXELS = 4096 * 4096  # per image: a decompression bomb is refused before it decodes
MAX_IMAGE_BYTES = 32 * 2**20  # per image file or tar member (bytes)
MAX_BATCH_BYTES = 64 * 2**20  # per CIFAR-10 python batch (each is about 31 MiB)
CACHE_MAX_MB = 20_480.0  # the data cache folder's cap (MiB); least recently used files go first
BATCH_NAMES = frozenset({f"data_batch_{i}" for i in range(1, 6)} | {"test_batch"})
CIFAR_SIZE = 32
SPLIT_NAMES = ("train", "val", "test")
MAX_CLASSES = 10_000
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


@dataclass(frozen=True)
class Cifar:
    """The train and test splits as uint8 images (N, S, S, 3) and int64 labels (N,), the
    class names (label i is classes[i]) and, where the source has one, its validation split.
    A source with no test split has an empty one (load_splits carves it from train)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = CLASSES
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class Splits:
    """Train / validation (carved from train, stratified) / test, as uint8 arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = CLASSES

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[1])


def dataset_name(source: str, classes: tuple[str, ...], image_size: int) -> str:
    """The data set a sweep's models are ranked within: cifar10 for CIFAR-10 at 32x32 in any
    of its forms, synthetic for the generated images, else the folder's or archive's name,
    with the size where it is not 32 (a model of 48x48 images is another task)."""
    source = source.strip()
    if source.startswith("synthetic:"):
        base = "synthetic"
    elif tuple(classes) == CLASSES:
        base = "cifar10"
    else:
        name = Path(source.rstrip("/")).name
        for suffix in TAR_SUFFIXES:
            name = name.removesuffix(suffix)
        base = name or "images"
    return base if image_size == CIFAR_SIZE else f"{base}-{image_size}px"


# ---------------------------------------------------------------- public entry points


def load_cifar(source: str, cache_dir: Path | None = None, progress: bool = True, image_size: int = 32) -> Cifar:
    """Load `source` (see module doc) at image_size, using the cache when one exists."""
    source = source.strip()
    if source.startswith("synthetic:"):
        return resize_all(synthetic(_parse_synthetic(source)), image_size)
    cache_file = _cache_file(source, cache_dir, image_size) if cache_dir else None
    if cache_file and cache_file.exists():
        try:
            data = _read_npz(cache_file)
            os.utime(cache_file)  # its time is its last use: the eviction below goes by it
            return data
        except Exception:  # a truncated cache file is rebuilt, never trusted
            cache_file.unlink(missing_ok=True)
    data = resize_all(_decode(source, cache_dir, progress, image_size), image_size)
    _check(data, source, image_size)
    if cache_file:
        _write_npz(cache_file, data)
        evict(cache_file.parent, cache_max_mb(), keep=cache_file)
    return data


def cache_max_mb() -> float:
    """The data cache's cap (MiB), CIFAR_SWEEPS_CACHE_MAX_MB (settings.py), read here without
    the settings class: trials and drivers load data with no Settings object at hand."""
    from cifar_sweeps.settings import data_cache_max_mb

    return data_cache_max_mb(CACHE_MAX_MB)


def evict(folder: Path, max_mb: float, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used data-cache files until the folder's .npz files take at
    most `max_mb` MiB (`keep`, the one just written, stays); returns what went."""
    files = sorted(folder.glob("cifar10-*.npz"), key=lambda f: f.stat().st_mtime)
    total = sum(f.stat().st_size for f in files) / 2**20
    gone = []
    for f in files:
        if total <= max_mb:
            break
        if f == keep:
            continue
        total -= f.stat().st_size / 2**20
        f.unlink(missing_ok=True)
        gone.append(f)
    return gone


def split_train_val(data: Cifar, val_fraction: float = 0.2, seed: int = 0, test_fraction: float = 0.2) -> Splits:
    """Stratified train/validation split of the train set; the test set is left untouched.
    A source's own validation split is used as it is; a source with no test split has one
    carved from train first (test_fraction, stratified)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if len(data.y_test) == 0:
        data = _carve_test(data, test_fraction, seed)
    if data.x_val is not None and len(data.x_val):
        return Splits(data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test, data.classes)
    if val_fraction == 0:  # every training image trains (a single final run; sweeps need a validation split)
        empty = slice(0, 0)
        return Splits(
            data.x_train, data.y_train, data.x_train[empty], data.y_train[empty], data.x_test, data.y_test, data.classes
        )
    idx = np.arange(len(data.y_train))
    # The shuffled order is kept: any prefix of a split is a random sample of it (sources
    # such as image folders list the images class by class).
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=data.y_train, random_state=seed)
    return Splits(
        data.x_train[tr],
        data.y_train[tr],
        data.x_train[va],
        data.y_train[va],
        data.x_test,
        data.y_test,
        data.classes,
    )


def _carve_test(data: Cifar, fraction: float, seed: int) -> Cifar:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data.y_train))
    tr, te = train_test_split(idx, test_size=fraction, stratify=data.y_train, random_state=seed + 1)
    return Cifar(
        data.x_train[tr], data.y_train[tr], data.x_train[te], data.y_train[te], data.classes, data.x_val, data.y_val
    )


def train_subset(s: Splits, n: int | None, seed: int = 0) -> Splits:
    """The same splits with only n training images, stratified by class."""
    from sklearn.model_selection import train_test_split

    if not n or n >= len(s.y_train):
        return s
    idx, _ = train_test_split(np.arange(len(s.y_train)), train_size=n, stratify=s.y_train, random_state=seed)
    return Splits(s.x_train[idx], s.y_train[idx], s.x_val, s.y_val, s.x_test, s.y_test, s.classes)


def with_validation_in_training(s: Splits) -> Splits:
    """The same splits with the validation images moved into training and no validation
    split: what a refit trains on (its configuration was chosen by those images already)."""
    return Splits(
        np.concatenate([s.x_train, s.x_val]),
        np.concatenate([s.y_train, s.y_val]),
        s.x_val[:0],
        s.y_val[:0],
        s.x_test,
        s.y_test,
        s.classes,
    )


def load_splits(
    source: str,
    cache_dir: Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
    image_size: int = 32,
    test_fraction: float = 0.2,
) -> Splits:
    data = load_cifar(source, cache_dir, progress, image_size)
    return split_train_val(data, val_fraction, seed, test_fraction)


def resize_all(data: Cifar, size: int) -> Cifar:
    """Every split at size x size (a no-op at the size it has)."""
    if data.x_train.shape[1:3] == (size, size):
        return data

    def r(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        out = np.empty((len(x), size, size, 3), np.uint8)  # filled in place: no list beside it
        for i, img in enumerate(x):
            out[i] = square(img, size)
        return out

    return Cifar(r(data.x_train), data.y_train, r(data.x_test), data.y_test, data.classes, r(data.x_val), data.y_val)


def square(img, size: int) -> np.ndarray:
    """An image (PIL or HWC uint8) as size x size RGB: the short side scaled to `size`, then
    the center cropped (no distortion of the aspect ratio)."""
    from PIL import Image

    im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, np.uint8))
    im = im.convert("RGB")
    w, h = im.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, np.uint8)


def synthetic(n_train: int, n_test: int | None = None, seed: int = 0) -> Cifar:
    """Random images carrying a learnable class signal: each class adds its own template.

    Templates are mirror-symmetric so a horizontal flip keeps the signal, and noise keeps
    the task from being trivial (a small CNN reaches well above chance in a few epochs).
    """
    n_test = n_test if n_test is not None else max(n_train // 5, 10)
    rng = np.random.default_rng(seed)
    half = rng.uniform(-1, 1, size=(10, 32, 16, 3))
    templates = np.concatenate([half, half[:, :, ::-1]], axis=2)

    def make(n: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 10
        r.shuffle(y)
        noise = r.normal(0, 1, size=(n, 32, 32, 3))
        x = 128 + 40 * templates[y] + 30 * noise
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_tr, y_tr = make(n_train, np.random.default_rng(seed + 1))
    x_te, y_te = make(n_test, np.random.default_rng(seed + 2))
    return Cifar(x_tr, y_tr, x_te, y_te)


# ---------------------------------------------------------------- source kinds


def _parse_synthetic(source: str) -> int:
    try:
        n = int(source.split(":", 1)[1])
    except ValueError:
        raise DataSourceError(f"synthetic source must be 'synthetic:N' with an int N, got {source!r}") from None
    if n < 10:
        raise DataSourceError(f"synthetic:N needs N >= 10 (one image per class), got {n}")
    return n


def _decode(source: str, cache_dir: Path | None, progress: bool, image_size: int = 32) -> Cifar:
    if source == "torchvision" or source.startswith("torchvision:"):
        root = source.split(":", 1)[1] if ":" in source else str((cache_dir or Path(".")) / "torchvision")
        return _from_torchvision(Path(root))
    path = Path(source).expanduser()
    if not path.exists():
        raise DataSourceError(
            f"data source {source!r} does not exist; expected 'torchvision', 'synthetic:N', "
            "a cifar-10-batches-py folder or cifar-10-python.tar.gz, or an image folder "
            "(train/<class>/*.jpg, test/<class>/*.jpg) as a folder or tar archive"
        )
    if path.is_dir():
        if (path / "data_batch_1").exists() or (path / "cifar-10-batches-py").is_dir():
            return _from_batches_dir(path if (path / "data_batch_1").exists() else path / "cifar-10-batches-py")
        return _from_image_dir(path, progress, image_size)
    if path.name.endswith(TAR_SUFFIXES):
        return _from_tar(path, progress, image_size)
    raise DataSourceError(f"{source!r} is a file but not a tar archive ({', '.join(TAR_SUFFIXES)})")


def _from_torchvision(root: Path) -> Cifar:
    import torchvision

    try:
        tr = torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
        te = torchvision.datasets.CIFAR10(root=str(root), train=False, download=True)
    except Exception as e:  # no internet: say how to point at a local copy instead
        raise DataSourceError(
            f"could not download CIFAR-10 with torchvision into {root} ({e}); offline, set "
            "--data / CIFAR_SWEEPS_DATA to a local cifar-10-python.tar.gz or image-folder archive"
        ) from e
    return Cifar(
        np.asarray(tr.data, np.uint8),
        np.asarray(tr.targets, np.int64),
        np.asarray(te.data, np.uint8),
        np.asarray(te.targets, np.int64),
    )


class BatchUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches hold a dict of bytes, lists, numbers and one numpy array: no
    other global may load (a pickle that names `os.system` is refused, never run)."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # Python 2's pickles of byte strings
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never does")
        return super().find_class(module, name)


def _unpickle_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[b"labels"], np.int64)
    except Exception as e:
        raise DataSourceError(f"{name} is not a CIFAR-10 python batch ({e})") from e
    return np.ascontiguousarray(x), y


def _join_batches(batches: dict[str, bytes], where: str) -> Cifar:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if n not in batches]
    if missing:
        raise DataSourceError(f"{where} lacks {', '.join(missing)} (expected cifar-10-batches-py)")
    parts = [_unpickle_batch(batches[n], n) for n in names]
    x_tr = np.concatenate([p[0] for p in parts[:5]])
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    return Cifar(x_tr, y_tr, parts[5][0], parts[5][1])


def _from_batches_dir(path: Path) -> Cifar:
    files = [p for p in path.iterdir() if p.name in BATCH_NAMES and _regular_size(p) is not None]
    return _join_batches({p.name: _read_capped(p, MAX_BATCH_BYTES, path) for p in files}, str(path))


def _regular_size(p: Path) -> int | None:
    """A regular file's size; None for a link, a FIFO, a device or a folder (never followed)."""
    import stat

    try:
        st = p.lstat()
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _fits(size: int, cap: int, name: str, where: Path) -> int:
    if size > cap:
        raise DataSourceError(f"{where}: {name} has {size:,} bytes, over the {cap:,} a file of this kind may have")
    return size


def _read_capped(p: Path, cap: int, where: Path) -> bytes:
    with p.open("rb") as f:
        raw = f.read(cap + 1)
    _fits(len(raw), cap, p.name, where)
    return raw


def _split_class_path(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('x', 'train', 'cat', '1.jpg') -> ('train', 'cat'); None for anything else."""
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    split, cls = parts[-3], parts[-2]
    return (split, cls) if split in SPLIT_NAMES else None


def _from_tar(path: Path, progress: bool, image_size: int = 32) -> Cifar:
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the `with tf` below)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataSourceError(f"{path} is not a readable tar archive ({e})") from e
    batches: dict[str, bytes] = {}
    images: list[tuple[str, str, bytes]] = []
    try:
        with tf:
            for m in tf:
                if not m.isreg():  # links, devices and FIFOs are never followed
                    continue
                parts = tuple(Path(m.name).parts)
                if parts[-1] in BATCH_NAMES:
                    batches[parts[-1]] = tf.extractfile(m).read(_fits(m.size, MAX_BATCH_BYTES, m.name, path))
                elif (sc := _split_class_path(parts)) is not None:
                    images.append((sc[0], sc[1], tf.extractfile(m).read(_fits(m.size, MAX_IMAGE_BYTES, m.name, path))))
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise DataSourceError(f"{path} is corrupt or truncated ({e})") from e
    if batches:
        return _join_batches(batches, str(path))
    return _assemble(images, str(path), progress, image_size)


def _from_image_dir(path: Path, progress: bool, image_size: int = 32) -> Cifar:
    images = [(split, f.parent.name, _read_capped(f, MAX_IMAGE_BYTES, path)) for split, f in image_files(path)]
    return _assemble(images, str(path), progress, image_size)


def image_files(path: Path) -> list[tuple[str, Path]]:
    """(split, file) of every image of an image folder: regular files with an image suffix
    under <split>/<class>/, in a stable order; class folders that are links are skipped."""
    out = []
    for split in SPLIT_NAMES:
        if (path / split).is_symlink():
            continue
        for f in sorted((path / split).glob("*/*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.parent.is_symlink() and _regular_size(f) is not None:
                out.append((split, f))
    return out


def _class_index(names: set[str], where: str) -> dict[str, int]:
    """Class name -> label: CIFAR-10's own order for its classes, else sorted by name."""
    if not 2 <= len(names) <= MAX_CLASSES:
        raise DataSourceError(
            f"{where}: expected 2 to {MAX_CLASSES} class folders under train/ (train/<class>/*.jpg), "
            f"found {len(names)}: {sorted(names)[:12]}"
        )
    order = list(CLASSES) if names == set(CLASSES) else sorted(names)
    return {c: i for i, c in enumerate(order)}


def _decode_image(raw: bytes, size: int = CIFAR_SIZE) -> np.ndarray:
    from PIL import Image

    # Only the formats an image folder's suffixes name: Pillow would otherwise hand an EPS
    # named .png to Ghostscript; and the pixel count is read from the header before decoding.
    with Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS) as im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"{w}x{h} pixels, over the {MAX_IMAGE_PIXELS:,} an image may have")
        return square(im, size)


def _assemble(images: list[tuple[str, str, bytes]], where: str, progress: bool, image_size: int = 32) -> Cifar:
    splits = {s for s, _, _ in images}
    if "train" not in splits:
        raise DataSourceError(
            f"{where}: expected images under train/<class>/ (and optionally val/<class>/, test/<class>/), "
            f"found splits {sorted(splits) or 'none'}"
        )
    index = _class_index({c for s, c, _ in images if s == "train"}, where)
    stray = sorted({c for s, c, _ in images if c not in index})
    if stray:
        raise DataSourceError(f"{where}: classes {stray[:5]} have images in val/ or test/ but none in train/")
    out: dict[str, tuple[list[np.ndarray], list[int]]] = {s: ([], []) for s in SPLIT_NAMES}
    for i, (split, cls, raw) in enumerate(_progress(images, progress, "decoding images")):
        try:
            out[split][0].append(_decode_image(raw, image_size))
        except Exception as e:
            raise DataSourceError(f"{where}: image {i} of class {cls!r} is corrupt ({e})") from e
        out[split][1].append(index[cls])
    empty = np.zeros((0, image_size, image_size, 3), np.uint8)
    xs = {s: np.stack(v[0]) if v[0] else empty for s, v in out.items()}
    ys = {s: np.asarray(v[1], np.int64) for s, v in out.items()}
    has_val = bool(out["val"][0])
    return Cifar(
        xs["train"],
        ys["train"],
        xs["test"],
        ys["test"],
        tuple(index),
        xs["val"] if has_val else None,
        ys["val"] if has_val else None,
    )


def _progress(items: list, enabled: bool, what: str) -> Iterator:
    n = len(items)
    step = max(n // 10, 1)
    for i, item in enumerate(items):
        if enabled and i % step == 0 and n > 5000:
            print(f"{what}: {i}/{n}", file=sys.stderr, flush=True)
        yield item


def _check(data: Cifar, source: str, size: int = CIFAR_SIZE) -> None:
    for name in ("x_train", "x_test"):
        x = getattr(data, name)
        if x.ndim != 4 or x.shape[1:] != (size, size, 3) or x.dtype != np.uint8:
            raise DataSourceError(f"{source}: {name} has shape {x.shape}, expected (N, {size}, {size}, 3)")
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise DataSourceError(f"{source}: image and label counts differ")


# ---------------------------------------------------------------- cache


def _cache_file(source: str, cache_dir: Path, image_size: int = CIFAR_SIZE) -> Path:
    p = Path(source).expanduser()
    if p.is_dir():
        key = f"{p.resolve()}|{_listing_digest(p)}"
    elif p.exists():
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    else:
        key = source
    if image_size != CIFAR_SIZE:  # 32 keeps its old key: caches made before sizes existed stay valid
        key += f"|{image_size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"cifar10-{digest}.npz"


def _listing_digest(folder: Path) -> str:
    """A folder's contents as the cache sees them: every file it would read, by relative
    path, size and modification time (an image edited, added or removed inside a class
    folder changes it; the root folder's own time does not see those)."""
    h = hashlib.sha1()
    files = [f for _, f in image_files(folder)] or [
        f
        for d in (folder, folder / "cifar-10-batches-py")
        if d.is_dir()
        for f in sorted(d.iterdir())
        if f.name in BATCH_NAMES
    ]
    for f in files:
        st = f.lstat()
        h.update(f"{f.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _write_npz(path: Path, data: Cifar) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary name per writer: two trials that decode the same archive at once must not
    # replace each other's half-written file (the second rename would find nothing).
    tmp = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.npz")
    val = {} if data.x_val is None else {"x_val": data.x_val, "y_val": data.y_val}
    classes = np.asarray(data.classes, dtype=str)
    np.savez(
        tmp, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test, classes=classes, **val
    )
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file


def _read_npz(path: Path) -> Cifar:
    with np.load(path) as z:
        classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else CLASSES
        val = (z["x_val"], z["y_val"]) if "x_val" in z.files else (None, None)
        return Cifar(z["x_train"], z["y_train"], z["x_test"], z["y_test"], classes, *val)
