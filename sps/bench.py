"""``make bench``: the benchmarks of every layer as one JSON document on stdout: compile times
(:mod:`compiler.bench`), SPS against the dense baseline on the RTL (:mod:`sps_hw.bench`),
VGG16 and ResNet-50 from external memory through the tile engine (``sps_hw.bench.memory``),
a build of every board (:mod:`boards.bench`) and VGG16 and ResNet-18 on the boards with DRAM
(:mod:`boards.networks`)."""

import json
import sys

import boards.bench
import boards.networks
import compiler.bench
import sps_hw.bench


def main():
    result = {"compile": compiler.bench.run(), "sps_hw": sps_hw.bench.run(),
              "memory": sps_hw.bench.memory(), "boards": boards.bench.run(),
              "networks": boards.networks.network_rows()}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
