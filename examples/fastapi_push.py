"""Receive WeChat's waybill track pushes (``add_express_path``) with FastAPI.

Configure message push in the mini program console (URL, Token, EncodingAESKey, safe mode,
XML or JSON), then run, with uvicorn installed::

    export WXLOGISTICS_PUSH_TOKEN=...        # the Token
    export WXLOGISTICS_PUSH_AES_KEY=...      # the EncodingAESKey; leave unset in plain mode
    export WXLOGISTICS_APPID=wx...           # your appid (needed with the key)
    uvicorn --factory examples.fastapi_push:create_app

``GET /wechat/push`` answers the URL handshake; ``POST /wechat/push`` verifies, decrypts and
parses each push and answers ``success``. A refused push gets a 4xx (403 for a bad signature
or an old timestamp, 400 for a malformed or undecryptable body, 413 for an oversized one) and
a handler that raises gets a 500: WeChat then sends the push again, so make the handler
idempotent (a waybill's pushes carry increasing ``Version`` numbers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from wxlogistics.events import (
    MAX_PUSH_BYTES,
    PATH_UPDATE_EVENT,
    PathUpdateEvent,
    PushDecryptError,
    PushError,
    PushFormatError,
    PushVerifier,
)

logger = logging.getLogger("wxlogistics.examples.push")

PUSH_PATH = "/wechat/push"
"""Where WeChat posts; the URL set in the console."""

PathUpdateHandler = Callable[[PathUpdateEvent], Awaitable[None]]
"""What the app calls with each verified track update."""


async def log_path_update(event: PathUpdateEvent) -> None:
    """The default handler: log the waybill's newest node."""
    latest = max(event.Actions, key=lambda action: action.ActionTime, default=None)
    logger.info(
        "waybill %s (%s) version %d: %s",
        event.WayBillId,
        event.DeliveryID,
        event.Version,
        "no nodes" if latest is None else f"{latest.ActionType} {latest.ActionMsg}",
    )


def verifier_from_env(environ: Mapping[str, str] = os.environ) -> PushVerifier:
    """Build the verifier from ``WXLOGISTICS_PUSH_TOKEN``, ``_PUSH_AES_KEY`` and ``_APPID``."""
    return PushVerifier(
        token=environ["WXLOGISTICS_PUSH_TOKEN"],
        encoding_aes_key=environ.get("WXLOGISTICS_PUSH_AES_KEY") or None,
        appid=environ.get("WXLOGISTICS_APPID") or None,
    )


def create_app(
    verifier: PushVerifier | None = None,
    on_path_update: PathUpdateHandler = log_path_update,
) -> FastAPI:
    """The app. Without a verifier, one is built from the environment (uvicorn's --factory)."""
    checker = verifier if verifier is not None else verifier_from_env()
    app = FastAPI(title="WeChat logistics push receiver")

    @app.get(PUSH_PATH)
    async def handshake(request: Request) -> Response:
        """Answer the GET WeChat sends when the push URL is saved."""
        query = request.query_params
        try:
            echostr = checker.verify_url(
                signature=query.get("signature"),
                timestamp=query.get("timestamp"),
                nonce=query.get("nonce"),
                echostr=query.get("echostr"),
            )
        except PushError as exc:
            return refuse(exc)
        return PlainTextResponse(echostr)

    @app.post(PUSH_PATH)
    async def receive(request: Request) -> Response:
        """Verify, decrypt and parse one push; answer ``success`` once it is handled."""
        body = await read_body(request, MAX_PUSH_BYTES)
        if body is None:
            return PlainTextResponse("body too large", status_code=413)
        query = request.query_params
        try:
            message = checker.decode(
                body,
                timestamp=query.get("timestamp"),
                nonce=query.get("nonce"),
                signature=query.get("signature"),
                msg_signature=query.get("msg_signature"),
                encrypt_type=query.get("encrypt_type"),
            )
            if message.get("Event") != PATH_UPDATE_EVENT:
                # The push URL receives every event of the mini program; handle others here.
                logger.info("ignoring a %r push", message.get("Event") or message.get("MsgType"))
                return PlainTextResponse("success")
            event = PathUpdateEvent.from_message(message)
        except PushError as exc:
            return refuse(exc)
        await on_path_update(event)
        return PlainTextResponse("success")

    return app


def refuse(exc: PushError) -> Response:
    """A 4xx for a refused push; the reason goes to the log, not to the caller."""
    status = 400 if isinstance(exc, (PushFormatError, PushDecryptError)) else 403
    logger.warning("push refused (%s): %s", type(exc).__name__, exc)
    return PlainTextResponse(type(exc).__name__, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it exceeds ``limit`` bytes (never reads more)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
