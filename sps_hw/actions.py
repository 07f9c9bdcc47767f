"""The actions of a hardware layer: how often each block does its work, counted exactly.

:func:`predict` gives, for a :class:`~sps_hw.model.LayerPlan`, the count of every kind in
:data:`ACTION_KINDS` from the plan's numbers alone (no simulation): the RTL's event counters
are to report the same counts for every layer, as its cycle counter reports the model's
cycles. Each kind is defined in ``docs/hardware.md``, section 10.
"""

from .config import Config
from .counters import ACTION_KINDS
from .model import LayerPlan
from .top import rom_widths

__all__ = ["ACTION_KINDS", "predict"]


def predict(cfg, plan):
    """``{kind: count}`` for every kind of :data:`ACTION_KINDS`: what hardware layer
    ``plan`` (a :class:`~sps_hw.model.LayerPlan`) does on accelerator ``cfg`` (a
    :class:`~sps_hw.config.Config`), from the fetch of its descriptor to its last result."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if not isinstance(plan, LayerPlan):
        raise TypeError(f"plan must be a sps_hw.model.LayerPlan, not {plan!r}")
    rows, cols = cfg.rows, cfg.cols
    pixels = plan.total * plan.acc_hw           # pixels issued to the array, all passes
    row_visits = plan.total * rows
    # The parameters are read in a group's first pass (bias) and last (mult, shift); a
    # reduction chunk's job reads no bias when it continues the sums of the job before
    # (acc_continue), requantizes and writes nothing when it leaves its sums for the next
    # (acc_partial).
    group_passes = plan.total // plan.groups
    bias, finish = not plan.acc_continue, not plan.acc_partial
    param_passes = int(bias or finish) if group_passes == 1 else int(bias) + int(finish)
    results = plan.groups * plan.acc_hw if finish else 0     # totals that leave
    return {
        "mac_useful": plan.macs,
        "mac_padding": rows * cols * pixels - plan.macs,
        "weight_reads": row_visits,
        "weight_read_bits": row_visits * rom_widths(cfg)["weights"][0],
        "index_reads": row_visits,
        "library_reads": row_visits,
        "param_reads": plan.groups * plan.acc_hw * param_passes,
        "feature_reads": cfg.banks * (plan.lead + (plan.total - 1) * plan.hw + plan.tail),
        "feature_writes": plan.out_channels * plan.out_hw if finish else 0,
        "acc_reads": pixels,
        "acc_writes": pixels - results,
        "requant_ops": results * cols,
        "dram_read_bytes": 0,
        "dram_write_bytes": 0,
        "active_cycles": pixels,
        "idle_cycles": plan.cycles - pixels,
    }
