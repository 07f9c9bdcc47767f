"""SPS on boards: the host link gateware (:mod:`boards.link`), the board targets and their top
levels (:mod:`boards.platforms`, :mod:`boards.top`), the build flow (:mod:`boards.build`) and
the host side (:mod:`boards.host`). See ``docs/boards.md`` and ``docs/host_link.md``."""
