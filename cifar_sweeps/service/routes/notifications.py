"""Notifications: a test delivery to one of the operator's webhooks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cifar_sweeps.service.routes.deps import Auth, State, StrictJSON
from cifar_sweeps.service.schemas import error_responses
from cifar_sweeps.usecases.notify import Delivery, send_test

router = APIRouter(prefix="/notifications", tags=["notifications"])


class TestRequest(BaseModel):
    webhook: str = Field(max_length=64)  # a name from the operator's webhooks, never a URL


@router.post(
    "/test",
    response_model=Delivery,
    dependencies=[Auth, StrictJSON],
    responses=error_responses(400, 401, 404, 413, 422),
)
def test_webhook(body: TestRequest, state: State) -> Delivery:
    """Send one test event to the webhook `webhook`, signed as a sweep's end is, tried once:
    what the receiver answered (`delivered`, its `status`)."""
    return send_test(state.settings, body.webhook)
