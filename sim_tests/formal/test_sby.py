"""The proof tools in the default suite (the proofs themselves run with ``make formal``):
SymbiYosys and z3 are installed, and a design broken on purpose gives a counterexample."""

from .array_bank import ArrayBankHarness
from .sby import prove, tools_missing


def test_the_tools_are_installed():
    assert tools_missing() == []


def test_a_broken_design_gives_a_counterexample(tmp_path):
    proof = prove(ArrayBankHarness(rows=1, cols=2, broken=True), "broken", 4, tmp_path)
    assert proof.status == "FAIL", proof.log[-3000:]
    assert proof.trace is not None and proof.trace.stat().st_size > 0
    assert "array_bank.py" in proof.log          # the failed assertion is the harness's
