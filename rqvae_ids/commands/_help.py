"""Help texts several commands share, so each thing is described one way everywhere."""

from __future__ import annotations

import argparse

# rqvae_ids.evaluate.sequences.load_interactions reads this.
INTERACTIONS = ("interactions file (CSV/TSV/Parquet, optionally .gz) with columns user_id,item_id "
                "and optionally timestamp or position (the order; else file order)")


def default_metavars(parser: argparse.ArgumentParser) -> None:
    """One placeholder per kind of value in every --help: N (int), X (float), DEVICE, VALUE (other).

    Options name their own FILE / DIR / ... where it says more; this fills in the rest, so
    no help shows argparse's upper-cased option name (MODEL_DIR, CODEBOOK_SIZE, ...).
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                default_metavars(sub)
            continue
        if not action.option_strings or action.nargs == 0 or action.metavar is not None or action.choices:
            continue
        action.metavar = "DEVICE" if action.dest.endswith("device") else {int: "N", float: "X"}.get(action.type, "VALUE")


class RemovedFlag(argparse.Action):
    """A spelling that no longer works: refused at parse time with one line naming the flag to use
    (kept as an option, hidden, so that argparse does not read it as an abbreviation of another)."""

    def __init__(self, option_strings, dest, use: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.use = use

    def __call__(self, parser, namespace, values, option_string=None):
        from ..core.errors import UserError

        raise UserError(f"{option_string} is not an option of this command: use {self.use} "
                        "(--model is the tokenizer kind, in `train`)")


def add_output_flags(p: argparse.ArgumentParser, *, quiet: str | None = None, json_line: bool = True) -> None:
    """`--quiet` and `--json`, worded the same in every command that has them: --quiet silences
    the progress on stderr (`quiet` says what it is), --json prints the result as one JSON line on
    stdout instead of the lines a person reads."""
    if quiet is not None:
        p.add_argument("--quiet", action="store_true", help=f"no progress on stderr ({quiet})")
    if json_line:
        p.add_argument("--json", action="store_true",
                       help="print the result as one JSON line on stdout instead of the summary")


def add_resume_flag(p: argparse.ArgumentParser, default: str) -> None:
    """`--resume` / `--no-resume`, the same pair in `train` and `retrieve-train`: continue the
    training in --out from its checkpoint, or start over; `default` says what neither does."""
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                   help=f"--resume: continue the training in --out from its checkpoint; --no-resume: start over "
                        f"(neither: {default})")


def warn_old_spelling(command: str, old: str, new: str) -> None:
    """One line on stderr for an old spelling that still works this release."""
    import sys

    print(f"rqvae-ids {command}: warning: {old}: old spelling, dropped in the next release; use {new}",
          file=sys.stderr)
