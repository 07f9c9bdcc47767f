# amaranth: UnusedElaboratable=no
"""The response sender alone (``boards.link.response``): every kind of response, its words
from a stand-in ledger and from the stages' state, OUTPUT's data with random stalls, a UART
that takes bytes with random stalls; each frame compared with ``boards.protocol.encode_frame``
(the CRC-16 included)."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from boards.link.ports import LEDGER_DEPTH, OUTPUT_HEADER, Kind, Word
from boards.link.response import WORDS, ResponseSender
from boards.link.serial import SerialCRC
from boards.link.words import WordShifter
from boards.protocol import RESPONSE, encode_frame

from ..support.link_stages import ledger_reads
from ..support.streams import run, take

MAX_PAYLOAD, COUNT_BITS, FILL_BITS = 64, 16, 10
GENERIC_WORDS = [*range(LEDGER_DEPTH), Word.ARG, Word.STATUS0, Word.CORE_CYCLES,
                 Word.IN_COUNT, Word.WRITTEN, Word.RELEASED, Word.FILL, Word.IMAGE_CRC,
                 Word.VERIFIED]


class Board(Elaboratable):
    """The sender with the CRC-16 register and the shift register it uses."""

    def __init__(self):
        self.sender = ResponseSender(max_payload=MAX_PAYLOAD, count_bits=COUNT_BITS,
                                     n_regions=5, fill_bits=FILL_BITS)
        self.crc = SerialCRC(16, 0x1021, 0xFFFF, reflect=False)
        self.words = WordShifter()

    def elaborate(self, platform):
        m = Module()
        m.submodules.sender, m.submodules.crc = self.sender, self.crc
        m.submodules.words = self.words
        wiring.connect(m, self.sender.crc, self.crc)
        wiring.connect(m, self.sender.words, self.words.words)
        return m


#: The sender's state inputs: name, width, port (``None``: the sender's own).
STATE = [("model_valid", 1, "load"), ("loading", 1, "load"), ("verified", 5, "load"),
         ("fill", FILL_BITS, "load"), ("crc", 32, "load"), ("busy", 1, "run"),
         ("active", 1, "run"), ("done", 1, "run"), ("stalled", 1, "run"), ("cycles", 8, "run"),
         ("in_count", COUNT_BITS, "run"), ("written", COUNT_BITS, "output"),
         ("released", COUNT_BITS, "output"), ("core_cycles", 32, None)]


def words_of(result, state, ledger, last_error):
    """The words a response carries after its status byte."""
    flags = (state["model_valid"] | state["busy"] << 1 | state["done"] << 2
             | state["loading"] << 3 | state["stalled"] << 4)
    registers = {
        Word.ARG: result["arg"],
        Word.STATUS0: flags | state["verified"] << 8 | last_error << 16,
        Word.RUN_CYCLES: state["cycles"], Word.CORE_CYCLES: state["core_cycles"],
        Word.IN_COUNT: state["in_count"], Word.WRITTEN: state["written"],
        Word.RELEASED: state["released"], Word.FILL: state["fill"],
        Word.IMAGE_CRC: state["crc"], Word.VERIFIED: state["verified"],
    }
    names = WORDS.get(result["kind"], [result["word"]])
    return [(ledger[w] if w < LEDGER_DEPTH else 0) | registers.get(w, 0) for w in names]


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_payload"):
        ResponseSender(max_payload=OUTPUT_HEADER, count_bits=16, n_regions=5, fill_bits=10)
    with pytest.raises(ValueError, match="n_regions"):
        ResponseSender(max_payload=64, count_bits=16, n_regions=9, fill_bits=10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frames(seed):
    board = Board()
    dut = board.sender
    rng = np.random.default_rng(seed)
    ledger = [int(v) for v in rng.integers(0, 1 << 32, LEDGER_DEPTH, dtype=np.uint64)]
    data = []                               # OUTPUT's bytes still to offer
    counts = {"error": 0, "responses": 0}

    async def data_source(ctx):
        async for _, _, valid, ready in ctx.tick().sample(dut.data.valid, dut.data.ready):
            if valid and ready:
                data.pop(0)
            offer = bool(data) and (valid or rng.random() < 0.6)   # valid stays until taken
            ctx.set(dut.data.valid, offer)
            if data:
                ctx.set(dut.data.payload, data[0])

    async def count_strobes(ctx):
        async for _, _, error, valid, ready in ctx.tick().sample(
                dut.error, dut.response.valid, dut.response.ready):
            counts["error"] += error
            counts["responses"] += valid and ready

    async def testbench(ctx):
        last_error = errors = 0
        kinds = set()
        for n in range(40):
            kind = Kind(int(rng.integers(4)))
            status = int(rng.choice([0, 0, int(rng.integers(16))]))
            result = {"status": status, "kind": kind, "word": int(rng.choice(GENERIC_WORDS)),
                      "arg": int(rng.integers(256)), "ndata": 0}
            if kind == Kind.OUTPUT:
                result["ndata"] = int(rng.integers(MAX_PAYLOAD - OUTPUT_HEADER + 1))
            out = bytes(rng.integers(0, 256, result["ndata"], dtype=np.uint8))
            data.extend(out)
            state = {}
            for name, bits, port in STATE:
                state[name] = int(rng.integers(1 << bits))
                ctx.set(getattr(getattr(dut, port) if port else dut, name), state[name])
            cmd = int(rng.integers(256))
            last_error = status or last_error
            errors += status != 0
            payload = bytes([status]) + b"".join(
                struct.pack("<I", w) for w in words_of(result, state, ledger, last_error)) + out
            want = encode_frame(cmd | RESPONSE, payload)
            ctx.set(dut.response.payload, {"cmd": cmd, "result": result})
            ctx.set(dut.response.valid, 1)
            got = await take(ctx, dut.o, len(want), rng, ready=0.8)
            ctx.set(dut.response.valid, 0)      # taken with the last byte
            assert bytes(got) == want, f"response {n}: {Kind(kind).name}"
            await ctx.tick()                    # the strobe counter has seen that cycle
            assert counts == {"error": errors, "responses": n + 1}
            kinds.add(kind)
        assert len(kinds) == 4 and not data

    run(board, testbench, background=[ledger_reads(dut.ledger, ledger.__getitem__, rng),
                                      data_source, count_strobes])
