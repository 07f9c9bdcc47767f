"""Sweep grids: ``--grid`` strings and TOML sweep files, their defaults and their errors."""

import pytest

from compiler.errors import SPSError
from explore.grid import expand, parse_grid, read_sweep_file

ARRAYS = {"icebreaker": (2, 1), "ulx3s-85f": (8, 8), "arty-a7-35": (16, 5)}


def test_grid_is_the_cross_product_with_defaults():
    points = expand(parse_grid("board=ulx3s-85f,icebreaker; rows=8,16; keep=4,9 ;"), ARRAYS)
    assert len(points) == 8
    assert points[0] == {"board": "ulx3s-85f", "rows": 8, "cols": 8, "keep": 4,
                         "patterns": 4, "period": 8, "seed": 0}
    assert {p["cols"] for p in points if p["board"] == "icebreaker"} == {1}


def test_board_default_array_and_duplicates_kept_once():
    points = expand(parse_grid("board=icebreaker; keep=4,4"), ARRAYS)
    assert points == [{"board": "icebreaker", "rows": 2, "cols": 1, "keep": 4, "patterns": 4,
                       "period": 8, "seed": 0}]


def test_toml_grids_are_joined(tmp_path):
    file = tmp_path / "sweep.toml"
    file.write_text('[[grid]]\nboard = "icebreaker"\nkeep = [4, 9]\n\n'
                    '[[grid]]\nboard = ["ulx3s-85f"]\nrows = [8, 16]\ncols = 8\n'
                    '[[grid]]\nboard = "icebreaker"\nkeep = 4\n')
    points = expand(read_sweep_file(file), ARRAYS)
    assert [(p["board"], p["rows"], p["keep"]) for p in points] == [
        ("icebreaker", 2, 4), ("icebreaker", 2, 9), ("ulx3s-85f", 8, 4), ("ulx3s-85f", 16, 4)]
    single = tmp_path / "one.toml"
    single.write_text('[grid]\nboard = "arty-a7-35"\n')
    assert expand(read_sweep_file(single), ARRAYS)[0]["rows"] == 16


@pytest.mark.parametrize("text, message", [
    ("rows=8", "no board axis"),
    ("board=de0", "unknown board 'de0'"),
    ("board=icebreaker; depth=3", "unknown axis 'depth'"),
    ("board=icebreaker; keep=10", "keep must be an integer in 1..9, not '10'"),
    ("board=icebreaker; rows=two", "rows must be an integer"),
    ("board=icebreaker; rows=8; rows=16", "axis 'rows' given twice"),
    ("board=icebreaker; rows=8,", "empty value"),
    ("board icebreaker", "expected 'axis=value,value'"),
])
def test_bad_grids(text, message):
    with pytest.raises(SPSError, match=message):
        parse_grid(text)


@pytest.mark.parametrize("text, message", [
    ('[grid]\nboard = "icebreaker"\nkeep = 4.5\n', "keep must be an integer"),
    ('[grid]\nboard = "icebreaker"\nkeep = true\n', "keep must be an integer"),
    ('[grid]\nboard = "icebreaker"\nkeep = []\n', "no values"),
    ('[sweep]\nboard = "icebreaker"\n', "expected only"),
    ('grid = [', "not valid TOML"),
])
def test_bad_sweep_files(tmp_path, text, message):
    file = tmp_path / "s.toml"
    file.write_text(text)
    with pytest.raises(SPSError, match=message):
        read_sweep_file(file)
    with pytest.raises(SPSError, match="cannot be read"):
        read_sweep_file(tmp_path / "missing.toml")
