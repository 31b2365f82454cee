"""What a user sees: one meaning per flag, consistent --help, clear messages (issue 16)."""

from __future__ import annotations

import argparse
import os

import pytest

from rqvae_ids.cli import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --------------------------------------------------------------------- one meaning per flag


def test_embed_model_flag_everywhere_and_old_spellings_refused(capsys, tmp_path):
    from rqvae_ids.cli import main

    subs = _subparsers()
    for name in ("embed", "compare", "run", "demo"):
        assert "--embed-model" in subs[name].format_help(), name
    assert _parse(["embed", "--catalog", "c.csv", "--out", "o", "--embed-model", "m"]).embed_model == "m"
    # --model alone means the tokenizer kind (train); elsewhere it is one line naming the right flag,
    # never an abbreviation of --model-dir, and nothing is written
    for argv, use in ((["embed", "--catalog", "c.csv"], "--embed-model DIR"),
                      (["run", "--catalog", "c.csv"], "--model-dir DIR"), (["demo"], "--model-dir DIR")):
        assert main([*argv, "--out", str(tmp_path / "o"), "--model", "m"]) == 2
        err = capsys.readouterr().err
        assert err == (f"rqvae-ids {argv[0]}: error: --model is not an option of this command: use {use} "
                       "(--model is the tokenizer kind, in `train`)\n")
        assert "--model " not in subs[argv[0]].format_help()
    assert not (tmp_path / "o").exists()
    for argv in (["run", "--catalog", "c.csv", "--out", "o"], ["demo"]):
        assert _parse([*argv, "--model-dir", "m"]).model_dir == "m"
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
    assert set(helps) == {"compare", "refresh", "retrieve-train", "run", "serve", "train"}
    assert all(INTERACTIONS in h for h in helps.values()), helps


def _sigint_once(proc, ready, seconds: float, poll: float) -> tuple[str, str]:
    """Wait (at most `seconds`) until the Path `ready` exists, send SIGINT to the still-running
    `proc`, and return its (stdout, stderr); the process is killed whatever happens."""
    import signal
    import time

    try:
        deadline = time.monotonic() + seconds
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(poll)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=60)
    finally:
        proc.kill()


# --------------------------------------------------------------------- interrupt and resume


