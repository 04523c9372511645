"""Files the sandbox brand's own systems drop in the landing zone: first-party touchpoints.

The site's event collector exports one JSON-lines file per day, one event per line: each
marketing touch of an anonymous visitor (channel from the UTM/referrer) and each purchase.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from cfap_orchestration.sandbox.world import SandboxWorld

TOUCHPOINTS_FOLDER = "first_party_events"


def touchpoint_events(world: SandboxWorld, day: date) -> list[dict[str, object]]:
    """The collector's events for journeys that ended on `day`, touches before the outcome."""
    events: list[dict[str, object]] = []
    for journey in world.journeys(day).to_dict("records"):
        visitor, path = str(journey["journey_id"]), [str(c) for c in journey["path"]]
        ended: datetime = journey["ended_at"]
        rng = np.random.default_rng([world.config.seed, day.toordinal(), len(events)])
        gaps = np.sort(rng.integers(60, 14 * 86_400, len(path)))[::-1]
        for i, (channel, gap) in enumerate(zip(path, gaps, strict=True)):
            at = ended - timedelta(seconds=int(gap))
            events.append(_event(f"{visitor}-t{i}", visitor, "touch", channel, at, None))
        if journey["converted"]:
            value = float(journey["conversion_value"])
            events.append(_event(f"{visitor}-p", visitor, "purchase", None, ended, value))
        else:
            events.append(_event(f"{visitor}-x", visitor, "session_end", None, ended, None))
    return events


def _event(
    insert_id: str, visitor: str, event: str, channel: str | None, at: datetime, value: float | None
) -> dict[str, object]:
    return {"insert_id": insert_id, "anonymous_id": visitor, "event": event,
            "channel": channel, "event_time": at.isoformat(), "value": value}  # fmt: skip


def export_touchpoints(world: SandboxWorld, day: date, landing_dir: Path) -> Path:
    """Write `day`'s file (idempotent: the same bytes every time) and return its path."""
    folder = landing_dir / TOUCHPOINTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day.isoformat()}.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w") as handle:
        for event in touchpoint_events(world, day):
            handle.write(json.dumps(event, separators=(",", ":")) + "\n")
    tmp.replace(path)  # never a half-written file under the final name
    return path
