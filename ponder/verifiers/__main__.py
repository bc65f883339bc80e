"""Audit the verifiers against your own judged completions.

    python -m ponder.verifiers judged.jsonl [--show N]

Each line of the file is {"gold": ..., "completion": ..., "kind": "math"|"integer"|"choice",
"expected": true|false}. Prints agreement, false positives and false negatives per kind, then
the disagreeing rows. Exit status: 0 after a report, 2 for unusable input (a one-line error
naming the file, row and field).
"""

import argparse
import sys

from ponder.verifiers.audit import AuditInputError, audit, format_report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the audit command line.

    Args:
        argv: the arguments after the program name; default: sys.argv[1:].

    Returns:
        The exit status: 0 after a report, 2 for unusable input.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ponder.verifiers",
        description="Check the verifiers against a JSONL file of judged completions.",
    )
    parser.add_argument("file", help='JSONL rows: {"gold", "completion", "kind", "expected"}')
    parser.add_argument(
        "--show", type=int, default=20, metavar="N", help="most disagreeing rows listed per section"
    )
    args = parser.parse_args(argv)
    try:
        report = audit(args.file)
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report, max_rows=args.show))
    return 0


if __name__ == "__main__":
    sys.exit(main())
