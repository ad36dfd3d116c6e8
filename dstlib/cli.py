"""`python -m dstlib <command>`: one module per command under dstlib/commands.

Each command module has `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("train", "corrupt")


def _available() -> dict[str, object]:
    found = {}
    for name in COMMANDS:
        try:
            found[name] = importlib.import_module(f"dstlib.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"dstlib.commands.{name}":
                raise
    return found


def main(argv: list[str] | None = None) -> int:
    commands = _available()
    parser = argparse.ArgumentParser(prog="python -m dstlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}")
    for name, module in commands.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return commands[args.command].run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
