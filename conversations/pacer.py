"""Frame pacing for the whole process: under load, each answer gets fewer, larger frames.

Rendering a frame (the open Markdown tail, parsed, highlighted and sanitised again) costs a
fraction of a millisecond; at 20 frames a second per answer, a few hundred answers at once
would need more than a core for it, and every queue would grow. The pacer keeps the share of
a core spent rendering frames near `budget` by stretching every answer's frame interval
(up to `ceiling` times), and brings it back as the load goes.

Rendering is not a frame's only cost (relaying it to each tab is about as much again) and
frames are not the process's only work (every token is read and parsed). So the pacer also
watches how late frames go out after they were due: lateness means the event loop has more
work than time, and then frames are stretched further, whatever rendering costs, until the
loop keeps up. Text is never dropped: a longer interval only batches more of it per frame,
and the first token still goes at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class FramePacer:
    def __init__(
        self,
        budget: float = 0.25,
        window: float = 0.5,
        ceiling: float = 8.0,
        behind: float = 0.025,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.budget = budget  # the share of one core that frame rendering may take
        self.window = window  # seconds between adjustments
        self.ceiling = ceiling  # the most an interval is stretched
        self.behind = behind  # mean lateness of frames (seconds) that means falling behind
        self.reset()

    def reset(self) -> None:
        """Forget the load measured so far (tests: one test's load is not the next one's)."""
        self.scale = 1.0
        self._spent, self._late, self._late_frames, self._since = 0.0, 0.0, 0, self._clock()

    def interval(self, base: float) -> float:
        return base * self.scale

    def late(self, seconds: float) -> None:
        """Report how long after it was due a timed frame went out."""
        self._late += max(0.0, seconds)
        self._late_frames += 1

    def spent(self, seconds: float) -> None:
        """Report the CPU time one frame's rendering took."""
        self._spent += seconds
        now = self._clock()
        elapsed = now - self._since
        if elapsed < self.window:
            return
        load = self._spent / elapsed
        # Halfway (geometrically) to the scale that would meet the budget at this load:
        # frames scale with 1/interval, and the damping keeps it from swinging.
        wanted = self.scale * math.sqrt(max(load, 1e-6) / self.budget)
        lateness = self._late / self._late_frames if self._late_frames else 0.0
        if lateness > self.behind:  # the loop is behind: fewer frames, whatever they cost
            wanted = max(wanted, self.scale * 1.25)
        elif lateness > self.behind / 2:  # only just keeping up: no more frames yet
            wanted = max(wanted, self.scale)
        self.scale = min(self.ceiling, max(1.0, wanted))
        self._spent, self._late, self._late_frames, self._since = 0.0, 0.0, 0, now


pacer = FramePacer()
