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
