"""The events of a host-link fuzz run (:class:`Fuzzer`), drawn from a seeded numpy RNG.

Each :meth:`Fuzzer.step` is one event on a :class:`~.link_fuzz.FuzzBoard`: the next frame of
a valid script (an upload and commit of a random model, or a run whose output is compared with
:func:`boards.selftest.selftest_reference`), a valid frame with random fields (bad regions,
lengths, offsets, tags; unknown commands; wrong payload lengths; any order), a damaged frame
(bit flips, truncated, ``LEN`` too large with a valid CRC), a burst of noise, a frame sent
with random gaps (some so short that bytes are lost), two requests back to back (the second out
of turn), or a board reset.
"""

import struct

import numpy as np

from boards.protocol import REGIONS, SYNC, Cmd, Status, crc16, crc32, encode_frame
from boards.selftest import selftest_reference

__all__ = ["KINDS", "Fuzzer"]

#: Event kinds and their weights when no script frame is due.
KINDS = {"request": 30, "damaged": 20, "noise": 15, "out_of_turn": 12, "spaced": 10,
         "script": 8, "reset": 1}
#: A script's frames end after this many (when faults keep undoing its work).
SCRIPT_FRAMES = 80
#: The commands without a payload.
EMPTY = {Cmd.INFO, Cmd.STATUS, Cmd.DISCARD, Cmd.LOAD_END}


