"""ParamGroups: builders, order, and every error naming the parameter at fault."""

import pytest
import torch
from torch import nn

from lca_toolkit import GroupError, ParamGroups


class TwoBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.image = nn.Sequential(nn.Linear(5, 2))
        self.head = nn.Linear(2, 1)


def test_from_prefixes_partitions_in_model_order():
    m = TwoBranch()
    g = ParamGroups.from_prefixes(m, {"image": "image.", "audio": "audio.", "head": "head."})
    assert g.names == ["image", "audio", "head"]
    assert g.members["audio"] == [
        "audio.0.weight",
        "audio.0.bias",
        "audio.2.weight",
        "audio.2.bias",
    ]
    assert g.numel() == {"image": 12, "audio": 26, "head": 3}
    assert g.group_index().tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    names = [n for _, n, _ in g.named_parameters()]
    assert sorted(names) == sorted(n for n, _ in m.named_parameters())


def test_from_regex_modules_children_agree():
    m = TwoBranch()
    a = ParamGroups.from_regex(m, {"audio": r"^audio\.", "image": r"^image\.", "head": r"^head\."})
    b = ParamGroups.from_modules(m, {"audio": m.audio, "image": m.image, "head": m.head})
    c = ParamGroups.from_children(m)
    assert a.members == b.members == c.members


def test_other_collects_the_rest_and_children_put_direct_params_in_other():
    m = TwoBranch()
    g = ParamGroups.from_prefixes(m, {"audio": "audio."}, other="rest")
    assert g.names == ["audio", "rest"]
    assert len(g.members["rest"]) == 4
    m.scale = nn.Parameter(torch.ones(1))
    assert ParamGroups.from_children(m).members["other"] == ["scale"]


def test_parameter_in_two_groups_names_it():
    m = TwoBranch()
    with pytest.raises(GroupError, match=r"'audio\.0\.weight' matches two groups, 'a' .* and 'b'"):
        ParamGroups.from_prefixes(m, {"a": "audio.", "b": "audio.0", "i": "image.", "h": "head."})


def test_group_matching_nothing_is_an_error():
    m = TwoBranch()
    with pytest.raises(
        GroupError, match=r"group 'video' \(prefix 'video\.'\) matches no trainable"
    ):
        ParamGroups.from_prefixes(m, {"video": "video.", "x": ""})


def test_unassigned_parameter_is_named():
    m = TwoBranch()
    with pytest.raises(GroupError, match=r"'head\.weight', 'head\.bias' belong to no group"):
        ParamGroups.from_prefixes(m, {"audio": "audio.", "image": "image."})


def test_frozen_parameters_are_ignored_and_frozen_only_group_is_empty():
    m = TwoBranch()
    m.image.requires_grad_(False)
    g = ParamGroups.from_prefixes(m, {"audio": "audio.", "head": "head."})
    assert g.names == ["audio", "head"]
    with pytest.raises(GroupError, match="'image' .* matches no trainable parameter"):
        ParamGroups.from_prefixes(m, {"audio": "audio.", "head": "head.", "image": "image."})
    with pytest.raises(GroupError, match=r"'image\.0\.weight' is frozen"):
        ParamGroups(m, {"x": ["image.0.weight"]})


def test_tied_parameter_counted_once_or_error_across_groups():
    m2 = nn.Module()
    m2.enc = nn.Linear(3, 3, bias=False)
    m2.dec = nn.Linear(3, 3, bias=False)
    m2.dec.weight = m2.enc.weight
    g = ParamGroups.from_prefixes(m2, {"all": ["enc.", "dec."]})
    assert g.members == {"all": ["enc.weight"]} and g.numel() == {"all": 9}
    with pytest.raises(GroupError, match=r"tied: 'enc\.weight' and 'dec\.weight' are one tensor"):
        ParamGroups.from_prefixes(m2, {"enc": "enc.", "dec": "dec."})


def test_bad_group_names_and_regex():
    m = TwoBranch()
    with pytest.raises(GroupError, match="without '/'"):
        ParamGroups.from_prefixes(m, {"a/b": "audio."}, other="o")
    with pytest.raises(GroupError, match="invalid regular expression"):
        ParamGroups.from_regex(m, {"a": "("}, other="o")
    with pytest.raises(GroupError, match="not a submodule"):
        ParamGroups.from_modules(m, {"a": nn.Linear(1, 1)}, other="o")
