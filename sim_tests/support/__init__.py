"""Helpers shared by the tests: random layers and models, simulator availability."""
