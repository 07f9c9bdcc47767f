"""cocotb tests of ``designs.TensorPair`` (a TensorReader and a TensorWriter on one ``m_axi``)
against cocotbext-axi's ``AxiRam``, run by ``test_tensors.py``.

The RAM, its pauses, the stream drivers and the AXI watcher are ``cocotb_dma``'s; the job
gives ``data_width``, ``max_burst``, ``max_outstanding``, ``addr_width``, ``size_width``,
``seed``, ``strobes`` (true: the watcher accepts any ``wstrb`` but zero) and per test its
sizes, pauses and stalls. Tensors are int8 in C, H, W order; numpy's slices are the model.
"""

import cocotb
import numpy as np
from cocotb_dma import PAGE, RAM_BYTES, Bench

from sps_hw.sim.job import read_job
from sps_hw.sim.streams import pack_payload


def layouts(job):
    from sps_hw.axi import crop_layout, rectangle_layout  # amaranth: imported only here

    return (rectangle_layout(job["addr_width"], job["size_width"]),
            crop_layout(job["addr_width"], job["size_width"]))


def random_dims(rng, max_cols):
    """``(channels, rows, cols)`` of a sub-rectangle: many short runs, some up to
    ``max_cols``, one row or one channel often."""
    cols = rng.choice([rng.randint(1, 8), rng.randint(1, max_cols)])
    rows = rng.choice([1, rng.randint(1, 6)])
    channels = rng.choice([1, rng.randint(1, 4)])
    return channels, rows, cols


