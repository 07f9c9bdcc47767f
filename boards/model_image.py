"""A compiled model as a board's SPS core holds it: packed images, their bytes and their tag.

:func:`pack_program` packs a model for the core of a board (``sps_hw.program``) once it fits
(:func:`boards.fit.check_fit`); :func:`pack_model` gives each image memory's words as the
bytes the host link uploads (:func:`image_bytes`); :func:`model_tag` names a set of images,
so ``sps run`` uploads a model only when the board does not hold it yet and ``sps build``
bakes the same tag into a bitstream that carries the model.
"""

import hashlib
import struct

from sps_hw.config import word_bytes
from sps_hw.program import build as build_program

from .core import memory_map
from .fit import check_fit
from .protocol import DRAM_REGION, REGIONS

__all__ = ["image_bytes", "model_tag", "pack_model", "pack_program"]


def pack_program(model, spec):
    """The :class:`sps_hw.program.Program` of compiled ``model`` on the SPS core of board
    ``spec`` (after :func:`~boards.fit.check_fit`: :class:`SPSError` with the numbers if the
    model does not fit)."""
    check_fit(model, spec, name=f"model {model.path}")
    return build_program(model, spec.config)


def image_bytes(words, width):
    """An image as the host link uploads it: each word little-endian in ``ceil(width / 8)``
    bytes."""
    nbytes = word_bytes(width)
    return b"".join(int(w).to_bytes(nbytes, "little") for w in words)


def pack_model(model, spec, program=None):
    """Packed images ``{region: bytes}`` of compiled ``model`` for the SPS core on board
    ``spec``: the same words ``sps generate`` writes (``sps_hw.program``), as the host link
    uploads them (:func:`image_bytes`)."""
    program = program or pack_program(model, spec)
    mm = memory_map(spec.config)
    return {r.name: image_bytes(program.images[r.name], r.width) for r in mm}


def model_tag(images):
    """A 32-bit tag identifying a set of region images (``{region: bytes}``; the five
    block-RAM regions, or ``dram`` alone)."""
    digest = hashlib.sha256()
    for code, name in enumerate((*REGIONS, DRAM_REGION)):
        if name in images or name in REGIONS:
            data = bytes(images.get(name, b""))
            digest.update(struct.pack("<BI", code, len(data)) + data)
    return int.from_bytes(digest.digest()[:4], "little")
