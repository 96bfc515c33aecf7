"""Frames spread out when rendering them takes more than its share, and come back after."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from conversations import pacer as pacing
from conversations.coalescer import TAIL_RENDER_SHARE, DeltaCoalescer
from conversations.pacer import FramePacer
from conversations.rendering import IncrementalRenderer
from conversations.rendering.incremental import RenderUpdate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def run(pacer: FramePacer, clock: Clock, seconds: float, frames_per_second: int, cost: float):
    """Report `frames_per_second` frames of `cost` seconds each for `seconds`."""
    for _ in range(int(seconds * frames_per_second)):
        clock.now += 1 / frames_per_second
        pacer.spent(cost)


def test_a_light_load_keeps_the_base_interval(clock):
    pacer = FramePacer(budget=0.25, clock=clock)
    run(pacer, clock, 5, frames_per_second=100, cost=0.001)  # 10% of a core
    assert pacer.interval(0.03) == pytest.approx(0.03)


def test_a_heavy_load_stretches_the_interval_until_rendering_fits_the_budget(clock):
    pacer = FramePacer(budget=0.25, ceiling=8, clock=clock)
    base_rate, cost = 2000, 0.0004  # 2,000 frames/s at the base interval: 80% of a core
    for _ in range(40):  # the frame rate follows the interval, as it does in the coalescer
        run(pacer, clock, 0.5, frames_per_second=int(base_rate / pacer.scale), cost=cost)
    load = base_rate / pacer.scale * cost
    assert 2.5 < pacer.scale < 4.5
    assert load == pytest.approx(0.25, rel=0.35)


def test_the_stretch_is_capped_and_undone_when_the_load_goes(clock):
    pacer = FramePacer(budget=0.25, ceiling=8, clock=clock)
    run(pacer, clock, 10, frames_per_second=1000, cost=0.01)  # ten cores' worth
    assert pacer.scale == 8
    run(pacer, clock, 10, frames_per_second=10, cost=0.0001)
    assert pacer.scale == 1


def run_late(pacer: FramePacer, clock: Clock, seconds: float, lateness: float, cost: float):
    """100 frames a second, each `lateness` seconds after it was due, rendering in `cost`."""
    for _ in range(int(seconds * 100)):
        clock.now += 0.01
        pacer.late(lateness)
        pacer.spent(cost)


def test_frames_that_go_out_late_stretch_the_interval_though_rendering_is_cheap(clock):
    pacer = FramePacer(budget=0.25, ceiling=8, behind=0.025, clock=clock)
    run_late(pacer, clock, 3, lateness=0.2, cost=0.0001)  # 1% of a core rendering
    assert pacer.scale > 2  # the loop was 200 ms behind: fewer frames
    run_late(pacer, clock, 0.5, lateness=0.015, cost=0.0001)  # catching up: held, not relaxed
    stretched = pacer.scale
    run_late(pacer, clock, 1, lateness=0.015, cost=0.0001)
    assert pacer.scale == stretched
    run_late(pacer, clock, 5, lateness=0.001, cost=0.0001)  # keeping up again
    assert pacer.scale == 1


def test_punctual_frames_change_nothing(clock):
    pacer = FramePacer(budget=0.25, behind=0.025, clock=clock)
    run_late(pacer, clock, 5, lateness=0.005, cost=0.0001)
    assert pacer.scale == 1


async def test_the_coalescer_reports_how_late_its_timed_frames_went_out(monkeypatch):
    reported: list[float] = []
    monkeypatch.setattr(pacing.pacer, "late", reported.append)
    monkeypatch.setattr(pacing.pacer, "spent", lambda seconds: None)  # hold the scale at 1

    async def publish(frame: dict) -> None:
        pass

    coalescer = DeltaCoalescer(1, publish, 0.02)
    await coalescer.add(text="first ")  # sent at once: not a timed frame
    await coalescer.add(text="second ")  # waits for the interval
    await asyncio.sleep(0)  # the frame's timer starts
    time.sleep(0.05)  # the event loop is busy past the frame's time
    await asyncio.sleep(0.01)  # and then runs the timer, late
    await coalescer.close()
    assert len(reported) == 1
    assert 0.02 <= reported[0] < 1


async def frames_for(monkeypatch, scale: float) -> list[dict]:
    """Frames a coalescer publishes for 0.4 s of tokens every 2 ms, base interval 20 ms."""
    monkeypatch.setattr(pacing.pacer, "scale", scale)
    monkeypatch.setattr(pacing.pacer, "spent", lambda seconds: None)  # hold the scale
    frames: list[dict] = []

    async def publish(frame: dict) -> None:
        frames.append(frame)

    coalescer = DeltaCoalescer(1, publish, 0.02)
    for n in range(200):
        await coalescer.add(text=f"w{n} ")
        await asyncio.sleep(0.002)
    await coalescer.close()
    assert "".join(f["text"] for f in frames) == "".join(f"w{n} " for n in range(200))
    assert frames[0]["text"] == "w0 "  # the first token is never held back
    return frames


async def test_the_coalescer_sends_fewer_larger_frames_when_the_pacer_stretches(monkeypatch):
    normal = await frames_for(monkeypatch, 1.0)
    stretched = await frames_for(monkeypatch, 5.0)
    assert len(stretched) * 2.5 < len(normal)


async def test_an_answer_whose_tail_is_slow_to_render_gets_frames_spaced_by_that_cost(
    monkeypatch,
):
    """A long open table or code block costs more to render every frame: its frames spread
    out so rendering takes at most TAIL_RENDER_SHARE of the answer's time."""
    monkeypatch.setattr(pacing.pacer, "spent", lambda seconds: None)  # hold the scale at 1
    draw = IncrementalRenderer.draw
    cost = 0.02

    def slow_draw(self: IncrementalRenderer, cut: int) -> RenderUpdate:
        time.sleep(cost)  # what a few hundred lines of highlighted code take
        return draw(self, cut)

    monkeypatch.setattr(IncrementalRenderer, "draw", slow_draw)
    sent: list[float] = []

    async def publish(frame: dict) -> None:
        sent.append(time.monotonic())

    coalescer = DeltaCoalescer(1, publish, 0.02)
    for n in range(150):
        await coalescer.add(text=f"w{n} ")
        await asyncio.sleep(0.002)
    await coalescer.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    # Each gap: the next frame's render plus the wait, at least cost / share after the last.
    assert min(gaps[1:-1]) >= cost / TAIL_RENDER_SHARE
