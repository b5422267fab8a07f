"""A live run's pools (docs/API.md ``Pool``), kept up to date while it runs: how busy each
worker is and how many tasks each took, seen while a big pool works rather than after it.

Recomputing from all of a run's events each time cost ~18 ms for 40 workers and 10k task
events (most of it folding the events): 2 % of a core at once a second, on the thread every run
depends on. So the events are folded once each, as they come (``pools.Collector``, the same fold
the run's end uses), and only the pools are rebuilt from the fold; the refreshes space out when
even that passes ``SHARE`` of a core. The run's end computes its pools again from all its events,
with the findings: that is the authority (a run that kept only its last MAX_EVENTS events ends
with the pools of those).
"""
from __future__ import annotations

import collections
import logging
import time

from mpdash import pools as pool_insights
from mpdash.engine.context import Core

log = logging.getLogger(__name__)

PERIOD = 1.0        # s between refreshes of a live run's pools
SHARE = 0.003       # at most this share of a core on them: past it the refreshes space out
FRAME_MARGIN = 1.0  # s of frames kept before the earliest pool's first task (late events)


class LivePools:
    """What one live run's refreshes keep: the fold of the events seen so far, the frames
    its pools' CPU may still need, and the pools last published."""

    def __init__(self):
        self.collector = pool_insights.Collector()
        self.event_seq = self.frame_seq = 0
        self.frames: collections.deque = collections.deque()
        self.published: list = []
        self.due = 0.0          # time.monotonic() of the next refresh
        self.spent = 0.0        # CPU seconds of every refresh so far (tests, benchmarks)


def _newer(items, seq: int) -> list:
    """The items numbered after ``seq``, oldest first, reading only those (from the right)."""
    out = []
    for item in reversed(items):
        if item["seq"] <= seq:
            break
        out.append(item)
    out.reverse()
    return out


def _read(run, live: LivePools):
    """Under the Hub's lock: only what is new since the last refresh, and the processes."""
    return (_newer(run.events, live.event_seq), _newer(run.frames, live.frame_seq),
            dict(run.processes))


def refresh(core: Core, run, live: LivePools) -> bool:
    """Fold what is new, rebuild the pools, publish them if they changed; True if published.
    On the supervisor thread, holding no lock of its own: the Hub's is taken (and let go) to
    read and again to publish, as every other writer does."""
    hub = core.hub
    events, frames, processes = hub.atomic(_read, run, live)
    if events:
        live.event_seq = events[-1]["seq"]
        live.collector.feed(events)
    if frames:
        live.frame_seq = frames[-1]["seq"]
        live.frames.extend(frames)
    collected = live.collector.pools
    firsts = [p.first for p in collected.values() if p.first is not None]
    # A pool's CPU reads only frames from its first task on: older ones are no use to any.
    keep_from = (min(firsts) if firsts else time.time()) - FRAME_MARGIN
    while live.frames and live.frames[0]["t"] < keep_from:
        live.frames.popleft()
    pools = pool_insights.build(collected, processes, live.frames)
    if pools == live.published:
        return False
    live.published = pools
    return hub.set_pools(run, pools)


def tick(core: Core, now: float) -> None:
    """Refresh every live run whose turn it is (from reactor ticks, engine.finishing)."""
    for item in list(core.live.values()):
        live = item.live_pools
        if live is None:
            live = item.live_pools = LivePools()
        if now < live.due or item.main_exited_at is not None:
            continue    # an ended main: the run's end computes the final pools soon
        spent = time.thread_time()
        try:
            refresh(core, item.run, live)
        except Exception:
            log.exception("live pools of run %s", item.run.id)
        spent = time.thread_time() - spent
        live.spent += spent
        live.due = time.monotonic() + max(PERIOD, spent / SHARE)


def next_due(live_runs) -> list[float]:
    """When the live runs' next refreshes are due (for the reactor's timeout)."""
    return [item.live_pools.due for item in live_runs
            if item.live_pools is not None and item.main_exited_at is None]
