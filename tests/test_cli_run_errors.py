"""`run`, `demo` and `serve` keep the CLI contract: a UserError is one line on stderr, exit 2.

The two tests that run the flow do it in a subprocess (`python -m rqvae_ids.cli`):
Prefect's console handler binds the stderr of the moment it is configured, so only
a fresh process shows exactly what a user sees. Each starts Prefect's temporary
local API (no server needed); the other tests never start one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rqvae_ids.cli import build_parser, main
from rqvae_ids.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- 1. Prefect's failure log


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """Environment of a user's shell: no server configured, Prefect's default log level; own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_LOGGING_LEVEL")}
    env.update(
        PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED="false",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def _cli(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_user_error_inside_the_flow_is_one_line_without_prefect_logs(tmp_path, cli_env):
    # Bad input a user can give fails before the flow (test_bad_catalog_fails_before_prefect_starts);
    # here the flow's first task raises one, as a catalog edited during the run would.
    catalog = _csv(tmp_path / "items.csv", "item_id,title\n" + "".join(f"i{i},mug {i}\n" for i in range(8)))
    code = (
        "import sys\n"
        "import rqvae_ids.pipeline.config as c\n"
        "from rqvae_ids.core.errors import UserError\n"
        "def bad(*a, **k): raise UserError('no id column item_id in the catalog')\n"
        "c.with_embed_cache = bad  # called by the flow's first task only\n"
        "from rqvae_ids.cli import main\n"
        f"sys.exit(main(['run', '--catalog', {str(catalog)!r}, '--out', {str(tmp_path / 'out')!r}, "
        "'--set', 'train.model.codebook_size=2']))"  # 8 items for K=2: no small-catalog warning
    )
    proc = _cli(cli_env, code)
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc.stderr)  # no "ERROR | Flow run ...", no traceback
    assert line == "rqvae-ids run: error: no id column item_id in the catalog"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: ["--catalog", str(_csv(d / "noid.csv", "title\nfoo\n"))], "no id column 'item_id'"),
        (lambda d: ["--catalog", str(_csv(d / "ok.csv", "item_id,title\na,x\nb,y\n")),
                    "--interactions", str(_csv(d / "bad.csv", "who,what\n1,a\n"))], "missing column(s)"),
        (lambda d: ["--catalog", str(_csv(d / "ok.csv", "item_id,title\na,x\nb,y\n")),
                    "--set", "train.epochs=-1"], "epochs"),
        (lambda d: ["--catalog", str(_csv(d / "ok.csv", "item_id,title\na,x\nb,y\n")),
                    "--embed-model", str(d / "nope")], "model directory not found"),
        # training reads the interactions' CF embeddings: a file they cannot be learnt from fails now
        (lambda d: ["--catalog", str(_csv(d / "ok.csv", "item_id,title\na,x\nb,y\n")),
                    "--interactions", str(_csv(d / "two.csv", "user_id,item_id\nu1,a\nu1,b\n"))], "3 or more"),
        (lambda d: ["--catalog", str(_csv(d / "ok.csv", "item_id,title\na,x\nb,y\n")),
                    "--interactions", str(_csv(d / "aab.csv", "user_id,item_id\nu1,a\nu1,a\nu1,b\nu1,a\n"))],
         "no two items co-occur"),
    ],
    ids=["catalog", "interactions", "config", "embed-model", "no-sequence", "no-cooccurrence"],
)
def test_bad_input_fails_before_prefect_starts_and_writes_nothing(tmp_path, cli_env, make, message):
    """Checked by what happened, not by the clock: Prefect was never imported, nothing written."""
    argv = ["run", *make(tmp_path), "--out", str(tmp_path / "out")]
    code = ("import sys\nfrom rqvae_ids.cli import main\n"
            f"rc = main({argv!r})\nprint('prefect imported:', 'prefect' in sys.modules)\nsys.exit(rc)")
    proc = _cli(cli_env, code)
    assert proc.returncode == 2, proc.stderr
    line = _one_line(proc.stderr)
    assert line.startswith("rqvae-ids run: error: ") and message in line, line
    assert proc.stdout.strip() == "prefect imported: False"
    assert not (tmp_path / "out").exists()


