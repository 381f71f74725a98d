"""visionmix.safe_yaml: the data of a YAML document, or a quick refusal for one that expands without bound."""
import time

import pytest
import yaml

from visionmix import safe_yaml
from visionmix.safe_yaml import YAMLLimitError, expanded_size

CONFIG = """
model:
  backbone: &bb {type: isotropic, depth: 3, mixer: {type: attention}}
  ema: *bb
lr: 1.0e-4
hooks: [a, b, {c: [1, 2, 3]}]
when: 2024-01-02
"""


def bomb(levels: int) -> str:
    """``levels`` anchors, each a list of two aliases of the one before: 2^levels leaves in ~30 bytes a level."""
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines + [f"top: *a{levels - 1}"]) + "\n"


def test_ordinary_documents_read_as_safe_load_reads_them():
    assert safe_yaml.load(CONFIG) == yaml.safe_load(CONFIG)
    assert safe_yaml.load("") is None and safe_yaml.load("# nothing\n") is None
    assert safe_yaml.load(b"a: 1\n") == {"a": 1}


def test_expanded_size_counts_every_alias_as_a_copy():
    # a0 = [x, x] is 3 nodes; a_i = [a_{i-1}, a_{i-1}] is 1 + 2 size(a_{i-1}): 2^(i+2) - 1 by induction
    node = yaml.compose(bomb(6).replace("top: *a5\n", ""))
    anchors = {key.value: value for key, value in node.value}
    assert [expanded_size(anchors[f"a{i}"], 10**9) for i in range(6)] == [2 ** (i + 2) - 1 for i in range(6)]
    assert expanded_size(node, 10**9) == 1 + sum(1 + 2 ** (i + 2) - 1 for i in range(6))  # the map and its keys


def test_an_alias_bomb_is_refused_at_once():
    start = time.perf_counter()
    with pytest.raises(YAMLLimitError, match=r"^bomb\.yaml: its aliases expand to more than 200,000 nodes"):
        safe_yaml.load(bomb(60), "bomb.yaml")  # 2^60 leaves: would never finish expanding
    assert time.perf_counter() - start < 1.0
    assert len(safe_yaml.load(bomb(10))["top"]) == 2  # 2^11 nodes: fine


def test_recursion_size_and_tags_are_refused():
    with pytest.raises(YAMLLimitError, match=r"^r\.yaml, line 1: a recursive alias"):
        safe_yaml.load("a: &a [1, *a]\n", "r.yaml")
    with pytest.raises(YAMLLimitError, match=r"^big\.yaml: 101 bytes of YAML, more than the 100"):
        safe_yaml.load("x" * 101, "big.yaml", max_bytes=100)
    with pytest.raises(yaml.YAMLError, match=r"(?s)python/object/apply:os\.system.*\"t\.yaml\", line 1"):
        safe_yaml.load("a: !!python/object/apply:os.system ['echo hi']\n", "t.yaml")
    with pytest.raises(YAMLLimitError, match="nested too deeply"):
        safe_yaml.load("[" * 100_000 + "]" * 100_000)


def test_files_are_measured_before_they_are_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("pad: " + "x" * 200)
    with pytest.raises(YAMLLimitError, match=r"big\.yaml: 205 bytes of YAML, more than the 100"):
        safe_yaml.load_file(path, max_bytes=100)
    assert safe_yaml.load_file(path) == {"pad": "x" * 200}
