"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_no_reference_leaves_the_repository():
    """A clean clone has no shared/ folder beside it: what the code relies on lives in docs/, and every
    docs/*.md a file names exists."""
    root = README.parent
    files = [
        p for p in root.rglob("*") if p.suffix in {".py", ".md", ".sh", ".toml"} and ".git" not in p.parts
    ]
    files = [p for p in files if "runs" not in p.relative_to(root).parts[:2]]
    for path in files:
        text = path.read_text(errors="replace")
        assert "../" + "shared" not in text, path
        for name in re.findall(r"docs/(\w+\.md)", text):
            assert (root / "docs" / name).exists(), f"{path} names docs/{name}"
