"""``sps generate`` writes a FuseSoC CAPI2 core file that FuseSoC (from PyPI) accepts: it
lists the Verilog and ROM images, and its ``lint`` target runs Verilator ``-Wall`` clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sps.cli import main
from sps.corefile import CORE_FILE, VLNV
from sps_hw.sim.runner import verilator_bin_dir

FUSESOC = str(Path(sys.executable).parent / "fusesoc")


@pytest.fixture(scope="module")
def rtl(tmp_path_factory):
    root = tmp_path_factory.mktemp("core")
    assert main(["compile", "demo8", "-o", str(root / "m")]) == 0
    out = root / "new" / "rtl"                                  # parent created on the way
    assert main(["generate", "--model", str(root / "m"), "-o", str(out)]) == 0
    return out


def fusesoc(rtl, tmp_path, *argv):
    env = {**os.environ, "PATH": f"{verilator_bin_dir()}{os.pathsep}{os.environ['PATH']}",
           **{f"XDG_{d}_HOME": str(tmp_path / d) for d in ("CONFIG", "CACHE", "DATA")}}
    env.pop("VERILATOR_ROOT", None)
    return subprocess.run([FUSESOC, "--cores-root", str(rtl), *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_core_lists_the_generated_files(rtl):
    text = (rtl / CORE_FILE).read_text()
    assert text.startswith("CAPI=2:\n") and f"name: {VLNV}\n" in text
    listed = [line.split()[1].rstrip(":") for line in text.splitlines()
              if line.startswith("      - ")]
    assert listed == ["sps_top.v", *sorted(p.name for p in rtl.glob("*.hex"))]
    assert len(listed) == 6 and all((rtl / name).is_file() for name in listed)
    assert "toplevel: sps_top\n" in text


def test_fusesoc_reads_the_core(rtl, tmp_path):
    info = fusesoc(rtl, tmp_path, "core-info", VLNV)
    assert info.returncode == 0, info.stdout + info.stderr
    assert f"Name:        {VLNV}" in info.stdout and "lint" in info.stdout


def test_fusesoc_lint_target_passes(rtl, tmp_path):
    run = fusesoc(rtl, tmp_path, "run", "--target", "lint", "--build-root", tmp_path / "b",
                  VLNV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    work = next((tmp_path / "b").glob("*/lint-verilator"))
    assert sorted(p.name for p in work.glob("*.hex")) == sorted(p.name for p in rtl.glob("*.hex"))
