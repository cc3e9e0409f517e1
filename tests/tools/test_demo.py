"""tools/demo.py's runner: lanes side by side, their logs and threads, a failure stops all."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "demo.py"


@pytest.fixture(scope="module")
def demo_tool():
    spec = importlib.util.spec_from_file_location("demo_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_tool"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("demo_tool", None)


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_split_cores(demo_tool):
    assert demo_tool.split_cores(1) is None
    assert demo_tool.split_cores(2) == (1, 1)
    assert demo_tool.split_cores(3) == (2, 1)
    assert demo_tool.split_cores(16) == (8, 8)


def test_lanes_run_side_by_side_with_their_threads_and_logs(demo_tool, tmp_path, capsys):
    demo = demo_tool.Demo(tmp_path, quick=True)
    fg = demo_tool.Lane("sim", threads=1)
    bg = demo_tool.Lane("real", threads=1, log_dir=tmp_path / "logs")
    sleep_and_say = (
        "import os, time; time.sleep(1.0); print('threads', os.environ['OMP_NUM_THREADS'])"
    )

    def lane(name):
        def steps(lane):
            demo.run(f"{name} step", _py(sleep_and_say), lane)
            return name

        return steps

    start = time.perf_counter()
    results = demo_tool.run_lanes(demo, [(fg, lane("a")), (bg, lane("b"))])
    elapsed = time.perf_counter() - start
    assert results == ["a", "b"]
    assert elapsed < 1.9, "the two lanes ran one after the other"
    assert sorted((t[0], t[1]) for t in demo.timings) == [("a step", "sim"), ("b step", "real")]
    logs = list((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 1 and "threads 1" in logs[0].read_text()
    printed = capsys.readouterr().out
    # the background lane's output is in its log; the terminal has its start and end lines
    assert "=== [real] done in" in printed and "(log: logs/" in printed


def test_sequential_lanes_print_to_terminal(demo_tool, tmp_path, capfd):
    demo = demo_tool.Demo(tmp_path, quick=True)
    lanes = [
        (demo_tool.Lane("sim"), lambda lane: demo.run("one", _py("print('hello one')"), lane)),
        (demo_tool.Lane("real"), lambda lane: demo.run("two", _py("print('hello two')"), lane)),
    ]
    demo_tool.run_lanes(demo, lanes, parallel=False)
    out = capfd.readouterr().out
    assert out.index("hello one") < out.index("=== two") < out.index("hello two")
    assert [t[0] for t in demo.timings] == ["one", "two"]


def test_failure_in_one_lane_stops_the_other(demo_tool, tmp_path):
    demo = demo_tool.Demo(tmp_path, quick=True)
    ran = []

    def long_lane(lane):
        demo.run("long", _py("import time; time.sleep(30)"), lane)
        ran.append("after long")

    def failing_lane(lane):
        time.sleep(0.5)
        demo.run("broken", _py("import sys; print('boom'); sys.exit(3)"), lane)

    bg = demo_tool.Lane("real", log_dir=tmp_path / "logs")
    start = time.perf_counter()
    with pytest.raises(SystemExit) as err:
        demo_tool.run_lanes(demo, [(demo_tool.Lane("sim"), long_lane), (bg, failing_lane)])
    assert time.perf_counter() - start < 20, "the running command was not ended"
    assert ran == []
    # the failing step is named with its log; the stopped one says it was stopped
    messages = str(err.value)
    assert "failed" in messages
    log = next((tmp_path / "logs").glob("*broken.log"))
    assert "boom" in log.read_text()
    with pytest.raises(SystemExit, match="not run: another step failed"):
        demo.run("later", _py("pass"))