def _embeddings(path, n=300, d=16, seed=0):
    import numpy as np

    from rqvae_ids.core.embedding_table import write_embeddings

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, d))[np.arange(n) % 16] + 0.3 * rng.standard_normal((n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    write_embeddings(path, [f"i{i}" for i in range(n)], ["h"] * n, x, model="test-model")
    return path


# SIGINT raises KeyboardInterrupt in the child even where the test runner's shell ignores it.
CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from rqvae_ids.cli import main; sys.exit(main())")


@pytest.mark.timeout(300)
def test_sigint_in_train_names_the_checkpoint_and_a_rerun_refuses_to_start_over(tmp_path, capsys):
    import json
    import os
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    from rqvae_ids.cli import main

    emb = _embeddings(tmp_path / "embeddings.parquet")
    out = tmp_path / "model"
    argv = ["train", "--embeddings", str(emb), "--out", str(out), "--model", "rqvae", "--codebook-size", "32",
            "--latent-dim", "4", "--epochs", "100000", "--set", "checkpoint_every=1", "--set", "patience=0", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    stdout, stderr = _sigint_once(proc, out / "train_state.json", seconds=240, poll=0.2)
    assert proc.returncode == 130, stderr
    epoch = json.loads((out / "train_state.json").read_text())["epoch"]
    lines = stderr.strip().splitlines()
    assert lines[-2] == f"interrupted: checkpoint at epoch {epoch} kept in {out}; continue with", stderr
    resume = lines[-1].strip()
    assert shlex.split(resume) == ["rqvae-ids", *argv, "--resume"]
    assert "Traceback" not in stderr

    # A plain re-run refuses to start over, one line, and leaves the checkpoint as it was.
    state = (out / "train_state.json").read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"rqvae-ids train: error: {out} holds an unfinished training (checkpoint at epoch {epoch}): "
                   "add --resume to continue it, or --no-resume to start over")
    assert (out / "train_state.json").read_bytes() == state

    # assign warns (one line on stderr) about the half-trained model, and still assigns.
    assert main(["assign", "--model-dir", str(out), "--embeddings", str(emb), "--out", str(tmp_path / "ids")]) == 0
    warning = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
    assert warning == [f"rqvae-ids assign: warning: the training in {out} did not finish (checkpoint at epoch "
                       f"{epoch}); finish it with `rqvae-ids train ... --out {out} --resume`"]

    # The printed command continues the training (here told to stop at the checkpoint's epoch).
    assert main([*shlex.split(resume)[1:], "--epochs", str(epoch)]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["epochs"] == epoch
    capsys.readouterr()
    # Finished: assign is quiet, and a plain re-run may train again.
    assert main(["assign", "--model-dir", str(out), "--embeddings", str(emb), "--out", str(tmp_path / "ids2")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["train", "--embeddings", str(emb), "--out", str(out), "--codebook-size", "32", "--latent-dim", "4",
                 "--epochs", "2", "--quiet", "--resume", "--overwrite"]) == 2
    assert "give one of the two" in capsys.readouterr().err
    # --overwrite, the old spelling of --no-resume, still works this release (with a warning line)
    assert main(["train", "--embeddings", str(emb), "--out", str(out), "--codebook-size", "32", "--latent-dim", "4",
                 "--epochs", "1", "--quiet", "--overwrite"]) == 0
    assert "warning: --overwrite: old spelling, dropped in the next release; use --no-resume" in capsys.readouterr().err


# --------------------------------------------------------------------- a folder where a file goes


def test_directory_given_for_a_file(tmp_path, capsys):
    from rqvae_ids.cli import main

    adir = tmp_path / "adir.csv"
    adir.mkdir()
    rc = main(["embed", "--catalog", str(adir), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"rqvae-ids embed: error: catalog file {adir} is a directory, not a file"
    assert not (tmp_path / "e").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["train", "--embeddings", str(empty), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"rqvae-ids train: error: --embeddings {empty} is a directory, and holds no embeddings.parquet"
    assert not (tmp_path / "m").exists()

    rc = main(["assign", "--model-dir", str(_embeddings(tmp_path / "e.parquet")), "--embeddings", str(tmp_path / "e.parquet"),
               "--out", str(tmp_path / "i")])
    assert rc == 2 and "model directory is a file, not a directory" in capsys.readouterr().err


def test_train_embeddings_folder_means_its_embeddings_parquet(tmp_path, capsys):
    """`train --embeddings out/emb`: the embeddings.parquet that `embed --out out/emb` wrote."""
    import json

    from rqvae_ids.cli import main

    emb_dir = tmp_path / "emb"
    emb_dir.mkdir()
    _embeddings(emb_dir / "embeddings.parquet")
    out = tmp_path / "m"
    assert main(["train", "--embeddings", str(emb_dir), "--model", "rqkmeans", "--out", str(out),
                 "--codebook-size", "16", "--quiet"]) == 0
    capsys.readouterr()
    from rqvae_ids.core.io import sha256_file

    assert json.loads((out / "config.json").read_text())["data_sha256"] == sha256_file(emb_dir / "embeddings.parquet")
    # lookup --ids / assign --embeddings take the folders the same way
    assert main(["assign", "--model-dir", str(out), "--embeddings", str(emb_dir), "--out", str(tmp_path / "ids")]) == 0
    capsys.readouterr()
    assert main(["lookup", "--ids", str(tmp_path / "ids"), "--item", "i3"]) == 0
    assert capsys.readouterr().out.startswith("<a_")


# --------------------------------------------------------------------- small catalog for K


def test_small_catalog_warning(tmp_path, capsys):
    from rqvae_ids import train
    from rqvae_ids.cli import main
    from rqvae_ids.commands import train as train_cmd

    assert train_cmd.ITEMS_PER_CODE == train.ITEMS_PER_CODE
    assert train.small_catalog_warning(1024, 256) is None
    assert train.small_catalog_warning(2, 256).endswith("try --codebook-size 2")
    assert train.small_catalog_warning(2, 2) is None  # nothing smaller to suggest
    assert train.small_catalog_warning(301, 256, "--set train.model.codebook_size=").endswith(
        "try --set train.model.codebook_size=64")
    emb = _embeddings(tmp_path / "e.parquet", n=300)
    assert main(["train", "--embeddings", str(emb), "--model", "rqkmeans", "--out", str(tmp_path / "m"),
                 "--codebook-size", "128", "--quiet"]) == 0
    warnings = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
    assert warnings == ["rqvae-ids train: warning: 300 items for 128 codes per level (fewer than 4 items per code): "
                        "most codes will stay unused; try --codebook-size 64"]
    assert main(["train", "--embeddings", str(emb), "--model", "rqkmeans", "--out", str(tmp_path / "m2"),
                 "--codebook-size", "64", "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "fewer than 4 items per code" in " ".join(_subparsers()["train"].format_help().split())


# --------------------------------------------------------------------- polish


def test_train_prints_a_summary_and_the_paths_json_on_request(tmp_path, capsys):
    import json

    from rqvae_ids.cli import main

    emb = _embeddings(tmp_path / "e.parquet")
    out = tmp_path / "m"
    assert main(["train", "--embeddings", str(emb), "--out", str(out), "--model", "rqvae", "--codebook-size", "16",
                 "--latent-dim", "4", "--epochs", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    report = json.loads((out / "train_report.json").read_text())
    lines = text.splitlines()
    assert lines[0].startswith(f"trained rqvae (L=3, K=16) on 300 items: {report['epochs']} epochs, ")
    assert lines[1].startswith("codes used per level ") and "perplexity" in lines[1]
    assert lines[2] == (f"before resolution: colliding_share {report['colliding_share']:.2%}, "
                        f"duplicate_rate {report['duplicate_rate']:.2%}")
    assert lines[3] == f"wrote {out}/: model.safetensors, config.json, metrics.parquet, train_report.json"
    assert lines[4].startswith(f"next: rqvae-ids assign --model-dir {out} --embeddings {emb}")
    assert main(["train", "--embeddings", str(emb), "--out", str(tmp_path / "j"), "--model", "rqvae",
                 "--codebook-size", "16", "--latent-dim", "4", "--epochs", "2", "--quiet", "--json"]) == 0
    machine = json.loads(capsys.readouterr().out)
    assert machine["kind"] == "rqvae" and machine["epochs"] == 2 and "colliding_share" in machine
    # the default kind without --interactions: text-only residual k-means, said as such
    assert main(["train", "--embeddings", str(emb), "--out", str(tmp_path / "d"), "--codebook-size", "16",
                 "--epochs", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("trained rqkmeans (L=3, K=16) on 300 items: k-means, no epochs, ")
    assert "warning: --epochs and --latent-dim shape the neural kinds" in captured.err  # said, not ignored


def test_report_bolds_only_where_there_is_something_to_beat():
    import pandas as pd

    from rqvae_ids.evaluate.report import results_table

    frame = pd.DataFrame(
        [("rqvae", "duplicate_rate_raw", 0.1), ("rqvae", "duplicate_rate_resolved", 0.0),
         ("rqvae", "next_recall@10", 0.2), ("popularity", "next_recall@10", 0.3),
         ("embedding-knn", "next_recall@10", 0.25)],
        columns=["model", "metric", "value"],
    )
    table = results_table(frame, ["popularity", "embedding-knn", "rqvae"])
    # one ID model: its ID-quality cells have nothing to beat (no bold, no `*`); next_recall has
    assert "| rqvae | 0.2000 | 0.1000 | 0.0000 |" in table
    assert "| popularity | **0.3000** |" in table
    tied = pd.DataFrame([("a", "duplicate_rate_resolved", 0.0), ("b", "duplicate_rate_resolved", 0.0)],
                        columns=["model", "metric", "value"])
    assert "**" not in results_table(tied, ["a", "b"])  # every row tied: nothing to beat


def test_loss_curves_are_big_and_each_line_has_its_own_style(tmp_path):
    import matplotlib.image as mpimg
    import numpy as np
    import pandas as pd

    from rqvae_ids.evaluate import plots

    epochs = np.arange(1, 21)
    frame = pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "train_recon": 0.98 / epochs,
                          "train_quant": 0.02 / epochs, "val_loss": 1.1 / epochs})
    assert plots.plot_loss_curves({"rqvae": frame, "ae": frame.drop(columns=["train_quant"])}, tmp_path / "l.png")
    height, width = mpimg.imread(tmp_path / "l.png").shape[:2]
    assert width >= 1000 and height >= 380  # was ~360 x 300 per model
    styles = plots.LOSS_STYLES
    assert len(set(styles)) == len(styles) >= 4


def test_report_config_line_shows_the_epochs_run(tmp_path):
    import numpy as np
    import pandas as pd

    from rqvae_ids.evaluate.evaluation import EvaluationSettings, evaluate_and_write
    from rqvae_ids.evaluate.model_ids import ModelIds

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    codes = rng.integers(0, 8, (200, 3))
    losses = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.4]})
    settings = EvaluationSettings(codebook_size=8, neighbour_queries=50)
    config = {"models": "rqvae", "levels": 3, "codebook_size": 8, "seed": 0, "epochs": None}  # epochs left to the default
    evaluate_and_write(tmp_path, x, [ModelIds("rqvae", codes, np.arange(200) % 7, None, losses)], settings,
                       config=config, command="test")
    report = (tmp_path / "report.md").read_text()
    assert "`epochs=3`" in report and "epochs=None" not in report


# --------------------------------------------------------------------- stage lines of run/demo


def test_stage_lines_are_quiet_unless_enabled(capsys):
    from rqvae_ids.pipeline import progress

    with progress.stage("train rqvae", "5000 items", kind="train") as box:
        box["report"] = {"kind": "rqvae", "epochs": 40, "utilisation": [1.0, 1.0, 0.995]}
    assert capsys.readouterr().err == ""  # a library call prints nothing
    progress.enable("run")
    try:
        with progress.stage("train rqvae", "5000 items, up to 40 epochs", kind="train") as box:
            box["report"] = {"kind": "rqvae", "epochs": 40, "utilisation": [1.0, 1.0, 0.995]}
        with pytest.raises(ValueError), progress.stage("assign"):
            raise ValueError("boom")
    finally:
        progress.disable()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[run] train rqvae: started (5000 items, up to 40 epochs)"
    assert lines[1].startswith("[run] train rqvae: 40 epochs, ") and lines[1].endswith(", codes used 100/100/100 %")
    assert lines[2] == "[run] assign: started" and lines[3].startswith("[run] assign: failed after ")
    assert progress.seconds(3.14) == "3.1 s" and progress.seconds(31.4) == "31 s" and progress.seconds(252) == "4 min 12 s"
    report = {"items": 10, "collisions": {"duplicate_rate": 0.014},
              "stability": {"kept": 8, "new": 1, "edited": 1, "removed": 0}}
    assert progress.end_line("assign", report, 2.0) == ("10 IDs, 2.0 s, duplicate_rate 1.40% before resolution; "
                                                        "kept 8, new 1, edited 1, removed 0")


# --------------------------------------------------------------------- Prefect noise


def test_prefect_telemetry_off_unless_the_user_chose(monkeypatch):
    from flows.runtime import prefect_env

    for key in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.delenv(key, raising=False)
    prefect_env()
    assert os.environ["DO_NOT_TRACK"] == "1" and os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    monkeypatch.setenv("DO_NOT_TRACK", "0")  # the user's own choice wins
    prefect_env()
    assert os.environ["DO_NOT_TRACK"] == "0"
    monkeypatch.delenv("DO_NOT_TRACK")
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")  # analytics on by choice: client too
    prefect_env()
    assert "DO_NOT_TRACK" not in os.environ


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_in_run_is_quiet_and_keeps_latest(tmp_path):
    """SIGINT while a stage runs: exit 130, no Prefect "Crash detected!" lines, latest unchanged."""
    import subprocess
    import sys
    from pathlib import Path

    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\n" + "".join(f"i{i},mug {i}\n" for i in range(40)))
    marker = tmp_path / "embedding"
    code = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import rqvae_ids.pipeline.stages as s\n"
        f"def slow(*a, **k): pathlib.Path({str(marker)!r}).touch(); time.sleep(120)\n"
        "s.embed = slow  # the embed task: long enough to be interrupted\n"
        "from rqvae_ids.cli import main\n"
        f"sys.exit(main(['run', '--catalog', {str(catalog)!r}, '--out', {str(tmp_path / 'out')!r}, "
        "'--set', 'train.model.codebook_size=8']))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_LOGGING_LEVEL")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(Path(__file__).resolve().parents[1]),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stdout, stderr = _sigint_once(proc, marker, seconds=200, poll=0.3)
    assert proc.returncode == 130, stderr
    assert "Crash detected" not in stderr and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (f"interrupted: {tmp_path / 'out'}/latest unchanged "
                                               "(no run has succeeded here yet)")
    assert not (tmp_path / "out" / "latest").exists()


# --------------------------------------------------------------------- one grammar per flag (issue 26)


def test_every_training_command_takes_set_with_dotted_keys():
    from rqvae_ids.commands.run import config_overrides

    subs = _subparsers()
    for name in ("train", "compare", "retrieve-train", "run", "demo", "serve"):
        assert "--set" in subs[name].format_help(), name
    args = _parse(["serve", "--catalog", "c.csv", "--out", "o", "--set", "train.epochs=3", "--id-col", "sku"])
    assert config_overrides(args) == {"catalog.id_col": "sku", "train.epochs": 3}
    from rqvae_ids.compare.families import parse_row_set

    assert parse_row_set(["tiger.d_model=64", "sasrec.max_epochs=5", "parallel.schedule=constant"]) == {
        "tiger": {"d_model": 64}, "sasrec": {"max_epochs": 5}, "parallel": {"schedule": "constant"}}


def test_resume_quiet_json_mean_one_thing():
    subs = _subparsers()
    for name in ("train", "retrieve-train"):
        text = subs[name].format_help()
        assert "--resume, --no-resume" in text and "--overwrite" not in text, name
    helps = {name: {a.option_strings[0]: a.help for a in sub._actions if a.option_strings}
             for name, sub in subs.items()}
    for name in ("train", "embed", "compare", "retrieve-train", "run", "demo"):
        assert helps[name]["--quiet"].startswith("no progress on stderr ("), name
    for name in ("train", "embed", "assign", "compare", "retrieve-train"):
        assert helps[name]["--json"] == "print the result as one JSON line on stdout instead of the summary", name
    assert _parse(["retrieve-train", "--interactions", "i", "--out", "o"]).resume is None  # resumes by default
    assert _parse(["retrieve-train", "--interactions", "i", "--out", "o", "--no-resume"]).resume is False
    assert _parse(["train", "--embeddings", "e", "--out", "o", "--resume"]).resume is True


def test_retrieve_train_set_reaches_the_other_fields(tmp_path, capsys):
    from rqvae_ids.cli import main

    base = ["retrieve-train", "--retriever", "sasrec", "--interactions", str(tmp_path / "missing.csv"),
            "--out", str(tmp_path / "r")]
    for flags, message in ((["--set", "d_model=32"], "--set d_model: use --d-model instead"),
                           (["--set", "head=parallel"], "--set head: use --retriever instead"),
                           (["--set", "nope=1"], "--set: unknown key nope"),
                           (["--set", "sasrec.schedule=sometimes"], "expected one of ['constant', 'cosine']")):
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rqvae-ids retrieve-train: error:") and message in err, err
    assert not (tmp_path / "r").exists()