def test_interactions_without_cf_signal_pass_when_training_is_text_only(tmp_path):
    from rqvae_ids.pipeline.preflight import check_run_inputs

    catalog = _csv(tmp_path / "items.csv", "item_id,title\na,x\nb,y\n")
    inter = _csv(tmp_path / "aab.csv", "user_id,item_id\nu1,a\nu1,a\nu1,b\nu1,a\n")
    overrides = {"train.model.codebook_size": 2}
    with pytest.raises(UserError, match="no two items co-occur"):
        check_run_inputs(catalog, inter, None, overrides)
    assert check_run_inputs(catalog, inter, None, {**overrides, "cf.enabled": False}) == []


def test_small_catalog_warns_before_the_run(tmp_path):
    from rqvae_ids.pipeline.preflight import check_run_inputs

    catalog = _csv(tmp_path / "items.csv", "item_id,title\n" + "".join(f"i{i},thing {i}\n" for i in range(300)))
    assert check_run_inputs(catalog, None, None, {}) == [
        "warning: 300 items for 256 codes per level (fewer than 4 items per code): most codes will stay unused; "
        "try --set train.model.codebook_size=64"]
    assert check_run_inputs(catalog, None, None, {"train.model.codebook_size": 64}) == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unexpected_error_inside_the_flow_keeps_prefect_log_and_traceback(tmp_path, cli_env):
    catalog = _csv(tmp_path / "items.csv", "item_id,title\na,red mug\nb,blue mug\n")
    code = (
        "import sys\n"
        "import rqvae_ids.pipeline.config as c\n"
        "def bug(*a, **k): raise RuntimeError('a real bug')\n"
        "c.with_embed_cache = bug  # called by the flow's first task only\n"
        "from rqvae_ids.cli import main\n"
        f"sys.exit(main(['run', '--catalog', {str(catalog)!r}, '--out', {str(tmp_path / 'out')!r}]))"
    )
    proc = _cli(cli_env, code)
    assert proc.returncode == 1, proc.stderr
    assert "Encountered exception during execution" in proc.stderr
    assert "Finished in state Failed" in proc.stderr
    assert proc.stderr.count("RuntimeError: a real bug") >= 2  # Prefect's log and the final traceback


# --------------------------------------------------------------------------- 2. --model-dir checked first


