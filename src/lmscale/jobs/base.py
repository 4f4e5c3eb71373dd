"""The machinery every job description shares: JSON in and out, the `--job`/`--options` argument,
a config block's fields (lmscale.jobs says what a job is)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import asdict

from lmscale.config import to_json


class Job:
    """JSON in and out for a frozen dataclass of JSON values and nested dataclasses."""

    def to_json(self) -> str:
        return to_json(asdict(self))

    @classmethod
    def from_json(cls, text: str):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{cls.__name__}: not valid JSON ({error})") from None
        return _build(cls, values)


class Options(Job):
    """How a job is carried out, not what it computes. As a rule's param it stays this object,
    which Snakemake's rerun check leaves out (it records plain values only); the shell command
    receives `str(options)`, its JSON."""

    def __str__(self) -> str:
        return self.to_json()


def _build(cls, values):
    """`cls` from a dict of JSON values, nested dataclasses (and lists of them) built too."""
    if not isinstance(values, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {values!r}")
    names = [field.name for field in dataclasses.fields(cls)]
    missing = [name for name in names if name not in values]
    unknown = [name for name in values if name not in names]
    if missing or unknown:
        raise ValueError(f"{cls.__name__}: missing field(s) {', '.join(missing) or 'none'}, "
                         f"unknown field(s) {', '.join(unknown) or 'none'}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name], values[name]) for name in names})


def _value(kind, value):
    if value is None:
        return None
    if dataclasses.is_dataclass(kind):
        return _build(kind, value)
    arguments = [argument for argument in typing.get_args(kind) if argument is not type(None)]
    if typing.get_origin(kind) is list:
        return [_value(arguments[0], item) for item in value]
    if len(arguments) == 1:  # X | None
        return _value(arguments[0], value)
    return value


def add_argument(parser: argparse.ArgumentParser, cls, flag: str = "--job", required: bool = True) -> None:
    """`--job` (or `--options`): a description as JSON, read into `cls`; the help names its fields."""

    def parse(text: str):
        try:
            return cls.from_json(text)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    summary = (cls.__doc__ or "").strip().splitlines()[0]
    fields = ", ".join(field.name for field in dataclasses.fields(cls))
    parser.add_argument(flag, required=required, type=parse, metavar="JSON",
                        help=f"{summary} As JSON (lmscale.jobs.{cls.__name__}): {fields}")


def section(config: dict, key: str, cls) -> dict:
    """The fields of `cls` from the config block `key`."""
    return {field.name: config[key][field.name] for field in dataclasses.fields(cls)}
