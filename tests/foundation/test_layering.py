"""Data flows one way: the engine imports no service code and the API process never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO_ROOT

FORBIDDEN_IN_ENGINE = {"app", "worker", "fastapi", "starlette", "sqlalchemy", "alembic", "celery", "kombu",
                       "redis", "psycopg"}


def _imported_roots(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_imports_no_service_code() -> None:
    offenders = {}
    for path in (REPO_ROOT / "grin_engine").rglob("*.py"):
        bad = _imported_roots(path) & FORBIDDEN_IN_ENGINE
        if bad:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert offenders == {}


def test_api_process_never_imports_torch() -> None:
    code = "import sys, app.main; assert 'torch' not in sys.modules, 'torch imported'; print('clean')"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"
