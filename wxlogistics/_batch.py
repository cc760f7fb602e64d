"""Batch cancelling: bounded concurrency, streamed outcomes, nothing lost on early exit."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, TypeAlias

import anyio

from ._exceptions import ClientClosedError, ValidationError, WxLogisticsError
from ._models import CancelOrderRequest, CancelOutcome

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._client import AsyncLogistics

__all__ = ["CancelBatch"]

# What flows from the workers to the consumer: an outcome, or None to wake a waiting consumer
# when the batch stops on an error (see ``CancelBatch._stop``).
_Item: TypeAlias = "CancelOutcome | None"


class CancelBatch:
    """A running batch of cancels, used as an async context manager.

    ::

        async with client.cancel_orders(requests, concurrency=50) as outcomes:
            async for outcome in outcomes:
                ...

    - Requests are pulled from ``requests`` only when a worker is free: besides the ones
      running, at most ``concurrency`` finished outcomes wait for the consumer, so a
      100,000-row file streams in constant memory.
    - One failed cancel never stops the batch: each request ends as one :class:`CancelOutcome`.
    - Leaving the block early (``break``, an exception, cancellation) stops pulling new
      requests, lets the ones already sent finish (they are shielded: a cancel that may have
      reached WeChat must have its answer), and keeps their outcomes in :attr:`unconsumed`.
    - Two things stop the batch early on their own: the request source raising (a bad row in
      a generator expression, an unreadable file), and the client being closed. The batch then
      pulls no more requests, and the next step of ``async for`` raises the error (the
      source's own exception, or :class:`ClientClosedError`), unwrapped; the requests already
      sent finish and their outcomes land in :attr:`unconsumed` when the block is left. If the
      block is left before that step, leaving it raises the error.

    Every request pulled from the source ends as exactly one outcome, either yielded by
    ``async for`` or in :attr:`unconsumed`.

    It is a context manager, not a bare async iterator, because its workers must run while
    the consumer is busy elsewhere, and structured concurrency (anyio, trio) wants such
    background tasks bounded by a block.
    """

    def __init__(
        self,
        client: AsyncLogistics,
        requests: Iterable[CancelOrderRequest] | AsyncIterable[CancelOrderRequest],
        concurrency: int,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(f"concurrency must be an int >= 1: {concurrency!r}")
        self._client = client
        self._requests = requests
        self._concurrency = concurrency
        self._task_group: TaskGroup | None = None
        self._stopping = False
        self._exhausted = False  # a worker saw the end of the source
        self._stop_raised = False  # the consumer has been handed `stopped_by`
        self._pulls: set[anyio.CancelScope] = set()  # workers waiting for their next request
        self._send: MemoryObjectSendStream[_Item]
        self._receive: MemoryObjectReceiveStream[_Item]
        self.unconsumed: list[CancelOutcome] = []
        """Outcomes that finished after the consumer left the block; read them after it."""
        self.started = 0
        """Requests sent so far."""
        self.finished = 0
        """Requests that have an outcome so far."""
        self.stopped_by: BaseException | None = None
        """The error that stopped the batch early, or None.

        The request source's own exception, or :class:`ClientClosedError` when the client was
        closed while the batch ran. The batch raises it too; this keeps it when something else
        was raised instead (the block was cancelled or interrupted at the same moment).
        """

    async def __aenter__(self) -> CancelBatch:
        if self._task_group is not None:
            raise RuntimeError("a CancelBatch can be entered only once")
        source = _Source(self._requests)  # not iterable: TypeError here, not in a task
        self._send, self._receive = anyio.create_memory_object_stream[_Item](self._concurrency)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._produce, source)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._stopping = True  # pull no more requests
        for scope in tuple(self._pulls):
            scope.cancel()
        with anyio.CancelScope(shield=True):
            # Collect what the running requests still deliver, even if we are being cancelled.
            # It ends when every worker has delivered and closed its end of the stream.
            async with self._receive:
                async for item in self._receive:
                    if item is not None:
                        self.unconsumed.append(item)
        # Every worker has returned (they never raise: errors go to `stopped_by`), so the task
        # group has nothing to report. It is not handed `exc`: anyio and trio would wrap it in
        # an exception group. Shielded: only the producer's last steps remain to wait for.
        self._task_group.cancel_scope.shield = True
        await self._task_group.__aexit__(None, None, None)
        error = self.stopped_by
        if error is None or self._stop_raised:
            return None  # `exc`, if any, propagates as itself
        self._stop_raised = True
        if exc is None:
            raise error  # the block was left before `async for` could raise it
        if not isinstance(exc, Exception) or _caused_by(exc, error):
            # A cancellation, KeyboardInterrupt or SystemExit wins (`stopped_by` keeps the
            # error); an exception raised while handling `error` already carries it.
            return None
        if not isinstance(error, Exception):
            raise error  # a KeyboardInterrupt or SystemExit in the source (`exc` its context)
        raise _group(
            "cancel_orders: the block raised, and the batch stopped on another error", [exc, error]
        ) from None

    def __aiter__(self) -> AsyncIterator[CancelOutcome]:
        return self

    async def __anext__(self) -> CancelOutcome:
        if self._task_group is None:
            raise RuntimeError(
                "use the batch as a context manager: "
                "async with client.cancel_orders(...) as outcomes: async for o in outcomes: ..."
            )
        while True:
            if self.stopped_by is not None and not self._stop_raised:
                self._stop_raised = True
                raise self.stopped_by
            item: _Item | bool
            try:
                item = self._receive.receive_nowait()  # no event-loop round trip when one is ready
            except anyio.WouldBlock:
                try:
                    item = await self._receive.receive()
                except anyio.EndOfStream:
                    item = False
            except anyio.EndOfStream:
                item = False
            if isinstance(item, CancelOutcome):
                return item
            if item is None:
                continue  # woken up to raise `stopped_by`
            if self.stopped_by is not None and not self._stop_raised:
                continue  # raise it rather than end quietly
            raise StopAsyncIteration

    async def _produce(self, source: _Source) -> None:
        """Run ``concurrency`` workers; each pulls its next request when it is free.

        The workers are shielded as a group: cancelling the consumer must not abandon a cancel
        that may have reached WeChat. They stop pulling when :meth:`__aexit__` says so, or
        when the batch stops on an error, and finish (bounded by the client's timeouts and
        retries) what they already sent.
        """
        with anyio.CancelScope(shield=True):
            async with self._send, anyio.create_task_group() as workers:
                for _ in range(self._concurrency):
                    workers.start_soon(self._work, source, self._send.clone())

    async def _work(self, source: _Source, send: MemoryObjectSendStream[_Item]) -> None:
        """Pull, send, deliver, until the source ends or the batch stops.

        It never raises (but for a cancellation, which the shield keeps away): an exception
        would cancel the other workers and abandon their requests. Errors stop the batch.
        """
        sync_next = source.sync_next
        client = self._client
        async with send:
            while not self._stopping:
                if client.is_closed:
                    if not self._exhausted:
                        self._stop(_closed_error(), send)
                    return
                try:
                    if sync_next is not None:
                        request = sync_next()  # cannot block, so nothing to interrupt
                    else:
                        with anyio.CancelScope() as scope:  # stopping interrupts this wait only
                            self._pulls.add(scope)
                            try:
                                request = await source.pull()
                            finally:
                                self._pulls.discard(scope)
                        if scope.cancelled_caught:
                            return
                except BaseException as exc:  # the source's own error, whatever it is
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
                    self._stop(exc, send)
                    return
                if request is _DONE:
                    self._exhausted = True
                    return
                if not isinstance(request, CancelOrderRequest):
                    self._stop(
                        TypeError(
                            "cancel_orders takes CancelOrderRequest items, "
                            f"not {type(request).__name__}"
                        ),
                        send,
                    )
                    return
                self.started += 1
                try:
                    result = await client.cancel(request)
                except WxLogisticsError as exc:
                    outcome = CancelOutcome(request=request, error=exc)
                except BaseException as exc:  # a bug: no outcome can describe it
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
                    self._stop(exc, send)
                    return
                else:
                    outcome = CancelOutcome(request=request, result=result)
                self.finished += 1
                try:
                    send.send_nowait(outcome)
                except anyio.WouldBlock:
                    await send.send(outcome)  # waits while `concurrency` outcomes are unread

    def _stop(self, error: BaseException, send: MemoryObjectSendStream[_Item]) -> None:
        """Stop pulling requests because of ``error``, and tell the consumer."""
        # The first error is the one raised; a later one most likely follows from it (e.g.
        # calls cut off by the same close).
        if self.stopped_by is None:
            self.stopped_by = error
        self._stopping = True
        for scope in tuple(self._pulls):
            scope.cancel()
        # Wake the consumer if it waits for an outcome. If the buffer is full it is not
        # waiting (and looks at `stopped_by` first); if the stream is broken it has left.
        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
            send.send_nowait(None)


def _closed_error() -> ClientClosedError:
    return ClientClosedError(
        "the client was closed while cancel_orders ran: it pulled no more requests; "
        "outcomes not yet read are in batch.unconsumed"
    )


def _group(message: str, errors: list[BaseException]) -> BaseException:
    """An exception group of ``errors`` (an ``ExceptionGroup`` if they all are exceptions)."""
    if sys.version_info >= (3, 11):
        return BaseExceptionGroup(message, errors)  # noqa: F821 (a builtin from 3.11)
    # Python 3.10: the backport, which anyio depends on there.
    from exceptiongroup import (  # type: ignore[import-not-found,unused-ignore]
        BaseExceptionGroup as Backport,
    )

    return Backport(message, errors)  # type: ignore[no-any-return,unused-ignore]


def _caused_by(exc: BaseException, error: BaseException) -> bool:
    """True if ``error`` is in the cause/context chain of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if current is error:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_DONE = object()  # the end of the source (None is a bad item, not the end)


class _Source:
    """The requests, pulled one at a time by the workers (no async generator involved)."""

    def __init__(
        self, requests: Iterable[CancelOrderRequest] | AsyncIterable[CancelOrderRequest]
    ) -> None:
        self.sync_next: Callable[[], object] | None = None
        if isinstance(requests, AsyncIterable):
            self._iterator = aiter(requests)
            self._lock = anyio.Lock()  # an async iterator must not be advanced by two tasks
        else:
            iterator = iter(requests)
            self.sync_next = lambda: next(iterator, _DONE)  # cannot block: no await needed

    async def pull(self) -> object:
        """The next item of an async source, or ``_DONE`` at its end."""
        async with self._lock:
            try:
                return await anext(self._iterator)
            except StopAsyncIteration:
                return _DONE
