"""Examples are tests: each script in examples/ runs to the end with tiny draw counts."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted(p for p in (Path(__file__).parent.parent / "examples").glob("*.py")
                  if not p.name.startswith("_"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script):
    result = subprocess.run([sys.executable, str(script), "--draws", "30", "--warmup", "30",
                             "--chains", "2", "--no-progress"],
                            capture_output=True, text=True, timeout=300, cwd=script.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mean" in result.stdout  # the ArviZ summary table was printed
