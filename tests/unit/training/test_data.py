from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_sweeps.training.data import (
    CLASSES,
    Cifar,
    DataSourceError,
    dataset_name,
    load_cifar,
    load_splits,
    split_train_val,
    synthetic,
)

PER_CLASS_TRAIN, PER_CLASS_TEST = 3, 2


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), n)
    # A flat colour per image, so lossless PNG round-trips exactly and labels are checkable.
    x = np.broadcast_to((y * 25)[:, None, None, None], (len(y), 32, 32, 3)).astype(np.uint8).copy()
    x[:, 0, 0, 0] = rng.integers(0, 255, len(y))
    return x, y


def _write_batches(folder: Path) -> Cifar:
    folder.mkdir(parents=True)
    xtr, ytr = _images(PER_CLASS_TRAIN * 5, 0)
    xte, yte = _images(PER_CLASS_TEST, 1)
    chunks = np.array_split(np.arange(len(ytr)), 5)
    for i, idx in enumerate(chunks, 1):
        blob = {b"data": xtr[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1), b"labels": ytr[idx].tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(blob))
    blob = {b"data": xte.transpose(0, 3, 1, 2).reshape(len(yte), -1), b"labels": yte.tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(blob))
    return Cifar(xtr, ytr, xte, yte)


def _write_image_folder(root: Path) -> Cifar:
    xtr, ytr = _images(PER_CLASS_TRAIN, 2)
    xte, yte = _images(PER_CLASS_TEST, 3)
    for split, xs, ys in (("train", xtr, ytr), ("test", xte, yte)):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            d = root / split / CLASSES[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(d / f"{i:04d}.png")
    return Cifar(xtr, ytr, xte, yte)


def _tar(src: Path, dest: Path, mode: str, arcname: str) -> Path:
    with tarfile.open(dest, mode) as tf:
        tf.add(src, arcname=arcname)
    return dest


def _same_multiset(a: Cifar, b: Cifar) -> None:
    """Same images with the same labels (order may differ between sources)."""
    for xa, ya, xb, yb in ((a.x_train, a.y_train, b.x_train, b.y_train), (a.x_test, a.y_test, b.x_test, b.y_test)):
        assert xa.shape == xb.shape and xa.dtype == np.uint8
        key = lambda x, y: sorted(zip(x[:, 0, 0, 0].tolist(), y.tolist(), strict=True))  # noqa: E731
        assert key(xa, ya) == key(xb, yb)


def test_batches_folder(tmp_path):
    want = _write_batches(tmp_path / "cifar-10-batches-py")
    got = load_cifar(str(tmp_path / "cifar-10-batches-py"))
    np.testing.assert_array_equal(got.x_train, want.x_train)
    np.testing.assert_array_equal(got.y_test, want.y_test)
    # The parent folder works too, as torchvision's root does.
    np.testing.assert_array_equal(load_cifar(str(tmp_path)).x_test, want.x_test)


def test_batches_archive(tmp_path):
    want = _write_batches(tmp_path / "src" / "cifar-10-batches-py")
    arch = _tar(
        tmp_path / "src" / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz", "w:gz", "cifar-10-batches-py"
    )
    got = load_cifar(str(arch))
    np.testing.assert_array_equal(got.x_train, want.x_train)
    np.testing.assert_array_equal(got.y_train, want.y_train)


def test_image_folder(tmp_path):
    want = _write_image_folder(tmp_path / "imgs")
    _same_multiset(load_cifar(str(tmp_path / "imgs")), want)


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_image_folder_archives(tmp_path, suffix, mode):
    want = _write_image_folder(tmp_path / "imgs")
    arch = _tar(tmp_path / "imgs", tmp_path / f"cifar{suffix}", mode, "cifar10")
    _same_multiset(load_cifar(str(arch)), want)


def test_synthetic_shapes_and_balance():
    d = load_cifar("synthetic:500")
    assert d.x_train.shape == (500, 32, 32, 3) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (100, 32, 32, 3)
    assert np.bincount(d.y_train).tolist() == [50] * 10


def test_cache_makes_second_load_fast(tmp_path):
    _write_image_folder(tmp_path / "imgs")
    arch = _tar(tmp_path / "imgs", tmp_path / "c.tar.xz", "w:xz", "c")
    cache = tmp_path / "cache"
    first = load_cifar(str(arch), cache)
    assert len(list(cache.glob("*.npz"))) == 1
    arch.write_bytes(b"")  # same path, new content: a new cache key, so the cache is not trusted
    with pytest.raises(DataSourceError):
        load_cifar(str(arch), cache)
    second_arch = _tar(tmp_path / "imgs", tmp_path / "d.tar.xz", "w:xz", "c")
    a = load_cifar(str(second_arch), cache)
    cached = sorted(cache.glob("*.npz"))
    b = load_cifar(str(second_arch), cache)  # served from the cache: no new entry
    assert sorted(cache.glob("*.npz")) == cached and len(cached) == 2
    np.testing.assert_array_equal(a.x_train, b.x_train)
    _same_multiset(first, b)


def test_corrupt_archive(tmp_path):
    _write_image_folder(tmp_path / "imgs")
    good = _tar(tmp_path / "imgs", tmp_path / "good.tar.gz", "w:gz", "c").read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataSourceError, match="corrupt|truncated|not a readable"):
        load_cifar(str(bad))
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(DataSourceError, match="tar"):
        load_cifar(str(junk))


