"""``energy``: the tables and their schema, the pricing of actions, the other formats' model
and ``sps report energy`` (docs/energy.md)."""

import json

import numpy as np
import pytest

from boards.platforms import BOARDS
from compiler.graph import Network
from compiler.models import POOL2, Builder
from energy import formats, pricing, report
from energy.pricing import COMPONENTS
from energy.report import DESIGNS
from sps.cli import main
from sps_hw.actions import predict
from sps_hw.model import plan_layer
from sps_hw.top import rom_widths

FAMILIES = ("ice40", "ecp5", "xc7")
PNG = b"\x89PNG\r\n\x1a\n"


def small_vgg(seed=0):
    """A VGG-like network on a 3x16x16 input: a dense first conv, PPS layers, FC layers."""
    b = Builder("smallvgg", (3, 16, 16), seed)
    b.conv("c1", 16)
    b.conv("c2", 16, pool=POOL2)
    b.conv("c3", 32)
    b.conv("c4", 32, pool=POOL2)
    b.fc("fc1", 64)
    b.fc("fc2", 10, relu=False)
    return b.net


def small_resnet(seed=0):
    """A ResNet-like network: a 7x7 stride-2 stem, a pool, a stride-2 3x3, a residual add."""
    b = Builder("smallres", (3, 32, 32), seed)
    b.conv("stem", 16, kernel=7, stride=2)
    b.maxpool("pool", 3, 2, 1)
    b.conv("a", 16)
    b.conv("b", 16, relu=False)
    b.add("add", "pool", "b")
    b.conv("down", 32, stride=2)
    b.conv("c", 32)
    return b.net


@pytest.fixture(scope="module")
def vgg_report():
    return report.energy_report(small_vgg(), board="ulx3s-85f")


# --- tables -------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_tables_are_valid_and_cite_every_number(family):
    table = pricing.default_table(family)
    assert table["family"] == family
    entries = list(pricing._entries(table))
    assert len(entries) >= 8
    for path, entry in entries:
        assert entry["kind"] in ("measured", "published", "derived",
                                 "scaled-from-horowitz-45nm", "assumed"), path
        assert entry["derivation"], path
        assert entry["kind"] == "assumed" or entry["source"], path
    # the iCE40 multiply is a measurement, the ECP5 and Artix-7 ones scale it
    kind = table["actions"]["mac8_dsp"]["kind"]
    assert kind == ("measured" if family == "ice40" else "derived")
    assert {b.family for b in BOARDS.values()} == set(FAMILIES)


def bad_tables():
    good = json.loads(pricing.table_path("ecp5").read_text())

    def edit(fn):
        t = json.loads(json.dumps(good))
        fn(t)
        return t

    def drop(key):
        return lambda t: t.pop(key)

    return [
        ("not json {", "not JSON"),
        (edit(drop("dram")), "'dram' is a required property"),
        (edit(lambda t: t["actions"]["mac8_dsp"].update(value=-1)), "actions/mac8_dsp/value"),
        (edit(lambda t: t["actions"]["mac8_dsp"].update(kind="guessed")),
         "actions/mac8_dsp/kind"),
        (edit(lambda t: t["placement"].update(weights="sram")), "placement/weights"),
        (edit(lambda t: t["static_mw"].update(source=["nowhere"])), "'nowhere'"),
        (edit(lambda t: t["memories"]["bram"]["access_pj"].update({"x9": {}})),
         "memories/bram/access_pj"),
    ]


