"""The `ftutils` command. Each sub-command lives beside the code it drives; this file only
collects them, so modules stay importable without argparse and the CLI stays one entry point.

A module listed in COMMANDS defines `register(subparsers)`, which adds its parser(s) and
sets `func` (taking the parsed args, returning an exit code) with `set_defaults`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "ftutils.data.cli",    # validate
    "ftutils.local.cli",   # serve
    "ftutils.local.export",  # export
    "ftutils.train.cli",   # train, watch
    "ftutils.migrate.cli",  # migrate
    "ftutils.suite.cli",   # run (the whole suite)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftutils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside the module is a real error
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
