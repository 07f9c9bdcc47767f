"""Generator parameters of one accelerator instance."""

from dataclasses import dataclass, fields, replace

from .checks import check_int

__all__ = ["MAX_READ_LATENCY", "ROM_NAMES", "Config", "check_read_latency", "word_bytes"]

#: The accelerator's image memories, in the order that numbers them: the ``region`` of an
#: image write and of the host link's uploads is the index of its name here.
ROM_NAMES = ("weights", "index", "library", "params", "layers")
#: The most cycles a block-RAM read may take (``Config.read_latency``).
MAX_READ_LATENCY = 3


def check_read_latency(value):
    """``value`` if it is a valid ``read_latency`` (1 to :data:`MAX_READ_LATENCY` cycles)."""
    return check_int("read_latency", value, minimum=1, maximum=MAX_READ_LATENCY)


def word_bytes(width):
    """Bytes of one ``width``-bit ROM word in an image (little-endian, zero-padded): the
    ``.bin`` images of ``sps build`` and the host link's uploads."""
    return (width + 7) // 8


def _bits(n):
    """Bits of an unsigned counter that holds ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class Config:
    """The size of an SPS accelerator: array, buffers and ROM depths.

    Parameters
    ----------
    rows, cols : int
        The ``R x C`` PE array: rows carry the compacted reduction dimension, columns output
        channels.
    max_hw : int
        Most pixels of a feature map the hardware handles (a conv's pre-pool output, the
        depth of the int32 accumulator).
    max_width : int
        Widest 3x3 feature map (the depth of each row's line buffer).
    fmap_depth : int
        Words of each of the ``banks`` int8 banks of one feature buffer (a tensor of ``C``
        channels and ``HW`` pixels needs ``ceil(C / banks) * HW``).
    weight_depth, index_depth, library_depth, param_depth, layer_depth : int
        Entries of the weight ROM (``cols`` int8 each), the pattern-assignment ROM, the
        pattern-library ROM, the per-output-group parameter ROM and the layer-descriptor ROM
        (one more than the hardware layers, for the terminator).
    max_patterns : int
        Largest pattern library of a layer (the width of a pattern id).
    count_bits : int
        Width of the pass, cycle and reduction counters (a layer has fewer than
        ``2**count_bits`` passes).
    channel_bits : int
        Width of a tensor's channel count (fewer than ``2**channel_bits`` channels).
    layer_words : int
        Words per layer descriptor in the descriptor ROM: 1 reads a descriptor in one cycle
        from a memory as wide as the descriptor; ``n`` stores it in ``n`` narrow words read
        one per cycle (``n - 1`` more cycles per layer: block RAMs of 16-bit words).
    mult_bits : int
        Width of the requantizer's signed multiplier ``mult`` (``docs/spec.md`` section 3
        allows any positive int32; the compiler's are below ``2**15``, so 16 bits halve the
        requantizer's multipliers).
    read_latency : int
        Cycles of every block-RAM read: 2 puts a register behind each RAM output and the
        feeder's addresses (a 100 MHz ECP5), 3 a second one, so that the first can sit
        beside its block RAM wherever the reader is on the die (the largest ECP5 core), 1
        reads into logic (fewer registers, for a small part at a low clock: the iCE40). The
        cycle model follows (``sps_hw.model``).
    counters : bool
        Whether the accelerator counts every layer's actions (``sps_hw.actions``) and reports
        them on its ``actions`` stream; the board builds leave the counters out.
    """

    rows: int = 8
    cols: int = 8
    max_hw: int = 1024
    max_width: int = 32
    fmap_depth: int = 2048
    weight_depth: int = 4096
    index_depth: int = 64
    library_depth: int = 64
    param_depth: int = 64
    layer_depth: int = 16
    max_patterns: int = 16
    count_bits: int = 24
    channel_bits: int = 16
    mult_bits: int = 32
    layer_words: int = 1
    read_latency: int = 2
    counters: bool = True

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is bool:
                if not isinstance(value, bool):
                    raise TypeError(f"{f.name} must be a bool, not {value!r}")
            else:
                check_int(f.name, value, minimum=1)
        if self.rows > 256 or self.cols > 256:
            raise ValueError(f"rows and cols must be at most 256, not {self.rows} x {self.cols}")
        if self.max_width > self.max_hw:
            raise ValueError(f"max_width ({self.max_width}) must not exceed max_hw "
                             f"({self.max_hw})")
        check_read_latency(self.read_latency)
        for name in ("count_bits", "channel_bits", "mult_bits"):
            if not 2 <= getattr(self, name) <= 32:
                raise ValueError(f"{name} must be in 2..32, not {getattr(self, name)}")
        if self.layer_depth < 2:
            raise ValueError(f"layer_depth must be at least 2 (a layer and the terminator), "
                             f"not {self.layer_depth}")

    def replace(self, **changes):
        return replace(self, **changes)

    @property
    def banks(self):
        """Banks per feature buffer: enough for ``rows`` reads and ``cols`` writes a cycle."""
        return max(self.rows, self.cols)

    # Widths of counters and addresses, shared by the RTL and the packer.
    @property
    def hw_bits(self):
        return _bits(self.max_hw)

    @property
    def width_bits(self):
        return _bits(self.max_width)

    @property
    def slot_bits(self):
        """Width of a pass's slot counter and of the agents' start offsets: a pass takes
        ``S = max(HW, R, C - 1, 4)`` cycles (:mod:`sps_hw.model` refuses a layer whose
        ``S`` or offsets do not fit)."""
        return min(_bits(max(self.max_hw, self.rows, self.cols - 1, 4)), self.count_bits)

    @property
    def fmap_bits(self):
        return _bits(self.fmap_depth - 1)

    @property
    def pattern_bits(self):
        return _bits(self.max_patterns - 1)

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}
