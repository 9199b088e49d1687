"""Command-line conventions shared by every entry point."""
from __future__ import annotations

import argparse
import copy


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
