"""``make bench``: the benchmarks of every layer as one JSON document on stdout: compile times
(:mod:`compiler.bench`), SPS against the dense baseline on the RTL (:mod:`sps_hw.bench`),
VGG16 and ResNet-50 from external memory through the tile engine (``sps_hw.bench.memory``)
and a build of every board (:mod:`boards.bench`)."""

import json
import sys

import boards.bench
import compiler.bench
import sps_hw.bench


def main():
    result = {"compile": compiler.bench.run(), "sps_hw": sps_hw.bench.run(),
              "memory": sps_hw.bench.memory(), "boards": boards.bench.run()}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
