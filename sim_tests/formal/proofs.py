"""The proofs ``make formal`` runs: each harness, its k-induction depth and the verdict
expected (``PASS`` for the design, ``FAIL`` with a counterexample for a design broken on
purpose, which shows that the properties can fail)."""

from dataclasses import dataclass

from .array_bank import ArrayBankHarness
from .frame_receiver import FrameReceiverHarness, NoCRCRestart
from .staged_images import PartialCommit, StagedImagesHarness, WriteCommits
from .stream_drainer import TensorDrainerHarness

__all__ = ["PROOFS", "Task"]


@dataclass(frozen=True)
class Task:
    name: str
    harness: object          # a callable returning a fresh harness
    depth: int
    expect: str = "PASS"


PROOFS = [
    Task("staged_images", StagedImagesHarness, 5),
    Task("staged_images_latency1", lambda: StagedImagesHarness(read_latency=1), 5),
    Task("staged_images_registered", lambda: StagedImagesHarness(registered_writes=True), 6),
    Task("staged_images_single_port",
         lambda: StagedImagesHarness(single_port={"weights", "index"}), 5),
    Task("frame_receiver", FrameReceiverHarness, 10),
    Task("stream_drainer", TensorDrainerHarness, 8),
    Task("stream_drainer_latency1", lambda: TensorDrainerHarness(read_latency=1), 8),
    Task("stream_drainer_latency3", lambda: TensorDrainerHarness(read_latency=3), 9),
    Task("array_bank", ArrayBankHarness, 6),
    Task("broken_partial_commit", lambda: StagedImagesHarness(PartialCommit), 5, "FAIL"),
    Task("broken_write_commits", lambda: StagedImagesHarness(WriteCommits), 5, "FAIL"),
    Task("broken_no_crc_restart", lambda: FrameReceiverHarness(NoCRCRestart), 10, "FAIL"),
    Task("broken_no_backpressure", lambda: TensorDrainerHarness(broken=True), 10, "FAIL"),
    Task("broken_wrong_bank", lambda: ArrayBankHarness(broken=True), 6, "FAIL"),
]
