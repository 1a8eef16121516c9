"""MkDocs hook: the command-line reference, generated from aekit's real argparse parser.

A page line `<!-- cli-reference -->` becomes, for `aekit` and each of its commands and sub-commands, the
description, the usage line and a table per option group (flag, what it does and its default). The text is
the parser's own (`aekit.cli.build_parser`), so the site and `aekit COMMAND --help` cannot disagree.
"""

from __future__ import annotations

import argparse
import functools
import html
import sys
from collections.abc import Iterator
from pathlib import Path

MARKER = "<!-- cli-reference -->"
USAGE_WIDTH = 100  # usage lines wrap here, whatever the terminal of the machine building the site


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace each marker line of a page with the generated reference; other pages pass unchanged."""
    if MARKER not in markdown:
        return markdown
    lines = markdown.split("\n")
    return "\n".join(cli_reference() if line.strip() == MARKER else line for line in lines)


@functools.cache
def cli_reference() -> str:
    """The whole reference as Markdown, one `###` section per command."""
    parser = _build_parser()
    return "\n\n".join(_command_section(prog, command) for prog, command in _commands(parser)) + "\n"


def _build_parser() -> argparse.ArgumentParser:
    try:
        from aekit.cli import build_parser
    except ImportError:  # building the site from a checkout where aekit is not installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        from aekit.cli import build_parser
    return build_parser()


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(prog, parser) for aekit and every command below it, depth first in the order `--help` lists them."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _commands(sub)


def _anchor(prog: str) -> str:
    return prog.replace(" ", "-")


def _command_section(prog: str, parser: argparse.ArgumentParser) -> str:
    parts = [f"### `{prog}` {{#{_anchor(prog)}}}"]
    if parser.description:
        parts.append(_text(parser.description))
    formatter = argparse.HelpFormatter(prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    parts.append(f"```text\n{formatter.format_help().strip()}\n```")
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        parts.append(f"**{_text(group.title[0].upper() + group.title[1:])}**")
        parts.append(_table(prog, actions))
    if parser.epilog:
        parts.append(_text(parser.epilog))
    return "\n\n".join(parts)


def _table(prog: str, actions: list[argparse.Action]) -> str:
    rows = []
    for action in actions:
        if isinstance(action, argparse._SubParsersAction):
            rows.append(("Command", "What it does"))
            for choice in action._choices_actions:
                name = f"{prog} {choice.dest}"
                rows.append((f"[`{name}`](#{_anchor(name)})", _cell(choice.help or "")))
        else:
            rows.append((f"`{_invocation(action)}`", _cell(action.help or "")))
    header = ("Option", "What it does; default") if not isinstance(actions[0], argparse._SubParsersAction) else None
    lines = []
    if header:
        lines += [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    for i, (left, right) in enumerate(rows):
        lines.append(f"| {left} | {right} |")
        if not header and i == 0:
            lines.append("| --- | --- |")
    return "\n".join(lines)


def _invocation(action: argparse.Action) -> str:
    """How the option is written: `--max-rows N`, `--json`, `--world {language,features}`, `MODEL_DIR`."""
    if not action.option_strings:
        return str(action.metavar or action.dest)
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    if action.metavar is not None:
        value = action.metavar
    elif action.choices is not None:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.dest.upper()
    return f"{flags} {value}"


def _text(text: str) -> str:
    """Prose from the parser, safe in Markdown: no HTML, spaces collapsed."""
    return html.escape(" ".join(text.split()), quote=False)


def _cell(text: str) -> str:
    """A table cell: like `_text`, and a `|` of the help (e.g. |f_i|) does not end the cell."""
    return _text(text).replace("|", "\\|")
