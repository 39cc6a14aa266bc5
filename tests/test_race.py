"""The race harness runs end to end (tiny counts, exmc only: the peers are an optional extra)."""
import json

from benchmarks import race


def test_race_harness_writes_its_reports(tmp_path):
    table = race.main(["--models", "simple", "--seeds", "1,2", "--samplers", "exmc,exmc_gradient",
                       "--draws", "100", "--warmup", "100", "--profile", "--out", str(tmp_path)])
    assert set(table["simple"]) == {"exmc", "exmc_gradient"}
    report = json.loads((tmp_path / "race.json").read_text())
    runs = report["runs"]["simple"]["exmc"]["runs"]
    assert len(runs) == 2 and all(r["ess"] > 0 and r["seconds"] > 0 for r in runs)
    assert 0 < runs[0]["gradient_share"] < 1.5
    assert report["runs"]["simple"]["exmc"]["compile_cached"] > 0
    text = (tmp_path / "race.md").read_text()
    assert "| simple |" in text and "exmc (gradient adaptation) ESS/s" in text
