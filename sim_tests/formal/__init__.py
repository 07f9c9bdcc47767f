"""Formal contracts: Amaranth harnesses proven by k-induction with SymbiYosys (``make formal``,
``docs/reliability.md``)."""
