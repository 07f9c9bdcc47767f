"""Host-link transports for testing the host side (``boards.host``) without gateware.

:class:`ModelBoard` is a board in Python: :class:`~.link_model.LinkModel` behind the transport
interface, in simulated time (an answer is ready as soon as its request is complete, a
damaged or truncated request is answered after the frame timeout, as the board does).
:class:`FlakyLine` wraps any transport and damages the exchange at random: requests lost or
with a bit flipped, answers lost, with a bit flipped, or cut short.
"""

from .link_model import parse_frames

__all__ = ["FlakyLine", "ModelBoard"]


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


class FlakyLine:
    """``transport`` with faults: each request is lost (``lose``) or gets a bit flipped
    (``flip``), each answer is lost, gets a bit flipped or is cut short (each with ``p``), all
    drawn from ``rng``. ``faults`` counts them by kind."""

    def __init__(self, transport, rng, *, lose=0.05, flip=0.05, p=0.05):
        self.inner, self.rng = transport, rng
        self.lose, self.flip, self.p = lose, flip, p
        self.byte_time = transport.byte_time
        self.faults = {"request lost": 0, "request flipped": 0, "answer lost": 0,
                       "answer flipped": 0, "answer cut": 0}
        self._answer = None              # the fault of the answer being read, and its byte
        self._index = 0

    def _fault(self, kind):
        self.faults[kind] += 1
        return kind

    def write(self, data):
        rng, data = self.rng, bytearray(data)
        r = rng.random()
        kinds = ("answer lost", "answer flipped", "answer cut")
        a = rng.random()
        self._answer = (self._fault(kinds[int(a / self.p)]) if a < 3 * self.p else None,
                        int(rng.integers(0, 48)))
        self._index = 0
        if r < self.lose:
            self._fault("request lost")
            self.inner.idle(len(data) * self.byte_time)
            return
        if r < self.lose + self.flip and data:
            self._fault("request flipped")
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        self.inner.write(bytes(data))

    def read(self, n, timeout):
        data = bytearray(self.inner.read(n, timeout))
        kind, at = self._answer or (None, 0)
        start, self._index = self._index, self._index + len(data)
        if kind == "answer lost" or (kind == "answer cut" and start >= at):
            return b""
        if kind == "answer cut":
            return bytes(data[:at - start])
        if kind == "answer flipped" and start <= at < self._index:
            data[at - start] ^= 1 << int(self.rng.integers(8))
        return bytes(data)

    def now(self):
        return self.inner.now()

    def idle(self, seconds):
        self.inner.idle(seconds)

    def flush_input(self):
        self.inner.flush_input()

    def close(self):
        self.inner.close()
