"""Host-link transports for testing the host side (``boards.host``) without gateware.

:class:`ModelBoard` is a board in Python: :class:`~.link_model.LinkModel` behind the transport
interface, in simulated time (an answer is ready as soon as its request is complete, a
damaged or truncated request is answered after the frame timeout, as the board does).
:class:`FlakyLine` wraps any transport and damages the exchange at random: requests lost or
with a bit flipped, answers lost, with a bit flipped, or cut short.
"""

from .link_model import parse_frames

__all__ = ["ANSWER_FAULTS", "FlakyLine", "ModelBoard"]


class ModelBoard:
    """The transport interface over ``model`` (a :class:`~.link_model.LinkModel`)."""

    def __init__(self, model, *, baud=1_000_000):
        self.model = model
        self.byte_time = 10 / baud
        self.frame_timeout = model.args["frame_timeout"] / model.args["clk_hz"]
        self._t = 0.0
        self._rx, self._rx_at = bytearray(), 0.0
        self._tx = bytearray()

    def _serve(self):
        """Answer what the board has received: complete frames at once, a damaged or
        incomplete one once the line has been quiet for the frame timeout."""
        if not self._rx:
            return
        items = parse_frames(self._rx, self.model.max_payload)
        if any(i[0] == "error" for i in items) and self._t - self._rx_at < self.frame_timeout:
            return
        for item in items:
            self._tx += self.model.answer(item).frame()
        self._rx.clear()

    def now(self):
        return self._t

    def write(self, data):
        self._t += len(data) * self.byte_time
        self._rx += data
        self._rx_at = self._t

    def read(self, n, timeout):
        self._serve()
        if len(self._tx) < n and self._rx:
            wait = self._rx_at + self.frame_timeout - self._t
            if wait <= timeout:
                self._t += max(wait, 0.0)
                timeout -= max(wait, 0.0)
                self._serve()
        if len(self._tx) < n:
            self._t += max(timeout, 0.0)
        data = bytes(self._tx[:n])
        del self._tx[:n]
        return data

    def idle(self, seconds):
        self._t += max(seconds, 0.0)

    def flush_input(self):
        self._serve()
        self._tx.clear()

    def close(self):
        pass


#: The faults of an answer.
ANSWER_FAULTS = ("answer lost", "answer flipped", "answer cut")


class FlakyLine:
    """``transport`` with faults: each request is lost (``lose``) or gets a bit flipped
    (``flip``), each answer is lost, gets a bit flipped or is cut short (each with ``p``), all
    drawn from ``rng``; or as :meth:`plan` says. ``faults`` counts them by kind."""

    def __init__(self, transport, rng, *, lose=0.05, flip=0.05, p=0.05):
        self.inner, self.rng = transport, rng
        self.lose, self.flip, self.p = lose, flip, p
        self.byte_time = transport.byte_time
        self.faults = dict.fromkeys(("request lost", "request flipped", *ANSWER_FAULTS), 0)
        self.writes = 0                  # requests written so far
        self._planned = {}
        self._answer = (None, 0, 0)      # the fault of the answer being read: kind, byte, mask
        self._index = 0

    def plan(self, kind, at=0, mask=1, *, request=None):
        """Give request number ``request`` (the next one by default) the fault ``kind``: at byte
        ``at`` of the request or its answer, XOR ``mask`` for a flip."""
        self._planned[self.writes if request is None else request] = (kind, at, mask)

    def write(self, data):
        rng, data = self.rng, bytearray(data)
        planned = self._planned.pop(self.writes, None)
        self.writes += 1
        if planned is None:
            r, a = rng.random(), rng.random()
            request = ("request lost" if r < self.lose
                       else "request flipped" if r < self.lose + self.flip else None)
            answer = ANSWER_FAULTS[int(a / self.p)] if a < 3 * self.p else None
            at, mask = int(rng.integers(0, 48)), 1 << int(rng.integers(8))
        else:
            kind, at, mask = planned
            request, answer = (kind, None) if kind.startswith("request") else (None, kind)
        self._answer = (answer and self._fault(answer), at, mask)
        self._index = 0
        if request == "request lost":
            self._fault(request)
            self.inner.idle(len(data) * self.byte_time)
            return
        if request == "request flipped":
            self._fault(request)
            data[at % len(data)] ^= mask
        self.inner.write(bytes(data))

    def _fault(self, kind):
        self.faults[kind] += 1
        return kind

    def read(self, n, timeout):
        data = bytearray(self.inner.read(n, timeout))
        kind, at, mask = self._answer
        start, self._index = self._index, self._index + len(data)
        if kind == "answer lost" or (kind == "answer cut" and start >= at):
            return b""
        if kind == "answer cut":
            return bytes(data[:at - start])
        if kind == "answer flipped" and start <= at < self._index:
            data[at - start] ^= mask
        return bytes(data)

    def now(self):
        return self.inner.now()

    def idle(self, seconds):
        self.inner.idle(seconds)

    def flush_input(self):
        self.inner.flush_input()

    def close(self):
        self.inner.close()
