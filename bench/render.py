"""Server render work while long blocks stream: the IncrementalRenderer in this process.

One long table, then one long code block (bench.upstream's "long" document), fed in frames
of 100 characters, as a 500 tokens/s answer at 20 frames a second would arrive. Every frame
re-renders the open block, so this is where render work could grow with the square of a
block's length; doubling the document should about double the work.
"""

from __future__ import annotations

import os
import time

from bench.context import Context
from bench.upstream import long_blocks_document

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
    ratio = results[1][0] / results[0][0]
    ctx.report.info(NAME, f"render work for {sizes[1] // 1000} KB over {sizes[0] // 1000} KB",
                    f"{ratio:.2f} times (linear: 2, quadratic: 4)")  # fmt: skip
