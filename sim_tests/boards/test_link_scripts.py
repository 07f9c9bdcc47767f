"""The ledger's contents alone (``boards.link.scripts``), run by the Python model of the ledger
(``sim_tests/support/link_stages.LedgerModel``) with random words and sources: every response
script sends what ``docs/host_link.md`` sections 2 and 3 say, every program does what its
caller needs, and the layout keeps its promises (region-aligned addresses, a zero word)."""

import numpy as np
import pytest

from boards.link import MemoryMap
from boards.link.ports import LEDGER_DEPTH, Source
from boards.link.scripts import Data, Program, Script, image
from boards.protocol import REGIONS, RESPONSE

from ..support.link_stages import LedgerModel, expected_response, ledger_image

MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
RING_BIT = 5
U32 = (1 << 32) - 1
REGIONAL = (Script.OK_CAPACITY, Script.ERR_TOO_LARGE_CAPACITY, Script.ERR_LENGTH_WORD_BYTES)
#: Every response script: the regional ones once per region.
SCRIPTS = [int(s) for s in Script if s not in REGIONAL and s != Script.CRC] + [
    s + 2 * r for s in REGIONAL for r in range(len(REGIONS))]


def script_name(script):
    for first in REGIONAL:
        if first <= script < first + 2 * len(REGIONS):
            return f"{first.name} + region {(script - first) // 2}"
    return Script(script).name


def ops(words, addr):
    """The ops of the program or script at ``addr``, decoded."""
    while True:
        op = LedgerModel.decode(words[addr])
        yield op
        if op["last"]:
            return
        addr += 1


def random_sources(rng, cmd, ndata=0):
    """Values of the sources a link gives the ledger, each as wide as it is there."""
    widths = {Source.ARG: 32, Source.ARG8: 8, Source.CRC16: 16, Source.STATUS0: 24,
              Source.CORE: 32, Source.IMAGE_CRC: 32, Source.RUN_LOW: 9,
              Source.WRITTEN_LOW: RING_BIT + 1, Source.VERIFIED: 5, Source.COUNT: 7}
    values = {s: int(rng.integers(1 << w)) for s, w in widths.items()}
    values.update({Source.NARG: ~values[Source.ARG] & U32, Source.HEADER: cmd & 0x7F,
                   Source.NDATA: ndata << 8})
    return values


def test_layout():
    """Regions are ORed into addresses; the ledger's zero word is zero; everything fits."""
    words = ledger_image(MM, np.random.default_rng(0))
    assert len(words) == LEDGER_DEPTH and words[Data.ZERO] == 0
    for first in REGIONAL:
        assert all(first | r << 1 == first + 2 * r for r in range(len(REGIONS)))
    assert all(Program.CHECK_CAPACITY | r == Program.CHECK_CAPACITY + r
               for r in range(len(REGIONS)))
    assert max(Program) + len(REGIONS) <= LEDGER_DEPTH
    # Every data word a link sets, and only those, is in its image.
    values = {Data.TAG: 0x12345678, Data.CAPACITY + 4: 99}
    assert [i for i, (a, b) in enumerate(zip(image({}), image(values))) if a != b] == \
        sorted(values)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_responses(seed):
    """Each script: CMD is the request's with the top bit set, LEN counts the status byte, the
    words and OUTPUT's data, and the status and words are the protocol's; no script writes."""
    rng = np.random.default_rng(seed)
    for script in SCRIPTS:
        model = LedgerModel(ledger_image(MM, rng), ring_bit=RING_BIT)
        before = list(model.words)
        cmd = int(rng.integers(256))
        ndata = int(rng.integers(1, 500)) if script == Script.OUTPUT else 0
        sources = random_sources(rng, cmd, ndata)
        got_cmd, length, status, words = model.response(script, sources.__getitem__)
        want_status, want_words = expected_response(script, model.words, sources.__getitem__)
        name = script_name(script)
        assert (got_cmd, status, words) == (cmd | RESPONSE, want_status, want_words), name
        assert length == 1 + 4 * len(words) + ndata, name
        assert model.words == before, name


def test_crc_script():
    """The CRC-16's op: the register (bytes swapped by the link), the script's last op."""
    model = LedgerModel(ledger_image(MM), ring_bit=RING_BIT)
    model.run(Script.CRC, {Source.CRC16: 0xBEEF}.__getitem__)
    assert (model.result, model.last) == (0xBEEF, 1)