def test_corrupt_image(tmp_path):
    _write_image_folder(tmp_path / "imgs")
    next((tmp_path / "imgs" / "train" / "cat").glob("*.png")).write_bytes(b"not a png")
    with pytest.raises(DataSourceError, match="corrupt"):
        load_cifar(str(tmp_path / "imgs"))


def test_wrong_layout(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataSourceError, match="train/<class>"):
        load_cifar(str(tmp_path / "flat"))
    root = tmp_path / "one"
    (root / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "train" / "a" / "0.png")
    with pytest.raises(DataSourceError, match="expected 2 to"):
        load_cifar(str(root))


def test_images_of_another_size_are_brought_to_the_size_asked_for(tmp_path):
    _write_image_folder(tmp_path / "imgs")
    big = np.zeros((64, 96, 3), np.uint8)
    big[:, 12:84] = 255  # white around the center square: the center crop keeps only white
    Image.fromarray(big).save(tmp_path / "imgs" / "train" / "cat" / "big.png")
    data = load_cifar(str(tmp_path / "imgs"))
    assert data.x_train.shape[1:] == (32, 32, 3)
    assert (data.x_train.reshape(len(data.x_train), -1).min(1) == 255).sum() == 1  # the white one
    at48 = load_cifar(str(tmp_path / "imgs"), image_size=48)
    assert at48.x_train.shape[1:] == (48, 48, 3) and at48.x_test.shape[1:] == (48, 48, 3)


def test_a_folder_of_three_classes_with_no_test_split_gets_one_carved_from_train(tmp_path):
    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for c in ("circle", "square", "triangle"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "train" / c / f"{i}.png")
    s = load_splits(str(root), val_fraction=0.2, image_size=24, test_fraction=0.25)
    assert s.classes == ("circle", "square", "triangle") and s.image_size == 24
    assert s.sizes == {"train": 36, "val": 9, "test": 15}
    assert sorted(np.bincount(s.y_test)) == [5, 5, 5]  # stratified
    assert dataset_name(str(root), s.classes, 24) == "shapes-24px"
    assert dataset_name("x/cifar10-jpeg.tar.xz", CLASSES, 32) == "cifar10"
    assert dataset_name("synthetic:100", CLASSES, 32) == "synthetic"


def test_a_folders_own_validation_split_is_used_as_it_is(tmp_path):
    root = tmp_path / "v"
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((32, 32, 3), i, np.uint8)).save(root / split / c / f"{i}.png")
    s = load_splits(str(root))
    assert s.sizes == {"train": 12, "val": 6, "test": 4} and s.classes == ("a", "b")


