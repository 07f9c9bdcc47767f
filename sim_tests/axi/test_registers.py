# amaranth: UnusedElaboratable=no
"""The AXI4-Lite register file (amaranth.sim): handshakes in every order, each kind of
register, unmapped addresses, the interrupt."""

from pathlib import Path

import pytest

from sps_hw.axi import RESP_OKAY, RESP_SLVERR, Register, RegisterFile, verilog_ports
from sps_hw.sim import simulate, write_job, write_verilog

from ..support.streams import run
from .designs import register_file

REGISTERS = [
    Register("control", "rw", 32, init=0x5),
    Register("start", "pulse", 2),
    Register("status", "w1c", 2),
    Register("irq_enable", "rw", 2),
    Register("cycles", "ro", 32),
    Register("small", "rw", 12),
]


def regfile(**kwargs):
    return RegisterFile(REGISTERS, irq=("status", "irq_enable"), **kwargs)


async def wait_for(ctx, signal, cycles=50):
    """Tick until an edge at which ``signal`` is high; fails after ``cycles`` edges."""
    for _ in range(cycles):
        _, _, value = await ctx.tick().sample(signal)
        if value:
            return
    raise AssertionError(f"{signal.name} still low after {cycles} cycles")


async def write(ctx, bus, addr, data, *, strb=0xF, order="together", gap=0, b_wait=0):
    """One AXI4-Lite write: AW and W together, or ``order`` "aw"/"w" first and the other
    ``gap`` cycles after it was taken; B taken ``b_wait`` cycles after it is valid. Returns
    BRESP."""
    channels = {"aw": (bus.awvalid, bus.awready, [(bus.awaddr, addr)]),
                "w": (bus.wvalid, bus.wready, [(bus.wdata, data), (bus.wstrb, strb)])}
    groups = [["aw", "w"]] if order == "together" else [[order], [{"aw": "w", "w": "aw"}[order]]]
    for i, group in enumerate(groups):
        if i and gap:
            await ctx.tick().repeat(gap)
        for name in group:
            valid, _, values = channels[name]
            ctx.set(valid, 1)
            for sig, v in values:
                ctx.set(sig, v)
        pending = list(group)
        for _ in range(50):
            if not pending:
                break
            sampled = await ctx.tick().sample(*(channels[n][1] for n in pending))
            for name, ready in list(zip(pending, sampled[2:])):
                if ready:
                    ctx.set(channels[name][0], 0)
                    pending.remove(name)
        assert not pending, f"{pending} not taken after 50 cycles"
    await wait_for(ctx, bus.bvalid)
    if b_wait:
        await ctx.tick().repeat(b_wait)
        assert ctx.get(bus.bvalid), "bvalid dropped before bready"
    ctx.set(bus.bready, 1)
    resp = ctx.get(bus.bresp)
    await ctx.tick()
    ctx.set(bus.bready, 0)
    return resp


