"""The library's shape: Prefect stays in flows/, and rqvae_ids imports only downwards, without cycles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules_loaded_after(code: str) -> set[str]:
    """Top-level names in sys.modules after running `code` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_importing_the_library_and_cli_does_not_import_prefect():
    loaded = _modules_loaded_after("import rqvae_ids, rqvae_ids.cli")
    assert "rqvae_ids" in loaded  # the probe itself works
    assert "prefect" not in loaded and "flows" not in loaded


def test_no_library_module_imports_prefect_at_import_time():
    code = (
        "import importlib, pkgutil, rqvae_ids\n"
        "for m in pkgutil.walk_packages(rqvae_ids.__path__, 'rqvae_ids.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    loaded = _modules_loaded_after(code)
    assert "torch" in loaded  # every module was imported, the heavy ones included
    assert "prefect" not in loaded and "flows" not in loaded
