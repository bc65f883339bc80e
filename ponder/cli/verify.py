"""``ponder verify``: audit the verifiers against your own judged completions.

    ponder verify judged.jsonl             # rows {"gold", "completion", "kind", "expected"}
    ponder verify judged.jsonl --show 50   # list more of the disagreeing rows

Prints agreement, false positives and false negatives per answer kind, then the rows where the
verifier disagrees with you. Unusable input is one line naming the file, row and field (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ponder.cli.options import fail

__all__ = ["verify"]


def verify(
    file: Annotated[Path, typer.Argument(help='JSONL rows: {"gold", "completion", "kind", "expected"}.')],
    show: Annotated[int, typer.Option(help="Most disagreeing rows listed per section.")] = 20,
) -> None:
    """Check the math, integer and choice verifiers against a JSONL file of judged completions."""
    from ponder.verifiers import AuditInputError, VerifierError, audit, format_report

    try:
        report = audit(str(file))
    except (AuditInputError, VerifierError) as exc:
        fail(str(exc))
    typer.echo(format_report(report, max_rows=show))