def test_missing_source(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        load_cifar(str(tmp_path / "nope.tar.xz"))
    with pytest.raises(DataSourceError, match="synthetic"):
        load_cifar("synthetic:abc")


def test_split_is_stratified_disjoint_and_deterministic():
    d = synthetic(1000, 100)
    s = split_train_val(d, 0.2, seed=3)
    assert len(s.y_val) == 200 and len(s.y_train) == 800
    assert np.bincount(s.y_val).tolist() == [20] * 10
    assert np.bincount(s.y_train).tolist() == [80] * 10
    # No image in both splits (rows are distinct with probability ~1 in synthetic data).
    tr = {x.tobytes() for x in s.x_train}
    assert not any(x.tobytes() in tr for x in s.x_val)
    s2 = split_train_val(d, 0.2, seed=3)
    np.testing.assert_array_equal(s.x_val, s2.x_val)
    s3 = split_train_val(d, 0.2, seed=4)
    assert not np.array_equal(s.y_val, s3.y_val) or not np.array_equal(s.x_val, s3.x_val)
    np.testing.assert_array_equal(s.x_test, d.x_test)  # test untouched


def test_train_subset_is_stratified():
    from cifar_sweeps.training.data import train_subset

    # Class-by-class order, as image folders list their files.
    d = synthetic(1000, 100)
    order = np.argsort(d.y_train, kind="stable")
    sorted_data = type(d)(d.x_train[order], d.y_train[order], d.x_test, d.y_test)
    s = split_train_val(sorted_data, 0.2, 0)
    assert len(set(s.y_train[:100].tolist())) == 10  # any prefix of a split mixes the classes
    sub = train_subset(s, 200, 0)
    assert np.bincount(sub.y_train).tolist() == [20] * 10
    assert len(sub.y_val) == len(s.y_val)


# ------------------------------------------------------------ what an image source may hold


class _RunsCode:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_batch_archive_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path):
    src = tmp_path / "src" / "cifar-10-batches-py"
    _write_batches(src)
    marker = tmp_path / "ran"
    (src / "data_batch_1").write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}))
    for source in (src, _tar(src, tmp_path / "evil.tar.gz", "w:gz", "cifar-10-batches-py")):
        with pytest.raises(DataSourceError, match=r"data_batch_1 is not a CIFAR-10 python batch .*names posix\.system"):
            load_cifar(str(source))
    assert not marker.exists()


def test_only_jpeg_png_and_bmp_decode_and_a_huge_image_is_refused_before_it_decodes(tmp_path):
    _write_image_folder(tmp_path / "eps")
    (tmp_path / "eps" / "train" / "cat" / "x.png").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"
    )
    with pytest.raises(DataSourceError, match="of class 'cat' is corrupt"):  # Ghostscript never sees it
        load_cifar(str(tmp_path / "eps"))
    _write_image_folder(tmp_path / "bomb")
    Image.new("1", (5000, 5000)).save(tmp_path / "bomb" / "train" / "dog" / "big.png")  # 25 M pixels, a few KB
    with pytest.raises(DataSourceError, match=r"5000x5000 pixels, over the 16,777,216"):
        load_cifar(str(tmp_path / "bomb"))


def test_links_and_fifos_in_an_image_folder_are_skipped_and_files_are_capped(tmp_path, monkeypatch):
    import os

    from cifar_sweeps.training import data

    want = _write_image_folder(tmp_path / "imgs")
    cat = tmp_path / "imgs" / "train" / "cat"
    (cat / "passwd.png").symlink_to("/etc/passwd")
    os.mkfifo(cat / "pipe.png")  # read whole, it would block the driver for ever
    (tmp_path / "imgs" / "train" / "linked").symlink_to(cat)  # a class folder that is a link
    _same_multiset(load_cifar(str(tmp_path / "imgs")), want)
    (cat / "pipe.png").unlink()
    arch = _tar(tmp_path / "imgs", tmp_path / "c.tar", "w", "c")
    monkeypatch.setattr(data, "MAX_IMAGE_BYTES", 10)
    for source in (tmp_path / "imgs", arch):
        with pytest.raises(DataSourceError, match=r"0000.png has \d+ bytes, over the 10 a file of this kind may have"):
            load_cifar(str(source))


