"""A ``dask worker --preload``: each point takes half a second longer, and its start is logged to
``$SPS_TEST_POINT_LOG`` as ``<worker name> <point as JSON>``, so a test can kill a worker
while it has a point in flight and see which points it started."""

import json
import os
import time

import explore.point

DELAY = 0.5


def dask_setup(worker):
    evaluate = explore.point.evaluate

    def slow(point, model, synth=False):
        with open(os.environ["SPS_TEST_POINT_LOG"], "a") as f:
            f.write(f"{worker.name} {json.dumps(point, sort_keys=True)}\n")
        time.sleep(DELAY)
        return evaluate(point, model, synth)

    explore.point.evaluate = slow
