"""The eval progress bar: problems done, running accuracy, the engine's tokens per second, ETA.

Used by the runner; a disabled bar does nothing, so library callers and tests stay quiet.

    with RunProgress(total=500, rows=[], title="runs/x") as bar:
        bar.update(row, elapsed_s, engine_tokens)
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunProgress"]


class RunProgress:
    """A rich progress bar over one run (resumed rows count as done from the start).

    Args:
        total: problems in the run.
        rows: rows already written (resume).
        enabled: draw the bar at all.
        console: a rich Console (default: stderr).
        title: shown left of the bar.
    """

    def __init__(self, total: int, rows: list[dict[str, Any]], *, enabled: bool = True, console: Any = None,
                 title: str = "eval"):
        self.total, self.enabled, self.title = total, enabled, title
        self.scored = sum(1 for r in rows if not r.get("skipped") and not r.get("verifier_error"))
        self.correct = sum(1 for r in rows if r.get("correct"))
        self.done = len(rows)
        self.tokens = 0
        self._progress = self._task = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("acc {task.fields[acc]}"), TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=console or Console(stderr=True), transient=False, refresh_per_second=2,
            )
            self._task = self._progress.add_task(title, total=total, completed=self.done, acc=self._acc(), tps="-")

    def _acc(self) -> str:
        return f"{100 * self.correct / self.scored:.1f}%" if self.scored else "-"

    def update(self, row: dict[str, Any], elapsed_s: float, engine_tokens: int | None) -> None:
        """Count a finished row; ``engine_tokens``: the engine's own count since the run started."""
        self.done += 1
        if not row.get("skipped") and not row.get("verifier_error"):
            self.scored += 1
            self.correct += bool(row.get("correct"))
        self.tokens = engine_tokens if engine_tokens is not None else self.tokens + row.get("total_tokens", 0)
        if self._progress is not None:
            tps = f"{self.tokens / elapsed_s:.0f}" if elapsed_s > 0 else "-"
            self._progress.update(self._task, advance=1, acc=self._acc(), tps=tps)

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
