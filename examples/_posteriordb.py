"""Data and reference posteriors of the recursion and ODE examples (posteriordb, see the JSON's sources)."""
import json
from pathlib import Path

PATH = Path(__file__).parent.parent / "benchmarks" / "data" / "posteriordb_recursions.json"


def load(name):
    """The entry of posterior ``name``: {"data": ..., "reference": {param: {mean, sd, ess}}, ...}."""
    return json.loads(PATH.read_text())["posteriors"][name]


def print_reference(idata, name, parameters):
    """Each parameter's posterior mean beside posteriordb's reference mean and sd."""
    reference = load(name)["reference"]
    print(f"{'parameter':>12} {'exmc mean':>10} {'reference':>10} {'ref sd':>8}")
    for label, values in parameters(idata).items():
        ref = reference[label]
        print(f"{label:>12} {values.mean():10.4f} {ref['mean']:10.4f} {ref['sd']:8.4f}")
