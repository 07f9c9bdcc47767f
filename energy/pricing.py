"""Energy tables and the price of a layer's actions.

An *energy table* (``energy/tables/<family>.json``, schema ``energy/tables/schema.json``)
prices every action on one FPGA family: an 8x8 multiply-accumulate in a DSP block, a
requantization, a clock cycle, a block-RAM access at each port width, a register-file bit,
a DRAM byte, and the device's static power. Every number carries its ``kind`` (measured,
published, derived, scaled-from-horowitz-45nm, assumed), its sources and its arithmetic;
``docs/energy.md`` lists them. :func:`load_table` reads and checks one (``--energy-table``).

:func:`price` turns a layer's action counts (:data:`sps_hw.actions.ACTION_KINDS`, plus the
extra kinds of the other formats' designs, :data:`EXTRA_KINDS`) into picojoules per
component of :data:`COMPONENTS`.
"""

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

from compiler.errors import SPSError

__all__ = ["COMPONENTS", "EXTRA_KINDS", "access_pj", "default_table", "load_table", "price",
           "table_path"]

#: The components an energy is split into, in report order.
COMPONENTS = ("mac", "weights", "index", "features", "accumulator", "dram", "static")

#: Action kinds beyond :data:`sps_hw.actions.ACTION_KINDS` (used by :mod:`energy.formats`):
#: weight values and index bits streamed from the weight memory, decoded index entries (one
#: register write of ``decode_bits`` bits each) and activation gathers (one 8-bit register
#: read per multiply-accumulate).
EXTRA_KINDS = ("value_bits", "index_bits", "decodes", "decode_bits", "gathers")

_TABLES = resources.files(__package__) / "tables"


def table_path(family):
    """The path of the shipped table of FPGA ``family`` (``ice40``, ``ecp5``, ``xc7``)."""
    return Path(str(_TABLES / f"{family}.json"))


@cache
def _schema():
    return json.loads((_TABLES / "schema.json").read_text())


def _where(error):
    path = "/".join(str(p) for p in error.absolute_path)
    return f"at {path}: " if path else ""


def check_table(table, what="energy table"):
    """Raise :class:`SPSError` ``"<what>: <problem>"`` unless ``table`` is a valid table."""
    import jsonschema  # deferred: only reports need it

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(table), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise SPSError(f"{what}: {_where(e)}{e.message}")
    for name, memory in table["placement"].items():
        if memory not in table["memories"]:
            raise SPSError(f"{what}: at placement/{name}: memory {memory!r} is not in "
                           f"memories ({', '.join(table['memories'])})")
    if "per_bit_pj" not in table["memories"][table["placement"]["regfile"]]:
        raise SPSError(f"{what}: at placement/regfile: the register file must be priced "
                       f"per_bit_pj")
    sources = set(table.get("sources", {}))
    for path, entry in _entries(table):
        if not math.isfinite(entry["value"]):
            raise SPSError(f"{what}: at {path}: value {entry['value']} is not finite")
        missing = [s for s in entry.get("source", []) if s not in sources]
        if missing:
            raise SPSError(f"{what}: at {path}: source {missing[0]!r} is not in sources")
    return table


def _entries(table):
    for key, entry in table["actions"].items():
        yield f"actions/{key}", entry
    yield "static_mw", table["static_mw"]
    for key in ("read_pj_per_byte", "write_pj_per_byte"):
        yield f"dram/{key}", table["dram"][key]
    for name, memory in table["memories"].items():
        if "per_bit_pj" in memory:
            yield f"memories/{name}/per_bit_pj", memory["per_bit_pj"]
        for width, entry in memory.get("access_pj", {}).items():
            yield f"memories/{name}/access_pj/{width}", entry


def load_table(path, what=None):
    """The energy table in the JSON file ``path``, checked; :class:`SPSError` saying what is
    wrong (``"--energy-table FILE: ..."`` by default) otherwise."""
    what = what or f"--energy-table {path}"
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SPSError(f"{what}: {e.strerror or e}") from None
    try:
        table = json.loads(text)
    except ValueError as e:
        raise SPSError(f"{what}: not JSON ({e})") from None
    return check_table(table, what)


def default_table(family):
    """The shipped table of ``family``."""
    path = table_path(family)
    if not path.is_file():
        raise SPSError(f"no energy table for FPGA family {family!r}; pass --energy-table FILE")
    return load_table(path, what=f"energy table {path.name}")


