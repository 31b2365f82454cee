"""What a user sees: one meaning per flag, consistent --help, clear messages (issue 16)."""

from __future__ import annotations

import argparse

import pytest

from rqvae_ids.cli import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --------------------------------------------------------------------- one meaning per flag


def test_embed_model_flag_everywhere_and_old_spellings_hidden():
    subs = _subparsers()
    for name in ("embed", "compare", "run", "demo"):
        assert "--embed-model" in subs[name].format_help(), name
    # embed --model: the old spelling of --embed-model, still accepted, not shown
    assert _parse(["embed", "--catalog", "c.csv", "--out", "o", "--model", "m"]).embed_model == "m"
    assert _parse(["embed", "--catalog", "c.csv", "--out", "o", "--embed-model", "m"]).embed_model == "m"
    assert "--model " not in subs["embed"].format_help()
    # run/demo: --model-dir is the trained model folder; --model is its old, hidden spelling
    for argv in (["run", "--catalog", "c.csv", "--out", "o"], ["demo"]):
        assert _parse([*argv, "--model-dir", "m"]).model_dir == "m"
        assert _parse([*argv, "--model", "m"]).model_dir == "m"
        assert "--model " not in subs[argv[0]].format_help()
    # train: --model is the tokenizer kind
    assert _parse(["train", "--embeddings", "e", "--out", "o", "--model", "vqvae"]).model == "vqvae"


def test_run_embed_model_becomes_the_embed_override():
    from rqvae_ids.commands.run import parse_overrides

    args = _parse(["run", "--catalog", "c.csv", "--out", "o", "--embed-model", "/m"])
    assert parse_overrides(args)["embed.model"] == "/m"
    assert "embed.model" not in parse_overrides(_parse(["run", "--catalog", "c.csv", "--out", "o"]))


def test_help_placeholders_are_consistent():
    """No --help shows argparse's upper-cased option names (MODEL_DIR, EMBEDDINGS, OUT...);
    files are FILE, folders DIR, counts N, everywhere."""
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or action.help == argparse.SUPPRESS:
                continue
            assert action.metavar is not None or action.choices, (name, action.option_strings)
            flag = action.option_strings[-1]
            if flag in ("--out", "--model-dir", "--embed-model"):
                assert action.metavar == "DIR", (name, flag)
            if flag in ("--embeddings", "--interactions", "--ids", "--catalog", "--config", "--previous"):
                assert action.metavar == "FILE", (name, flag)


def test_interactions_described_one_way():
    from rqvae_ids.commands._help import INTERACTIONS

    helps = {name: a.help for name, sub in _subparsers().items() for a in sub._actions
             if "--interactions" in a.option_strings}
    assert set(helps) == {"compare", "retrieve-train", "run", "serve"}
    assert all(INTERACTIONS in h for h in helps.values()), helps