def test_the_cache_sees_an_image_changed_inside_a_class_folder(tmp_path):
    from cifar_sweeps.training.data import _cache_file

    _write_image_folder(tmp_path / "imgs")
    before = _cache_file(str(tmp_path / "imgs"), tmp_path / "cache")
    img = next((tmp_path / "imgs" / "train" / "cat").glob("*.png"))
    Image.new("RGB", (32, 32), (1, 2, 3)).save(img)  # the root folder's own time does not change
    assert _cache_file(str(tmp_path / "imgs"), tmp_path / "cache") != before


# ------------------------------------------------------------ memory and disk bounded by the data's size


def test_channel_statistics_copy_a_chunk_not_the_sample():
    import tracemalloc

    from cifar_sweeps.training.loader import STATS_PIXELS, channel_stats

    x = np.random.default_rng(0).integers(0, 256, (4000, 64, 64, 3), dtype=np.uint8)  # 49 MB
    tracemalloc.start()
    mean, std = channel_stats(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 * 2**20, peak / 2**20  # the whole sample in float64 was 245 MiB (and 393 before its cap)
    # Uniform integers 0..255: mean 127.5 and std sqrt((256^2 - 1) / 12), over 255; a sample
    # of STATS_PIXELS (10 M) pixels lands within 2e-4 of them (computing them from the sample
    # itself took 7 s).
    assert len(x) > STATS_PIXELS // (64 * 64)  # a sample, not every image
    assert np.allclose(mean, 127.5 / 255, atol=1e-3) and np.allclose(std, (65535 / 12) ** 0.5 / 255, atol=1e-3)


def test_loader_chunks_are_sized_by_pixels():
    from cifar_sweeps.training.loader import chunk_images_for

    assert chunk_images_for((50_000, 32, 32, 3), 128) == 4096
    assert chunk_images_for((50_000, 256, 256, 3), 32) == 64
    assert chunk_images_for((50_000, 512, 512, 3), 32) == 32  # at least a batch


def test_the_data_cache_keeps_its_cap_least_recently_used_first(tmp_path):
    import os

    from cifar_sweeps.training.data import evict

    files = []
    for i in range(4):
        f = tmp_path / f"cifar10-{i}.npz"
        f.write_bytes(b"x" * 2**20)  # 1 MiB each
        os.utime(f, (1000 + i, 1000 + i))
        files.append(f)
    os.utime(files[0], (5000, 5000))  # read just now: the most recent
    gone = evict(tmp_path, 2.5, keep=files[3])
    assert gone == [files[1], files[2]] and files[0].exists() and files[3].exists()


def test_two_writers_of_one_cache_entry_at_once_both_succeed(tmp_path, monkeypatch):
    # Two trials decoding the same archive at once: the second writer saves and renames while
    # the first is between its save and its rename. Neither may lose its file to the other.
    from cifar_sweeps.training import data as data_mod

    entry = tmp_path / "cache" / "cifar10-0123.npz"
    real_savez, nested = np.savez, []

    def savez_with_a_second_writer_inside(file, **arrays):
        real_savez(file, **arrays)
        if not nested:
            nested.append(file)
            data_mod._write_npz(entry, synthetic(2, 1, seed=1))

    monkeypatch.setattr(data_mod.np, "savez", savez_with_a_second_writer_inside)
    data_mod._write_npz(entry, synthetic(2, 1, seed=0))
    assert data_mod._read_npz(entry).x_train.shape[0] > 0
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporary left behind
