"""Command-line conventions shared by every entry point."""
from __future__ import annotations

import argparse
import copy
import sys
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the description's line breaks and shows every option's default, also for an option without a
    help text; a required option says "(required)" instead of "(default: None)". A help text that describes its
    default itself ("(default: all cores)") is left as it is."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and action.option_strings and action.nargs != 0 and action.default is not argparse.SUPPRESS:
            action = copy.copy(action)
            action.help = "(required)" if action.required else "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required and action.option_strings:
            return f"{action.help} (required)" if "(required)" not in action.help else action.help
        if action.help and "(default" in action.help:  # the help text already says it in words
            return action.help
        return super()._get_help_string(action)


def deprecated_alias(new: str) -> type[argparse.Action]:
    """An argparse action for an option's old spelling: stores like `new` and says on stderr to use `new`.

    Add it hidden beside the new option: parser.add_argument("--old_name", dest=..., action=deprecated_alias(
    "--new-name"), help=argparse.SUPPRESS).
    """

    class DeprecatedAlias(argparse._StoreAction):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed; use {new}",
                  file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    return DeprecatedAlias


def command_text(argv: list, width: int = 130, lines: int = 3) -> str:
    """A command line for a figure's title, cut to a few lines (the full one is in the run's log)."""
    return textwrap.fill(" ".join(map(str, argv)), width, max_lines=lines, placeholder=" ...")
