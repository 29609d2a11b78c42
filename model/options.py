"""Command-line flags and evaluation sweeps built from the codecs' option declarations.

Every registered family declares its options; ``family_options`` merges them by name (one
``--quality`` for every family that takes a quality), ``add_option_flags`` turns them into flags
whose default is None ("the codec's own"), and ``given_options`` reads back what was set.

The options live in a namespace of their own: each is read back from ``args`` under ``codec_option.NAME``
(no job's dest looks like that), and where a job already has the flag ``--NAME`` (``--format`` of
decompress) the option's flag is ``--codec-NAME``. A job adds the option flags after its own.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Iterable

from .codec import Option, Side
from .registry import families


def family_options(side: Side) -> list[Option]:
    """The options of ``side`` over every registered family, one per name (types must agree). Where
    families declare an option differently (its meaning or default), the merged one says what each
    does and has no default of its own: each codec takes its family's (``Codec.resolve_options``)."""
    merged: dict[str, list[tuple[Option, str]]] = {}
    for fam in families():
        for opt in fam.options:
            if opt.side != side:
                continue
            if opt.name in merged and merged[opt.name][0][0].type is not opt.type:
                first, owner = merged[opt.name][0]
                raise ValueError(f"option '{opt.name}' is {first.type.__name__} in family {owner} "
                                 f"but {opt.type.__name__} in family {fam.name}: give one of them another name")
            merged.setdefault(opt.name, []).append((opt, fam.name))
    return [_merged(declarations) for declarations in merged.values()]


def _merged(declarations: list[tuple[Option, str]]) -> Option:
    """One option from its families' declarations: as declared when they agree, else described per
    family (and with no default of its own where their defaults differ)."""
    first = declarations[0][0]
    defaults = {repr(opt.default) for opt, _ in declarations}
    by_meaning: dict[tuple[str, Any], list[str]] = {}
    for opt, fam in declarations:
        by_meaning.setdefault((opt.help, opt.default if len(defaults) > 1 else None), []).append(fam)
    if len(by_meaning) == 1:
        return first
    each = "; ".join(f"{', '.join(fams)}: {text}" + ("" if default is None else f", default {default!r}")
                     for (text, default), fams in by_meaning.items())
    if len(defaults) == 1:
        return replace(first, help=each, choices=None, min=None, max=None)
    return replace(first, default=None, help=f"{each}; default: the codec's own", choices=None, min=None, max=None)


NAMESPACE = "codec_option."


def flag(opt: Option) -> str:
    return "--" + opt.name.replace("_", "-")


def dest(opt: Option) -> str:
    """Where ``args`` holds the option's value: in the codec options' namespace, apart from the job's."""
    return NAMESPACE + opt.name


def _flag_in(parser, opt: Option) -> str:
    """``--NAME``, or ``--codec-NAME`` where the job already has ``--NAME``."""
    plain = flag(opt)
    return "--codec-" + plain[2:] if plain in parser._option_string_actions else plain


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _scalar(opt: Option):
    return _parse_bool if opt.type is bool else opt.type


def _help(opt: Option) -> str:
    default = "" if opt.default is None else f"; default {opt.default!r}"
    return f"{opt.help} ({opt.side} option{default})"


def add_option_flags(parser, options: Iterable[Option]) -> None:
    """One ``--NAME VALUE`` flag per option, default None (the codec's own default)."""
    for opt in options:
        parser.add_argument(_flag_in(parser, opt), dest=dest(opt), type=_scalar(opt), default=None,
                            metavar=opt.type.__name__.upper(), help=_help(opt))


def add_sweep_flags(parser, options: Iterable[Option], skip: Iterable[str] = ()) -> None:
    """One ``--NAME V1,V2,...`` flag per option: the values an evaluation sweeps (default: the codec's own)."""
    for opt in options:
        if opt.name in skip:
            continue
        parser.add_argument(_flag_in(parser, opt), dest=dest(opt), type=value_list(opt), default=None,
                            metavar=f"{opt.type.__name__.upper()}[,...]", help=_help(opt) + "; a list sweeps")


def value_list(opt: Option):
    """An argparse type: comma-separated values of the option's type."""
    scalar = _scalar(opt)

    def parse(text: str) -> list:
        return [scalar(v) for v in text.split(",") if v.strip()]

    parse.__name__ = f"{opt.type.__name__} list"
    return parse


def given_options(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The options set on the command line (not None)."""
    return {o.name: getattr(args, dest(o)) for o in options if getattr(args, dest(o), None) is not None}


def with_defaults(values: dict[str, Any], options: Iterable[Option]) -> dict[str, Any]:
    """Every option by name: the given value, else the declared default (what a manifest records)."""
    return {o.name: values.get(o.name, o.default) for o in options}
