"""The README's "Bring your own embeddings" lines run as written (offline, seconds)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_section_runs(tmp_path, monkeypatch):
    section = README.read_text(encoding="utf-8").split("## Bring your own embeddings", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "out" / "adapter-arrays" / "weight.npy").is_file()
    assert (tmp_path / "out" / "adapter.onnx").is_file()
    assert (tmp_path / "out" / "adapter-faiss" / "query_transform.faiss").is_file()
    assert (tmp_path / "vectors.npy").is_file() and len((tmp_path / "labels.txt").read_text().splitlines()) == 600
    assert namespace["run"].model.spec["backbone"] == {"source": "vectors", "dim": 32}