class Fuzzer:
    """Events for ``board`` (a :class:`~.link_fuzz.FuzzBoard`) from ``rng``."""

    def __init__(self, board, rng):
        self.board, self.rng = board, rng
        self.model = board.model
        self.script = None
        self.answer = None
        self.mm = board.mm
        self.max_payload = self.model.max_payload
        self.timeout = board.args["frame_timeout"]

    def step(self):
        """Run one event; returns its kind."""
        rng = self.rng
        if self.script is not None and rng.random() < 0.6:
            try:
                frame = self.script.send(self.answer)
            except StopIteration:
                self.script = self.answer = None
            else:
                answers = self.board.event(frame, what="script")
                self.answer = answers[-1] if answers else None
                return "script"
        weights = np.array(list(KINDS.values()))
        kind = list(KINDS)[rng.choice(len(KINDS), p=weights / weights.sum())]
        getattr(self, "_" + kind)()
        return kind

    # --- events -----------------------------------------------------------------------------

    def _request(self):
        self.board.event(self.request(), what="request")

    def _damaged(self):
        frame = bytearray(self.request())
        rng = self.rng
        how = rng.integers(3)
        if how == 0:                            # bit flips anywhere
            for _ in range(rng.integers(1, 4)):
                frame[rng.integers(len(frame))] ^= 1 << int(rng.integers(8))
        elif how == 1:                          # cut short, then silence
            frame = frame[:rng.integers(1, len(frame))]
        else:                                   # LEN too large, with a valid CRC or not
            length = int(rng.integers(self.max_payload + 1, 0x10000))
            frame[2:4] = length.to_bytes(2, "little")
            if rng.random() < 0.5:
                frame[-2:] = crc16(frame[1:-2]).to_bytes(2, "big")
        self.board.event(frame, what=f"damaged ({['flips', 'cut', 'LEN'][how]})")

    def _noise(self):
        rng = self.rng
        n = int(rng.integers(1, 41))
        data = rng.integers(0, 256, n, dtype=np.uint8)
        data[rng.random(n) < 0.2] = SYNC
        spacing = None if rng.random() < 0.5 else self.gaps(n)
        self.board.event(bytes(data), spacing, what="noise")

    def _out_of_turn(self):
        first = self.request()
        second = self.request() if self.rng.random() < 0.7 else bytes(
            self.rng.integers(0, 256, int(self.rng.integers(1, 20)), dtype=np.uint8))
        self.board.event(first + second, what="out of turn")

    def _spaced(self):
        frame = self.request()
        self.board.event(frame, self.gaps(len(frame)), what="spaced")

    def _script(self):
        if self.script is None:
            self.script = (self.upload() if self.rng.random() < 0.4 else self.run())
            self.answer = None
        else:
            self._request()

    def _reset(self):
        self.board.reset()

    def gaps(self, n):
        """Cycles before each of ``n`` bytes: from 3 (bytes lost) to well below the timeout."""
        return [int(g) for g in self.rng.integers(3, self.timeout - 16, n)]

    # --- frames -----------------------------------------------------------------------------

    def request(self):
        """A frame with a valid CRC: a command (or an unknown one) with random fields."""
        rng = self.rng
        known = [*Cmd]
        cmd = int(known[rng.integers(len(known))]) if rng.random() < 0.9 else int(
            rng.integers(256))
        payload = self.payload(cmd)
        if rng.random() < 0.12:
            payload = bytes(rng.integers(0, 256, int(rng.integers(0, self.max_payload + 1)),
                                         dtype=np.uint8))
        return encode_frame(cmd, payload)

    def pick(self, *choices):
        return choices[self.rng.integers(len(choices))]

    def u32(self):
        return int(self.rng.integers(1 << 32))

    def payload(self, cmd):
        rng, model = self.rng, self.model
        if cmd in EMPTY:
            return b""
        if cmd == Cmd.LOAD_BEGIN:
            region = int(rng.integers(5)) if rng.random() < 0.85 else int(rng.integers(5, 256))
            cap = self.mm.regions[region].capacity if region < 5 else 64
            length = self.pick(int(rng.integers(cap + 1)), cap, cap + 1, self.u32(), 0)
            return struct.pack("<BII", region, length, self.u32())
        if cmd in (Cmd.LOAD_DATA, Cmd.INPUT):
            at = model.fill if cmd == Cmd.LOAD_DATA else len(model.run.x) if model.run else 0
            offset = self.pick(at, at, at + 1, max(at - 1, 0), self.u32())
            most = self.max_payload - 4 if cmd == Cmd.LOAD_DATA else 12
            data = rng.integers(0, 256, int(rng.integers(0, most + 1)), dtype=np.uint8)
            return struct.pack("<I", offset) + bytes(data)
        if cmd == Cmd.COMMIT:
            return struct.pack("<I", self.u32())
        if cmd == Cmd.RUN:
            return bytes([int(rng.integers(256))])
        if cmd == Cmd.OUTPUT:
            offset = self.pick(model.released, model.produced, model.produced + 1,
                               max(model.released - 1, 0), self.u32())
            return struct.pack("<IH", offset, self.pick(0, 55, 56, int(rng.integers(1 << 16))))
        return bytes(rng.integers(0, 256, int(rng.integers(0, 12)), dtype=np.uint8))

    # --- scripts: valid requests that follow the board's state -------------------------------

    def upload(self):
        """DISCARD, then each region not yet verified (again when a fault undid it), COMMIT."""
        rng, model = self.rng, self.model
        images = {}
        for r in self.mm:
            words = int(rng.integers(1, r.depth + 1))
            images[r.name] = bytes(rng.integers(0, 256, words * r.word_bytes, dtype=np.uint8))
        n = int(rng.integers(0, 21))
        images["layers"] = n.to_bytes(4, "little") + images["layers"][4:]
        frames = 0
        yield encode_frame(Cmd.DISCARD)
        chunk = self.max_payload - 4
        while model.verified != 0b11111 and frames < SCRIPT_FRAMES:
            code = next(c for c in range(5) if not model.verified >> c & 1)
            image = images[REGIONS[code]]
            yield encode_frame(Cmd.LOAD_BEGIN, struct.pack("<BII", code, len(image),
                                                           crc32(image)))
            while (model.loading and model.region == code and model.fill < len(image)
                   and frames < SCRIPT_FRAMES):
                offset = model.fill
                yield encode_frame(Cmd.LOAD_DATA, struct.pack("<I", offset)
                                   + image[offset:offset + chunk])
                frames += 1
            if model.loading and model.region == code:
                yield encode_frame(Cmd.LOAD_END)
            frames += 2
        answer = yield encode_frame(Cmd.COMMIT, struct.pack("<I", self.u32()))
        if answer is not None and answer.status == Status.OK:
            self.board.stats["commits"] += 1
            assert all(model.committed(r.name)[:len(images[r.name])] == images[r.name]
                       for r in self.mm), "the model did not commit the images"

    def run(self):
        """RUN (unless a run is active), INPUT and OUTPUT until the run is done; the output,
        when no fault took a part of it, is compared with the self-test core's reference."""
        model, rng = self.model, self.rng
        if not model.running:
            answer = yield encode_frame(Cmd.RUN, bytes([int(rng.integers(256))]))
            if answer is None or answer.status != Status.OK:
                return
        run, images = model.run, {r: model.committed(r) for r in ("weights", "layers")}
        if run is None:                     # a reset since RUN (events come between frames)
            return
        x = bytes(rng.integers(0, 256, run.n, dtype=np.uint8))
        got, whole = bytearray(), True
        for _ in range(SCRIPT_FRAMES):
            if model.run is not run or len(got) == run.n + 4:
                break
            taken = len(run.x)
            if taken < run.n and taken - model.released < model.out_depth // 2:
                yield encode_frame(Cmd.INPUT, struct.pack("<I", taken) + x[taken:taken + 8])
                continue
            offset = max(len(got), model.released)
            if offset > len(got):                   # a fault's OUTPUT took these bytes
                whole = False
                got += bytes(offset - len(got))
            answer = yield encode_frame(Cmd.OUTPUT, struct.pack("<IH", offset, 55))
            if answer is not None and answer.status == Status.OK:
                got[offset:] = answer.data
        if whole and model.run is run and len(got) == run.n + 4:
            weights = self.mm["weights"]
            want = selftest_reference(images["weights"], images["layers"],
                                      np.frombuffer(bytes(run.x), np.int8), run.segment,
                                      depth=weights.depth, weight_bytes=weights.word_bytes)
            assert bytes(got) == want.tobytes(), "run output differs from selftest_reference"
            self.board.stats["runs_checked"] += 1