@pytest.mark.parametrize("content, message", bad_tables())
def test_a_bad_energy_table_is_one_error_line_and_writes_nothing(tmp_path, capsys, content,
                                                                   message):
    path = tmp_path / "table.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    png = tmp_path / "out.png"
    rc = main(["report", "energy", "demo8", "--energy-table", str(path), "--plot", str(png)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"sps: error: --energy-table {path}: ") and "\n" not in err
    assert message in err
    assert not png.exists()


def test_a_missing_energy_table_is_an_error(tmp_path, capsys):
    assert main(["report", "energy", "demo8", "--energy-table", str(tmp_path / "no.json")]) == 2
    assert "--energy-table" in capsys.readouterr().err


# --- pricing ------------------------------------------------------------------------------

def test_block_memory_accesses_use_whole_blocks_at_the_widest_port():
    table = pricing.default_table("ecp5")
    e = {int(w): x["value"] for w, x in table["memories"]["bram"]["access_pj"].items()}
    assert pricing.access_pj(table, "bram", 8) == e[9]
    assert pricing.access_pj(table, "bram", 36) == e[36]
    assert pricing.access_pj(table, "bram", 64) == pytest.approx(e[36] * 2)
    assert pricing.access_pj(table, "bram", 256) == pytest.approx(7 * e[36] + e[4])
    per_bit = table["memories"]["regfile"]["per_bit_pj"]["value"]
    assert pricing.access_pj(table, "regfile", 12) == pytest.approx(12 * per_bit)


def test_price_splits_actions_into_components_and_dram_weights_add_dram_energy():
    spec = BOARDS["ulx3s-85f"]
    cfg = report.lifted_config(spec)
    table = pricing.default_table("ecp5")
    layer = {"name": "l", "op": "conv", "in_shape": [64, 16, 16], "out_shape": [64, 16, 16],
             "kernel": 3, "stride": 1, "pad": 1, "keep": 4, "relu": True, "pool": None}
    acts = predict(cfg, plan_layer(layer, (64, 16, 16), cfg))
    kw = {"clk_hz": spec.clk_hz, "rom_widths": rom_widths(cfg)}
    bram = pricing.price(acts, table, cfg, weights_from="bram", **kw)
    dram = pricing.price(acts, table, cfg, weights_from="dram", **kw)
    assert set(bram) == set(COMPONENTS) and bram["dram"] == 0
    mac = table["actions"]["mac8_dsp"]["value"]
    assert bram["mac"] == pytest.approx(
        (acts["mac_useful"] + acts["mac_padding"]) * mac
        + acts["requant_ops"] * table["actions"]["requant"]["value"])
    assert dram["dram"] == pytest.approx(
        acts["weight_read_bits"] / 8 * table["dram"]["read_pj_per_byte"]["value"])
    assert dram["mac"] == bram["mac"] and dram["weights"] > bram["weights"]
    cycles = acts["active_cycles"] + acts["idle_cycles"]
    assert bram["static"] == pytest.approx(
        cycles / spec.clk_hz * table["static_mw"]["value"] * 1e9
        + cycles * table["actions"]["clock_per_cycle"]["value"])


# --- the report -----------------------------------------------------------------------------

def test_components_sum_to_the_totals_and_ratios_divide_by_sps(vgg_report):
    rep = vgg_report
    assert list(rep["designs"]) == list(DESIGNS) == list(rep["ratios"])
    for block in (rep, rep["conv_layers"]):
        sps = block["designs"]["sps"]["energy_pj"]
        for name, d in block["designs"].items():
            assert set(d["components"]) == set(COMPONENTS)
            assert sum(d["components"].values()) == pytest.approx(d["energy_pj"])
            assert block["ratios"][name] == pytest.approx(d["energy_pj"] / sps)
            assert d["gops_per_watt"] == pytest.approx(
                block["dense_equivalent_ops"] / (d["energy_pj"] * 1e-12) / 1e9)
    assert rep["ratios"]["sps"] == 1.0
    for name in DESIGNS:
        layers = sum(r["energy_pj"][name] for r in rep["layers"] if "energy_pj" in r)
        assert layers == pytest.approx(rep["designs"][name]["energy_pj"])


def test_the_dense_design_is_priced_on_keep_9_plans_of_the_same_generator(vgg_report):
    cfg = report.lifted_config(BOARDS["ulx3s-85f"])
    _, layers, input_shape, _ = report.load(small_vgg())
    shapes, cycles, dense_bits = {"input": input_shape}, 0, 0
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        plan = plan_layer(dict(layer, keep=layer["kernel"] ** 2),
                          shapes[layer["inputs"][0]], cfg)
        cycles += plan.cycles
        dense_bits += predict(cfg, plan)["weight_read_bits"]
    dense = vgg_report["designs"]["dense"]
    assert dense["cycles"] == cycles and dense["weight_bits"] == dense_bits
    assert dense["energy_pj"] > vgg_report["designs"]["sps"]["energy_pj"]
    assert [r["keep"] for r in vgg_report["layers"]] == [9, 4, 4, 4, 1, 1]


def test_sps_needs_less_weight_and_index_traffic_than_every_format(vgg_report):
    """Same values, but SPS's index is bits per layer and the formats' grows with the weights:
    under PPS masks the formats run as many passes as SPS and differ only by their traffic,
    decode and gathers, so each costs more than SPS."""
    sps = vgg_report["designs"]["sps"]
    for fmt in formats.DESIGNS:
        d = vgg_report["designs"][fmt]
        assert d["index_bits"] > 0 and d["cycles"] == sps["cycles"]
        assert d["components"]["index"] > sps["components"]["index"]
        assert d["components"]["features"] > sps["components"]["features"]   # gathers
        assert d["energy_pj"] > sps["energy_pj"]
    # with weights on chip and no index at all, the formats still carry their index bits
    conv = vgg_report["conv_layers"]["designs"]
    assert all(conv[f]["index_bits"] > 0 for f in formats.DESIGNS)


def test_irregular_masks_cost_passes_the_longest_list_sets():
    cfg = report.lifted_config(BOARDS["ulx3s-85f"])
    layer = {"name": "l", "op": "conv", "in_shape": [16, 8, 8], "out_shape": [16, 8, 8],
             "kernel": 3, "stride": 1, "pad": 1, "keep": 4, "relu": True, "pool": None}
    plan = plan_layer(layer, (16, 8, 8), cfg)
    even = np.full(16, 16 * 4)
    assert formats.format_plan(plan, even, cfg) is plan
    uneven = even.copy()
    uneven[3] += cfg.rows             # one more pass for the first group of 8 channels
    fplan = formats.format_plan(plan, uneven, cfg)
    assert fplan.total == plan.total + 1 and fplan.cycles > plan.cycles
    rep = report.energy_report(small_vgg(), board="ulx3s-85f", masks="random")
    assert all(rep["designs"][f]["cycles"] > rep["designs"]["sps"]["cycles"]
               for f in formats.DESIGNS)


def test_layers_the_rtl_does_not_run_are_priced_analytically_or_left_out():
    rep = report.energy_report(small_resnet(), board="arty-a7-35", weights_from="bram")
    runs = {r["name"]: r["runs"] for r in rep["layers"]}
    assert runs == {"stem": "analytic", "pool": "host", "a": "hardware", "b": "hardware",
                    "add": "host", "down": "hardware", "c": "hardware"}    # down: stride 2
    stem = next(r for r in rep["layers"] if r["name"] == "stem")
    assert stem["dense_macs"] == 16 * 3 * 49 * 16 * 16 and "7x7" in stem["reason"]
    assert {h["name"] for h in rep["host_layers"]} == {"pool", "add"}
    assert rep["designs"]["sps"]["components"]["dram"] == 0


@pytest.mark.parametrize("board", list(BOARDS))
def test_every_board_prices_a_model_with_its_family_table(board):
    rep = report.energy_report(small_vgg(), board=board)
    assert rep["table"]["family"] == BOARDS[board].family
    assert rep["array"] == {"rows": BOARDS[board].rows, "cols": BOARDS[board].cols}
    assert rep["ratios"]["dense"] > 1


def test_a_network_without_conv_layers_is_refused():
    net = Network("empty", (1, 4, 4))
    with pytest.raises(Exception, match="no conv or fc layers"):
        report.energy_report(net)


def test_the_cli_gives_the_issue_keys_for_vgg16_with_a_png(tmp_path, capsys):
    png = tmp_path / "vgg16.png"
    assert main(["report", "energy", "vgg16", "--board", "ulx3s-85f", "--json",
                 "--plot", str(png)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["designs"]) == {"sps", "dense", "csr", "csc", "coo", "bitmap", "rlc"}
    for name, d in rep["designs"].items():
        assert {"energy_pj", "components", "gops_per_watt"} <= set(d)
        assert set(d["components"]) == {"mac", "weights", "index", "features", "accumulator",
                                        "dram", "static"}
        assert rep["ratios"][name] == pytest.approx(d["energy_pj"] /
                                                    rep["designs"]["sps"]["energy_pj"])
    assert png.read_bytes()[:8] == PNG
    assert rep["weights_from"] == "dram" and rep["board"] == "ulx3s-85f"


def test_the_cli_prints_a_table_and_refuses_an_unknown_model(capsys):
    assert main(["report", "energy", "demo8", "--board", "icebreaker",
                 "--weights-from", "bram"]) == 0
    out = capsys.readouterr().out
    assert "Energy per inference of demo8 on icebreaker" in out and "x SPS" in out
    assert main(["report", "energy", "nosuchmodel"]) == 2
    assert "nosuchmodel" in capsys.readouterr().err
