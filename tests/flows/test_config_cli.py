"""Pipeline config file, CLI surface and deployment definitions (no flow runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rqvae_ids.core.config import to_dict
from rqvae_ids.core.errors import UserError
from rqvae_ids.pipeline.config import PipelineConfig, load_pipeline_config

REPO = Path(__file__).resolve().parents[2]


def _keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + ".")
    return out


def test_default_yaml_lists_every_knob_with_its_default():
    path = REPO / "configs" / "default.yaml"
    defaults = to_dict(PipelineConfig())
    assert _keys(yaml.safe_load(path.read_text())) == _keys(defaults)
    assert to_dict(load_pipeline_config(path)) == defaults


def test_demo_config_is_valid():
    assert load_pipeline_config(REPO / "configs" / "demo.yaml").train.epochs > 0


def test_toml_overrides_and_errors(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nepochs = 7\n[train.model]\ncodebook_size = 64\n[ids]\nresolve = "reassign"\n')
    cfg = load_pipeline_config(toml, {"train.seed": 3})
    assert (cfg.train.epochs, cfg.train.model.codebook_size, cfg.ids.resolve, cfg.train.seed) == (7, 64, "reassign", 3)
    with pytest.raises(UserError, match=r"unknown key\(s\) \['epoch'\]"):
        load_pipeline_config(None, {"train.epoch": 1})
    with pytest.raises(UserError, match="train.epochs: expected an integer"):
        load_pipeline_config(None, {"train.epochs": "many"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="cannot parse config file"):
        load_pipeline_config(bad)


def test_help_imports_neither_prefect_nor_torch():
    code = (
        "import sys, contextlib, io\n"
        "from rqvae_ids.cli import main\n"
        "for cmd in (['--help'], ['run', '--help'], ['demo', '--help'], ['serve', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(cmd)\n"
        "print(sorted(m for m in ('prefect', 'torch', 'flows') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_serve_help_explains_the_server_recipe():
    out = subprocess.run([sys.executable, "-m", "rqvae_ids.cli", "serve", "--help"], capture_output=True, text=True)
    assert "prefect server start" in out.stdout and "PREFECT_API_URL" in out.stdout


def test_run_rejects_a_bad_config_before_prefect_starts(tmp_path, capsys):
    from rqvae_ids.cli import main

    catalog = tmp_path / "items.csv"
    catalog.write_text("item_id,title\n1,a\n")
    code = main(["run", "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--set", "train.epochs=-1"])
    assert code == 2
    assert "epochs must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_deployments_carry_cron_schedules_and_parameters(tmp_path):
    from flows.deployments import build_deployments

    refresh, retrain = build_deployments("/data/items.csv", "/data/out", refresh_cron="0 3 * * *", retrain_cron="0 4 * * 0")
    assert (refresh.name, retrain.name) == ("refresh-daily", "retrain-weekly")
    assert refresh.schedules[0].schedule.cron == "0 3 * * *"
    assert retrain.schedules[0].schedule.cron == "0 4 * * 0"
    assert refresh.parameters["catalog"] == "/data/items.csv" and refresh.parameters["out"] == "/data/out"


def test_prefect_yaml_entrypoints_exist():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        path, fn = dep["entrypoint"].split(":")
        assert f"def {fn}(" in (REPO / path).read_text(), dep["entrypoint"]