def value(table, *keys):
    node = table
    for key in keys:
        node = node[key]
    return float(node["value"])


def access_pj(table, memory, bits):
    """Energy of one access of a ``bits``-wide word in memory ``memory`` of ``table``.

    A block memory is built of blocks at their widest port, the rest at the narrowest port
    that holds it; a register file costs per bit."""
    mem = table["memories"][memory]
    if bits <= 0:
        return 0.0
    if "per_bit_pj" in mem:
        return bits * float(mem["per_bit_pj"]["value"])
    widths = sorted((int(w), float(e["value"])) for w, e in mem["access_pj"].items())
    widest, widest_pj = widths[-1]
    full, rest = divmod(int(bits), widest)
    energy = full * widest_pj
    if rest:
        energy += next(pj for w, pj in widths if w >= rest)
    return energy


def bit_pj(table, memory):
    """Energy per bit of a stream read at the memory's widest port."""
    mem = table["memories"][memory]
    if "per_bit_pj" in mem:
        return float(mem["per_bit_pj"]["value"])
    width, entry = max(((int(w), e) for w, e in mem["access_pj"].items()), key=lambda p: p[0])
    return float(entry["value"]) / width


def price(actions, table, cfg, *, clk_hz, weights_from="bram", rom_widths):
    """``{component: pJ}`` of one layer's ``actions`` on accelerator ``cfg`` priced by
    ``table`` at ``clk_hz``.

    ``weights_from="dram"``: every weight-memory bit is first read from DRAM and written into
    the weight memory, which then serves as a staging buffer (so the on-chip read stays).
    ``rom_widths``: ``{rom: (bits, depth)}`` of ``cfg`` (:func:`sps_hw.top.rom_widths`).
    """
    if weights_from not in ("bram", "dram"):
        raise SPSError(f"--weights-from must be bram or dram, not {weights_from!r}")
    get = actions.get
    place = table["placement"]
    mac = value(table, "actions", "mac8_dsp")
    out = dict.fromkeys(COMPONENTS, 0.0)
    out["mac"] = ((get("mac_useful", 0) + get("mac_padding", 0)) * mac
                  + get("requant_ops", 0) * value(table, "actions", "requant"))

    weight_word = rom_widths["weights"][0]
    word_pj = access_pj(table, place["weights"], weight_word)
    stream_pj = bit_pj(table, place["weights"])
    out["weights"] = (get("weight_reads", 0) * word_pj + get("value_bits", 0) * stream_pj
                      + get("param_reads", 0) * access_pj(table, place["params"],
                                                          rom_widths["params"][0]))
    out["index"] = (get("index_reads", 0) * access_pj(table, place["index"],
                                                      rom_widths["index"][0])
                    + get("library_reads", 0) * access_pj(table, place["index"],
                                                          rom_widths["library"][0])
                    + get("index_bits", 0) * stream_pj
                    + get("decodes", 0) * access_pj(table, place["regfile"],
                                                    get("decode_bits", 0)))
    out["features"] = ((get("feature_reads", 0) + get("feature_writes", 0))
                       * access_pj(table, place["features"], 8)
                       + get("gathers", 0) * access_pj(table, place["regfile"], 8))
    out["accumulator"] = ((get("acc_reads", 0) + get("acc_writes", 0))
                          * access_pj(table, place["accumulator"], 32 * cfg.cols))
    out["dram"] = (get("dram_read_bytes", 0) * value(table, "dram", "read_pj_per_byte")
                   + get("dram_write_bytes", 0) * value(table, "dram", "write_pj_per_byte"))
    if weights_from == "dram":
        weight_bits = (get("weight_read_bits", 0) + get("value_bits", 0)
                       + get("index_bits", 0))
        out["dram"] += weight_bits / 8 * value(table, "dram", "read_pj_per_byte")
        # the staging write: the same words (or bits) as the on-chip read
        out["weights"] += (get("weight_reads", 0) * word_pj
                           + get("value_bits", 0) * stream_pj)
        out["index"] += get("index_bits", 0) * stream_pj
    cycles = get("active_cycles", 0) + get("idle_cycles", 0)
    out["static"] = (cycles / clk_hz * value(table, "static_mw") * 1e9
                     + cycles * value(table, "actions", "clock_per_cycle"))
    return out
