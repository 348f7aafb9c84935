"""POST /trials/{id}/predict: the same classes and probabilities as `cifar-sweeps predict`,
for images of any size; and hostile uploads, each a 4xx naming the problem, with no model
loaded into the cache."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from cifar_sweeps.cli import main
from cifar_sweeps.service import predict_pool
from cifar_sweeps.service.api import create_app
from cifar_sweeps.settings import Settings
from cifar_sweeps.store import lifecycle
from cifar_sweeps.store.queries import get_store
from cifar_sweeps.training.train import TrainConfig, Trainer
from tests.helpers.jobs import FakeJobs


@pytest.fixture(scope="module")
def model_file(tiny_splits, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.pt"
    trainer = Trainer(TrainConfig(model="simple_cnn", normalize="report", epochs=1, device="cpu"), tiny_splits)
    trainer.run()
    torch.save(trainer.best_model_file(), path)
    return path


@pytest.fixture
def api(tmp_path, model_file):
    settings = Settings(results_dir=tmp_path, max_body_bytes=300_000)
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({"name": "p"}, "synthetic:10", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "simple_cnn"}, 1)
    store.trial_checkpoint(tid, str(model_file))
    predict_pool.shutdown_worker()  # each test starts with no worker and no model loaded
    return TestClient(create_app(settings, FakeJobs(store))), tid


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_predict_matches_the_command_line(api, tiny_splits, tmp_path, model_file, capsys):
    client, tid = api
    files = []
    for i in range(3):
        img = Image.fromarray(tiny_splits.x_test[i]).resize((32 + 40 * i, 32 + 17 * i))  # any size
        path = tmp_path / f"img{i}.png"
        img.save(path)
        files.append(("images", (path.name, path.read_bytes(), "image/png")))
    r = client.post(f"/trials/{tid}/predict", files=files, params={"top_k": 3})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert r.json()["normalize"] == "report" and [p["file"] for p in preds] == ["img0.png", "img1.png", "img2.png"]
    assert all(len(p["top"]) == 3 and p["top"][0]["prob"] >= p["top"][1]["prob"] for p in preds)
    assert main(["predict", str(model_file), *(str(tmp_path / f"img{i}.png") for i in range(3))]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, p in zip(lines, preds, strict=True):
        assert line.endswith(f"{p['top'][0]['label']} ({p['top'][0]['prob']:.3f})"), (line, p["top"][0])
    assert predict_pool.worker_models() == 1  # in the worker process, not this one
    client.post(f"/trials/{tid}/predict", files=files[:1])
    assert predict_pool.worker_models() == 1  # loaded once, then reused


def _huge_png() -> bytes:
    """A valid PNG header claiming 20000 x 20000 pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    return buf.getvalue()


HOSTILE = [
    ("an empty file", [("images", ("e.png", b"", "image/png"))], 422, "is empty"),
    ("a text file", [("images", ("t.png", b"hello, not an image", "image/png"))], 415, "not a PNG or JPEG"),
    ("a GIF", [("images", ("a.gif", _gif(), "image/gif"))], 415, "GIF image"),
    (
        "a truncated PNG",
        [("images", ("cut.png", _png(Image.new("RGB", (64, 64), "red"))[:60], "image/png"))],
        422,
        "can't be decoded",
    ),
    ("a 20000x20000 image", [("images", ("bomb.png", _huge_png(), "image/png"))], 413, "over the limit"),
    (
        "a 5000x4000 image",
        [("images", ("wide.png", _png(Image.new("1", (5000, 4000))), "image/png"))],
        413,
        "5000x4000",
    ),
    (
        "a solid 2048x2048 image (tiny as a PNG)",
        [("images", ("solid.png", _png(Image.new("1", (2048, 2048))), "image/png"))],
        413,
        "2048x2048",
    ),
    (
        "17 images",
        [("images", (f"{i}.png", _png(Image.new("RGB", (4, 4))), "image/png")) for i in range(17)],
        422,
        "at most 16",
    ),
    ("no file at all (a form)", [], 415, "multipart/form-data"),
    (
        "a body over the limit",
        [("images", ("big.png", b"\x89PNG" + b"0" * 400_000, "image/png"))],
        413,
        "over the limit",
    ),
]


@pytest.mark.parametrize("what,files,status,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_uploads(api, what, files, status, words):
    client, tid = api
    r = (
        client.post(f"/trials/{tid}/predict", files=files)
        if files
        else client.post(f"/trials/{tid}/predict", data={"x": "1"})
    )
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.json()["detail"]
    assert predict_pool.worker_models() is None  # nothing loaded: no worker started


@pytest.mark.parametrize("top_k", [0, 11])
def test_top_k_out_of_range(api, top_k):
    client, tid = api
    r = client.post(
        f"/trials/{tid}/predict",
        params={"top_k": top_k},
        files=[("images", ("a.png", _png(Image.new("RGB", (4, 4))), "image/png"))],
    )
    assert r.status_code == 422 and predict_pool.worker_models() is None


def test_unknown_trial_is_a_404(api):
    client, _ = api
    r = client.post(
        "/trials/sw-x-nope/predict", files=[("images", ("a.png", _png(Image.new("RGB", (4, 4))), "image/png"))]
    )
    assert r.status_code == 404


def test_predict_needs_the_token_when_one_is_set_and_is_capped_in_concurrency(tmp_path, model_file):
    from cifar_sweeps.service.routes.trials import MAX_CONCURRENT, PREDICTING

    settings = Settings(results_dir=tmp_path, api_token="tok-pred")
    store = get_store(settings.resolved_store_url())
    sweep = store.create_sweep({"name": "p"}, "synthetic:10", "v")
    tid = lifecycle.trial_started(store, sweep.id, "t1", {"model": "simple_cnn"}, 1)
    store.trial_checkpoint(tid, str(model_file))
    client = TestClient(create_app(settings, FakeJobs(store)))
    files = [("images", ("a.png", _png(Image.new("RGB", (32, 32), "blue")), "image/png"))]
    assert client.post(f"/trials/{tid}/predict", files=files).status_code == 401
    auth = {"Authorization": "Bearer tok-pred"}
    assert client.post(f"/trials/{tid}/predict", files=files, headers=auth).status_code == 200
    for _ in range(MAX_CONCURRENT):  # as many predictions under way as allowed
        PREDICTING.acquire()
    try:
        r = client.post(f"/trials/{tid}/predict", files=files, headers=auth)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
    finally:
        for _ in range(MAX_CONCURRENT):
            PREDICTING.release()
