"""The README's Python snippets run as written, in order."""
import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block.replace("progressbar=True", "progressbar=False"), str(README), "exec"),
             namespace)
    assert namespace["idata"].posterior.sizes["chain"] == 4


def _table_rows(text):
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))


def test_every_scalar_family_has_a_readme_row_and_a_docs_row():
    """Derived from the registry (the continuous and discrete modules; see docs/distributions.md)."""
    from exmc.ir.dists import FAMILIES
    scalar = {name for name, cls in FAMILIES.items()
              if cls.__module__.rsplit(".", 1)[-1] in ("continuous", "discrete")}
    assert scalar - _table_rows(README.read_text()) == set()
    docs = README.parent / "docs" / "distributions.md"
    assert scalar - _table_rows(docs.read_text()) == set()


def test_the_docs_cdf_column_says_which_families_have_a_logcdf():
    """docs/distributions.md's last column ("yes"/"no") against the kernel registry."""
    from exmc.compiler.families import KERNELS
    with_cdf = {family for (family, _), kernel in KERNELS.items() if kernel.logcdf is not None}
    docs = (README.parent / "docs" / "distributions.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|.*\| (yes|no) \|$", docs, flags=re.M)
    assert rows
    said = {family for family, answer in rows if answer == "yes"}
    listed = {family for family, _ in rows}
    assert said == with_cdf & listed