async def read(ctx, bus, addr):
    """One AXI4-Lite read: returns ``(RDATA, RRESP)``."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await wait_for(ctx, bus.arready)
    ctx.set(bus.arvalid, 0)
    await wait_for(ctx, bus.rvalid)
    ctx.set(bus.rready, 1)
    got = ctx.get(bus.rdata), ctx.get(bus.rresp)
    await ctx.tick()
    ctx.set(bus.rready, 0)
    return got


@pytest.mark.parametrize("order, gap", [("together", 0), ("aw", 0), ("aw", 3), ("w", 0),
                                        ("w", 3)])
def test_write_handshake_in_any_order(order, gap):
    dut = regfile()
    seen = []

    async def bench(ctx):
        bus = dut.s_axi
        seen.append(await read(ctx, bus, 0x0))
        seen.append(await write(ctx, bus, 0x0, 0x1234_5678, order=order, gap=gap, b_wait=2))
        seen.append(await read(ctx, bus, 0x0))
        seen.append(ctx.get(dut.control))
        # A byte write: only byte 2 changes.
        seen.append(await write(ctx, bus, 0x0, 0xAABB_CCDD, strb=0b0100, order=order, gap=gap))
        seen.append(await read(ctx, bus, 0x0))

    run(dut, bench)
    assert seen == [(0x5, RESP_OKAY), RESP_OKAY, (0x1234_5678, RESP_OKAY), 0x1234_5678,
                    RESP_OKAY, (0x12BB_5678, RESP_OKAY)]


def test_register_kinds_and_interrupt():
    dut = regfile()
    seen = {}

    async def bench(ctx):
        bus = dut.s_axi
        ctx.set(dut.cycles, 0xDEAD_BEEF)
        seen["ro"] = await read(ctx, bus, 0x10)
        seen["ro write"] = await write(ctx, bus, 0x10, 0)        # OKAY, ignored
        seen["ro after"] = await read(ctx, bus, 0x10)
        seen["narrow"] = (await write(ctx, bus, 0x14, 0xFFFF_FFFF), await read(ctx, bus, 0x14))
        # Status bit 1 set by the core; no interrupt until it is enabled.
        ctx.set(dut.status, 0b10)
        await ctx.tick()
        ctx.set(dut.status, 0)
        seen["status"] = (await read(ctx, bus, 0x8), ctx.get(dut.irq))
        await write(ctx, bus, 0xC, 0b10)
        seen["irq on"] = ctx.get(dut.irq)
        await write(ctx, bus, 0x8, 0b01)                        # clears nothing that is set
        seen["w1c other bit"] = (await read(ctx, bus, 0x8), ctx.get(dut.irq))
        await write(ctx, bus, 0x8, 0b10)
        seen["cleared"] = (await read(ctx, bus, 0x8), ctx.get(dut.irq))

    async def pulses(ctx):
        """Every cycle in which start is high, with its value."""
        seen["pulses"] = []
        for _ in range(400):
            if ctx.get(dut.start):
                seen["pulses"].append(ctx.get(dut.start))
            await ctx.tick()

    async def starter(ctx):
        await ctx.tick().repeat(150)
        seen["start"] = await write(ctx, dut.s_axi, 0x4, 0b11)
        seen["start read"] = await read(ctx, dut.s_axi, 0x4)

    async def bench_then_start(ctx):
        await bench(ctx)
        await starter(ctx)

    run(dut, bench_then_start, pulses)
    assert seen == {
        "ro": (0xDEAD_BEEF, RESP_OKAY), "ro write": RESP_OKAY,
        "ro after": (0xDEAD_BEEF, RESP_OKAY), "narrow": (RESP_OKAY, (0xFFF, RESP_OKAY)),
        "status": ((0b10, RESP_OKAY), 0), "irq on": 1,
        "w1c other bit": ((0b10, RESP_OKAY), 1), "cleared": ((0, RESP_OKAY), 0),
        "start": RESP_OKAY, "start read": (0, RESP_OKAY), "pulses": [0b11],
    }


def test_a_set_wins_over_a_clear():
    """A status bit set by the core in the cycle its clearing write takes effect stays set."""
    dut = regfile()
    seen = []

    async def bench(ctx):
        bus = dut.s_axi
        ctx.set(dut.status, 0b01)
        await ctx.tick()
        # The write takes effect at the edge after AW and W are both held: set then too.
        ctx.set(bus.awaddr, 0x8)
        ctx.set(bus.wdata, 0b01)
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick()                                # the write's edge; status still set
        ctx.set(dut.status, 0)
        seen.append(ctx.get(bus.bvalid))
        ctx.set(bus.bready, 1)
        await ctx.tick()
        ctx.set(bus.bready, 0)
        seen.append(await read(ctx, bus, 0x8))

    run(dut, bench)
    assert seen == [1, (0b01, RESP_OKAY)]


def test_unmapped_addresses_answer_slverr():
    dut = regfile()
    seen = []

    async def bench(ctx):
        bus = dut.s_axi
        seen.append(await read(ctx, bus, 0x18))                 # just past the last register
        seen.append(await write(ctx, bus, 0x18, 0x1))
        seen.append(await read(ctx, bus, 0xFFC))
        seen.append(await write(ctx, bus, 0x800, 0x7))          # would alias 0x0 if decoded
        seen.append(await read(ctx, bus, 0x0))                  # in 9 bits only
        seen.append(await read(ctx, bus, 0x3))                  # low bits ignored

    run(dut, bench)
    assert seen == [(0, RESP_SLVERR), RESP_SLVERR, (0, RESP_SLVERR), RESP_SLVERR,
                    (0x5, RESP_OKAY), (0x5, RESP_OKAY)]


def test_64_bit_bus():
    dut = RegisterFile([Register("a", "rw", 64), Register("b", "ro", 40)], data_width=64,
                       addr_width=4)
    assert dut.offsets == {"a": 0, "b": 8}
    seen = []

    async def bench(ctx):
        bus = dut.s_axi
        ctx.set(dut.b, 0xAB_0000_0001)
        seen.append(await write(ctx, bus, 0x0, 0x0123_4567_89AB_CDEF, strb=0xF0))
        seen.append(await read(ctx, bus, 0x0))
        seen.append(await read(ctx, bus, 0x8))

    run(dut, bench)
    assert seen == [RESP_OKAY, (0x0123_4567_0000_0000, RESP_OKAY), (0xAB_0000_0001, RESP_OKAY)]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="access must be one of 'rw', 'ro', 'pulse', 'w1c'"):
        Register("a", "wo")
    with pytest.raises(ValueError, match="register name must be an identifier"):
        Register("a b", "rw")
    with pytest.raises(ValueError, match=r"init must be in 0..255, not 256"):
        Register("a", "rw", 8, init=256)
    with pytest.raises(ValueError, match="a ro register has no reset value"):
        Register("a", "ro", 8, init=1)
    with pytest.raises(TypeError, match="registers must be Register objects"):
        RegisterFile(["a"])
    with pytest.raises(ValueError, match="at least one register"):
        RegisterFile([])
    with pytest.raises(ValueError, match="'a' is used twice"):
        RegisterFile([Register("a", "rw"), Register("a", "ro")])
    with pytest.raises(ValueError, match="'irq' is used twice or is a port name"):
        RegisterFile([Register("irq", "rw")])
    with pytest.raises(ValueError, match="64 bits, more than the 32-bit bus"):
        RegisterFile([Register("a", "rw", 64)])
    with pytest.raises(ValueError, match="data_width must be 32 or 64, not 128"):
        RegisterFile([Register("a", "rw")], data_width=128)
    with pytest.raises(ValueError, match="5 registers of 4 bytes do not fit in addr_width 4"):
        RegisterFile([Register(f"r{i}", "rw") for i in range(5)], addr_width=4)
    with pytest.raises(ValueError, match="irq must name a w1c and an rw register"):
        RegisterFile(REGISTERS, irq=("irq_enable", "status"))
    with pytest.raises(ValueError, match="irq must name a w1c and an rw register"):
        RegisterFile(REGISTERS, irq=("status", "control"))
    with pytest.raises(TypeError, match="irq must be a"):
        RegisterFile(REGISTERS, irq="status")


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
@pytest.mark.parametrize("pause", [0.0, 0.5])
def test_axi_lite_master(simulator, sim_build_root, tmp_path, pause):
    """cocotbext-axi's AxiLiteMaster (cocotb_regs.py): random batches of concurrent writes
    and reads against a model, start pulses, the interrupt."""
    top = register_file()
    build = sim_build_root / "axi_regs"
    verilog = write_verilog(top, build / "regs.v", ports=verilog_ports(top))
    job = write_job(tmp_path / "job", seed=int(pause * 10) + 1, batches=30, pause=pause)
    result = simulate([verilog], "regs", Path(__file__).with_name("cocotb_regs.py"),
                      build_dir=build, simulator=simulator, job=job, timeout_s=300)
    assert result.passed == 1
    assert result.outputs["starts"] > 0 and result.outputs["irq_cycles"] > 5
