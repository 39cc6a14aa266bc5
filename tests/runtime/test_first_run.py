"""A run that explains itself: compile notices, progress in a log file, warnings after sampling."""
import io
import subprocess
import sys
import textwrap
import time
import warnings

import arviz as az
import numpy as np
import pytest
from rich.console import Console

import exmc
from exmc import Builder, HalfCauchy, Normal, ref
from exmc.runtime import diagnostics, notices
from exmc.runtime.progress import ChainProgress, NoProgress, PlainProgress, make_progress

pytestmark = pytest.mark.timeout(300)

Y8 = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
S8 = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])


def eight_schools_centred():
    return (Builder().rv("mu", Normal(0, 5)).rv("tau", HalfCauchy(5))
            .rv("theta", Normal("mu", "tau", shape=8)).obs("y", Normal(ref("theta"), S8), Y8))


# -- progress -------------------------------------------------------------------------------

class FakeOutput:
    """ipywidgets.Output as rich uses it: a context that captures what is printed in it."""
    shown = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def clear_output(self, wait=False):
        pass


def fake_notebook(monkeypatch):
    import types
    widgets = types.ModuleType("ipywidgets")
    widgets.Output = FakeOutput
    monkeypatch.setitem(sys.modules, "ipywidgets", widgets)
    import IPython.display
    monkeypatch.setattr(IPython.display, "display", lambda widget: FakeOutput.shown.append(widget))


def test_display_is_chosen_by_where_output_goes(monkeypatch):
    assert isinstance(make_progress(False), NoProgress)
    assert isinstance(make_progress(True, Console(file=io.StringIO())), PlainProgress)
    assert isinstance(make_progress(True, Console(file=io.StringIO(), force_terminal=True)),
                      ChainProgress)
    # A notebook without ipywidgets: rich's live display would show nothing there.
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert isinstance(make_progress(True, Console(file=io.StringIO(), force_jupyter=True)),
                      PlainProgress)
    fake_notebook(monkeypatch)
    assert isinstance(make_progress(True, Console(file=io.StringIO(), force_jupyter=True)),
                      ChainProgress)


def test_live_table_renders_in_a_notebook(monkeypatch):
    pytest.importorskip("IPython")
    fake_notebook(monkeypatch)
    out = io.StringIO()
    console = Console(file=out, force_jupyter=True, width=120)
    FakeOutput.shown.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'install "ipywidgets"' warning
        with make_progress(True, console) as display:
            task = display.add_chain(0, 100)
            display.update(task, 60, 2, 0.5, False)
            display.progress.refresh()
    widgets = [w for w in FakeOutput.shown if isinstance(w, FakeOutput)]
    assert len(widgets) == 1  # one widget, redrawn in place
    drawn = [w.text for w in FakeOutput.shown if getattr(w, "text", "").strip()]
    assert drawn and "chain 0" in drawn[-1] and "60/100" in drawn[-1], drawn
    assert "sampling divergences 2 step size 0.5" in drawn[-1]


def test_plain_progress_writes_a_line_per_interval_and_at_the_end():
    out = io.StringIO()
    with PlainProgress(out, interval=3600) as display:
        task = display.add_chain(1, 100)
        display.update(task, 10, 0, 0.5, True)    # first report: written
        display.update(task, 20, 1, 0.5, True)    # within the interval: not written
        display.update(task, 100, 2, 0.25, False)  # the end: written
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("chain 1: 10/100 draws (warmup), 0 divergences, step size 0.5")
    assert lines[1].startswith("chain 1: 100/100 draws (sampling), 2 divergences, step size 0.25")


