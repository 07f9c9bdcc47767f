"""AXI4 building blocks: signatures with the standard Verilog port names, a burst read DMA, a
burst write DMA, the tensor movers built on them and an AXI4-Lite register file. See
``docs/memory.md``."""

from .bursts import PAGE_BYTES, BurstSplitter, burst_layout, command_layout
from .reader import AXI_CACHE, AXI_PROT, BurstReader
from .registers import ACCESS, Register, RegisterFile
from .signature import (
    BURST_INCR,
    DATA_WIDTHS,
    LITE_DATA_WIDTHS,
    RESP_DECERR,
    RESP_OKAY,
    RESP_SLVERR,
    AXI4LiteSignature,
    AXI4Signature,
    join,
    verilog_ports,
)
from .tensors import TensorReader, TensorWriter, crop_layout, rectangle_layout
from .writer import BurstWriter, strobed_layout

__all__ = [
    "ACCESS",
    "AXI_CACHE",
    "AXI_PROT",
    "BURST_INCR",
    "DATA_WIDTHS",
    "LITE_DATA_WIDTHS",
    "PAGE_BYTES",
    "RESP_DECERR",
    "RESP_OKAY",
    "RESP_SLVERR",
    "AXI4LiteSignature",
    "AXI4Signature",
    "BurstReader",
    "BurstSplitter",
    "BurstWriter",
    "Register",
    "RegisterFile",
    "TensorReader",
    "TensorWriter",
    "burst_layout",
    "command_layout",
    "crop_layout",
    "join",
    "rectangle_layout",
    "strobed_layout",
    "verilog_ports",
]