def place(rng, dims, lo, hi):
    """A tensor holding a sub-rectangle of ``dims`` somewhere inside bytes ``lo..hi`` (a third
    of the time with a 4 KiB boundary inside a run): ``(B, (C, H, W), (c0, y0, x0))``."""
    channels, rows, cols = dims
    shape = (channels + rng.randint(0, 2), rows + rng.randint(0, 3),
             cols + rng.choice([0, rng.randint(1, 40)]))
    size = shape[0] * shape[1] * shape[2]
    corner = tuple(rng.randint(0, s - d) for s, d in zip(shape, dims))
    base = rng.randrange(lo, hi - size + 1)
    if cols > 1 and rng.random() < 0.33:
        c, y = rng.randrange(channels), rng.randrange(rows)
        start = ((corner[0] + c) * shape[1] + corner[1] + y) * shape[2] + corner[2]
        edge = rng.randrange(lo // PAGE + 1, hi // PAGE) * PAGE
        moved = edge - rng.randint(1, cols - 1) - start
        if lo <= moved <= hi - size:
            base = moved
    return base, shape, corner


def rectangle(base, shape, corner, dims):
    """The command fields of the sub-rectangle ``dims`` at ``corner`` of the tensor
    ``shape`` at ``base``."""
    c0, y0, x0 = corner
    _, h, w = shape
    return {"base": base + (c0 * h + y0) * w + x0, "channels": dims[0], "rows": dims[1],
            "cols": dims[2], "row_pitch": w, "channel_pitch": h * w}


def view(buffer, base, shape, corner, dims):
    """numpy's view of the sub-rectangle ``dims`` at ``corner`` of the tensor."""
    size = shape[0] * shape[1] * shape[2]
    tensor = np.frombuffer(buffer, np.uint8)[base:base + size].reshape(shape)
    return tensor[tuple(slice(c, c + d) for c, d in zip(corner, dims))]


def runs(rect):
    """``(start, length)`` of every run of a command."""
    return [(rect["base"] + c * rect["channel_pitch"] + y * rect["row_pitch"], rect["cols"])
            for c in range(rect["channels"]) for y in range(rect["rows"])]


def random_crop(rng, max_cols):
    """``(tensor dims, crop fields, kept dims)`` of a job's output: the kept rows and columns
    somewhere inside it, their end sometimes given past the tensor (clipped), one in ten
    crops empty."""
    channels, kept_rows, kept_cols = random_dims(rng, max_cols)
    crop, size = {}, []
    for axis, kept in (("row", kept_rows), ("col", kept_cols)):
        lo = rng.randint(0, 2)
        hi = lo + kept
        n = hi + rng.randint(0, 2)
        if hi == n and rng.random() < 0.3:
            hi += rng.randint(1, 3)
        crop[f"keep_{axis}0"], crop[f"keep_{axis}1"] = lo, hi
        size.append(n)
    if rng.random() < 0.1:          # nothing kept: bounds equal, reversed or past the end
        axis = rng.choice(["row", "col"])
        n = size[0 if axis == "row" else 1]
        crop[f"keep_{axis}0"], crop[f"keep_{axis}1"] = rng.choice(
            [(1, 1), (2, 1), (n, n + 2), (n + 1, n + 3)])
        kept_rows = 0
    return (channels, *size), crop, (channels, kept_rows, kept_cols)


@cocotb.test()
async def traffic(dut):
    """Random reads and writes at once, on the two halves of the RAM, with pauses on every
    channel and stalls on both byte streams: the bytes read equal numpy's slices, the RAM
    equals numpy's placement of every kept crop into the random image, the stall counters
    equal the watched ones."""
    job = read_job()
    conf = job["traffic"]
    bench = Bench(dut, job, "traffic")
    rng, bb = bench.rng, bench.beat_bytes
    rect_layout, crop_layout = layouts(job)
    half = RAM_BYTES // 2
    image = bench.image

    reads, want_read = [], []
    for _ in range(conf["commands"]):
        dims = random_dims(rng, conf["max_cols"])
        placed = place(rng, dims, 0, half)
        reads.append(rectangle(*placed, dims))
        want_read.append(view(image, *placed, dims).ravel())
    want_read = np.concatenate(want_read)

    writes, payload, model = [], [], bytearray(image)
    for _ in range(conf["commands"]):
        shape, crop, kept = random_crop(rng, conf["max_cols"])
        out = np.frombuffer(rng.randbytes(shape[0] * shape[1] * shape[2]),
                            np.uint8).reshape(shape)
        payload.extend(int(b) for b in out.ravel())
        if all(kept):
            placed = place(rng, kept, half, RAM_BYTES)
            rect = rectangle(*placed, kept)
            r0, c0 = crop["keep_row0"], crop["keep_col0"]
            view(model, *placed, kept)[...] = out[:, r0:r0 + kept[1], c0:c0 + kept[2]]
        else:
            rect = {"base": half, "channels": shape[0], "rows": 0, "cols": 0,
                    "row_pitch": 0, "channel_pitch": 0}
        writes.append({**rect, **crop, "rows": shape[1], "cols": shape[2],
                       "kept": kept})

    await bench.reset()
    bench.rd_cmd.send(pack_payload(rect_layout, r) for r in reads)
    bench.wr_cmd.send(pack_payload(crop_layout, {k: v for k, v in w.items() if k != "kept"})
                      for w in writes)
    bench.wr_data.send(payload)
    got = await bench.rd_data.wait(len(want_read), timeout_cycles=conf["timeout_cycles"])
    await bench.idle(conf["timeout_cycles"])
    await bench.tb.cycles(20)
    bench.watch.check()
    assert len(bench.rd_data.items) == len(want_read), "the reader sent extra bytes"
    bad = np.flatnonzero(np.array(got) != want_read)
    assert not len(bad), f"{len(bad)} bytes read differ from numpy's slices, first {bad[0]}:" \
                         f" {got[bad[0]]} != {want_read[bad[0]]}"
    bench.check_memory(model)
    read_runs = [r for rect in reads for r in runs(rect)]
    write_runs = [r for w in writes if all(w["kept"])
                  for r in runs({**w, "channels": w["kept"][0], "rows": w["kept"][1],
                                 "cols": w["kept"][2]})]
    job.put(traffic={
        "read_bytes": len(want_read), "write_bytes": len(payload),
        "read_runs": len(read_runs), "write_runs": len(write_runs),
        "read_4k_runs": sum(1 for a, n in read_runs if a // PAGE != (a + n - 1) // PAGE),
        "write_4k_runs": sum(1 for a, n in write_runs if a // PAGE != (a + n - 1) // PAGE),
        "read_short_runs": sum(1 for a, n in read_runs if a // bb == (a + n - 1) // bb),
        "write_short_runs": sum(1 for a, n in write_runs if a // bb == (a + n - 1) // bb),
        "empty_crops": sum(1 for w in writes if not all(w["kept"])),
        "stalls": bench.watch.stalls, "cycles": bench.tb.cycle,   # = the counters
    })


@cocotb.test()
async def throughput(dut):
    """No pauses, no stalls: for each run length, one read command of ``rows`` runs of that
    length (unaligned: each row 3 bytes after the previous one's end) and one write command
    of the same shape, all kept; the cycles of every byte and beat from the command's."""
    job = read_job()
    conf = job["throughput"]
    bench = Bench(dut, job, "throughput")
    watch, t = bench.watch, bench.tb.cycle_at
    rect_layout, crop_layout = layouts(job)
    await bench.reset()
    results = []
    for cols, rows in conf["runs"]:
        rect = {"base": conf["read_addr"], "channels": 1, "rows": rows, "cols": cols,
                "row_pitch": cols + 3, "channel_pitch": 0}
        n = rows * cols
        done = len(bench.rd_data.items)
        bench.rd_cmd.send([pack_payload(rect_layout, rect)])
        got = await bench.rd_data.wait(done + n, timeout_cycles=100 * n)
        await bench.idle(1000)
        want = [bench.image[a + x] for a, _ in runs(rect) for x in range(cols)]
        assert got[done:] == want, f"runs of {cols}: the bytes read differ from the RAM"
        c = t(bench.rd_cmd.times[-1])
        data = [t(x) - c for x in bench.rd_data.times[done:]]
        read = {"first": data[0], "last": data[-1], "done": watch.busy_last["rd"] - c}

        await bench.tb.cycles(5)
        w_done, b_done, taken = len(watch.w), len(watch.b), len(bench.wr_data.times)
        bench.wr_cmd.send([pack_payload(crop_layout, {
            **rect, "base": conf["write_addr"], "keep_row0": 0, "keep_row1": rows,
            "keep_col0": 0, "keep_col1": cols})])
        sent = bench.rng.randbytes(n)
        bench.wr_data.send(sent)
        await bench.idle(100 * n)
        await bench.tb.cycles(2)
        written = b"".join(bench.ram.read(a - rect["base"] + conf["write_addr"], cols)
                           for a, _ in runs(rect))
        assert written == sent, f"runs of {cols}: the RAM differs from the bytes written"
        c = t(bench.wr_cmd.times[-1])
        data = [t(x) - c for x in bench.wr_data.times[taken:]]
        write = {"first": data[0], "last": data[-1],
                 "first_w": watch.w[w_done] - c, "last_w": watch.w[-1] - c,
                 "last_b": watch.b[-1] - c, "done": watch.busy_last["wr"] - c,
                 "beats": len(watch.w) - w_done, "bursts": len(watch.b) - b_done}
        results.append({"cols": cols, "rows": rows, "read": read, "write": write})
    watch.check()
    job.put(throughput=results)
