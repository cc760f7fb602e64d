"""Batch cancelling: bounded concurrency, streamed outcomes, nothing lost on early exit."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from ._exceptions import ValidationError, WxLogisticsError
from ._models import CancelOrderRequest, CancelOutcome

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._client import AsyncLogistics

__all__ = ["CancelBatch"]


class CancelBatch:
    """A running batch of cancels, used as an async context manager.

    ::

        async with client.cancel_orders(requests, concurrency=50) as outcomes:
            async for outcome in outcomes:
                ...

    - Requests are pulled from ``requests`` only when a worker is free: besides the ones
      running, at most ``concurrency`` finished outcomes wait for the consumer, so a
      100,000-row file streams in constant memory.
    - One failure never stops the batch: each request ends as one :class:`CancelOutcome`.
    - Leaving the block early (``break``, an exception, cancellation) stops pulling new
      requests, lets the ones already sent finish (they are shielded: a cancel that may have
      reached WeChat must have its answer), and keeps their outcomes in :attr:`unconsumed`.

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
        self._pulls: set[anyio.CancelScope] = set()  # workers waiting for their next request
        self._send: MemoryObjectSendStream[CancelOutcome]
        self._receive: MemoryObjectReceiveStream[CancelOutcome]
        self.unconsumed: list[CancelOutcome] = []
        """Outcomes that finished after the consumer left the block; read them after it."""
        self.started = 0
        """Requests sent so far."""
        self.finished = 0
        """Requests that have an outcome so far."""

    async def __aenter__(self) -> CancelBatch:
        if self._task_group is not None:
            raise RuntimeError("a CancelBatch can be entered only once")
        self._send, self._receive = anyio.create_memory_object_stream[CancelOutcome](
            self._concurrency
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._produce)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._stopping = True  # pull no more requests
        for scope in self._pulls:
            scope.cancel()
        with anyio.CancelScope(shield=True):
            # Collect what the running requests still deliver, even if we are being cancelled.
            # It ends when every worker has delivered and closed its end of the stream.
            async with self._receive:
                async for outcome in self._receive:
                    self.unconsumed.append(outcome)
        return await self._task_group.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> AsyncIterator[CancelOutcome]:
        return self

    async def __anext__(self) -> CancelOutcome:
        if self._task_group is None:
            raise RuntimeError(
                "use the batch as a context manager: "
                "async with client.cancel_orders(...) as outcomes: async for o in outcomes: ..."
            )
        try:
            return self._receive.receive_nowait()  # no event-loop round trip when one is ready
        except anyio.WouldBlock:
            pass
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def _produce(self) -> None:
        """Run ``concurrency`` workers; each pulls its next request when it is free.

        The workers are shielded as a group: cancelling the consumer must not abandon a cancel
        that may have reached WeChat. They stop pulling when :meth:`__aexit__` says so, and
        finish (bounded by the client's timeouts and retries) what they already sent.
        """
        source = _Source(self._requests)
        with anyio.CancelScope(shield=True):
            async with self._send, anyio.create_task_group() as workers:
                for _ in range(self._concurrency):
                    workers.start_soon(self._work, source, self._send.clone())

    async def _work(self, source: _Source, send: MemoryObjectSendStream[CancelOutcome]) -> None:
        sync_next = source.sync_next
        client = self._client
        async with send:
            while not self._stopping:
                request = None
                if sync_next is not None:
                    request = sync_next()  # cannot block, so nothing to interrupt
                else:
                    with anyio.CancelScope() as scope:  # stopping interrupts this wait only
                        self._pulls.add(scope)
                        request = await source.pull()
                    self._pulls.discard(scope)
                if request is None:
                    return
                if not isinstance(request, CancelOrderRequest):
                    raise TypeError(
                        f"cancel_orders takes CancelOrderRequest items, not {type(request)!r}"
                    )
                self.started += 1
                try:
                    result = await client.cancel(request)
                except WxLogisticsError as exc:
                    outcome = CancelOutcome(request=request, error=exc)
                else:
                    outcome = CancelOutcome(request=request, result=result)
                self.finished += 1
                try:
                    send.send_nowait(outcome)
                except anyio.WouldBlock:
                    await send.send(outcome)  # waits while `concurrency` outcomes are unread


class _Source:
    """The requests, pulled one at a time by the workers (no async generator involved)."""

    def __init__(
        self, requests: Iterable[CancelOrderRequest] | AsyncIterable[CancelOrderRequest]
    ) -> None:
        self.sync_next: Callable[[], CancelOrderRequest | None] | None = None
        if isinstance(requests, AsyncIterable):
            self._iterator = aiter(requests)
            self._lock = anyio.Lock()  # an async iterator must not be advanced by two tasks
        else:
            iterator = iter(requests)
            self.sync_next = lambda: next(iterator, None)  # cannot block: no await needed

    async def pull(self) -> CancelOrderRequest | None:
        """The next request of an async source, or None at its end."""
        async with self._lock:
            try:
                return await anext(self._iterator)
            except StopAsyncIteration:
                return None
