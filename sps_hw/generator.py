"""``sps generate``: the Verilog of an accelerator and, for a model, its packed ROM images."""

import json
import os
import shutil
import tempfile
from pathlib import Path

from compiler import images
from compiler.errors import SPSError

from . import verilog
from .config import Config
from .program import build, fit_config, hex_lines
from .top import Accelerator, rom_bits, rom_shapes

__all__ = ["generate", "make_config"]


def make_config(model=None, rows=8, cols=8, **sizes):
    """The :class:`Config` for ``rows x cols``: sized to fit ``model`` where given, with the
    explicit ``sizes`` kept; :class:`SPSError` for parameters out of range."""
    sizes = {k: v for k, v in sizes.items() if v is not None}
    try:
        if model is not None:
            return fit_config(model, rows=rows, cols=cols, **sizes)
        return Config(rows=rows, cols=cols, **sizes)
    except (TypeError, ValueError) as e:
        raise SPSError(f"accelerator parameters: {e}") from None


def _rom_files(cfg, program):
    files = {}
    for name, (shape, _) in rom_shapes(cfg).items():
        bits = rom_bits(shape)
        words = list(program.images.get(name, [])) if program else []
        if name == "layers" and not words:
            words = [0]                                   # an empty program
        files[f"{name}.hex"] = hex_lines(words or [0], bits).encode()
        nbytes = -(-bits // 8)
        files[f"{name}.bin"] = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    return files


def _summary(cfg, program):
    shapes = rom_shapes(cfg)
    info = {
        "format": "sps-rtl", "version": 1, "top": "sps_top",
        "config": cfg.as_dict(), "banks": cfg.banks,
        "roms": {name: {"file": f"{name}.hex", "depth": depth,
                        "bits": rom_bits(shape),
                        "words": len(program.images.get(name, [])) if program else 0}
                 for name, (shape, depth) in shapes.items()},
        "ports": {"act_in": "int8 stream (C, H, W order), one tensor per segment",
                  "act_out": "{data: int8, last: 1} stream, one tensor per segment",
                  "stats": "{layer: 16 bits, cycles: 32 bits} per finished layer"},
    }
    if program is not None:
        info["layers"] = [
            {"name": n, "runs": program.where(n),
             **({"kind": program.plans[n].kind, "cycles": program.plans[n].cycles}
                if n in program.plans else {"reason": program.host[n]})}
            for n in program.order]
        info["segments"] = [{"layers": s.layers, "input": s.source} for s in program.segments]
    return info


def generate(out, *, model=None, rows=8, cols=8, overwrite=False, **sizes):
    """Write ``sps_top.v``, the packed ROM images (``<rom>.hex`` for ``$readmemh``,
    ``<rom>.bin`` little-endian words) and ``sps_hw.json`` into the directory ``out``.

    ``model`` (a compiled model directory or :class:`~compiler.images.CompiledModel`) sizes
    the buffers and ROMs to fit it and fills the ROMs; without it the ROMs are empty and the
    sizes are ``sizes`` or the defaults. Returns the summary written to ``sps_hw.json``.
    Nothing is left half-written: the directory appears complete or not at all.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise SPSError(f"{out}: exists; remove it or choose another directory")
    if not out.parent.resolve().is_dir():
        raise SPSError(f"{out}: parent directory {out.parent} does not exist")
    if model is not None and not isinstance(model, images.CompiledModel):
        model = images.load(model)
    cfg = make_config(model, rows, cols, **sizes)
    program = build(model, cfg) if model is not None else None
    files = {"sps_top.v": verilog.convert(Accelerator(cfg)).encode(),
             **_rom_files(cfg, program)}
    summary = _summary(cfg, program)
    files["sps_hw.json"] = (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
