"""`python -m dstlib <command>`: one module per command under dstlib/commands.

Each command module has `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

COMMANDS = ("train", "corrupt", "sweep")


def _available() -> dict[str, object]:
    found = {}
    for name in COMMANDS:
        try:
            found[name] = importlib.import_module(f"dstlib.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"dstlib.commands.{name}":
                raise
    return found


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line errors: `--flag='value' is invalid; allowed: ...` and no usage block."""

    def error(self, message: str):
        m = re.match(r"argument (\S+?)(?:/\S+)?: invalid choice: '?(.*?)'? \(choose from (.*)\)$", message)
        if m:
            message = f"{m.group(1)}={m.group(2)!r} is invalid; allowed: {m.group(3).replace(chr(39), '')}"
        m = re.match(r"argument (\S+?)(?:/\S+)?: invalid (\w+) value: '(.*)'$", message)
        if m:
            message = f"{m.group(1)}={m.group(3)!r} is invalid; allowed: an {m.group(2)}"
        print(f"error: {message} (python -m dstlib {self.prog.split()[-1]} --help lists every option)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    commands = _available()
    parser = _Parser(prog="python -m dstlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}")
    for name, module in commands.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad option already reported in one line
        return int(e.code or 0)
    from dstlib.store import DamagedRunError
    try:
        return commands[args.command].run(args)
    except (ValueError, FileNotFoundError, DamagedRunError) as e:  # bad input or files: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
