"""Fuzzing the host link: random byte streams, damaged and malformed frames and valid requests,
each answer predicted by :class:`~.link_model.LinkModel` and checked, with its latency.

:class:`FuzzBoard` joins a simulated board at byte level (:class:`~.byte_link.ByteTransport`,
the link and :class:`boards.selftest.SelfTestCore`) and the model. :meth:`FuzzBoard.event`
sends one event's bytes, works out from the bytes that got through which frames the receiver
saw (:func:`~.link_model.parse_frames`) and what the model answers to each, and reads the
answers within :meth:`FuzzBoard.bound` cycles of the event's last byte. :class:`Fuzzer`
makes the events: valid uploads and runs (adaptive scripts that follow the model), valid
frames with bad fields or out of order, damaged frames, noise, bytes out of turn, resets.
"""

from collections import Counter

from boards import protocol
from boards.host import Link
from boards.protocol import Status
from boards.selftest import SelfTestCore, selftest_reference

from .byte_link import ByteTransport, byte_level
from .link_model import LinkModel, parse_frames
from .selftest_board import words_of

__all__ = ["FuzzBoard"]

#: Cycles an answer may take beyond its timeouts (docs/reliability.md has the measured worst):
#: to start, per byte of the answer, per payload byte of the request (LOAD_DATA's and INPUT's
#: go to the core one by one; the payload nobody takes is dropped one byte every 3 cycles).
BASE_CYCLES, BYTE_CYCLES, PAYLOAD_CYCLES = 64, 16, 20


class FuzzBoard:
    """A board at byte level and the model of what it answers (see the module docstring)."""

    def __init__(self, memory_map, link_args, *, init=None, spacing=12):
        self.mm, self.args = memory_map, link_args
        words = {r: words_of(img, r, memory_map) for r, img in (init or {}).items()}
        self.top = byte_level(SelfTestCore(memory_map, init=words or None), **link_args)
        self.t = ByteTransport(self.top, clk_hz=link_args["clk_hz"], spacing=spacing)
        self.model = LinkModel(memory_map, link_args, init)
        self.stats = Counter()
        self.worst = 0.0                # the largest latency seen, as a fraction of the bound

    def bound(self, items, answers):
        """Cycles from an event's last byte to the end of ``answers`` to ``items``."""
        waits = sum(self.args[a.waits] for a in answers if a.waits)
        size = sum(protocol.OVERHEAD + 1 + 4 * len(a.words) + len(a.data) for a in answers)
        payload = sum(len(i[2]) for i in items if i[0] == "frame")
        return (BASE_CYCLES * len(answers) + BYTE_CYCLES * size + PAYLOAD_CYCLES * payload
                + waits)

    def event(self, data, spacing=None, what="event"):
        """Send ``data``, check every answer the model predicts; returns the answers."""
        t = self.t
        assert not t.from_board, f"{what}: unexpected bytes {bytes(t.from_board).hex()}"
        t.send(data, spacing)
        seen = t.flush()
        sent_at = t.sent_at
        self.model.lost(len(data) - len(seen))
        items = parse_frames(seen, self.model.max_payload)
        try:
            return self._answers(items, sent_at, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n  sent {bytes(data).hex()}\n  got through "
                                 f"{seen.hex()}\n  frames {[_show(i) for i in items]}") from None
        finally:
            self.stats["dropped"] += len(data) - len(seen)
            self.stats["bytes"] += len(data)

    def _answers(self, items, sent_at, what):
        t = self.t
        answers = []
        for k, item in enumerate(items):
            answer = self.model.answer(item)
            answers.append(answer)
            bound = self.bound(items[:k + 1], answers)
            deadline = sent_at + bound
            cmd, payload = self._read(deadline, what)
            if not answer.matches(cmd, payload):
                raise AssertionError(f"{what}: for {_show(item)} expected {answer}, got cmd "
                                     f"0x{cmd:02x} {payload.hex()}")
            self.model.observe(answer, payload)
            self.worst = max(self.worst, (t.received_at[-1] - sent_at) / bound)
            self.stats[item[0] if item[0] == "error" else "frame"] += 1
            self.stats[answer.status.name] += 1
        return answers

    def _read(self, deadline, what):
        t, clk = self.t, self.args["clk_hz"]

        def read(n):
            data = t.read(n, max(deadline - t.cycle(), 0) / clk)
            if len(data) < n:
                raise AssertionError(f"{what}: no answer within {deadline - t.sent_at} cycles "
                                     f"(got {bytes(data).hex()})")
            return data
        head = read(4)
        assert head[0] == protocol.SYNC, f"{what}: answer starts with {head.hex()}"
        length = int.from_bytes(head[2:4], "little")
        rest = read(length + 2)
        assert protocol.crc16(head[1:] + rest) == 0, f"{what}: answer CRC {(head + rest).hex()}"
        return head[1], rest[:length]

    def reset(self):
        self.t.reset_board()
        self.t.idle(8 / self.args["clk_hz"])
        self.model.reset()
        self.stats["resets"] += 1

    def host_run(self, x, segment=0):
        """One inference with :class:`boards.host.Link` (no faults); the model follows the
        frames it sent. Returns ``(output, expected)``."""
        t, clk = self.t, self.args["clk_hz"]
        start = len(t.log)
        host = Link(t, timeout=2000 / clk)
        model = self.model
        n = int.from_bytes(model.committed("layers")[:2], "little")
        want = selftest_reference(model.committed("weights"), model.committed("layers"), x,
                                  segment, depth=self.mm["weights"].depth,
                                  weight_bytes=self.mm["weights"].word_bytes)
        y = host.infer(x, n + 4, segment=segment)
        t.flush()
        for item in parse_frames(bytes(b for b, ok in t.log[start:] if ok), model.max_payload):
            model.answer(item)
        self.stats["host_runs"] += 1
        return y, want


def _show(item):
    if item[0] == "error":
        return f"a damaged frame ({Status(item[1]).name}, cmd 0x{item[2]:02x})"
    return f"frame cmd 0x{item[1]:02x} payload {item[2].hex()}"
