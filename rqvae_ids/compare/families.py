"""The families of trained-retriever rows of a comparison (`FAMILIES`, in report order): each one's
default config, the fields the comparison sets itself, and the builder of its rows.

A family is one `Family` here, one field of `config.RetrieverRows` (its config, or None: no such
rows) and one CLI flag (`--with-<name>`, or `--no-<name>` for a family on by default). `compare --set
NAME.FIELD=VALUE` reaches every other field of its config (`parse_row_set`); `family_settings`
validates what is given before anything is trained. Adding a family (e.g. `hybrid/<model>` rows plus a
`hybrid/no-codes` row) = its builder `(config, RowContext) -> Rows` beside its retriever, a `Family`
entry here, a `RetrieverRows` field and the CLI flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass, replace
from typing import Any, Callable, Mapping

from ..core.config import from_dict, parse_set, to_dict
from ..core.errors import UserError
from ..retrieval.item.trainer import ItemRetrieverConfig, item_config
from ..retrieval.tiger.trainer import RetrievalConfig
from .config import CompareConfig, RetrieverRows, RowContext, Rows, default_sasrec
from .item import hybrid_rows, parallel_rows, sasrec_rows
from .tiger import tiger_rows


@dataclass(frozen=True)
class Family:
    """default: the family's config when nothing is given; build: (its config, RowContext) -> Rows;
    from_compare: config field -> the CompareConfig field it always takes (the comparison's seed, ...);
    fixed: other fields no one sets (the item head of the family)."""

    default: Callable[[], Any]
    build: Callable[[Any, RowContext], Rows]
    from_compare: Mapping[str, str] = field(default_factory=lambda: {"seed": "seed"})
    fixed: tuple[str, ...] = ()

    def stamped(self, config: Any, cfg: CompareConfig) -> Any:
        """`config` with the fields the comparison sets (its seed, ...)."""
        return replace(config, **{f: getattr(cfg, c) for f, c in self.from_compare.items()})

    def settable(self) -> list[str]:
        return [f for f in to_dict(self.default()) if f not in self.from_compare and f not in self.fixed]


FAMILIES: dict[str, Family] = {
    # histories truncated as the split's, validated on the comparison's tuning users
    "tiger": Family(RetrievalConfig, tiger_rows,
                    {"seed": "seed", "valid_users": "tune_users", "max_history": "max_history"}),
    "sasrec": Family(default_sasrec, sasrec_rows, fixed=("head",)),
    "parallel": Family(lambda: ItemRetrieverConfig(head="parallel"), parallel_rows, fixed=("head",)),
    "hybrid": Family(lambda: item_config("hybrid"), hybrid_rows, fixed=("head",)),
}
assert list(FAMILIES) == list(RetrieverRows.__dataclass_fields__), "a family is a Family and a RetrieverRows field"


def family_settings(name: str, given: Mapping[str, Any], cfg: CompareConfig) -> Any:
    """The validated config of family `name` from its default and the fields `given` (its --set
    keys, a flow's dict), with the comparison's seed (...): checked before anything is trained."""
    family = FAMILIES[name]
    taken = sorted(set(given) & (set(family.from_compare) | set(family.fixed)))
    if taken:
        raise UserError(f"{name}: {', '.join(taken)} set by the comparison (--seed, --tune-users, ...), not per row")
    config = from_dict(type(family.default()), {**to_dict(family.default()), **given}, where=f"compare {name}")
    return family.stamped(config, cfg)


def parse_row_set(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """`compare --set tiger.d_model=64 --set sasrec.max_epochs=5` -> {"tiger": {"d_model": 64},
    "sasrec": {"max_epochs": 5}}: dotted keys FAMILY.FIELD, values typed by the field
    (`config.parse_set`); the fields the comparison sets itself are refused."""
    sections = make_dataclass("CompareSet", [(n, type(f.default())) for n, f in FAMILIES.items()])
    keys = [f"{n}.{k}" for n, f in FAMILIES.items() for k in f.settable()]
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_set(pairs, sections, keys=keys).items():
        name, _, fieldname = key.partition(".")
        out.setdefault(name, {})[fieldname] = value
    return out


def retriever_rows(asked: RetrieverRows, ctx: RowContext) -> list[tuple[str, Rows]]:
    """(family name, its Rows) of every family asked for, in report order, each config stamped
    with the comparison's seed (...)."""
    return [(name, FAMILIES[name].build(FAMILIES[name].stamped(getattr(asked, name), ctx.cfg), ctx))
            for name in asked.asked()]
