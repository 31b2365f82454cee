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
        from ..errors import UserError

        raise UserError(f"{option_string} is not an option of this command: use {self.use} "
                        "(--model is the tokenizer kind, in `train`)")
