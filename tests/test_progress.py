"""Progress reporting: plain lines when not on a terminal, a redrawn bar when on one."""

import io
import re

import pytest

from lenet_jax.training import progress as progress_lib
from lenet_jax.training.progress import Progress, format_seconds

LINE = re.compile(r"^epoch 2/10 step (\d+)/468 loss (\d\.\d{4}) ([\d,]+) ex/s eta (\S+)$")


class FakeClock:
    """`time.perf_counter` that advances only when told to."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_lib.time, "perf_counter", fake)
    return fake


def run_epoch(progress: Progress, clock: FakeClock, steps: int, seconds_per_step: float):
    for n in range(1, steps + 1):
        progress.update(n, loss=1.0 / n if progress.due(n) else None)
        clock.now += seconds_per_step


def test_plain_lines_every_n_steps_with_speed_and_eta(clock):
    stream = io.StringIO()
    with Progress(468, 2, 10, 128, every=100, stream=stream) as progress:
        run_epoch(progress, clock, 468, seconds_per_step=0.025)
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["100", "200", "300", "400"]
    first = LINE.match(lines[0])
    assert first.group(2) == "0.0100"
    assert first.group(3) == "5,120"  # 128 examples per 0.025 s
    assert first.group(4) == f"{round(368 * 0.025)}s"


def test_the_first_step_compile_time_does_not_count(clock):
    stream = io.StringIO()
    progress = Progress(10, 1, 1, 100, every=5, stream=stream)
    clock.now += 30.0  # step 1 compiles before it returns
    for n in range(1, 6):
        progress.update(n, loss=0.5 if n == 5 else None)
        clock.now += 1.0
    assert stream.getvalue() == "epoch 1/1 step 5/10 loss 0.5000 100 ex/s eta 5s\n"


def test_loss_none_keeps_the_last_loss_and_line_waits_for_speed(clock):
    stream = io.StringIO()
    progress = Progress(4, 1, 3, 32, every=1, stream=stream)
    progress.update(1, loss=2.5)
    clock.now += 1.0
    progress.update(2, loss=None)
    assert stream.getvalue().splitlines() == [
        "epoch 1/3 step 1/4 loss 2.5000",
        "epoch 1/3 step 2/4 loss 2.5000 32 ex/s eta 2s",
    ]


def test_a_resumed_epoch_counts_from_its_first_update(clock):
    stream = io.StringIO()
    progress = Progress(300, 3, 5, 10, every=100, stream=stream, initial=150)
    for n in range(151, 301):
        progress.update(n, loss=0.25 if progress.due(n) else None)
        clock.now += 0.1
    assert stream.getvalue().splitlines() == [
        "epoch 3/5 step 200/300 loss 0.2500 100 ex/s eta 10s",
        "epoch 3/5 step 300/300 loss 0.2500 100 ex/s eta 0s",
    ]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place(clock):
    stream = FakeTerminal()
    progress = Progress(50, 1, 2, 64, every=10, stream=stream)
    for n in range(1, 51):
        progress.update(n, loss=0.75 if progress.due(n) else None)
        clock.now += 0.01
    bar = str(progress._bar)  # tqdm redraws at most every 0.1 s: read the bar itself
    assert bar.startswith("epoch 1/2 ") and "50/50 steps, loss 0.7500 6,400 ex/s eta 0s" in bar
    progress.close()
    out = stream.getvalue()
    assert out.startswith("\repoch 1/2") and "\n" not in out  # one line, rewritten


@pytest.mark.parametrize(
    "seconds, text", [(0.4, "0s"), (32, "32s"), (245, "4m05s"), (3720, "1h02m")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_write_prints_a_line_in_both_modes(clock):
    plain = io.StringIO()
    Progress(10, 1, 1, 8, stream=plain).write("compiled the train step in 2.0 s")
    assert plain.getvalue() == "compiled the train step in 2.0 s\n"
    terminal = FakeTerminal()
    with Progress(10, 1, 1, 8, stream=terminal) as progress:
        progress.write("compiled the train step in 2.0 s")
    assert "compiled the train step in 2.0 s\n" in terminal.getvalue()
