"""Ctrl-C while worker processes run: noted by a signal handler, acted on at a safe point.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread happens to
be, including inside ``concurrent.futures.wait`` while it holds the futures' locks (its
``_AcquireFutures`` loop). The pool's manager thread then blocks forever on a lock the main
thread will never release, while the main thread waits for the manager thread to shut down:
the run hangs and never reports the interrupt. Deferring the interrupt to the driver's own
polling loop, which holds no library lock, makes a Ctrl-C stop the run every time.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class DeferredInterrupt:
    """Within the block, a SIGINT sets :attr:`requested` instead of raising; the code polls
    :meth:`check`, which raises KeyboardInterrupt. On leaving the block the previous handler
    is restored, and an interrupt noted but not yet acted on is raised then.

    Outside the main thread, or when SIGINT is ignored or handled by someone else's handler
    (an embedding application), it changes nothing: their behaviour is theirs to keep.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: signal.Handlers | object | None = None
        self._installed = False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        # only set a flag: a handler runs between any two bytecodes of the main thread, so it
        # must take no lock (threading.Event.set would, and could deadlock on its own lock)
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a Ctrl-C arrived since the block began."""
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGINT)
            if current is signal.default_int_handler:
                self._previous = current
                signal.signal(signal.SIGINT, self._note)
                self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False
        if exc_type is None:
            self.check()
