"""Named, disjoint groups of a model's trainable parameters.

A group is the unit every recorded quantity is reported in (``cc``, ``mlo``, ``shared``...). The
groups must partition the trainable parameters: every parameter with ``requires_grad=True`` belongs to
exactly one group, or to an explicit catch-all group named by ``other``. Anything else is an error
that names the parameter, because a silently double-counted or dropped parameter would make the
per-group LCA shares wrong while still summing to a plausible total.

Tied parameters (one tensor reachable under several names) are listed once, under the first name
``model.named_parameters()`` gives. If the names of one tied tensor fall into different groups the
tensor would be counted twice: that is an error too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import GroupError

_MAX_LISTED = 8


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class _Param:
    name: str  # canonical name (first of its aliases)
    aliases: tuple[str, ...]  # every name under which the tensor is reachable
    tensor: nn.Parameter


def _trainable_params(model: nn.Module) -> list[_Param]:
    """Trainable parameters of ``model`` in registration order, tied tensors merged."""
    by_id: dict[int, list[str]] = {}
    tensors: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if not p.requires_grad:
            continue
        by_id.setdefault(id(p), []).append(name)
        tensors[id(p)] = p
    return [_Param(names[0], tuple(names), tensors[key]) for key, names in by_id.items()]


def _check_group_names(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or "/" in name:
            raise GroupError(
                f"group name {name!r} is not allowed: expected a non-empty string without '/' "
                "(group names become column names such as 'grad_norm/<group>')"
            )
        if name in out:
            raise GroupError(f"group name {name!r} is given twice")
        out.append(name)
    return out


class ParamGroups:
    """An ordered partition of a model's trainable parameters into named groups.

    Build it with one of the class methods (:meth:`from_prefixes`, :meth:`from_regex`,
    :meth:`from_modules`, :meth:`from_children`). The order of :attr:`names` is the column order of
    every per-group array in the run store.

    Example:
        >>> groups = ParamGroups.from_prefixes(model, {"audio": "audio.", "image": "image.",
        ...                                            "head": "head."})
        >>> groups.names
        ['audio', 'image', 'head']
    """

    def __init__(self, model: nn.Module, members: Mapping[str, Sequence[str]]) -> None:
        """Create groups from explicit parameter names (canonical or alias names).

        Args:
            model: the model whose trainable parameters are grouped.
            members: group name -> names of its parameters.

        Raises:
            GroupError: a name is unknown or frozen, a parameter is in two groups, a group is
                empty, or a trainable parameter is in no group.
        """
        names = _check_group_names(members)
        params = _trainable_params(model)
        alias_to_param = {alias: p for p in params for alias in p.aliases}
        frozen = {
            n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad
        }
        owner: dict[str, str] = {}  # canonical name -> group
        owner_alias: dict[str, str] = {}
        resolved: dict[str, list[_Param]] = {}
        for group in names:
            resolved[group] = []
            for alias in members[group]:
                if alias not in alias_to_param:
                    why = "is frozen (requires_grad=False)" if alias in frozen else "does not exist"
                    raise GroupError(f"group {group!r}: parameter {alias!r} {why}")
                p = alias_to_param[alias]
                if p.name in owner:
                    if owner[p.name] == group:
                        continue  # the same tensor named twice in one group counts once
                    tied = (
                        ""
                        if owner_alias[p.name] == alias
                        else (f" (tied: {owner_alias[p.name]!r} and {alias!r} are one tensor)")
                    )
                    raise GroupError(
                        f"parameter {alias!r} is in two groups, {owner[p.name]!r} and {group!r}"
                        f"{tied}; every parameter must belong to exactly one group"
                    )
                owner[p.name] = group
                owner_alias[p.name] = alias
                resolved[group].append(p)
            if not resolved[group]:
                raise GroupError(f"group {group!r} matches no trainable parameter")
        missing = [p.name for p in params if p.name not in owner]
        if missing:
            raise GroupError(
                f"trainable parameter(s) {_listing(missing)} belong to no group; add them to a "
                "group or pass other='<name>' to collect the rest"
            )
        # Keep the model's registration order inside each group: it is the order of every
        # per-tensor array, so it must not depend on how the user listed the members.
        order = {p.name: i for i, p in enumerate(params)}
        self._names = names
        self._params = {g: sorted(resolved[g], key=lambda p: order[p.name]) for g in names}

    # ----------------------------------------------------------------------------- builders
    @classmethod
    def _from_predicate(
        cls,
        model: nn.Module,
        matchers: Mapping[str, Sequence[object]],
        match: callable,
        other: str | None,
        describe: callable,
    ) -> ParamGroups:
        names = _check_group_names(list(matchers) + ([other] if other else []))
        params = _trainable_params(model)
        members: dict[str, list[str]] = {g: [] for g in names}
        for p in params:
            hits = [
                (g, alias)
                for g, patterns in matchers.items()
                for alias in p.aliases
                if any(match(pat, alias) for pat in patterns)
            ]
            groups_hit = list(dict.fromkeys(g for g, _ in hits))
            if len(groups_hit) > 1:
                a, b = groups_hit[:2]
                alias_a = next(al for g, al in hits if g == a)
                alias_b = next(al for g, al in hits if g == b)
                tied = (
                    ""
                    if alias_a == alias_b
                    else f" (tied: {alias_a!r} and {alias_b!r} are one tensor)"
                )
                raise GroupError(
                    f"parameter {p.name!r} matches two groups, {a!r} ({describe(a)}) and "
                    f"{b!r} ({describe(b)}){tied}; make the patterns disjoint"
                )
            if groups_hit:
                members[groups_hit[0]].append(p.name)
            elif other:
                members[other].append(p.name)
        for g in matchers:
            if not members[g]:
                raise GroupError(f"group {g!r} ({describe(g)}) matches no trainable parameter")
        if other and not members[other]:
            del members[other]  # nothing left over: an empty catch-all is not an error
        return cls(model, members)

    @classmethod
    def from_prefixes(
        cls,
        model: nn.Module,
        prefixes: Mapping[str, str | Sequence[str]],
        *,
        other: str | None = None,
    ) -> ParamGroups:
        """Groups by parameter-name prefix, e.g. ``{"cc": "cc_column.", "mlo": "mlo_column."}``.

        Args:
            model: the model.
            prefixes: group name -> one prefix or a sequence of prefixes.
            other: name of a group collecting every trainable parameter no prefix matches;
                ``None`` makes an unmatched parameter an error.
        """
        pats = {g: (v,) if isinstance(v, str) else tuple(v) for g, v in prefixes.items()}
        return cls._from_predicate(
            model,
            pats,
            lambda pat, name: name.startswith(pat),
            other,
            lambda g: "prefix " + " | ".join(repr(p) for p in pats[g]),
        )

    @classmethod
    def from_regex(
        cls,
        model: nn.Module,
        patterns: Mapping[str, str | Sequence[str]],
        *,
        other: str | None = None,
    ) -> ParamGroups:
        """Groups by regular expression searched in the parameter name (``re.search``)."""
        compiled: dict[str, tuple[re.Pattern[str], ...]] = {}
        for g, v in patterns.items():
            raw = (v,) if isinstance(v, str) else tuple(v)
            try:
                compiled[g] = tuple(re.compile(r) for r in raw)
            except re.error as exc:
                raise GroupError(f"group {g!r}: invalid regular expression: {exc}") from None
        return cls._from_predicate(
            model,
            compiled,
            lambda pat, name: pat.search(name) is not None,
            other,
            lambda g: "regex " + " | ".join(repr(p.pattern) for p in compiled[g]),
        )

    @classmethod
    def from_modules(
        cls,
        model: nn.Module,
        modules: Mapping[str, nn.Module | Sequence[nn.Module]],
        *,
        other: str | None = None,
    ) -> ParamGroups:
        """Groups by submodule object: a group holds every parameter of its module(s)."""
        module_names = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}
        prefixes: dict[str, list[str]] = {}
        for g, v in modules.items():
            mods = [v] if isinstance(v, nn.Module) else list(v)
            prefixes[g] = []
            for m in mods:
                if id(m) not in module_names:
                    raise GroupError(
                        f"group {g!r}: module {type(m).__name__} is not a submodule of the model"
                    )
                name = module_names[id(m)]
                prefixes[g].append(name + "." if name else "")
        return cls.from_prefixes(model, prefixes, other=other)

    @classmethod
    def from_children(cls, model: nn.Module) -> ParamGroups:
        """One group per top-level child module that holds trainable parameters.

        Parameters registered directly on ``model`` (not in a child) go to a group named ``other``.
        """
        prefixes = {
            name: name + "."
            for name, child in model.named_children()
            if any(p.requires_grad for p in child.parameters())
        }
        return cls.from_prefixes(model, prefixes, other="other")

    # ----------------------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        """Group names in order (the column order of every per-group array)."""
        return list(self._names)

    @property
    def members(self) -> dict[str, list[str]]:
        """Group name -> canonical names of its parameters, in the model's order."""
        return {g: [p.name for p in self._params[g]] for g in self._names}

    def params(self, group: str) -> list[nn.Parameter]:
        """The parameter tensors of one group."""
        return [p.tensor for p in self._params[group]]

    def named_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """Yield ``(group, name, parameter)`` for every grouped parameter, group by group."""
        for g in self._names:
            for p in self._params[g]:
                yield g, p.name, p.tensor

    def group_index(self, device: torch.device | str | None = None) -> torch.Tensor:
        """int64 tensor (T,): the group position of each tensor in :meth:`named_parameters` order."""
        idx = [i for i, g in enumerate(self._names) for _ in self._params[g]]
        return torch.tensor(idx, dtype=torch.int64, device=device)

    def numel(self) -> dict[str, int]:
        """Number of scalar parameters per group (the model summary stored with a run)."""
        return {g: sum(p.tensor.numel() for p in self._params[g]) for g in self._names}

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}: {n:,}" for g, n in self.numel().items())
        return f"ParamGroups({counts})"
