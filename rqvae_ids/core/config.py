"""Typed configuration helpers.

Each stage owns a frozen dataclass (EmbedConfig in embed.py, TrainConfig in
train.py, ...). These helpers turn them into JSON-able dicts and back, rejecting
unknown keys and wrong types at the edge, so a config saved beside an output
reproduces the run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

from .errors import UserError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass (possibly nested) as a plain dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, validating keys and basic types.

    Unknown keys and values of the wrong type raise UserError naming the key.
    Nested dataclass fields are built recursively; tuples accept lists.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: {e}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UserError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {type(value).__name__}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def check(cond: bool, message: str) -> None:
    """Validation in __post_init__: raise ValueError (turned into UserError at the edge)."""
    if not cond:
        raise ValueError(message)


def leaf_types(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> type hint of every non-section field of dataclass `cls` (nested dataclasses descended)."""
    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if name not in {f.name for f in dataclasses.fields(cls)}:
            continue
        if dataclasses.is_dataclass(tp):
            out.update(leaf_types(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out


def parse_set(pairs: list[str], cls: type, *, flag: str = "--set", bare: bool = False, strip: str = "",
              keys: list[str] | None = None) -> dict[str, Any]:
    """The one `--set KEY=VALUE` grammar: ["train.lr=1e-3", "train.model.hidden=[256,128]"] ->
    {"train.lr": 0.001, "train.model.hidden": (256, 128)}, each value typed by its field of `cls`.

    Keys are dotted paths into `cls` (dashes read as underscores); `strip` is a prefix a key may
    carry (e.g. "train." for the train command, so its keys read as in the pipeline config);
    `bare` also accepts a field's own name when it is unique (`lr` for `model.lr`...); `keys`
    limits the accepted paths. Values: numbers, true/false, strings, [a,b] or a,b lists, none
    for an optional field. Unknown key or wrong type: a one-line UserError.
    """
    types_ = leaf_types(cls)
    valid = [k for k in types_ if keys is None or k in keys]
    by_name: dict[str, list[str]] = {}
    for k in valid:
        by_name.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    shown = sorted(by_name if bare else valid)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        path = key[len(strip):] if strip and key.startswith(strip) else key
        if path not in valid and bare and len(by_name.get(path, [])) == 1:
            path = by_name[path][0]
        if path not in valid:
            raise UserError(f"{flag}: unknown key {key}; valid keys: {', '.join(shown)}")
        out[path] = parse_value(types_[path], text.strip(), f"{flag} {key}")
    return out


def parse_value(tp: Any, text: str, where: str) -> Any:
    """`text` as a value of type `tp` (the field's hint); UserError naming `where` if it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        for a in args:
            if a is not type(None):
                try:
                    return parse_value(a, text, where)
                except UserError:
                    pass
        raise UserError(f"{where}: expected {_type_name(tp)}, got {text!r}")
    if origin is typing.Literal:
        for a in args:
            if str(a) == text:
                return a
        raise UserError(f"{where}: expected one of {list(args)}, got {text!r}")
    if origin in (tuple, list):
        inner = text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text
        items = [parse_value(args[0] if args else str, t.strip().strip("'\""), where)
                 for t in inner.split(",") if t.strip()]
        return tuple(items) if origin is tuple else items
    try:
        if tp is bool and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
    except ValueError:
        pass
    if tp in (bool, int, float):
        raise UserError(f"{where}: expected {_type_name(tp)}, got {text!r}")
    return text


def _type_name(tp: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    return names.get(tp, getattr(tp, "__name__", str(tp)))
