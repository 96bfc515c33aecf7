"""Server render work while long blocks stream: the IncrementalRenderer in this process.

One long table, then one long code block (bench.upstream's "long" document), fed in frames
of 100 characters, as a 500 tokens/s answer at 20 frames a second would arrive. Every frame
re-renders the open block, so this is where render work could grow with the square of a
block's length; doubling the document should about double the work.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from bench.context import Context
from bench.upstream import DOCUMENT, long_blocks_document

NAME = "render"
TIMEOUT = 120
FRAME = 100  # characters per frame


def render_seconds(size: int) -> tuple[float, float, float]:
    """CPU seconds for every frame and the final render; the slowest frame and the final
    render (the finished block highlighted whole), in wall seconds."""
    from conversations.rendering import IncrementalRenderer

    text = long_blocks_document(size)
    renderer, slowest = IncrementalRenderer(), 0.0
    started = time.process_time()
    for at in range(0, len(text), FRAME):
        frame = time.perf_counter()
        renderer.feed(text[at : at + FRAME])
        slowest = max(slowest, time.perf_counter() - frame)
    final = time.perf_counter()
    renderer.finish()
    final = time.perf_counter() - final
    return time.process_time() - started, slowest, final


# How models write lists: every item a line, opening with a bolded term.
TERMS = "".join(
    f"- **Term {n}**: what it means, in words that run on for a while before the line ends.\n"
    for n in range(40)
)


def frame_cost(text: str, frame: int) -> float:
    """CPU seconds a frame for `text` fed in `frame`-character frames (best of 3)."""
    from conversations.rendering import IncrementalRenderer

    best = float("inf")
    for _ in range(3):
        renderer, started = IncrementalRenderer(), time.process_time()
        for at in range(0, len(text), frame):
            renderer.feed(text[at : at + frame])
        renderer.finish()
        best = min(best, time.process_time() - started)
    return best / -(-len(text) // frame)


async def longest_pause(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """`work`'s wall time, and the longest the event loop went without a turn meanwhile (a
    1 ms ticker): what every other answer on the worker waited."""
    pauses, done = [0.0], asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            pauses.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    done.set()
    await ticker
    return took, max(pauses)


async def _publish(frame: dict[str, object]) -> None:
    pass


async def loop_pause_at_the_end(size: int) -> tuple[float, float]:
    """The answer's last render (DeltaCoalescer.final_html, after every frame)."""
    from conversations.coalescer import DeltaCoalescer

    text = long_blocks_document(size)
    coalescer = DeltaCoalescer(0, _publish, 0.05)
    for at in range(0, len(text), FRAME):
        coalescer._renderer.feed(text[at : at + FRAME])  # as the frames would have
    return await longest_pause(coalescer.final_html)


async def loop_pause_mid_answer(size: int) -> tuple[float, float]:
    """The same document with a paragraph after it, streamed through DeltaCoalescer frame
    by frame: the frame that starts the paragraph finishes the long code block."""
    from conversations.coalescer import DeltaCoalescer

    text = long_blocks_document(size) + "\nThat was the listing; more follows.\n"
    coalescer = DeltaCoalescer(0, _publish, 0.05)

    async def stream() -> None:
        for at in range(0, len(text), FRAME):
            await coalescer.add(text=text[at : at + FRAME])
            await coalescer.flush()
            await asyncio.sleep(0.002)
        await coalescer.close()

    return await longest_pause(stream)


async def run(ctx: Context) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()
    render_seconds(4_000)  # warm-up: lexers, markdown-it's rules
    sizes = ctx.options.pick((20_000, 40_000), (10_000, 20_000))
    results = [render_seconds(size) for size in sizes]
    for size, (cpu, slowest, final) in zip(sizes, results, strict=True):
        ctx.report.info(NAME, f"render a {size // 1000} KB long table + long code, {FRAME}-character frames",
                        f"{cpu * 1000:.0f} ms CPU; slowest frame {slowest * 1000:.1f} ms, final render {final * 1000:.0f} ms")  # fmt: skip
    took, pause = await loop_pause_at_the_end(sizes[1])
    ctx.report.info(NAME, f"{sizes[1] // 1000} KB: the last render (the open code block, whole), longest event-loop pause",
                    f"{took * 1000:.0f} ms on a worker thread; loop paused at most {pause * 1000:.1f} ms")  # fmt: skip
    _, pause = await loop_pause_mid_answer(sizes[1])
    ctx.report.info(NAME, f"{sizes[1] // 1000} KB streamed, the code block finished mid-answer: longest event-loop pause",
                    f"{pause * 1000:.1f} ms (its whole render on a worker thread)")  # fmt: skip
    for name, text, frame in (
        ("the mixed document (20 KB)", DOCUMENT[:20_000], 40),
        ("a 40-item list of bolded terms (3.4 KB)", TERMS, 16),
    ):
        ctx.report.info(NAME, f"{name}, {frame}-character frames",
                        f"{frame_cost(text, frame) * 1e6:.0f} µs a frame")  # fmt: skip
    ratio = results[1][0] / results[0][0]
    ctx.report.info(NAME, f"render work for {sizes[1] // 1000} KB over {sizes[0] // 1000} KB",
                    f"{ratio:.2f} times (linear: 2, quadratic: 4)")  # fmt: skip
