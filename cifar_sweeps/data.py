"""CIFAR-10 sources -> uint8 arrays; stratified train/validation split; on-disk cache.

Every source is decoded once into uint8 arrays of shape (N, 32, 32, 3) with int64 labels
and cached as an .npz keyed by the source (path, size and mtime), so a second load of the
same source reads ~180 MB of raw arrays instead of decoding 60,000 images again.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import tarfile
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
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


@dataclass(frozen=True)
class Cifar:
    """The train and test splits as uint8 images (N, 32, 32, 3) and int64 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Splits:
    """Train / validation (carved from train, stratified) / test, as uint8 arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


# ---------------------------------------------------------------- public entry points


def load_cifar(source: str, cache_dir: Path | None = None, progress: bool = True) -> Cifar:
    """Load CIFAR-10 from `source` (see module doc), using the cache when one exists."""
    source = source.strip()
    if source.startswith("synthetic:"):
        return synthetic(_parse_synthetic(source))
    cache_file = _cache_file(source, cache_dir) if cache_dir else None
    if cache_file and cache_file.exists():
        try:
            return _read_npz(cache_file)
        except Exception:  # a truncated cache file is rebuilt, never trusted
            cache_file.unlink(missing_ok=True)
    data = _decode(source, cache_dir, progress)
    _check(data, source)
    if cache_file:
        _write_npz(cache_file, data)
    return data


def split_train_val(data: Cifar, val_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Stratified train/validation split of the train set; the test set is left untouched."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
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
    )


def train_subset(s: Splits, n: int | None, seed: int = 0) -> Splits:
    """The same splits with only n training images, stratified by class."""
    from sklearn.model_selection import train_test_split

    if not n or n >= len(s.y_train):
        return s
    idx, _ = train_test_split(np.arange(len(s.y_train)), train_size=n, stratify=s.y_train, random_state=seed)
    return Splits(s.x_train[idx], s.y_train[idx], s.x_val, s.y_val, s.x_test, s.y_test)


def load_splits(
    source: str,
    cache_dir: Path | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> Splits:
    return split_train_val(load_cifar(source, cache_dir, progress), val_fraction, seed)


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


def _decode(source: str, cache_dir: Path | None, progress: bool) -> Cifar:
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
        return _from_image_dir(path, progress)
    if path.name.endswith(TAR_SUFFIXES):
        return _from_tar(path, progress)
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


def _unpickle_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.loads(raw, encoding="bytes")
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
    return _join_batches({p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}, str(path))


def _split_class_path(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('x', 'train', 'cat', '1.jpg') -> ('train', 'cat'); None for anything else."""
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        return None
    split, cls = parts[-3], parts[-2]
    return (split, cls) if split in ("train", "test") else None


def _from_tar(path: Path, progress: bool) -> Cifar:
    try:
        tf = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the `with tf` below)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataSourceError(f"{path} is not a readable tar archive ({e})") from e
    batches: dict[str, bytes] = {}
    images: list[tuple[str, str, bytes]] = []
    try:
        with tf:
            for m in tf:
                if not m.isfile():
                    continue
                parts = tuple(Path(m.name).parts)
                if parts[-1] in {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch"}:
                    batches[parts[-1]] = tf.extractfile(m).read()
                elif (sc := _split_class_path(parts)) is not None:
                    images.append((sc[0], sc[1], tf.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise DataSourceError(f"{path} is corrupt or truncated ({e})") from e
    if batches:
        return _join_batches(batches, str(path))
    return _assemble(images, str(path), progress)


def _from_image_dir(path: Path, progress: bool) -> Cifar:
    images = []
    for split in ("train", "test"):
        for f in sorted((path / split).glob("*/*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                images.append((split, f.parent.name, f.read_bytes()))
    return _assemble(images, str(path), progress)


def _class_index(names: set[str], where: str) -> dict[str, int]:
    if len(names) != 10:
        raise DataSourceError(
            f"{where}: expected 10 class folders under train/ and test/ "
            f"(train/<class>/*.jpg), found {len(names)}: {sorted(names)[:12]}"
        )
    order = list(CLASSES) if names == set(CLASSES) else sorted(names)
    return {c: i for i, c in enumerate(order)}


def _decode_image(raw: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        arr = np.asarray(im.convert("RGB"), np.uint8)
    if arr.shape != (32, 32, 3):
        raise DataSourceError(f"expected 32x32 RGB images, found one of shape {arr.shape}")
    return arr


def _assemble(images: list[tuple[str, str, bytes]], where: str, progress: bool) -> Cifar:
    splits = {s for s, _, _ in images}
    if splits != {"train", "test"}:
        raise DataSourceError(
            f"{where}: expected images under train/<class>/ and test/<class>/, found splits {sorted(splits) or 'none'}"
        )
    index = _class_index({c for _, c, _ in images}, where)
    out: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for i, (split, cls, raw) in enumerate(_progress(images, progress, "decoding images")):
        try:
            out[split][0].append(_decode_image(raw))
        except DataSourceError:
            raise
        except Exception as e:
            raise DataSourceError(f"{where}: image {i} of class {cls!r} is corrupt ({e})") from e
        out[split][1].append(index[cls])
    xs = {s: np.stack(v[0]) for s, v in out.items()}
    ys = {s: np.asarray(v[1], np.int64) for s, v in out.items()}
    return Cifar(xs["train"], ys["train"], xs["test"], ys["test"])


def _progress(items: list, enabled: bool, what: str) -> Iterator:
    n = len(items)
    step = max(n // 10, 1)
    for i, item in enumerate(items):
        if enabled and i % step == 0 and n > 5000:
            print(f"{what}: {i}/{n}", file=sys.stderr, flush=True)
        yield item


def _check(data: Cifar, source: str) -> None:
    for name in ("x_train", "x_test"):
        x = getattr(data, name)
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataSourceError(f"{source}: {name} has shape {x.shape}, expected (N, 32, 32, 3)")
    if len(data.x_train) != len(data.y_train) or len(data.x_test) != len(data.y_test):
        raise DataSourceError(f"{source}: image and label counts differ")


# ---------------------------------------------------------------- cache


def _cache_file(source: str, cache_dir: Path) -> Path:
    p = Path(source).expanduser()
    if p.exists():
        st = p.stat()
        key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    else:
        key = source
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"cifar10-{digest}.npz"


def _write_npz(path: Path, data: Cifar) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file


def _read_npz(path: Path) -> Cifar:
    with np.load(path) as z:
        return Cifar(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