def test_progress_in_a_log_file(tmp_path):
    # stdout to a file, as under CI or nohup: plain lines per chain, not a blank until the end.
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, exmc
        from exmc import Builder, Normal, HalfNormal
        y = np.random.default_rng(0).normal(2, 1, 50)
        m = Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(1)).obs("y", Normal("mu", "sigma"), y)
        exmc.sample(m, chains=2, num_samples=200, num_warmup=200, seed=1)
        print("done")
    """))
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, str(script)], stdout=fh, stderr=subprocess.STDOUT,
                       timeout=240, check=True)
    text = log.read_text()
    for chain in (0, 1):
        assert f"chain {chain}: 400/400 draws (sampling)" in text, text
    assert "\x1b[" not in text  # no terminal control codes in a file


# -- compile notices --------------------------------------------------------------------------

def test_first_run_says_the_sampler_is_compiling(monkeypatch):
    monkeypatch.setattr(notices, "sampler_is_cached", lambda: False)
    out = io.StringIO()
    with notices.CompileNotice(stream=out):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("exmc: compiling the sampler for this machine (first run only")
    assert lines[1].startswith("exmc: compiled in")


def test_slow_model_compile_is_announced_and_a_fast_one_is_silent(monkeypatch):
    monkeypatch.setattr(notices, "sampler_is_cached", lambda: True)
    out = io.StringIO()
    with notices.CompileNotice(stream=out, after=0.05):
        time.sleep(0.5)
    assert out.getvalue().startswith("exmc: compiling this model")
    assert "exmc: compiled in" in out.getvalue()
    quiet = io.StringIO()
    with notices.CompileNotice(stream=quiet, after=5.0):
        pass
    with notices.CompileNotice(enabled=False, stream=quiet, after=0.0):
        time.sleep(0.1)
    assert quiet.getvalue() == ""


def test_sampler_cache_is_seen_after_a_run():
    exmc.sample(Builder().rv("a", Normal(0, 1)), chains=1, num_samples=5, num_warmup=5,
                progressbar=False, diagnostics=False)
    assert notices.sampler_is_cached()


# -- warnings after sampling ------------------------------------------------------------------

def fake_idata(posterior, diverging=None, energy=None, tree_depth=None):
    chains, draws = next(iter(posterior.values())).shape[:2]
    rng = np.random.default_rng(0)
    stats = {"diverging": np.zeros((chains, draws), bool) if diverging is None else diverging,
             "energy": rng.normal(size=(chains, draws)) if energy is None else energy,
             "tree_depth": np.full((chains, draws), 3) if tree_depth is None else tree_depth}
    return az.from_dict(posterior=posterior, sample_stats=stats)


def test_well_mixed_draws_give_no_warning():
    # Negative control for every check below: iid draws pass them all.
    rng = np.random.default_rng(1)
    idata = fake_idata({"a": rng.normal(size=(4, 500)), "b": rng.normal(size=(4, 500, 3))})
    assert diagnostics.check(idata, max_tree_depth=10) == []


def test_each_problem_is_one_line_naming_what_is_wrong():
    rng = np.random.default_rng(2)
    shifted = rng.normal(size=(4, 500)) + np.array([0, 0, 0, 1.0])[:, None]  # chain 3 elsewhere
    sticky = np.cumsum(rng.normal(size=(4, 500, 2)), axis=1) * 0.05      # random walks: low ESS
    good = rng.normal(size=(4, 500))
    diverging = np.zeros((4, 500), bool)
    diverging[1, :7] = diverging[3, :2] = True
    depth = np.full((4, 500), 3)
    depth[0, :5] = 10
    energy = np.cumsum(rng.normal(size=(4, 500)), axis=1)  # slow energy: low E-BFMI
    idata = fake_idata({"shifted": shifted, "sticky": sticky, "good": good},
                       diverging, energy, depth)
    messages = diagnostics.check(idata, max_tree_depth=10)
    text = "\n".join(messages)
    assert messages[0].startswith("9 divergences after warmup (0.4% of 2000 draws; "
                                  "chain 1: 7, chain 3: 2)")
    assert "5 draws (0.2%) reached the maximum tree depth 10" in text
    assert "E-BFMI below 0.3 in chain(s) 0, 1, 2, 3" in text
    rhat = next(m for m in messages if m.startswith("R-hat"))
    assert "shifted (" in rhat and "sticky[" in rhat and "good (" not in rhat
    bulk = next(m for m in messages if m.startswith("bulk ESS below 400"))
    assert "sticky[" in bulk and "good (" not in bulk  # shifted chains lower bulk ESS too
    assert any(m.startswith("tail ESS below 400") and "sticky[" in m for m in messages)


def test_short_or_single_chain_runs_skip_rhat_and_ess():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(1, 500)), axis=1)
    assert diagnostics.check(fake_idata({"w": walk})) == []
    assert diagnostics.check(fake_idata({"w": np.cumsum(rng.normal(size=(4, 50)), axis=1)})) == []


def test_sample_warns_about_eight_schools_and_can_be_quiet():
    options = dict(chains=2, num_samples=300, num_warmup=300, seed=1, progressbar=False)
    with pytest.warns(exmc.SamplingWarning) as caught:
        exmc.sample(eight_schools_centred(), **options)
    texts = [str(w.message) for w in caught if w.category is exmc.SamplingWarning]
    assert any("divergences after warmup" in t and "target_accept" in t for t in texts), texts
    with warnings.catch_warnings():
        warnings.simplefilter("error", exmc.SamplingWarning)
        exmc.sample(eight_schools_centred(), diagnostics=False, **options)
