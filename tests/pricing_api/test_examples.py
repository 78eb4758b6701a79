"""Every shipped example scenario passes, through the real ingest path, and the CLI reports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stripemeter.cli.main import app
from stripemeter.services.scenarios import load_file
from stripemeter.services.simulations import ScenarioRunner
from stripemeter.store.database import Database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
FILES = sorted(EXAMPLES.glob("*.sim.yaml"))
MODELS = {"per_unit", "sub_cent", "package", "graduated", "volume", "flat_amount",
          "zero_decimal", "limits", "credits", "tax", "lateness", "dedup", "what_if"}  # fmt: skip


@pytest.fixture
def scratch_db(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database for scratch tenants."""
    target = tmp_path / "scratch.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


def test_examples_cover_every_price_model() -> None:
    """The example tags name every price model and adjustment the library supports."""
    tags = {tag for path in FILES for tag in load_file(path).tags}
    assert tags >= MODELS


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
async def test_example_passes(path: Path, scratch_db: str) -> None:
    """The scenario's invoices and ingest outcome match its expectations exactly."""
    db = Database.from_url(scratch_db)
    try:
        outcome = await ScenarioRunner(db).run(load_file(path))
    finally:
        await db.dispose()
    assert outcome.passed, json.dumps(outcome.result, indent=1)
    assert all(invoice["checked"] for invoice in outcome.result["invoices"])


class TestCli:
    runner = CliRunner()

    def test_run_folder_json(self, scratch_db: str) -> None:
        """`simulate run DIR --json` runs every *.sim.yaml and exits 0 when all pass."""
        result = self.runner.invoke(
            app, ["simulate", "run", str(EXAMPLES), "--json", "--database-url", scratch_db]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)["summary"]
        assert summary == {"total": len(FILES), "passed": len(FILES), "failed": 0}

    def test_mismatch_exits_non_zero(self, tmp_path: Path, scratch_db: str) -> None:
        """A scenario whose expectation is wrong makes `run` and `report` exit 1 with the field."""
        text = (EXAMPLES / "tax.sim.yaml").read_text().replace("total: 32.48", "total: 32.47")
        path = tmp_path / "wrong.sim.yaml"
        path.write_text(text)
        for command in ("run", "report"):
            result = self.runner.invoke(app, ["simulate", command, str(path),
                                              "--database-url", scratch_db])  # fmt: skip
            assert result.exit_code == 1, result.output
            assert "FAIL" in result.stdout
        assert "total: expected 32.47, got 32.48" in result.stderr

    def test_validate(self, tmp_path: Path) -> None:
        """`validate` accepts the examples and rejects a broken file naming the field."""
        ok = self.runner.invoke(app, ["simulate", "validate", str(EXAMPLES)])
        assert ok.exit_code == 0, ok.output
        broken = tmp_path / "broken.sim.yaml"
        broken.write_text("name: broken\nperiod: 2024-13\nprices: {a: {unit_amount: 1}}\n")
        bad = self.runner.invoke(app, ["simulate", "validate", str(broken), "--json"])
        assert bad.exit_code == 1
        assert json.loads(bad.stdout)["results"][0]["valid"] is False

    def test_default_scratch_database(self) -> None:
        """Without --database-url the CLI makes and migrates a temporary SQLite database."""
        result = self.runner.invoke(app, ["simulate", "run", str(EXAMPLES / "per-unit.sim.yaml")])
        assert result.exit_code == 0, result.output
        assert "pass" in result.stdout