class Ledger:
    """A model ledger with random words, and its programs run with one source value each."""

    def __init__(self, rng):
        self.model = LedgerModel(ledger_image(MM, rng), ring_bit=RING_BIT)
        self.rng = rng

    def __getitem__(self, word):
        return self.model.words[word]

    def __setitem__(self, word, value):
        self.model.words[word] = value & U32

    def run(self, program, *, arg=0, **sources):
        """Run ``program`` with ``arg`` (and ``NARG``) and ``sources``; returns the words it
        changed, and the result and flags."""
        values = {Source.ARG: arg & U32, Source.NARG: ~arg & U32,
                  **{Source[k.upper()]: v for k, v in sources.items()}}
        before = list(self.model.words)
        self.model.run(program, values.__getitem__)
        changed = {i: w for i, (v, w) in enumerate(zip(before, self.model.words)) if v != w}
        m = self.model
        return changed, (m.result, m.carry, m.zero)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_programs(seed):
    """Each program changes exactly the words it should, and its result answers the check
    its caller makes (``carry``, ``zero``, the sign)."""
    rng = np.random.default_rng(seed)
    ledger = Ledger(rng)
    counters = [Data.RUNS, Data.RUN_CYCLES, Data.ERRORS, Data.WRITTEN, Data.RELEASED,
                Data.IN_COUNT]
    for word in counters:
        ledger[word] = int(rng.integers(1, 1 << 31))

    def changes(program, **kw):
        return ledger.run(program, **kw)[0]

    # A reset clears the counters; a run counts itself and clears its own.
    runs = ledger[Data.RUNS]
    errors = ledger[Data.ERRORS]
    assert changes(Program.RUN) == {Data.RUNS: runs + 1, Data.RUN_CYCLES: 0, Data.WRITTEN: 0,
                                    Data.RELEASED: 0, Data.IN_COUNT: 0}
    assert ledger[Data.ERRORS] == errors
    for word in counters:
        ledger[word] = int(rng.integers(1, 1 << 31))
    assert changes(Program.RESET) == dict.fromkeys(counters, 0)

    # Counter updates; the halves of the error word saturate, each on its own.
    ledger[Data.RUN_CYCLES] = cycles = int(rng.integers(1 << 30))
    assert changes(Program.CYCLES) == {Data.RUN_CYCLES: cycles + 256}
    ledger[Data.WRITTEN] = written = int(rng.integers(1 << 30))
    assert changes(Program.WRITTEN) == {Data.WRITTEN: written + (1 << RING_BIT)}
    for value, frame, rx in [(0, 1, 1 << 16), (0x0005_FFFE, 0x0005_FFFF, 0x0006_FFFE),
                             (0x0005_FFFF, 0x0005_FFFF, 0x0006_FFFF),
                             (0xFFFF_0003, 0xFFFF_0004, 0xFFFF_0003),
                             (0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF)]:
        ledger[Data.ERRORS] = value
        ledger.run(Program.FRAME_ERROR)
        assert ledger[Data.ERRORS] == frame, hex(value)
        ledger[Data.ERRORS] = value
        ledger.run(Program.RX_ERROR)
        assert ledger[Data.ERRORS] == rx, hex(value)

    # An upload: capacity, length, offsets, byte counts, the CRC-32.
    for r, spec in enumerate(MM):
        for length in (0, spec.capacity - 1, spec.capacity, spec.capacity + 1, 1 << 31, U32):
            _, (_, carry, _) = ledger.run(Program.CHECK_CAPACITY | r, arg=length)
            assert carry == (length <= spec.capacity), (r, length)
    length = int(rng.integers(1, 60))
    ledger[Data.FILL] = 1234                        # the last load's
    assert changes(Program.BEGIN_LENGTH, arg=length) == {Data.NEG_REMAINING: -length & U32,
                                                         Data.FILL: 0}
    crc = int(rng.integers(1 << 32))
    assert changes(Program.BEGIN_CRC, arg=crc) == {Data.NEG_CRC: -crc & U32}
    for fill in range(length + 1):
        for offset in (fill, fill - 1, fill + 1, fill + (1 << 20), U32):
            changed, (_, _, zero) = ledger.run(Program.CHECK_FILL, arg=offset)
            assert not changed and zero == (offset == fill)
        for count in range(length - fill + 3):
            changed, (result, _, zero) = ledger.run(Program.CHECK_COUNT, count=count)
            too_much = not (result >> 31) and not zero
            assert not changed and too_much == (count > length - fill), (fill, count)
        changed, (_, _, zero) = ledger.run(Program.CHECK_COMPLETE)
        assert not changed and zero == (fill == length)
        if fill < length:
            assert changes(Program.DATA_BYTE) == {Data.FILL: fill + 1,
                                                  Data.NEG_REMAINING: (fill + 1 - length) & U32}
    for image_crc in (crc, crc ^ 1, crc ^ 1 << 31, ~crc & U32):
        changed, (_, _, zero) = ledger.run(Program.CHECK_CRC, image_crc=image_crc)
        assert not changed and zero == (image_crc == crc)
    tag = ledger[Data.TAG] ^ int(rng.integers(1, 1 << 32))
    assert changes(Program.STORE_TAG, arg=tag) == {Data.TAG: tag}

    # Input: the offset against the bytes taken, each byte counted.
    ledger[Data.IN_COUNT] = taken = int(rng.integers(1 << 20))
    for offset in (taken, taken - 1, taken + 1, taken + (1 << 16), U32):
        changed, (_, _, zero) = ledger.run(Program.CHECK_INPUT, arg=offset)
        assert not changed and zero == (offset == taken)
    assert changes(Program.INPUT_BYTE) == {Data.IN_COUNT: taken + 1}

    # Output: released - offset, then the offset stored.
    ledger[Data.RELEASED] = released = int(rng.integers(1 << 20, 1 << 30))
    for offset in (released, released - 1, released + 1, released + 100, 0, U32):
        changed, (result, carry, zero) = ledger.run(Program.CHECK_RELEASED, arg=offset)
        assert not changed and result == (released - offset) & U32
        assert (carry, zero) == (released >= offset, released == offset)
    assert changes(Program.STORE_RELEASED, arg=released + 7) == {Data.RELEASED: released + 7}


def test_what_is_written():
    """Programs write only their data words (no script, program, constant or the zero word);
    scripts write nothing."""
    words = ledger_image(MM)
    programs = [*Program, *(Program.CHECK_CAPACITY + r for r in range(1, len(REGIONS)))]
    written = {op["addr"] for p in programs for op in ops(words, p) if op["write"]}
    assert written == {Data.RUNS, Data.RUN_CYCLES, Data.ERRORS, Data.WRITTEN, Data.RELEASED,
                       Data.IN_COUNT, Data.FILL, Data.NEG_REMAINING, Data.NEG_CRC, Data.TAG}
    assert not any(op["write"] for s in [*SCRIPTS, Script.CRC] for op in ops(words, s))
