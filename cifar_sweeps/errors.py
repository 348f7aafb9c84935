"""One exception root for the project. Each error carries the exit code the CLI returns and
the HTTP status the API answers, so both map errors in one place (cli.main and the API's
exception handler). Messages name the problem: they are shown to users as they are."""

from __future__ import annotations

import math


class CifarSweepsError(Exception):
    exit_code: int = 1
    http_status: int = 500
    headers: dict[str, str] = {}  # HTTP headers the answer carries (Retry-After, WWW-Authenticate)


class NotFound(CifarSweepsError, LookupError):
    """A sweep, trial, search space or file that is not there; the message names it."""

    exit_code = 2
    http_status = 404


class Unauthorized(CifarSweepsError):
    """A request that changes something, without the API token or with a wrong one."""

    http_status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Busy(CifarSweepsError, RuntimeError):
    """Work that runs a few at a time is at its limit: retry in a moment."""

    http_status = 503
    headers = {"Retry-After": "1"}


class ChildTimeout(Busy):
    """A child process (a probe, a model check, an export, a replay, a prediction) outlived
    its time and was killed, its whole process group with it."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


class QueueFull(CifarSweepsError, RuntimeError):
    """Too many sweeps are waiting for a running slot: submit again later."""

    http_status = 429
    headers = {"Retry-After": "60"}


class InputError(CifarSweepsError, ValueError):
    """Something the user gave can't be used: fix the input and try again."""

    exit_code = 2
    http_status = 422


class SpecError(InputError):
    """A sweep spec that can't run; the message names the field."""


class DataSourceError(InputError):
    """A data source that is missing, corrupt or not laid out as expected."""


class ModelError(InputError):
    """An unknown model or activation, or pretrained weights that can't be had."""


class WeightsError(InputError):
    """Weights that are missing, unknown or not what they claim to be."""


class BodyTooLarge(InputError):
    """A request body past Settings.max_body_bytes (raised while it is read, mid-stream)."""

    http_status = 413


class NotAnImage(InputError):
    """An upload that is not a PNG or JPEG image."""

    http_status = 415


class ImageTooLarge(InputError):
    """An image past the pixel limit of a prediction."""

    http_status = 413


class ExportFailed(CifarSweepsError, RuntimeError):
    """A model that could not be written as ONNX or TorchScript (an operator the format lacks)."""

    http_status = 422


class StorageError(CifarSweepsError, RuntimeError):
    """A results folder that can't take a sweep's files: read-only, full, or not a folder."""

    http_status = 507  # Insufficient Storage


class StoreUnavailable(CifarSweepsError, RuntimeError):
    """The store can't be opened: a wrong URL, a server that is down, a read-only disk."""

    http_status = 503


class RayUnavailable(CifarSweepsError, RuntimeError):
    """The Ray cluster (its dashboard / Jobs API) can't be reached."""

    http_status = 503


class SweepError(CifarSweepsError, RuntimeError):
    """A sweep that can't start (no GPUs for a GPU spec, unknown sweep, nothing to resume)."""

    http_status = 409


class NotEnoughTrials(SweepError):
    """Too few finished trials to say anything about the space."""


class AnalysisBusy(Busy):
    """One importance is computed at a time: a second one waits for the client's retry."""


class TransitionError(CifarSweepsError, RuntimeError):
    """A status change the sweep's lifecycle does not allow (see lifecycle.py)."""

    http_status = 409


class NonFiniteLossError(CifarSweepsError, RuntimeError):
    """The training loss became NaN or infinite (usually a learning rate too high)."""


class InjectedFault(CifarSweepsError, RuntimeError):
    """Raised by the fail_at_epoch test hook, once per trial, to exercise retries."""
