"""The committed generated modules must match proto/ (run `make proto`)."""

from pathlib import Path

from shoal.core import protogen
from shoal.core.wire import pb


def test_generated_modules_are_current(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    assert fresh, "no .proto files were compiled"
    committed_dir = protogen.OUT_DIR / "shoal" / "v1"
    for path in fresh:
        committed = committed_dir / path.name
        assert committed.exists(), f"{path.name} is not committed: run `make proto`"
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: run `make proto`"


def test_results_carry_name_state_and_timing() -> None:
    ev = pb.TaskEvent(node="cn1", result=pb.Result(state=pb.STATE_TIMEOUT))
    ev.result.timing.start_ns = 1
    again = pb.TaskEvent.FromString(ev.SerializeToString())
    assert (again.node, again.result.state, again.result.timing.start_ns) == ("cn1", 3, 1)
