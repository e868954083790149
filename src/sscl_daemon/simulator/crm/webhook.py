"""Stand-in webhook receiver: verifies Standard Webhooks signatures and stores deliveries.

Does what a careful receiver does (see ``crm/webhook.py``): a missing or malformed header
or a stale timestamp is refused with 400, a signature that does not match with 401, a
``webhook-id`` seen before with 409 (or 200 when ``duplicate_status`` says so) and the id
of the first delivery; a new delivery is stored and answered 200 ``{"id": "dlv-<n>"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from sscl_daemon.crm.webhook import TOLERANCE, VerificationError, verify
from sscl_daemon.simulator.crm.common import StandInState, fault_middleware, json_response


@dataclass
class Delivery:
    id: str
    webhook_id: str
    payload: dict[str, object]


@dataclass
class WebhookReceiverState(StandInState):
    secret: str = "whsec_c3NjbC1kZW1vLXNlY3JldC0xMjM0NTY="
    tolerance: int = TOLERANCE
    clock: Callable[[], float] = time.time
    duplicate_status: int = 409
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


def create_app(state: WebhookReceiverState | None = None) -> web.Application:
    state = state or WebhookReceiverState()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify(state.secret, request.headers, body, state.clock(), state.tolerance)
        except VerificationError as exc:
            state.refused.append(str(exc))
            status = 401 if "signature" in str(exc) and "missing" not in str(exc) else 400
            return json_response({"error": str(exc)}, status)
        try:
            document = json.loads(body)
        except ValueError:
            state.refused.append("body is not JSON")
            return json_response({"error": "body is not JSON"}, 400)
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            state.refused.append("no data object")
            return json_response({"error": "payload needs a data object"}, 422)
        existing = state.deliveries.get(msg_id)
        if existing is not None:
            return json_response({"id": existing.id, "duplicate": True}, state.duplicate_status)
        delivery = Delivery(f"dlv-{len(state.deliveries) + 1}", msg_id, document)
        state.deliveries[msg_id] = delivery
        return json_response({"id": delivery.id})

    app = web.Application(middlewares=[fault_middleware(state)])
    app.router.add_post("/{tail:.*}", receive)
    return app
