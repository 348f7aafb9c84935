"""One exception root for the project. Each error carries the exit code the CLI returns and
the HTTP status the API answers, so both map errors in one place (cli.main and the API's
exception handler). Messages name the problem: they are shown to users as they are."""

from __future__ import annotations


class CifarSweepsError(Exception):
    exit_code: int = 1
    http_status: int = 500


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


class TransitionError(CifarSweepsError, RuntimeError):
    """A status change the sweep's lifecycle does not allow (see lifecycle.py)."""

    http_status = 409


class NonFiniteLossError(CifarSweepsError, RuntimeError):
    """The training loss became NaN or infinite (usually a learning rate too high)."""


class InjectedFault(CifarSweepsError, RuntimeError):
    """Raised by the fail_at_epoch test hook, once per trial, to exercise retries."""
