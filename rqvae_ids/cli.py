"""`rqvae-ids` command line.

Each subcommand lives in `rqvae_ids/commands/<name>.py` and defines
`register(subparsers)`; the handler it sets (`func`) imports heavy libraries
lazily so `rqvae-ids --help` stays fast. A `UserError` becomes one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys

from . import commands
from .core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rqvae-ids",
        description=(
            "Semantic IDs for generative retrieval: embed item text, train a tokenizer "
            "(residual k-means by default, an RQ-VAE, or another baseline), assign "
            "collision-free stable IDs, evaluate them, and run it all as Prefect flows."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    from .commands._help import default_metavars

    default_metavars(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(given)
    except UserError as e:  # a removed spelling (commands/_help.RemovedFlag): one line, as any bad input
        print(f"rqvae-ids {given[0]}: error: {e}", file=sys.stderr)
        return UserError.exit_code
    args._argv = given  # e.g. to print the exact --resume command
    try:
        result = args.func(args)
        sys.stdout.flush()  # a closed pipe (`... | head`) fails here, inside the try, not at exit
    except UserError as e:
        print(f"rqvae-ids {args.command}: error: {e}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    return int(result or 0)


def _stdout_closed() -> int:
    """The reader of stdout went away (`rqvae-ids lookup ... | head -3`): stop quietly.

    As in the Python docs' "Note on SIGPIPE": point stdout at devnull so the interpreter's
    final flush does not fail again, and exit like a process killed by SIGPIPE (128 + 13).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass
    return 128 + int(getattr(signal, "SIGPIPE", 13))


if __name__ == "__main__":
    sys.exit(main())
