"""Models: every model a spec may name, the zoo's and installed plug-ins', with its source."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cifar_sweeps.sweepspec import registry
from cifar_sweeps.sweepspec.registry import ModelInfo

router = APIRouter(prefix="/models", tags=["models"])


class ModelList(BaseModel):
    items: list[ModelInfo]
    group: str = registry.GROUP  # the entry-point group a package registers its models under


@router.get("", response_model=ModelList)
def list_models() -> ModelList:
    """The zoo's models, then each installed plug-in (read from package metadata: no
    plug-in code runs here). A spec names one of these, never a module path; the answer
    names none either (a builder's module is the server's business)."""
    return ModelList(items=[m.model_copy(update={"target": None}) for m in registry.models().values()])
