"""Stand-in webhook receiver: verifies Standard Webhooks signatures and stores deliveries.

Does what a careful receiver does (see ``crm/webhook.py``): a missing or malformed header
or a stale timestamp is refused with 400, a signature that does not match with 401, a
``webhook-id`` seen before with 409 (or 200 when ``duplicate_status`` says so) and the id
of the first delivery; a new delivery is stored and answered 200 ``{"id": "dlv-<n>"}``.

A batch delivery (``call.logged.batch``, the writer's ``batch_size`` > 1) is deduped per call
``key``, not per ``webhook-id`` (a retry may group the calls differently): each new call is
stored under its key like a single delivery, and the answer is 200 with a ``results`` entry
per call, ``existed`` (with the first delivery's id) for keys already stored, ``created``
otherwise. A body that is not a well-formed batch is refused with 422.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from sscl_daemon.crm.webhook import (
    BATCH_EVENT_TYPE,
    TOLERANCE,
    ItemStatus,
    VerificationError,
    delivery_documents,
    verify,
)
from sscl_daemon.simulator.crm.common import StandInState, fault_middleware, json_response

REFUSAL = "the receiving system refused this call (a validation rule)"


@dataclass
class Delivery:
    """One stored call; ``payload["data"]`` is its call document whichever way it came.

    ``webhook_id`` is the call's key; ``batch_id`` the ``webhook-id`` of the batch that
    brought it (None for a single delivery).
    """

    id: str
    webhook_id: str
    payload: dict[str, object]
    batch_id: str | None = None


@dataclass
class WebhookReceiverState(StandInState):
    # 32 bytes: the daemon refuses a secret under the standard's 24 (signing.py).
    secret: str = "whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM="
    tolerance: int = TOLERANCE
    clock: Callable[[], float] = time.time
    duplicate_status: int = 409
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


def create_app(state: WebhookReceiverState | None = None) -> web.Application:
    state = state or WebhookReceiverState()

    def store(key: str, payload: dict[str, object], batch_id: str | None = None) -> Delivery:
        delivery = Delivery(f"dlv-{len(state.deliveries) + 1}", key, payload, batch_id)
        state.deliveries[key] = delivery
        return delivery

    def receive_batch(msg_id: str, document: dict[str, object]) -> web.Response:
        try:
            calls = delivery_documents(document)
        except ValueError as exc:
            state.refused.append(str(exc))
            return json_response({"error": str(exc)}, 422)
        results: list[dict[str, object]] = []
        for call in calls:
            key = str(call["key"])
            existing = state.deliveries.get(key)
            if existing is not None:
                results.append({"key": key, "status": ItemStatus.EXISTED, "id": existing.id})
                continue
            if key in state.refused_keys:
                results.append({"key": key, "status": ItemStatus.REJECTED, "error": REFUSAL})
                continue
            single = {
                "type": document["type"],
                "timestamp": document.get("timestamp"),
                "data": call,
            }
            delivery = store(key, single, msg_id)
            results.append({"key": key, "status": ItemStatus.CREATED, "id": delivery.id})
        return json_response({"results": results})

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
        if isinstance(document, dict) and document.get("type") == BATCH_EVENT_TYPE:
            return receive_batch(msg_id, document)
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            state.refused.append("no data object")
            return json_response({"error": "payload needs a data object"}, 422)
        existing = state.deliveries.get(msg_id)
        if existing is not None:
            return json_response({"id": existing.id, "duplicate": True}, state.duplicate_status)
        if msg_id in state.refused_keys:
            return json_response({"error": REFUSAL}, 422)
        return json_response({"id": store(msg_id, document).id})

    app = web.Application(middlewares=[fault_middleware(state)])
    app.router.add_post("/{tail:.*}", receive)
    return app
