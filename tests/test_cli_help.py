"""The command line documents itself: every option of every `aekit` command says what it does and its default
(or that it is required), and every config field that becomes a flag carries its own help text."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from aekit.cli import _add_config_flags, build_parser, main
from aekit.models import SAEConfig
from aekit.train import TrainConfig
from aekit.worlds.toy_lm import ToyLMConfig

CONFIG_CLASSES = [SAEConfig, TrainConfig, ToyLMConfig]  # every class whose fields become flags


def _commands(parser: argparse.ArgumentParser):
    """(parser, its command path) for aekit and every command and sub-command under it."""
    yield parser, parser.prog
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _commands(sub)


def _all_actions():
    for parser, prog in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            yield pytest.param(parser, action, id=f"{prog} {'/'.join(action.option_strings) or action.dest}")


def test_the_walk_sees_every_command():
    progs = {prog for _, prog in _commands(build_parser())}
    assert progs == {"aekit", "aekit train", "aekit eval", "aekit info", "aekit demo", "aekit cache", "aekit report",
                     "aekit world", "aekit world train-lm", "aekit world eval-lm", "aekit disentangle",
                     "aekit circuits", "aekit embed", "aekit diff", "aekit correlations", "aekit cluster",
                     "aekit retrieve", "aekit select", "aekit criticality", "aekit denoiser",
                     "aekit map", "aekit cca", "aekit anomaly", "aekit anomaly train", "aekit anomaly score",
                     "aekit world train-vit", "aekit world train-clip", "aekit vision-sae", "aekit vlsae",
                     "aekit psvae", "aekit crate-mae", "aekit lvrae", "aekit video-vae", "aekit cktgen", "aekit ddmi",
                     "aekit epg"}
    assert sum(1 for _ in _all_actions()) > 100


@pytest.mark.parametrize(("parser", "action"), list(_all_actions()))
def test_every_option_says_what_it_does_and_its_default(parser, action):
    text = (action.help or "").strip()
    name = "/".join(action.option_strings) or action.dest
    assert text and text != argparse.SUPPRESS, f"{parser.prog} {name}: no help text"
    assert len(text) >= 12, f"{parser.prog} {name}: help too short to say anything: {text!r}"
    if isinstance(action, argparse._SubParsersAction):
        for choice in action._choices_actions:
            assert choice.help and len(choice.help) >= 12, f"{parser.prog} {choice.dest}: no summary"
        return
    if isinstance(action, argparse._VersionAction):
        return
    positional = not action.option_strings
    if action.required and not positional:
        assert "required" in text, f"{parser.prog} {name}: required but its help does not say so: {text!r}"
    elif positional:
        if action.nargs == "?":
            assert "default:" in text, f"{parser.prog} {name}: optional positional without its default: {text!r}"
    else:
        assert "default:" in text, f"{parser.prog} {name}: help does not give the default: {text!r}"


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_field_has_help_and_a_meaningful_default(cls):
    for field in dataclasses.fields(cls):
        text = field.metadata.get("help", "")
        assert len(text) >= 10, f"{cls.__name__}.{field.name}: no help text"
        if field.default in (None, "") or (field.default == 0 and field.name in ("d_in", "n_latents")):
            assert field.metadata.get("default_help"), (
                f"{cls.__name__}.{field.name}: the default {field.default!r} needs a word on what it means"
            )
        assert cls.field_help(field.name).startswith(f"{text}; default: ")


def test_config_flags_print_the_field_help():
    parser = argparse.ArgumentParser()
    _add_config_flags(parser)
    helps = {action.dest: action.help for action in parser._actions}
    assert helps["model.d_in"] == ("input width: features per data row (a transcoder's x part); "
                                   "default: 0 = inferred from the data")
    assert helps["model.n_latents"] == "number of latents (dictionary size); default: 0 = 8 × d_in"
    assert helps["model.matryoshka_prefixes"].endswith("default: blank = n/16, n/8, n/4, n/2, n")
    assert helps["model.aux_k"].endswith("default: none = d_in // 2 (at most n_latents)")
    assert helps["train.grad_clip"] == "maximum global gradient norm; 0 disables clipping; default: 1.0"
    assert helps["train.progress"] == "show a progress bar (true/false); default: true"
    metavars = {action.dest: action.metavar for action in parser._actions}
    assert (metavars["model.k"], metavars["train.lr"], metavars["train.progress"]) == ("N", "X", "BOOL")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--help"], ["--d-in N", "default: 0 = inferred from the data", "--max-documents N",
                               "default: all of them", "--matryoshka-prefixes TEXT"]),
        (["eval", "--help"], ["MODEL_DIR", "config.json + model.safetensors", "--max-rows N", "default: 262144"]),
        (["demo", "--help"], ["--out DIR", "default: demo-out", "--seed N", "default: 0"]),
        (["disentangle", "--help"], ["--steps N", "default: 2000", "--out DIR", "default: disentangle-out"]),
        (["world", "eval-lm", "--help"], ["default: the bundled toy GPT-2"]),
        (["--help"], ["train", "disentangle", "Exit codes: 0 success, 2"]),
    ],
)
def test_help_pages_print(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for text in expected:
        assert text in out, f"{text!r} not in `aekit {' '.join(argv)}`"


def test_building_the_parser_runs_nothing(tmp_path, monkeypatch):
    """The docs' CLI reference builds the parser at import time of the site: it must not touch the disk."""
    monkeypatch.chdir(tmp_path)
    build_parser()
    assert list(tmp_path.iterdir()) == []


def _reference_hook():
    """docs/hooks/cli_reference.py, imported from its file as MkDocs does."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_reference_lists_every_command_and_option():
    hook = _reference_hook()
    page = "# Command line\n\nIntro.\n\n<!-- cli-reference -->\n\nAfter.\n"

    rendered = hook.on_page_markdown(page, page=None, config=None, files=None)

    assert rendered.startswith("# Command line\n\nIntro.\n\n### `aekit` {#aekit}\n")
    assert rendered.endswith("\n\nAfter.\n") and "<!-- cli-reference -->" not in rendered
    for parser, prog in _commands(build_parser()):
        assert f"### `{prog}` {{#{prog.replace(' ', '-')}}}" in rendered
        if parser.description:
            assert " ".join(parser.description.split()) in rendered
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            flag = action.option_strings[0] if action.option_strings else action.metavar
            assert f"| `{flag}" in rendered, f"{prog} {flag} missing from the reference"
            assert hook._cell(action.help) in rendered
    assert "| `--d-in N` | input width: features per data row (a transcoder's x part); default: 0 = inferred " \
           "from the data |" in rendered
    assert "penalise \\|f_i\\|·‖d_i‖" in rendered  # a | of the help text does not split the table cell
    assert "| [`aekit world train-lm`](#aekit-world-train-lm) |" in rendered


def test_docs_hook_leaves_other_pages_alone():
    hook = _reference_hook()
    page = "# Training\n\nThe `<!-- cli-reference -->` marker is only replaced on a line of its own.\n"
    assert hook.on_page_markdown(page, page=None, config=None, files=None) == page
    assert hook.on_page_markdown("# Other\n", page=None, config=None, files=None) == "# Other\n"