def test_broken_model_fails_before_the_catalog_is_read_and_names_the_given_path(tmp_path, capsys):
    from rqvae_ids.models import ModelConfig, build_model
    from rqvae_ids.pipeline import stages

    model = tmp_path / "trunc"
    build_model(ModelConfig(kind="rqvae", input_dim=8, levels=2, codebook_size=4, latent_dim=4, hidden=(8,))).save(model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    noid = _csv(tmp_path / "noid.csv", "title\nfoo\n")  # would fail too, but only once read
    out = tmp_path / "out"

    assert main(["run", "--catalog", str(noid), "--out", str(out), "--model-dir", str(model)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"corrupt checkpoint {weights}" in line and "item_id" not in line
    assert not out.exists()  # nothing written, Prefect never started

    with pytest.raises(UserError, match=f"corrupt checkpoint {weights}"):  # the flow's stage: the source, not the copy
        stages.copy_model(model, tmp_path / "run")


# --------------------------------------------------------------------------- 3. serve without a server


def test_serve_with_unreachable_server_is_one_line(tmp_path, capsys):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from rqvae_ids.pipeline import runs

    catalog = _csv(tmp_path / "items.csv", "item_id,title\na,red mug\n")
    out = tmp_path / "out"
    run_dir = runs.start_run(out, "pipeline", config={})
    runs.mark_succeeded(run_dir)
    runs.publish_latest(out, run_dir)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/api"

    with temporary_settings(updates={PREFECT_API_URL: url}):
        code = main(["serve", "--catalog", str(catalog), "--out", str(out)])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert f"cannot reach the Prefect server at {url}" in line
    assert "prefect server start --host 127.0.0.1" in line and "PREFECT_API_URL" in line


# --------------------------------------------------------------------------- 4. catalog flags


def test_catalog_flags_become_catalog_overrides(tmp_path, capsys, monkeypatch):
    from rqvae_ids.commands.run import catalog_overrides, parse_overrides
    from rqvae_ids.pipeline.config import load_pipeline_config

    parser = build_parser()
    base = ["--catalog", "items.csv", "--out", "o"]
    flags = ["--id-col", "asin", "--text-cols", "title, brand", "--format", "jsonl", "--on-duplicate", "first", "--drop-empty"]
    expected = {"catalog.id_col": "asin", "catalog.text_cols": ["title", "brand"], "catalog.fmt": "jsonl",
                "catalog.on_duplicate": "first", "catalog.drop_empty": True}
    assert parse_overrides(parser.parse_args(["run", *base, *flags])) == expected
    assert catalog_overrides(parser.parse_args(["serve", *base, *flags])) == expected
    # flags left out keep the config's values; --set of the same key wins
    assert parse_overrides(parser.parse_args(["run", *base])) == {}
    args = parser.parse_args(["run", *base, "--id-col", "asin", "--set", "catalog.id_col=sku"])
    assert parse_overrides(args) == {"catalog.id_col": "sku"}
    cfg = load_pipeline_config(None, expected).catalog
    assert (cfg.id_col, cfg.text_cols, cfg.fmt, cfg.on_duplicate, cfg.drop_empty) == ("asin", ("title", "brand"), "jsonl", "first", True)

    # the flags reach the flow as its overrides
    import flows.pipeline

    seen = {}

    def fake_flow(**kwargs):
        seen.update(kwargs)
        raise UserError("stop here")

    monkeypatch.setattr(flows.pipeline, "semantic_ids_pipeline", fake_flow)
    catalog = _csv(tmp_path / "items.csv", "asin,title\na,red mug\n")
    assert main(["run", "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--id-col", "asin"]) == 2
    assert seen["overrides"] == {"catalog.id_col": "asin"}
    capsys.readouterr()

    # and serve's deployments carry them
    from flows.deployments import build_deployments

    deployments = build_deployments(str(catalog), str(tmp_path / "out"), overrides={"catalog.id_col": "asin"})
    assert all(d.parameters["overrides"] == {"catalog.id_col": "asin"} for d in deployments)

    assert main(["run", *base, "--text-cols", "title", "--template", "{title}"]) == 2
    assert "either --text-cols or --template" in _one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 5. --out is a file


@pytest.mark.parametrize("command", ["run", "demo"])
def test_out_that_is_a_file_is_refused_up_front(tmp_path, capsys, command):
    catalog = _csv(tmp_path / "items.csv", "item_id,title\na,red mug\n")
    taken = _csv(tmp_path / "taken", "keep me\n")
    for out in (taken, taken / "sub"):
        argv = ["run", "--catalog", str(catalog)] if command == "run" else ["demo"]
        assert main([*argv, "--out", str(out)]) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"{taken} is a file, not a folder" in line
    assert taken.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv", "taken"]


def test_catalog_flags_take_one_route_to_every_command():
    """embed/compare (load_catalog keywords) and run/serve (catalog.KEY overrides) read the flags
    through catalog_options, whose keys are load_catalog's options and the config's catalog section."""
    import dataclasses
    import inspect

    from rqvae_ids.catalog import load_catalog
    from rqvae_ids.catalog.args import catalog_options
    from rqvae_ids.cli import build_parser
    from rqvae_ids.commands.run import catalog_overrides
    from rqvae_ids.pipeline.config import CatalogOptions

    flags = ["--catalog", "c.csv", "--out", "o", "--id-col", "asin", "--text-cols", "title, brand", "--drop-empty"]
    parser = build_parser()
    embed_opts = catalog_options(parser.parse_args(["embed", *flags]))
    assert set(embed_opts) == {f.name for f in dataclasses.fields(CatalogOptions)}
    assert set(embed_opts) == set(inspect.signature(load_catalog).parameters) - {"path"}
    run_opts = catalog_overrides(parser.parse_args(["run", *flags]))
    assert run_opts == {f"catalog.{k}": v for k, v in embed_opts.items() if k in ("id_col", "text_cols", "drop_empty")}
    assert run_opts["catalog.text_cols"] == ["title", "brand"]
