"""One step of cocotb's runner in a child process: ``python -m sps_hw.sim.cocotb_run JOB``.

:func:`sps_hw.sim.runner.simulate` starts this with the environment it built for the call
(simulator first on ``PATH``, ``PYTHONPATH``, the job, the seed...): cocotb's runner takes
its environment from ``os.environ``, so giving it a process of its own is how the caller's
environment stays untouched, and the caller can time the step out and kill its process group.

``JOB`` is JSON: ``{"simulator": "verilator" | "icarus", "build": {...}}`` or ``{..., "test":
{...}}``, the keyword arguments of ``Runner.build`` or ``Runner.test`` (paths as strings).
Everything goes to stdout (the caller's log file): the runner's commands, the tools' output and,
when a step fails, the traceback and a last line ``cocotb_run: error: <what>`` (exit status 1).
"""

import json
import logging
import sys
import traceback

#: The start of the last line printed when the step failed.
ERROR_MARK = "cocotb_run: error: "


def run(job):
    """Run the build or the test step that ``job`` describes."""
    # Imported here: the parent imports this module for ERROR_MARK only.
    from cocotb_tools.runner import get_runner

    step = "build" if "build" in job else "test"
    kwargs = dict(job[step])
    if kwargs.get("timescale") is not None:
        kwargs["timescale"] = tuple(kwargs["timescale"])
    getattr(get_runner(job["simulator"]), step)(**kwargs)


def main(argv):
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="cocotb_run: %(message)s")
    try:
        run(json.loads(argv[0]))
    except (Exception, SystemExit) as e:   # the runner exits when a tool is missing
        traceback.print_exc(file=sys.stdout)
        print(f"{ERROR_MARK}{type(e).__name__}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
