"""Three overlapping stages (read -> compute -> write) for batches of files and video frames.

A user's job is decode, upscale, encode. Run one after another, the kernel waits for the codecs
and the codecs for the kernel; here the first stage runs in a producer thread, the middle one in
the calling thread and the last in a consumer thread, with small bounded queues between them, so
a batch takes about as long as its slowest stage. Decoders, encoders (Pillow, FFmpeg through
PyAV) and the kernel (ctypes) release the GIL while they work, so the threads really overlap.

Errors: an exception in any stage stops the others and is re-raised in the caller; Ctrl-C in the
caller stops the threads too (they poll a stop flag while waiting on a queue).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()
_POLL_S = 0.1


class _Failure:
    """An exception raised in a stage thread, carried to the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Channel:
    """A bounded queue whose puts and gets give up when ``stop`` is set."""

    def __init__(self, depth: int, stop: threading.Event) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = stop

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> object:
        while not self.stop.is_set():
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _DONE


def run_stages(source: Iterable[T], compute: Callable[[T], U], sink: Callable[[U], None],
               depth: int = 2) -> None:
    """Iterate ``source`` in a thread, ``compute`` each item here, ``sink`` the results in another
    thread, in order. Returns when the sink has taken every item; re-raises the first error."""
    stop = threading.Event()
    inbox, outbox = _Channel(depth, stop), _Channel(depth, stop)
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            for item in source:
                if not inbox.put(item):
                    return
            inbox.put(_DONE)
        except BaseException as error:  # noqa: BLE001 - carried to the caller
            inbox.put(_Failure(error))

    def consume() -> None:
        try:
            while True:
                item = outbox.get()
                if item is _DONE:
                    return
                sink(item)  # type: ignore[arg-type]
        except BaseException as error:  # noqa: BLE001 - carried to the caller
            failures.append(error)
            stop.set()

    producer = threading.Thread(target=produce, name="edgesr-read", daemon=True)
    consumer = threading.Thread(target=consume, name="edgesr-write", daemon=True)
    producer.start()
    consumer.start()
    try:
        for item in _drain(inbox):
            if not outbox.put(compute(item)):
                break  # the sink failed
        outbox.put(_DONE)
        consumer.join()
    finally:
        stop.set()  # on an error here, or Ctrl-C: the threads leave their queues
        producer.join()
        consumer.join()
    if failures:
        raise failures[0]


def _drain(inbox: _Channel) -> Iterator[object]:
    while True:
        item = inbox.get()
        if item is _DONE:
            return
        if isinstance(item, _Failure):
            raise item.error
        yield item
