"""One point as a worker runs it, without Dask: what fits, what does not and why, the cycle
model's figures, the area estimate and the accuracy of a model with a data set."""

import hashlib

import numpy as np

from boards.platforms import BOARDS
from explore import area
from explore.point import Model, board_variant, evaluate

DEMO = Model("demo", "demo-sha")


def point(board, rows, cols, keep=4, **more):
    return {"board": board, "rows": rows, "cols": cols, "keep": keep, "patterns": 4,
            "period": 8, "seed": 0, **more}


def test_a_point_that_fits_has_the_cycle_model_figures():
    row = evaluate(point("ulx3s-85f", 8, 8), DEMO)
    assert row["status"] == "ok" and row["reason"] is None, row
    assert (row["hw_layers"], row["host_layers"], row["worker"]) == (4, 0, "local")
    assert row["cycles"] == 2300 and row["clock_mhz"] == 100      # the board's reads of 3
    assert row["latency_us"] == round(2300 / 100, 3)
    # dense-equivalent: the unpruned network's operations over the pruned run's time
    dense_macs = 18_432 + 73_728 + 36_864 + 2_560    # conv1, conv2, conv3 at 3x3, fc
    assert row["gops"] == round(2 * dense_macs / (2300 / 100e6) / 1e9, 4)
    assert (row["dsp"], row["lut"], row["area"]) == (80, 10622, "estimate")
    assert row["accuracy"] is None                  # demo has no data set


def test_dsp_blocks_and_logic_decide_the_fit():
    dsp = evaluate(point("ulx3s-85f", 16, 16), DEMO)
    assert dsp["status"] == "no-fit" and "DSP blocks 288 > 156 (counted)" in dsp["reason"]
    logic = evaluate(point("icebreaker", 6, 1), DEMO)
    assert logic["status"] == "no-fit" and "logic 5,436 > 5,280 (estimated)" in logic["reason"]
    assert evaluate(point("icebreaker", 4, 2), DEMO)["status"] == "ok"


def test_memories_decide_the_fit_with_the_numbers():
    row = evaluate(point("icebreaker", 2, 1, patterns=16, period=16), DEMO)
    assert row["status"] == "no-fit", row
    assert row["reason"] == ("model demo does not fit icebreaker: on its 2x1 core the packed "
                             "images need pattern library of 16 > 8")


def test_a_compile_error_is_recorded_not_raised():
    row = evaluate(point("ulx3s-85f", 8, 8, patterns=0), DEMO)
    assert row["status"] == "failed"
    assert row["reason"] == "compile: --patterns and --period must be at least 1, not 0, 8"


def test_digits_points_have_their_test_accuracy():
    row = evaluate(point("ulx3s-85f", 8, 8), Model("digits", "digits-sha"))
    assert row["accuracy"] == 0.975                 # docs/accuracy.md: the keep-4 int8 model


def test_a_model_file_travels_as_bytes(tmp_path):
    rng = np.random.default_rng(0)
    file = tmp_path / "tiny.npz"
    np.savez(file, input_shape=np.array([1, 8, 8]),
             **{"c1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
                "c2.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
                "fc.weight": rng.standard_normal((10, 512)).astype(np.float32)})
    data = file.read_bytes()
    model = Model(str(file), hashlib.sha256(data).hexdigest(), data)
    file.unlink()                                   # the worker reads its own copy
    row = evaluate(point("ulx3s-85f", 8, 8), model)
    assert row["status"] == "ok" and row["hw_layers"] == 3, row


def test_area_counts_dsp_blocks_like_the_builds():
    assert [area.dsp_blocks(BOARDS[b].family, BOARDS[b].rows, BOARDS[b].cols)
            for b in ("icebreaker", "ulx3s-85f", "arty-a7-35")] == [8, 144, 90]
    for board, (rows, cols, used) in area.MEASURED.items():
        assert area.estimate(board_variant(board, rows, cols))["lut"] == used
