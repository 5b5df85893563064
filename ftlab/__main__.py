"""Command line: ``python -m ftlab compare [--profile cpu] [--methods LoRA "head only"] [--quick]``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from .compare_methods import METHODS

    ap = argparse.ArgumentParser(prog="python -m ftlab")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="every method on one task and budget, tuned and seeded the same way")
    c.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: $FTLAB_PROFILE or detected)")
    c.add_argument("--methods", nargs="+", default=None, metavar="METHOD", help=f"any of: {', '.join(METHODS)}")
    c.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the profile's)")
    c.add_argument("--seeds", type=int, default=3, help="final runs per method at its chosen rate")
    c.add_argument("--quick", action="store_true", help="one seed; rates from the stored grid")
    c.add_argument("--report-only", action="store_true", help="train nothing: rebuild the report from the stored runs")
    c.add_argument("--model", default=None, help="encoder every method starts from (default: the profile's)")
    c.add_argument("--task", default="rotten_tomatoes", help="a two-class dataset ftlab can load (default: rotten_tomatoes)")
    args = ap.parse_args(argv)

    from . import compare, report
    from .env import setup
    from .errors import FtlabError

    try:
        profile = setup(seed=0, profile=args.profile)
        summaries = compare.compare(profile, args.methods, seeds=args.seeds, steps=args.steps, quick=args.quick,
                                    model=args.model, task=args.task, report_only=args.report_only)
        path = report.write_report(profile, summaries)
    except FtlabError as e:
        print(f"ftlab compare: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
