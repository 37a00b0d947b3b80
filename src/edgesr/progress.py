"""One progress convention: long jobs call a `Reporter` with typed `Progress` events.

Library code never prints: `evaluate`, `train`, `run_search`, `upscale_files` and
`upscale_video` take a ``progress`` callback and tell it what they just did; `edgesr.cli`
turns the events into bars and lines. A callback that raises (e.g. KeyboardInterrupt) stops
the job as an interruption would.

>>> seen = []
>>> report = seen.append
>>> report(Progress("eval", "advance", units=1))
>>> seen[0].units
1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: What a job reports, by ``kind``:
#: "start": ``total`` units are coming (``values`` may list them);
#: "advance": ``units`` more are done (an evaluated image, an upscaled file or video frame);
#: "step": ``done`` of ``total`` (a training step), ``values`` its numbers (loss, lr);
#: "validated": ``values`` holds the validation scores at step ``done``;
#: "stage": ``item`` entered ``values["stage"]`` (search: train, eval, bench);
#: "finished": ``item`` is over; ``values`` holds its outcome (a row, an error, a written file).
KINDS = ("start", "advance", "step", "validated", "stage", "finished")


@dataclass(frozen=True)
class Progress:
    """One event of a long job.

    Attributes:
        task: the job: "eval", "train", "search", "upscale" or "video".
        kind: one of `KINDS`.
        item: what the event concerns (a model id, a file name), or "".
        units: units of work just done ("advance").
        done: units done so far, when the job counts them ("step").
        total: units of the whole job, when known.
        values: the event's numbers or outcome (loss, scores, a row, an error message).
    """

    task: str
    kind: str
    item: str = ""
    units: int = 0
    done: int | None = None
    total: int | None = None
    values: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown progress kind {self.kind!r}; one of {', '.join(KINDS)}")


#: A progress callback.
Reporter = Callable[[Progress], None]


def ignore(event: Progress) -> None:
    """The reporter of a job nobody watches."""
