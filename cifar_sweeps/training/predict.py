"""Classifying images with a trained model: one path for `cifar-sweeps predict` and for
POST /trials/{id}/predict. Images of any size are converted to RGB and brought to the size
the model was trained at (the short side scaled, the center cropped, as its training images
were), then standardized with the model's own statistics; results name the classes of its
data set. All three are stored in its model file.

Uploads are checked before anything is decoded in full or any model is loaded: an empty
file, a file that is not a PNG or JPEG, or an image past MAX_PIXELS is refused, naming it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

from cifar_sweeps.errors import ImageTooLarge, InputError, NotAnImage

MAX_IMAGES = 16  # per request
# width x height: a model sees 32x32, so a 1-megapixel photo is plenty; decoding a 4096x4096
# PNG took 0.35 s and 64 MB, which 16 images per request times a few requests multiplied.
MAX_PIXELS = 1024 * 1024
MAX_CONCURRENT = 2  # predictions at once in one process; more get a 503 at once
FORMATS = ("PNG", "JPEG")
CACHED_MODELS = 4  # models kept loaded, least recently used out first


def decode(name: str, data: bytes):
    """An uploaded file as an RGB image, or an error naming the file and the problem."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(f"file {name!r} is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:  # Pillow's own, far higher limit
        raise ImageTooLarge(f"file {name!r} is over the limit of {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise NotAnImage(f"file {name!r} is not a PNG or JPEG image") from None
    if img.format not in FORMATS:
        raise NotAnImage(f"file {name!r} is a {img.format} image; send PNG or JPEG")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageTooLarge(f"file {name!r} is {w}x{h} pixels, over the limit of {MAX_PIXELS:,} pixels")
    try:
        return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"file {name!r} can't be decoded: {e}") from None


def classify(mf, images: list, k: int = 3) -> list[list[tuple[str, float]]]:
    """The top-k classes and their probabilities, for each RGB image, by a model file's
    model (train.ModelFile: its size, statistics and class names)."""
    import torch

    from cifar_sweeps.training.data import square
    from cifar_sweeps.training.loader import normalize_image

    x = torch.stack([normalize_image(square(img, mf.image_size), mf.stats) for img in images])
    with torch.no_grad():
        p = torch.softmax(mf.model(x).float(), 1)
    top = torch.topk(p, min(k, p.shape[1]), dim=1)
    return [
        [(mf.classes[int(i)], float(v)) for v, i in zip(vals, idx, strict=True)]
        for vals, idx in zip(top.values, top.indices, strict=True)
    ]


class ModelCache:
    """The last few loaded models, by trial id and model file."""

    def __init__(self, size: int = CACHED_MODELS):
        self.size, self.models, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: tuple[str, str], load) -> Any:
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                return self.models[key]
        value = load()
        with self.lock:
            self.models[key] = value
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self.models)


# ------------------------------------------------------------ the service's predict worker (service/predict_pool.py)


_models = None  # the worker's ModelCache


def init_worker(parent: int, threads: int, memory_mb: int) -> None:
    """The worker's start: no secret in its environment, no working folder on its import
    path, a temporary one to run in, its data memory capped, `threads` torch threads; it
    exits when its parent is gone."""
    import os
    import resource
    import signal
    import sys
    import tempfile
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service ends it; Ctrl-C prints no trace here
    from cifar_sweeps.settings import drop_secrets_from_env

    drop_secrets_from_env()
    here = os.path.realpath(os.getcwd())
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]
    os.chdir(tempfile.mkdtemp(prefix="cifar-sweeps-predict-"))
    resource.setrlimit(resource.RLIMIT_DATA, (memory_mb << 20, memory_mb << 20))

    import torch

    torch.set_num_threads(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def held_models() -> int:
    return 0 if _models is None else len(_models)


def work(key: tuple[str, str], model_file: str, images: list, top_k: int) -> dict[str, Any]:
    """In the worker: the top-k of each image by the trial's model (loaded once, kept)."""
    global _models
    from cifar_sweeps.training.train import read_model_file

    if _models is None:
        _models = ModelCache()
    mf = _models.get(key, lambda: read_model_file(model_file))
    return {
        "normalize": mf.normalize,
        "classes": list(mf.classes),
        "tops": classify(mf, images, top_k),
    }
