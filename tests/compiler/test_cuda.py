"""The CUDA build of every op and family model gives the CPU's log density and gradient (Numba's simulator).

No GPU is needed: the check runs in a child process with
``NUMBA_ENABLE_CUDASIM=1``, which must be set before numba is imported.  The
models are those of the op, family and multivariate tests, so a new op or
family is covered here as soon as it has a case there.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import exmc
from exmc.compiler import compile_model

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path[:0] = [{root!r}, {here!r}]
    import test_gradients, test_multivariate, test_ops
    from exmc.compiler import compile_model

    models = {{f"op:{{n}}": test_ops.compiled_op(n)[0].model for n in sorted(test_ops.CASES)}}
    models.update({{f"family:{{c.id}}": test_gradients.compiled_family(c.id).model
                   for c in test_gradients.FAMILIES}})
    models.update({{f"multivariate:{{n}}": test_multivariate.compiled(n).model
                   for n in test_multivariate.MODELS}})
    worst = {{}}
    for name, model in models.items():
        cpu, gpu = compile_model(model), compile_model(model, target="cuda")
        points = 0.5 * np.random.default_rng(0).normal(size=(2, cpu.dim))
        logps, grads, statuses = gpu.logp_and_grad(points)
        errors = []
        for k, z in enumerate(points):
            logp, grad, status = cpu.logp_and_grad(z)
            assert statuses[k] == status, (name, statuses[k], status)
            errors.append(abs(logps[k] - logp) / max(abs(logp), 1.0))
            errors += list(np.abs(grads[k] - grad) / np.maximum(np.abs(grad), 1.0))
        worst[name] = float(max(errors))
    print(json.dumps(worst))
""")


@pytest.mark.slow  # about 130 s on 2 cores (every op and family on the simulator): python -m pytest -m slow
@pytest.mark.timeout(900)
def test_cuda_build_matches_the_cpu_for_every_op_and_family():
    script = CHILD.format(root=str(HERE.parent.parent), here=str(HERE))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=840)
    assert done.returncode == 0, done.stderr[-4000:]
    worst = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(worst) >= 60
    bad = {name: err for name, err in worst.items() if not err < 1e-10}
    assert not bad, f"CUDA and CPU differ (relative error) for {bad}"


def test_without_a_gpu_cuda_says_so():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the simulator is on in this process")
    from numba import cuda
    if cuda.is_available():
        pytest.skip("a GPU is present")
    model = exmc.Builder().rv("x", exmc.Normal(0.0, 1.0))
    with pytest.raises(RuntimeError, match="no CUDA GPU found.*NUMBA_ENABLE_CUDASIM=1"):
        compile_model(model, target="cuda")


def test_unknown_target_is_named():
    with pytest.raises(ValueError, match="target must be 'cpu' or 'cuda', got 'tpu'"):
        compile_model(exmc.Builder().rv("x", exmc.Normal(0.0, 1.0)), target="tpu")
