"""`aekit <command>`: parse, validate, call the API, print. The only place that exits.

Every user mistake becomes one line on stderr ("aekit: error: ...") and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

from ._version import __version__
from .commands import workflows
from .config_base import base_type
from .errors import AekitError, ConfigError
from .models import SAEConfig
from .train import TrainConfig
from .train.checkpoint import latest_checkpoint

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process its pipe closed


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a one-line ConfigError instead of usage + exit."""

    def error(self, message: str):
        raise _usage_error(self.prog, message)

    def parse_args(self, args=None, namespace=None):
        """Like argparse, but unknown flags are reported by the command they were given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = getattr(parsed, "command_prog", self.prog)
            raise _usage_error(prog, f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            commands = list(action.choices)
            close = difflib.get_close_matches(str(value), commands, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise argparse.ArgumentError(None, f"unknown command {value!r}{hint}; choose one of {', '.join(commands)}")
        super()._check_value(action, value)


def _usage_error(prog: str, message: str) -> ConfigError:
    """One line that names the command once: "train: <message> (see aekit train --help)"."""
    command = prog.removeprefix("aekit").strip()  # "" for aekit itself, "train", "world train-lm", ...
    where = f"{command}: " if command else ""
    return ConfigError(f"{where}{message} (see {prog} --help)")


def _add_commands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """Sub-commands of `parser`; running it without one is a one-line error that lists them."""
    sub = parser.add_subparsers(dest=dest, metavar="COMMAND", title="commands", parser_class=_Parser,
                                help=f"one of the commands below; `{parser.prog} COMMAND --help` describes it")

    def no_command(args: argparse.Namespace) -> int:
        raise _usage_error(parser.prog, f"no command given; choose one of {', '.join(sub.choices)}")

    parser.set_defaults(func=no_command)
    return sub


def _command(sub: argparse._SubParsersAction, name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
    """A sub-command whose --help starts with its one-line summary (and `details`, when given)."""
    description = f"{summary[0].upper()}{summary[1:]}." + (f" {details}" if details else "")
    parser = sub.add_parser(name, help=summary, description=description)
    parser.set_defaults(command_prog=parser.prog)
    return parser


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_METAVARS = {int: "N", float: "X", bool: "BOOL", str: "TEXT", dict: "MAPPING"}


def _add_config_flags(parser: argparse.ArgumentParser, sections=(("model", SAEConfig), ("train", TrainConfig)),
                      title: str = "{section} settings (override the config file)") -> None:
    """One flag per config field, its help kept next to the field; values are strings, converted and checked by
    the dataclasses."""
    for section, cls in sections:
        group = parser.add_argument_group(title.format(section=section))
        hints = typing.get_type_hints(cls)
        for name in cls.field_names():
            kind, _ = base_type(hints[name])
            group.add_argument(_flag(name), dest=f"{section}.{name}", metavar=_METAVARS.get(kind, "V"), default=None,
                               help=cls.field_help(name))


def read_config_file(path: str) -> dict[str, Any]:
    """A YAML or JSON file with `model:` / `train:` sections (or flat keys), plus optional `data:`/`out:`."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: config file not found")
    try:
        content = yaml.safe_load(file.read_text())  # JSON is YAML too
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML/JSON ({first})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{file}: must hold a mapping of settings, got {type(content).__name__}")
    return content


def split_settings(content: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Route nested sections and flat keys to model / train / run settings."""
    settings: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "run": {}}
    model_fields, train_fields = set(SAEConfig.field_names()), set(TrainConfig.field_names())
    for key, value in content.items():
        if key in ("model", "train"):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: section {key!r} must be a mapping of settings, got {value!r}")
            settings[key].update(value)
        elif key == "data" and isinstance(value, dict):  # {lm, hook, text}: train on the fly
            settings["run"][key] = value
        elif key in ("data", "out"):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {key!r} must be a path (a string), got {value!r}")
            settings["run"][key] = value
        elif key in model_fields:
            settings["model"][key] = value
        elif key in train_fields:
            settings["train"][key] = value
        else:
            known = ["model", "train", "data", "out", *sorted(model_fields | train_fields)]
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? Otherwise " if close else ""
            raise ConfigError(
                f"{where}: unknown setting {key!r}; {hint}use sections model/train or their field names"
            )
    return settings


def _train_data(args: argparse.Namespace) -> str | dict[str, Any] | None:
    """--data, or the on-the-fly spec from --lm/--hook/--text."""
    on_the_fly = (args.lm, args.hook, args.text)
    if args.data and any(on_the_fly):
        raise ConfigError("train: give either --data or --lm/--hook/--text (activations on the fly), not both")
    if any(on_the_fly) and not all(on_the_fly):
        raise ConfigError("train: training on the fly needs all of --lm, --hook and --text")
    if all(on_the_fly):
        return {"lm": args.lm, "hook": args.hook, "text": args.text, "max_length": args.max_length,
                "max_documents": args.max_documents}
    return args.data


def cmd_train(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    if args.resume:
        if args.config or flags:
            raise ConfigError("train --resume continues the saved run with its own settings; drop --config and flags")
        if not args.out:
            raise ConfigError("train --resume: --out must name the run directory to continue")
        args.run_dir = args.out
        summary = workflows.resume(args.out, data=_train_data(args))
    else:
        content = read_config_file(args.config) if args.config else {}
        settings = split_settings(content, args.config or "config")
        for key, value in flags.items():
            section, name = key.split(".", 1)
            settings[section][name] = value
        data = _train_data(args) or settings["run"].get("data")
        out = args.out or settings["run"].get("out")
        if not data:
            raise ConfigError("train: --data (an array file or activation store) or --lm/--hook/--text is required")
        if not out:
            raise ConfigError("train: --out is required (a new directory for the run)")
        train_config = TrainConfig.from_dict(settings["train"])
        args.run_dir = out
        summary = workflows.train(data, out, settings["model"], train_config)
    _print_metrics(summary.metrics)
    print(f"model: {summary.out_dir / workflows.MODEL_DIR}")
    return 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    for key in ("mse", "fvu", "l0", "dead_fraction", "dense_fraction", "mcc", "mean_best_f1", "ce_clean", "ce_sae",
                "ce_zero", "ce_mean", "ce_recovered_zero", "ce_recovered_mean", "kl_sae", "delta_loss"):
        if key in metrics:
            print(f"{key:>15}: {metrics[key]:.4f}")


def cmd_eval(args: argparse.Namespace) -> int:
    spliced = (args.lm, args.hook, args.text)
    if args.data and any(spliced):
        raise ConfigError("eval: give either --data (activations) or --lm/--hook/--text (spliced evaluation), not both")
    if any(spliced) and not all(spliced):
        raise ConfigError("eval: spliced evaluation needs all of --lm, --hook and --text")
    if not args.data and not any(spliced):
        raise ConfigError("eval: --data (activations) or --lm/--hook/--text (spliced evaluation) is required")
    if args.data:
        metrics = workflows.evaluate(args.model_dir, args.data, max_rows=args.max_rows)
    else:
        metrics = workflows.evaluate_spliced(args.model_dir, args.lm, args.hook, args.text,
                                             max_documents=args.max_documents, max_length=args.max_length)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics(metrics)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(workflows.info(args.model_dir), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .commands import demo

    out = Path(args.out)
    if args.world == "features":
        metrics = demo.feature_world_demo(out, steps=args.steps or 4000, seed=args.seed, progress=not args.quiet)
        _print_metrics(metrics)
        print(f"{'target mcc':>15}: ≥ 0.9 ({'met' if metrics['mcc'] >= 0.9 else 'NOT met'})")
        print(f"outputs: {out / 'metrics.json'}, {out / 'training.png'}, {out / 'run'}")
        return 0
    metrics = demo.language_demo(out, steps=args.steps or 1500, seed=args.seed, progress=not args.quiet,
                                 n_documents=args.documents)
    rec, spliced = metrics["reconstruction"], metrics["spliced"]
    print(f"SAE on {metrics['hook']} of the bundled toy GPT-2: FVU {rec['fvu']:.3f}, L0 {rec['l0']:.1f}, "
          f"dead {100 * rec['dead_fraction']:.1f}%")
    print(f"CE loss clean {spliced['ce_clean']:.3f}, with SAE {spliced['ce_sae']:.3f}, zero-ablated "
          f"{spliced['ce_zero']:.3f}: CE loss recovered {spliced['ce_recovered_zero']:.3f}")
    print(f"{'concept':>14}  {'SAE best F1':>11}  {'probe F1':>8}  {'ratio':>5}")
    for name, row in metrics["concepts"]["concepts"].items():
        print(f"{name:>14}  {row['sae_best_f1']:11.3f}  {row['probe_f1']:8.3f}  {row['ratio']:5.2f}")
    topic = metrics["concepts"]["topic_posterior"]
    print(f"{'log p(topic|x)':>14}  {topic['sae_matched_correlation']:11.3f}  {topic['probe_correlation']:8.3f}  "
          f"{topic['ratio']:5.2f}   (matched correlation / probe correlation)")
    print(f"outputs: {out / 'metrics.json'}, {metrics['report']}, {out / 'run'} ({metrics['wall_seconds']:.0f} s)")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    if args.text is None:
        return _cache_images(args)
    if args.images is not None or args.world is not None:
        raise ConfigError("cache: give exactly one of --text, --images DIR or --world scenes")
    from .commands.caching import cache_activations

    store = cache_activations(
        args.model, args.hook, args.text, args.out, batch_size=args.batch_size or 8, max_length=args.max_length,
        max_tokens=args.max_tokens, dtype=args.dtype, device=args.device, progress=not args.quiet,
    )
    shape = "×".join(str(n) for n in store.provenance.get("hook_shape", [store.d]))
    print(f"{'tokens':>15}: {store.rows}")
    print(f"{'documents':>15}: {store.provenance.get('documents')}")
    print(f"{'d':>15}: {store.d} ({shape})")
    print(f"store: {store.path}")
    return 0


def _cache_images(args: argparse.Namespace) -> int:
    from .commands.vision_caching import cache_image_activations

    store = cache_image_activations(
        args.model, args.hook, args.out, images=args.images, world=args.world, n=args.n, split=args.split,
        seed=args.seed, tokens=args.tokens, batch_size=args.batch_size or 64, dtype=args.dtype, device=args.device,
        progress=not args.quiet,
    )
    shape = "×".join(str(n) for n in store.provenance.get("hook_shape", [store.d]))
    images = store.provenance.get("files", store.provenance.get("images"))
    print(f"{'rows':>15}: {store.rows} ({store.provenance['tokens']} tokens of {images} images)")
    print(f"{'d':>15}: {store.d} ({shape})")
    print(f"store: {store.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    features = None
    if args.features:
        try:
            features = [int(f) for f in args.features.split(",") if f.strip()]
        except ValueError:
            raise ConfigError(f"report: --features must be comma-separated integers, got {args.features!r}") from None
    summary = workflows.feature_report(
        args.model_dir, args.text, args.out, lm=args.lm, hook=args.hook, features=features,
        n_features=args.n_features, max_documents=args.max_documents, max_tokens=args.max_tokens,
        max_length=args.max_length, progress=not args.quiet,
    )
    print(f"{'tokens':>15}: {summary['tokens']}")
    print(f"{'alive features':>15}: {summary['alive']} of {summary['n_latents']}")
    print(f"{'shown':>15}: {len(summary['features'])}")
    print(f"report: {summary['report']}")
    return 0


def cmd_world_train_lm(args: argparse.Namespace) -> int:
    from .worlds.toy_lm import ToyLMConfig, train_toy_lm

    settings = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith("toy_lm.") and v is not None}
    summary = train_toy_lm(args.out, ToyLMConfig.from_dict(settings), progress=not args.quiet)
    _print_toy_lm_eval(summary.get("eval", {}))
    print(f"model: {args.out}")
    return 0


def cmd_world_train_vision(args: argparse.Namespace) -> int:
    from .worlds import toy_vision

    section = "toy_vit" if args.world_command == "train-vit" else "toy_clip"
    config_class = toy_vision.ToyViTConfig if section == "toy_vit" else toy_vision.ToyCLIPConfig
    train = toy_vision.train_toy_vit if section == "toy_vit" else toy_vision.train_toy_clip
    settings = {k.split(".", 1)[1]: v for k, v in vars(args).items() if k.startswith(section + ".") and v is not None}
    summary = train(args.out, config_class.from_dict(settings), progress=not args.quiet)
    measure = "factor accuracy" if section == "toy_vit" else "zero-shot attribute accuracy"
    for split, scores in ((k, v) for k, v in summary.get("eval", {}).items() if k in ("test", "ood")):
        cells = ", ".join(f"{name} {value:.3f}" for name, value in scores.items())
        print(f"{measure} ({split}): {cells}")
    print(f"model: {args.out}")
    return 0


def cmd_world_eval_lm(args: argparse.Namespace) -> int:
    from .worlds.toy_lm import bundled_toy_lm_path, evaluate_toy_lm

    result = evaluate_toy_lm(args.model_dir or bundled_toy_lm_path(), n=args.n, seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_toy_lm_eval(result)
    return 0


def _print_toy_lm_eval(result: dict[str, Any]) -> None:
    for name, value in result.items():
        if isinstance(value, dict):
            cells = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
            print(f"{name:>15}: {cells}")
        elif isinstance(value, float):
            print(f"{name:>15}: {value:.4f}")


def cmd_disentangle(args: argparse.Namespace) -> int:
    from .commands.disentangle import run_disentangle

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = run_disentangle(args.world, models=models, seeds=args.seeds, steps=args.steps, out_dir=args.out,
                             batch_size=args.batch_size, n_eval=args.n_eval, n_train=args.n_train, lr=args.lr,
                             progress=not args.quiet)
    table = Path(args.out) / "table.md"
    if table.is_file():
        print(table.read_text())
    print(f"outputs: {Path(args.out) / 'results.json'}, {table}, traversal PNGs in {Path(args.out) / 'traversals'}")
    del result
    return 0


def _head(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_circuit(result: dict[str, Any], max_edges: int = 20) -> None:
    """The selected heads, the layer × head table of node scores, the top edges, AUCs and timings."""
    nodes = result["node_scores"]
    settings = result["settings"]
    rule = f"top {settings['size']}" if settings["size"] else f"node score ≥ {settings['threshold']:g}"
    task = result["task"]
    print(f"circuit of {task['name']} ({task['n_prompts']} prompt pairs) in {result['model']}: "
          f"{len(result['selected_heads'])} heads ({rule})")
    print("  " + ("  ".join(f"{_head(i, h)} {_score(nodes[i][h])}" for i, h in result["selected_heads"]) or "none"))
    print("node scores (rows: layers, columns: heads):")
    print("     " + "".join(f"{'H' + str(h):>5}" for h in range(result["n_heads"])))
    for layer, row in enumerate(nodes):
        print(f"{'L' + str(layer):>5}" + "".join(f"{_score(v):>5}" for v in row))
    edges = result["selected_edges"]
    print(f"edges (edge score ≥ {settings['threshold']:g}): {len(edges)}")
    for i, s, j, r in edges[:max_edges]:
        print(f"  {_head(i, s)} → {_head(j, r)}  {_score(result['edge_scores'][i][s][j][r])}")
    if len(edges) > max_edges:
        print(f"  ... and {len(edges) - max_edges} more (all in {result['json']})")
    if "ground_truth" in result:
        truth = result["ground_truth"]
        heads = " ".join(_head(i, h) for i, h in truth["heads"]) or "none"
        print(f"ground truth ({truth['n_prompts']} other prompts, |effect| ≥ {truth['threshold']:g}): {heads}; "
              f"selected heads: precision {_fraction(result['selected_precision'])}, "
              f"recall {_fraction(result['selected_recall'])}")
        aucs = ", ".join(f"{name} {_fraction(value)}" for name, value in result["auc"].items())
        print(f"ranking AUC vs ground truth: {aucs}")
    timings = {k: v for k, v in result["seconds"].items() if isinstance(v, float)}
    print("seconds: " + ", ".join(f"{name} {value:.2f}" for name, value in timings.items()))
    print(f"outputs: {result['json']}, {result['png']}")


def cmd_circuits(args: argparse.Namespace) -> int:
    from .commands.circuits import run_circuits

    result = run_circuits(args.model, task=args.task, prompts=args.prompts, n_prompts=args.n_prompts,
                          seed=args.seed, n_latents=args.n_latents, l1=args.l1, epochs=args.epochs,
                          threshold=args.threshold, size=args.size, ground_truth=args.ground_truth,
                          baselines=args.baselines, out=args.out, device=args.device, progress=not args.quiet)
    _print_circuit(result)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .commands.data_select import run_select

    examples = args.examples_file if args.examples_file is not None else args.examples
    r = run_select(args.embeddings, examples, args.budget, method=args.method, text=args.text, seed=args.seed,
                   out=args.out)
    summary = r["scores"]["candidates"]
    print(f"selected {r['budget']} of {r['n_candidates']} candidates by {r['method']} with {len(r['examples'])} "
          f"example(s): scores {summary['cut']:.4g} (cut) to {summary['max']:.4g}, candidates' median "
          f"{summary['median']:.4g}")
    print("first selected: " + ", ".join(r["selected"][:10]) + (" …" if len(r["selected"]) > 10 else ""))
    print(f"outputs: {r['csv']}, {r['json']}, {r['png']}")
    return 0


def cmd_criticality(args: argparse.Namespace) -> int:
    from .commands.criticality import run_criticality, table_rows

    r = run_criticality(args.activations, args.depth, args.width, args.seeds, out=args.out)
    print(f"depth {r['depth']}, width {r['width']}, {r['seeds']} seed(s), {r['n_examples']} digits; "
          "mean over seeds; grad²: mean squared ∂(sum of outputs)/∂z")
    for row in table_rows(r):
        print(row)
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from .commands.raster_mapping import run_map

    r = run_map(args.size, args.units, args.bands, args.seed, out=args.out, pretrain_steps=max(1, args.steps // 2),
                finetune_steps=args.steps)
    s = r["settings"]
    print(f"{s['size']}×{s['size']} pixels, {s['n_units']} units, {s['n_bands']} bands, seed {s['seed']}; "
          f"stacked autoencoder {s['sizes'].replace(',', ' → ')}")
    width = max(len(name) for name in r["methods"])
    print(f"{'method':<{width}}  accuracy  kappa")
    for name, m in r["methods"].items():
        print(f"{name:<{width}}  {m['accuracy']:8.3f}  {m['kappa']:5.3f}")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_cca(args: argparse.Namespace) -> int:
    from .commands.cca import run_cca, table_rows

    r = run_cca(args.data, args.model, args.k, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                ridge=args.ridge, out=args.out)
    print(f"{r['data']} ({r['rows']} rows, {r['dx']} + {r['dy']} dims), {r['model']} (c = {r['ridge']:g}), "
          f"k {r['k']}: {r['steps']} Trainer steps ({r['epochs']} epoch(s) of batch {r['batch_size']}, Adam lr "
          f"{r['lr']:g}); canonical correlations on the training rows")
    for row in table_rows(r):
        print(row)
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_denoiser(args: argparse.Namespace) -> int:
    from .commands.low_rank import run_denoiser

    r = run_denoiser(args.d, args.components, args.rank, args.sigma, args.ratios, args.seeds, steps=args.steps,
                     out=args.out, progress=print)
    print(f"optimal denoiser error {r['optimal_error']:.4f}")
    for s in r["summary"]:
        print(f"N/d {s['ratio']:g} (N {s['n_train']}): test error {s['error_mean']:.4f} ± {s['error_std']:.4f}, "
              f"largest angle {s['max_angle_mean']:.1f}° (worst {s['max_angle_max']:.1f}°)")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_vision_sae(args: argparse.Namespace) -> int:
    from .commands.vision_sae import run_vision_sae

    r = run_vision_sae(args.model, args.hook, tokens=args.tokens, n_latents=args.latents, k=args.k, steps=args.steps,
                       n_train=args.n_train, n_eval=args.n_eval, seed=args.seed, device=args.device,
                       out=args.out, progress=not args.quiet)
    s = r["settings"]
    print(f"{s['family']} {s['model']} at {s['hook']} ({s['tokens']} tokens): {s['n_latents']} latents, k {s['k']}, "
          f"FVU {r['fvu']:.3f}")
    if "spliced" in r:
        sp = r["spliced"]
        print(f"accuracy clean {sp['clean']:.3f}, SAE spliced {sp['sae']:.3f}, mean-ablated {sp['mean_ablated']:.3f}"
              f" (recovered {sp['recovered']:.3f})")
    a = r["alignment"]
    print(f"factor alignment (mean F1): best single latent {a['mean_latent_f1']:.3f}, linear probe "
          f"{a['mean_probe_f1']:.3f}")
    print("OOD AUROC (held-out shape-hue pairs): " + ", ".join(f"{k} {v:.3f}" for k, v in r["ood"]["auroc"].items()))
    print(f"outputs: {r['json']}, {r['png']}, {r['features']}, {r['sae']}")
    return 0


def cmd_anomaly_train(args: argparse.Namespace) -> int:
    from .commands.anomaly import run_anomaly_train

    r = run_anomaly_train(args.out, channels=args.channels, length=args.length, seed=args.seed, steps=args.steps,
                          progress=not args.quiet)
    print(f"StackVAE-G trained for {r['steps']} Trainer steps on the time-series world ({r['channels']} channels, "
          f"{r['length']} steps, seed {r['seed']}); model: {r['out']}")
    return 0


def cmd_anomaly_score(args: argparse.Namespace) -> int:
    from .commands.anomaly import run_anomaly_score

    r = run_anomaly_score(args.model_dir, out=args.out)
    print(f"test split ({r['anomaly_fraction']:.1%} anomalous steps): F1 {r['f1']:.3f}, point-adjusted F1 "
          f"{r['pa_f1']:.3f} (inflated), AUROC {r['auroc']:.3f}, graph AUROC {r['graph_auroc']:.3f}")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_crate_mae(args: argparse.Namespace) -> int:
    from .commands.crate_mae import run_crate_mae

    r = run_crate_mae(args.out, steps=args.steps, seed=args.seed, width=args.width, depth=args.depth,
                      heads=args.heads, n_train=args.n_train, n_test=args.n_eval,
                      device=args.device or "auto", progress=not args.quiet)
    s = r["settings"]
    print(f"width {s['width']}, depth {s['depth']} + {s['depth']}, {s['heads']} heads, patch {s['patch']}, "
          f"{s['mask_ratio']:.0%} masked; {s['steps']} Trainer steps each on {s['n_train']} scenes")
    print(f"{'model':<9}  parameters  PSNR held-out  PSNR ood  (masked patches, dB)")
    for name, m in r["models"].items():
        print(f"{name:<9}  {m['parameters']:10,}  {m['psnr']['held_out']:13.2f}  {m['psnr']['ood']:8.2f}")
    print(f"{'floor':<9}  {'':10}  {r['floor_psnr']['held_out']:13.2f}  {r['floor_psnr']['ood']:8.2f}  "
          "(visible-mean fill)")
    print(f"parameter ratio {r['parameter_ratio']:.3f} (target ≤ 0.3), PSNR gap {r['psnr_gap_db']['held_out']:+.2f} dB")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_psvae(args: argparse.Namespace) -> int:
    from .analysis.psvae import PIXEL_ONLY, PS_VAE, TEACHER
    from .commands.psvae import run_psvae

    r = run_psvae(args.out, teacher=args.teacher, seed=args.seed, steps=args.steps, n_train=args.n_train,
                  n_eval=args.n_eval, n_latents=args.n_latents, semantic_weight=args.semantic_weight, beta=args.beta,
                  device=args.device, progress=not args.quiet)
    s = r["settings"]
    print(f"teacher {r['teacher_dir']}; {s['n_train']} training scenes, {s['n_test']} held-out, {s['steps']} Trainer "
          f"steps per model, seed {s['seed']}")
    for name in (TEACHER, PS_VAE, PIXEL_ONLY):
        psnr = "" if r[name]["psnr"] is None else f", PSNR {r[name]['psnr']:.2f} dB"
        print(f"{name:>14}: probe accuracy {r[name]['probe']['mean']:.3f}{psnr}")
    t = r["targets"]
    print(f"probe gap to the teacher {t['probe_gap_points']:.1f} points (target ≤ 2), PSNR vs pixel-only "
          f"{t['psnr_gap_db']:+.2f} dB (target ≥ −1): {'met' if t['met'] else 'missed'}")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0

def cmd_lvrae(args: argparse.Namespace) -> int:
    from .commands.lvrae import run_lvrae

    r = run_lvrae(args.out, seed=args.seed, steps=args.steps, n_train=args.n_train, n_eval=args.n_eval,
                  n_latents=args.n_latents, noise_max=args.noise_max, device=args.device, progress=not args.quiet)
    print(f"{r['n_train']} training scenes, {r['n_eval']} held-out, {r['steps']} Trainer steps per model, seed "
          f"{r['seed']}; PSNR (dB) at latent noise σ = {', '.join(f'{s:g}' for s in r['sigmas'])}")
    for name, curve in r["psnr"].items():
        print(f"{name:>13}: " + "  ".join(f"{v:6.2f}" for v in curve) + f"   drop at σ {r['stated_sigma']:g}: "
              f"{r['drop'][name]:.2f}")
    print(f"drop ratio (noise-trained / plain) {r['drop_ratio']:.2f}; target ≤ 0.5 "
          f"{'met' if r['target_met'] else 'missed'}")
    print(f"outputs: {r['json']}, {r['png']}")
    return 0


def cmd_video_vae(args: argparse.Namespace) -> int:
    from .commands.video_vae import run_video_vae

    r = run_video_vae(args.out, seed=args.seed, steps=args.steps, n_train=args.n_train, n_eval=args.n_eval,
                      frames=args.frames, spatial=args.spatial, latent_channels=args.latent_channels, beta=args.beta,
                      sprites=args.sprites, device=args.device, progress=not args.quiet)
    c = r["compression"]
    print(f"{r['n_train']} training clips, {r['n_eval']} held-out, {r['steps']} Trainer steps, seed {r['seed']}; "
          f"{c['frames']} frames → {c['latent_frames']} latent frames, {c['spatial']}× fewer sites per frame, "
          f"{c['pixel_values']:,} → {c['latent_values']:,} values ({c['ratio']:.1f}×)")
    for name, m in r["methods"].items():
        print(f"{name:>20}: PSNR {m['psnr']:.2f} dB ({m['values_per_clip']:,} values per clip); per frame "
              + " ".join(f"{v:.1f}" for v in m["frame_psnr"]))
    ca = r["causality"]
    print(f"causal: {ca['causal']} (past latents bit-identical under a changed future: eval "
          f"{ca['eval']['past_bit_identical']}, train {ca['train']['past_bit_identical']})")
    print(f"outputs: {r['json']}, {r['png']}, {r['model']}")
    return 0


def cmd_ddmi(args: argparse.Namespace) -> int:
    from .commands.ddmi import run_ddmi

    r = run_ddmi(args.out, world=args.world, seed=args.seed, steps=args.steps, diffusion_steps=args.diffusion_steps,
                 n_train=args.n_train, n_eval=args.n_eval, vit=args.vit, device=args.device,
                 progress=not args.quiet)
    rec = r["reconstruction"]
    print(f"{r['world']}: {r['n_train']} training signals, {r['n_eval']} held-out, {r['steps']} D2C-VAE steps, "
          f"seed {r['seed']}")
    print(f"reconstruction PSNR {rec['psnr_1x']:.2f} dB at 1× (mean image {rec['mean_image_psnr_1x']:.2f}), "
          f"{rec['psnr_2x']:.2f} dB at 2× (bilinear upsampling of the true input {rec['bilinear_psnr_2x']:.2f})")
    for name, s in r.get("samples", {}).items():
        print(f"{name:>24}: coverage {s['coverage']:.3f}, entropy {s['entropy']:.2f}, confidence "
              f"{s['confidence']:.3f}, Fréchet {s['frechet']:.1f}")
    print(f"outputs: {r['json']}, {r['png']}, models in {r['models']}")
    return 0


def cmd_epg(args: argparse.Namespace) -> int:
    from .commands.epg import run_epg

    r = run_epg(args.out, judge=args.judge, seed=args.seed, steps=args.steps, pretrain_steps=args.pretrain_steps,
                eval_every=args.eval_every, n_train=args.n_train, n_eval=args.n_eval, n_samples=args.n_samples,
                threshold=args.threshold, device=args.device, progress=not args.quiet)
    s = r["settings"]
    print(f"{s['n_train']} training scenes; stage 1 {s['pretrain_steps']} steps ({r['pretraining']['seconds']:.0f} s), "
          f"stage 2 {s['steps']} steps per run; FD of {s['n_samples']} samples to {s['n_eval']} real test scenes")
    for name, run in r["runs"].items():
        reached = run["steps_to_threshold"]
        total = run["total_steps_to_threshold"]
        when = "not reached" if reached is None else f"reached at step {reached} (total with stage 1: {total})"
        curve = "  ".join(f"{p['step']}: {p['frechet']:.1f}" for p in run["curve"])
        print(f"{name:>26}: {curve}; threshold {r['threshold']:g} {when}")
    print(f"real-vs-real floor {r['floor_frechet']:.1f}, real scenes at quarter resolution "
          f"{r['quarter_resolution_frechet']:.1f}")
    print(f"outputs: {r['json']}, {r['png']}, {r['model']}")
    return 0


def cmd_vlsae(args: argparse.Namespace) -> int:
    from .commands.vlsae import run_vlsae

    r = run_vlsae(args.clip, args.out, pairs=args.pairs, eval_pairs=args.eval_pairs, latents=args.latents, k=args.k,
                  steps=args.steps, seed=args.seed, device=args.device, progress=not args.quiet)
    s = r["settings"]
    print(f"{s['pairs']} train pairs, {s['eval_pairs']} held-out pairs with full captions; {s['latents']} latents, "
          f"k {s['k']}, {s['steps']} Trainer steps")
    width = max(len(name) for name in r["methods"])
    print(f"{'method':<{width}}  shared  pair-jaccard  purity  recall@1")
    for name, m in r["methods"].items():
        if "shared_fraction" not in m:  # the raw embeddings: retrieval only
            print(f"{name:<{width}}  {'':6}  {'':12}  {'':6}  {m['recall_at_1']:8.3f}")
            continue
        purity = "–" if m["purity"] is None else f"{m['purity']:.3f}"
        print(f"{name:<{width}}  {m['shared_fraction']:6.3f}  {m['pair_jaccard']:12.3f}  {purity:>6}  "
              f"{m['recall_at_1']:8.3f}")
    print(f"outputs: {r['json']}, {r['png']}, {r['model']}")
    return 0


def cmd_cktgen(args: argparse.Namespace) -> int:
    from .commands.cktgen import run_cktgen

    r = run_cktgen(args.out, seed=args.seed, steps=args.steps, n_train=args.n_train, targets=args.targets,
                   samples=args.samples, tolerance=args.tolerance, device=args.device, progress=not args.quiet)
    s = r["settings"]
    print(f"{s['n_train']} training circuits, {s['steps']} Trainer steps, {s['targets']} held-out target "
          f"specifications × {s['samples']} designs, tolerance ±{s['tolerance']:.0%}, seed {s['seed']}")
    width = max(len(name) for name in r["methods"])
    print(f"{'method':<{width}}  validity  novelty  Spec-Acc  novel & within tolerance")
    for name, m in r["methods"].items():
        novelty = "–" if m["novelty"] is None else f"{m['novelty']:.3f}"  # no valid circuit to judge
        print(f"{name:<{width}}  {m['validity']:8.3f}  {novelty:>7}  {m['spec_acc']:8.3f}  {m['novel_spec_acc']:.3f}")
    print(f"held-out circuits reconstructed exactly: {r['reconstruction_held_out']:.3f}")
    print(f"outputs: {r['json']}, {r['png']}, {r['model']}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from .commands.data_analysis import run_embed

    r = run_embed(args.sae_dir, args.text, args.out, lm=args.lm, hook=args.hook, pooling=args.pooling,
                  binary=args.binary, max_documents=args.max_documents, batch_size=args.batch_size,
                  max_length=args.max_length, device=args.device, progress=not args.quiet)
    speed = f"{r['docs_per_second']:.1f} documents/s" if r["docs_per_second"] else "speed not measured"
    print(f"embedded {r['n_documents']} documents with {r['n_latents']} latents at {r['hook']} "
          f"({r['settings']['pooling']} pooling{', binary' if r['settings']['binary'] else ''}): {speed}; "
          f"{r['mean_active_latents']:.1f} active latents per document on average; "
          f"{r['alive_latents']} latents fire at least once")
    print(f"outputs: {r['embeddings']}, {r['json']}, {r['png']}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from .commands.data_analysis import run_diff

    r = run_diff(args.a, args.b, args.out, text_a=args.text_a, text_b=args.text_b, sae_dir=args.sae, lm=args.lm,
                 hook=args.hook, by=args.by, min_coverage=args.min_coverage, top=args.top, threshold=args.threshold,
                 n_examples=args.n_examples, max_length=args.max_length, device=args.device, progress=not args.quiet)
    s = r["settings"]
    print(f"latents firing most differently in B ({r['b']['n_documents']} documents) than in A "
          f"({r['a']['n_documents']}), by |{s['by']}| difference; {r['covered_latents']} of {r['n_latents']} "
          f"latents fire in ≥ {100 * s['min_coverage']:g}% of A or B:")
    print(f"{'rank':>4} {'latent':>6} {'in A':>7} {'in B':>7} {'B − A':>8} {'log ratio':>9}  label")
    for row in r["latents"]:
        print(f"{row['rank']:>4} {row['latent']:>6} {100 * row['frequency_a']:>6.1f}% {100 * row['frequency_b']:>6.1f}%"
              f" {100 * row['absolute']:>+6.1f}pt {row['relative']:>+9.2f}  {row['label'] or ''}")
    print(f"outputs: {r['csv']}, {r['json']}, {r['html']}")
    return 0


def cmd_correlations(args: argparse.Namespace) -> int:
    from .commands.data_analysis import run_correlations

    r = run_correlations(args.embeddings, args.out, top=args.top, min_count=args.min_count, threshold=args.threshold,
                         text=args.text, sae_dir=args.sae, lm=args.lm, hook=args.hook, max_length=args.max_length,
                         device=args.device, progress=not args.quiet)
    print(f"most correlated latent pairs (NPMI) over {r['n_documents']} documents; {r['latents_considered']} of "
          f"{r['n_latents']} latents fire in ≥ {r['settings']['min_count']} documents:")
    print(f"{'rank':>4} {'latents':>11} {'NPMI':>6} {'documents (i, j, both)':>24}  labels")
    for p in r["pairs"]:
        pair = f"{p['latent_i']}, {p['latent_j']}"
        docs = f"{p['documents_i']}, {p['documents_j']}, {p['documents_both']}"
        named = p["label_i"] or p["label_j"]
        labels = " | ".join(label or "?" for label in (p["label_i"], p["label_j"])) if named else ""
        print(f"{p['rank']:>4} {pair:>11} {p['npmi']:>6.3f} {docs:>24}  {labels}")
    print(f"outputs: {r['csv']}, {r['json']}, {r['png']}")
    return 0


def _doc_ids(values: list[str] | None) -> list[str] | None:
    """Document ids given as `1 2 3`, `1,2,3` or a mix of both."""
    if values is None:
        return None
    return [doc_id.strip() for value in values for doc_id in value.split(",") if doc_id.strip()]


def cmd_cluster(args: argparse.Namespace) -> int:
    from .commands.data_cluster import run_cluster

    r = run_cluster(args.embeddings, args.out, positive=_doc_ids(args.positive), negative=_doc_ids(args.negative),
                    examples=args.examples_file, n_latents=args.n_latents, n_clusters=args.n_clusters,
                    min_coverage=args.min_coverage, seed=args.seed)
    values = r["axis"]["values"]
    print(f"clustered {r['n_documents']} documents into {r['settings']['n_clusters']} clusters on "
          f"{len(r['latents'])} latents of the axis {' / '.join(values)}: "
          + ", ".join(f"{x['latent']} ({x['value']})" for x in r["latents"]))
    print(f"{'cluster':>7} {'size':>6}  examples " + ", ".join(values))
    for c in r["clusters"]:
        print(f"{c['cluster']:>7} {c['size']:>6}  " + ", ".join(str(c["examples"][v]) for v in values))
    print(f"outputs: {r['csv']}, {r['json']}, {r['png']}")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from .commands.data_cluster import run_retrieve

    r = run_retrieve(args.embeddings, args.out, query=_doc_ids(args.query), n_latents=args.n_latents, top=args.top,
                     text=args.text)
    print(f"ranked {r['n_documents'] - len(r['query'])} documents by {len(r['latents'])} latents of the "
          f"{len(r['query'])} examples: " + ", ".join(str(x["latent"]) for x in r["latents"]))
    print(f"{'rank':>4} {'document':>8} {'score':>6}  text")
    for row in r["ranking"]:
        text = row.get("text")
        shown = "" if text is None else (text if len(text) <= 80 else text[:79] + "…")
        print(f"{row['rank']:>4} {row['doc_id']:>8} {row['score']:>6.3f}  {shown}")
    print(f"outputs: {r['csv']}, {r['json']}, {r['html']}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


MODEL_DIR_HELP = ("a saved model directory: aekit's (config.json + model.safetensors, e.g. RUN/model) "
                  "or a SAELens or sparsify SAE directory")
QUIET_HELP = "no progress bars; default: off (progress bars shown)"
CORPUS_FORMATS = ".txt (one document per line), .jsonl ('text' field) or .parquet ('text' column, needs pyarrow)"


def _add_lm_corpus_flags(group, hook_role: str) -> None:
    """--lm, --hook, --text and --max-length: a language model read at one hook on a corpus (optional, all three
    together)."""
    group.add_argument("--lm", metavar="MODEL",
                       help="language model: a local Hugging Face directory or a hub name; default: none")
    group.add_argument("--hook", metavar="NAME", help=f"{hook_role}, e.g. blocks.6.hook_resid_post; default: none")
    group.add_argument("--text", metavar="FILE", help=f"corpus: {CORPUS_FORMATS}; default: none")
    _add_max_length_flag(group)


def _add_max_length_flag(group, when: str = "") -> None:
    """--max-length: tokens per document (`when`: e.g. " when labelling"), default 128."""
    group.add_argument("--max-length", type=_positive_int, default=128, metavar="N",
                       help=f"tokens per document{when}, longer ones are truncated; default: 128")


def _add_sae_lm_flags(group) -> None:
    """--lm and --hook of an SAE's language model, defaulting to those recorded in the SAE's provenance."""
    group.add_argument("--lm", metavar="MODEL",
                       help="language model: a local Hugging Face directory or a hub name; default: the one recorded "
                            "in the SAE's provenance")
    group.add_argument("--hook", metavar="NAME",
                       help="hook the SAE reads, e.g. blocks.6.hook_resid_post; default: the one recorded in the "
                            "SAE's provenance")


def _add_labelling_flags(group, labels: str) -> None:
    """--sae, --lm, --hook, --max-length and --device: label latents by their top-activating tokens (`labels`: which
    latents, in which documents)."""
    group.add_argument("--sae", metavar="SAE_DIR",
                       help=f"the SAE of the embeddings: label {labels}; default: none (no labels)")
    group.add_argument("--lm", metavar="MODEL",
                       help="language model for --sae: a local Hugging Face directory or a hub name; default: the "
                            "one recorded in the SAE's provenance")
    group.add_argument("--hook", metavar="NAME",
                       help="hook the SAE reads; default: the SAE's provenance, else the hook of the embeddings")
    _add_max_length_flag(group, " when labelling")
    _add_device_flag(group, " for labelling", "cpu or cuda")


def _add_device_flag(group, role: str = "", examples: str = "cpu, cuda or cuda:1") -> None:
    """--device: the torch device (`role`: e.g. " for the LM"), default cuda when available."""
    group.add_argument("--device", default=None, metavar="DEVICE",
                       help=f"torch device{role}, e.g. {examples}; default: cuda when available, else cpu")


def _add_embeddings_arg(parser: argparse.ArgumentParser) -> None:
    """The EMBEDDINGS positional: what `aekit embed` wrote."""
    parser.add_argument("embeddings", metavar="EMBEDDINGS",
                        help="an `aekit embed` output directory or its embeddings.safetensors")


def _add_out_dir_flag(parser: argparse.ArgumentParser, default: str, *files: str) -> None:
    """--out: the directory a command writes `files` into, replacing them."""
    names = f"{', '.join(files[:-1])} and {files[-1]}"
    parser.add_argument("--out", default=default, metavar="DIR",
                        help=f"directory for {names} (created if missing; those files are replaced); "
                             f"default: {default}")


def _add_scene_study_flags(parser: argparse.ArgumentParser, measured: str, train_note: str = "") -> None:
    """--seed, --steps, --n-train, --n-eval and --n-latents of the conv-autoencoder studies on the scene world."""
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seeds the scenes, the initial weights, the batch order and the noise, ≥ 0; default: 0")
    parser.add_argument("--steps", type=_positive_int, default=1000, metavar="N",
                        help="Trainer steps per model (batch 64, Adam lr 0.001); default: 1000")
    parser.add_argument("--n-train", type=_positive_int, default=4000, metavar="N",
                        help=f"training scenes{train_note}, at least 64; default: 4000")
    parser.add_argument("--n-eval", type=_positive_int, default=1000, metavar="N",
                        help=f"held-out scenes for {measured}, at least 2; default: 1000")
    parser.add_argument("--n-latents", type=_positive_int, default=32, metavar="N",
                        help="width of the latent vector; default: 32")


def build_parser() -> argparse.ArgumentParser:
    """The whole `aekit` command line; building it runs nothing (the docs' CLI reference is generated from it)."""
    parser = _Parser(prog="aekit", description="Interpretable latent codes with autoencoders: train sparse "
                     "autoencoders on activations, evaluate and report on them, and run the ground-truth demos.",
                     epilog="`aekit COMMAND --help` describes a command's options. Exit codes: 0 success, "
                     "2 a mistake in the command line, a setting or an input file (one line on stderr), "
                     "130 interrupted.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}",
                        help="print aekit's version and exit")
    sub = _add_commands(parser, "command")

    p = _command(sub, "train", "train a sparse autoencoder on an array file, an activation store or a language "
                 "model's activations on the fly",
                 "Settings come from --config, then from the flags below (a flag overrides the file); "
                 "the run directory receives model/, checkpoints/, metrics.json, metrics.jsonl and training.png.")
    p.add_argument("--config", metavar="FILE",
                   help="YAML or JSON file of settings: model: and train: sections (or their field names at the "
                        "top level), plus data: and out:; default: none (flags and built-in defaults only)")
    p.add_argument("--data", metavar="PATH",
                   help="training data: an array file (.npy, .npz, .safetensors, .pt; rows × features) or an "
                        "activation store directory; default: data: in --config; required unless "
                        "--lm/--hook/--text are given")
    p.add_argument("--out", metavar="DIR",
                   help="new or empty directory for the run; with --resume, the run to continue; "
                        "default: out: in --config; required")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest checkpoint, with the settings and data saved "
                        "there; default: off (start a new run)")
    on_the_fly = p.add_argument_group("activations on the fly (instead of --data; give all three)")
    _add_lm_corpus_flags(on_the_fly, "hook whose activations are trained on")
    on_the_fly.add_argument("--max-documents", type=_positive_int, default=None, metavar="N",
                            help="read only the first N documents of --text; default: all of them")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = _command(sub, "eval", "reconstruction and sparsity metrics of a saved model on activations, or its spliced "
                 "language-model loss on a corpus",
                 "Give --data, or --lm, --hook and --text for the spliced evaluation (CE loss recovered, KL).")
    p.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    p.add_argument("--data", metavar="PATH",
                   help="activations to reconstruct: an array file (.npy, .npz, .safetensors, .pt) or an activation "
                        "store directory; default: none (then --lm/--hook/--text are required)")
    spliced = p.add_argument_group("spliced evaluation (instead of --data; give all three)")
    _add_lm_corpus_flags(spliced, "hook the SAE replaces")
    spliced.add_argument("--max-documents", type=_positive_int, default=256, metavar="N",
                         help="evaluate on the first N documents of --text; default: 256")
    p.add_argument("--max-rows", type=_positive_int, default=262144, metavar="N",
                   help="evaluate on a random sample of at most N rows of --data; default: 262144")
    p.add_argument("--json", action="store_true",
                   help="print every metric as JSON; default: off (a table of the main metrics)")
    p.set_defaults(func=cmd_eval)

    p = _command(sub, "info", "print a saved model's configuration, provenance and tensor shapes as JSON")
    p.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    p.set_defaults(func=cmd_info)

    p = _command(sub, "demo", "the whole pipeline on bundled ground truth (toy language model or feature world)",
                 "Runs in minutes on a CPU and prints how well the SAE recovers the known truth.")
    p.add_argument("--out", default="demo-out", metavar="DIR",
                   help="directory for the outputs (metrics.json, report, run); a previous demo output there is "
                        "replaced, any other non-empty directory refused; default: demo-out")
    p.add_argument("--world", choices=["language", "features"], default="language",
                   help="language: the bundled toy GPT-2 end to end (cache, SAE, spliced loss, concepts, report); "
                        "features: a synthetic feature world with known feature directions; default: language")
    p.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                   help="SAE training steps; default: 1500 (language) or 4000 (features)")
    p.add_argument("--documents", type=_positive_int, default=6000, metavar="N",
                   help="language: generated documents cached for training; default: 6000")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the data and the SAE; the same seed gives the same numbers on CPU; default: 0")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_demo)

    p = _command(sub, "cache", "run a text corpus through a Hugging Face causal LM, or images through a ViT or CLIP, "
                 "into an activation store",
                 "Text: every real token (not padding or BOS) becomes one row of the store. Images (--images or "
                 "--world): every selected token (--tokens) of every image becomes one row, image by image.")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="language model (a local Hugging Face directory or a hub name), or a local ViT or CLIP "
                        "directory for images; required")
    p.add_argument("--hook", required=True, metavar="NAME",
                   help="hook to record, e.g. blocks.6.hook_resid_post or blocks.2.attn.hook_z; required")
    p.add_argument("--text", default=None, metavar="FILE",
                   help=f"corpus: {CORPUS_FORMATS}; default: none (one of --text, --images, --world is required)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="a folder of images (png, jpg, ...; sorted by name, resized to the model's input); "
                        "default: none")
    p.add_argument("--world", default=None, choices=["scenes"],
                   help="seeded scenes of the scene world (aekit.worlds.scenes) instead of files; default: none")
    p.add_argument("--n", type=_positive_int, default=10_000, metavar="N",
                   help="--world: number of scenes; default: 10000")
    p.add_argument("--split", choices=["train", "test", "ood", "all"], default="train",
                   help="--world: which scenes (held-out test tenth, held-out shape-hue pairs); default: train")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="--world: seeds the scenes; default: 0")
    p.add_argument("--tokens", choices=["all", "cls", "patches"], default="all",
                   help="images: which tokens become rows; default: all")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new (or empty) activation store directory; required")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                   help="documents or images per forward pass; default: 8 documents, 64 images")
    p.add_argument("--max-length", type=_positive_int, default=None, metavar="N",
                   help="tokens per document, longer ones are truncated; default: min(512, the model's context "
                        "length)")
    p.add_argument("--max-tokens", type=_positive_int, default=None, metavar="N",
                   help="stop after storing N tokens; default: no limit (the whole corpus)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="dtype of the model weights and of the stored activations; default: float32")
    _add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_cache)

    p = _command(sub, "report", "write a self-contained HTML feature report of an SAE on a text corpus",
                 "For each feature shown: its density, top-activating contexts and the tokens it promotes and "
                 "suppresses.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    p.add_argument("--text", required=True, metavar="FILE", help=f"corpus: {CORPUS_FORMATS}; required")
    p.add_argument("--out", default="report.html", metavar="FILE",
                   help="HTML file to write (replaced if it exists); default: report.html")
    _add_sae_lm_flags(p)
    p.add_argument("--features", metavar="LIST",
                   help="comma-separated feature indices to show, e.g. 3,17,42; default: --n-features features "
                        "spread over activation density")
    p.add_argument("--n-features", type=_positive_int, default=32, metavar="N",
                   help="features shown when --features is not given; default: 32")
    p.add_argument("--max-documents", type=_positive_int, default=2000, metavar="N",
                   help="read only the first N documents of --text; default: 2000")
    p.add_argument("--max-tokens", type=_positive_int, default=50_000, metavar="N",
                   help="collect feature activations on at most N tokens; default: 50000")
    _add_max_length_flag(p)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_report)

    world = _command(sub, "world", "the toy worlds' bundled models: a GPT-2, a ViT and a CLIP",
                     "A language whose concepts and task answers are known and a small GPT-2 trained on it; a scene "
                     "world whose factors are known and a small ViT and CLIP trained on it.")
    world_sub = _add_commands(world, "world_command")
    p = _command(world_sub, "train-lm", "train the toy GPT-2 on the toy language (CPU, seeded)",
                 "The defaults reproduce the bundled model.")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new directory for the Hugging Face model (weights, tokenizer, training log, eval.json); "
                        "required")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    from .worlds.toy_lm import ToyLMConfig

    _add_config_flags(p, (("toy_lm", ToyLMConfig),), title="toy model settings")
    p.set_defaults(func=cmd_world_train_lm)
    from .worlds.toy_vision import ToyCLIPConfig, ToyViTConfig

    for name, section, config_class, summary in (
            ("train-vit", "toy_vit", ToyViTConfig, "train the toy ViT to read the six factors of 32×32 scenes"),
            ("train-clip", "toy_clip", ToyCLIPConfig, "train the toy CLIP on scenes paired with generated captions")):
        p = _command(world_sub, name, f"{summary} (CPU, seeded)",
                     "A Hugging Face model on the 3D Shapes scene world (aekit.worlds.scenes); the defaults reproduce "
                     "the bundled model. Writes eval.json: accuracy on held-out test scenes and on held-out (shape, "
                     "hue) pairs.")
        p.add_argument("--out", required=True, metavar="DIR",
                       help="new directory for the Hugging Face model (weights, preprocessor config, training log, "
                            "eval.json); required")
        p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
        _add_config_flags(p, ((section, config_class),), title="toy model settings")
        p.set_defaults(func=cmd_world_train_vision)
    p = _command(world_sub, "eval-lm", "held-out accuracy per task family of a toy LM")
    p.add_argument("model_dir", nargs="?", default=None, metavar="MODEL_DIR",
                   help="toy LM directory written by `aekit world train-lm`; default: the bundled toy GPT-2")
    p.add_argument("--n", type=_positive_int, default=500, metavar="N",
                   help="held-out prompts per task family; default: 500")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the held-out prompts; default: 0")
    p.add_argument("--json", action="store_true", help="print the result as JSON; default: off (a table)")
    p.set_defaults(func=cmd_world_eval_lm)

    p = _command(sub, "disentangle", "train disentanglement models on a factor world over seeds; metric table",
                 "Every model gets the same data and budget and is scored on held-out images (MIG, DCI, SAP, "
                 "InfoM/C/E, PSNR); prints the table (mean ± 95% t-interval over seeds) and writes latent traversal "
                 "images.")
    p.add_argument("--world", default="shapes3d", metavar="NAME",
                   help="factor world: shapes3d or dsprites; default: shapes3d")
    p.add_argument("--models", default="ae,betavae,qlae,xfactors", metavar="LIST",
                   help="comma-separated models from ae, betavae, betatcvae, vqvae, qlae, xfactors; "
                        "default: ae,betavae,qlae,xfactors")
    p.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                   help="seeds per model (seeds 0 to N-1); default: 3")
    p.add_argument("--steps", type=_positive_int, default=2000, metavar="N",
                   help="training steps per model and seed; default: 2000")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N", help="images per step; default: 64")
    p.add_argument("--n-train", type=_positive_int, default=30_000, metavar="N",
                   help="world images to train on; default: 30000")
    p.add_argument("--n-eval", type=_positive_int, default=10_000, metavar="N",
                   help="held-out images the metrics are computed on; default: 10000")
    p.add_argument("--lr", type=float, default=1e-3, metavar="X", help="learning rate; default: 0.001")
    p.add_argument("--out", default="disentangle-out", metavar="DIR",
                   help="directory for runs/, results.json, table.md and traversals/; runs already finished there "
                        "with the same settings are reused; default: disentangle-out")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_disentangle)

    p = _command(sub, "circuits", "find a task's circuit of attention heads in a causal LM with discrete SAE codes",
                 "The method of O'Neill and Bui (2024): one SAE on every head's output, a head scored by the codes it "
                 "shows only on positive prompts. Optionally measures the exhaustive patching ground truth and the "
                 "ACDC, attribution-patching and HISP baselines; writes circuits.json and circuit.png.")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="language model: a local Hugging Face directory or a hub name; default: the bundled toy GPT-2")
    p.add_argument("--task", default="ioi", choices=["ioi", "greater_than", "docstring", "induction"],  # = TASKS
                   help="toy-language task whose prompt pairs are generated (needs the toy tokenizer's words); "
                        "default: ioi")
    p.add_argument("--prompts", metavar="FILE", default=None,
                   help="JSONL prompt pairs instead of --task: one object per line with prompt, corrupted (same "
                        "token length), answer and optionally wrong (single tokens); default: none (use --task)")
    p.add_argument("--n-prompts", type=_positive_int, default=None, metavar="N",
                   help="prompt pairs generated for --task; default: 10 (a --prompts file is used whole)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the prompts and the SAE; the same seed gives the same numbers on CPU; default: 0")
    p.add_argument("--n-latents", type=_positive_int, default=200, metavar="N",
                   help="latents of the SAE shared by all heads; default: 200")
    p.add_argument("--l1", type=float, default=0.02, metavar="X", help="L1 coefficient of the SAE; default: 0.02")
    p.add_argument("--epochs", type=_positive_int, default=500, metavar="N",
                   help="full-batch training steps of the SAE; default: 500")
    p.add_argument("--threshold", type=float, default=1.0, metavar="X",
                   help="a head (and an edge) is in the circuit when its score (codes seen on positives only) "
                        "reaches X; default: 1")
    p.add_argument("--size", type=_positive_int, default=None, metavar="N",
                   help="select the N highest-scoring heads instead of thresholding heads (edges still use "
                        "--threshold); default: none (threshold)")
    p.add_argument("--ground-truth", action="store_true",
                   help="also measure the true circuit by ablating every head and path-patching every head pair on "
                        "200 other prompts of --task, and score each ranking by ROC AUC; default: off")
    p.add_argument("--baselines", action="store_true",
                   help="also run ACDC, attribution patching and HISP on the same prompts; default: off")
    p.add_argument("--out", default="circuits-out", metavar="DIR",
                   help="directory for circuits.json and circuit.png (created if missing; those two files are "
                        "replaced); default: circuits-out")
    _add_device_flag(p, " for the LM")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_circuits)

    p = _command(sub, "embed", "embed every document of a corpus as the pooled latents of an SAE on a language model",
                 "One sparse row per document (Jiang et al. 2025): the SAE's codes of the document's tokens pooled "
                 "over tokens. Writes embeddings.safetensors (document ids: 0-based positions among the corpus's "
                 "non-empty documents), embed.json and frequency.png; read by `aekit diff` and `aekit correlations`.")
    p.add_argument("sae_dir", metavar="SAE_DIR", help=MODEL_DIR_HELP)
    p.add_argument("--text", required=True, metavar="FILE", help=f"corpus: {CORPUS_FORMATS}; required")
    _add_out_dir_flag(p, "embed-out", "embeddings.safetensors", "embed.json", "frequency.png")
    _add_sae_lm_flags(p)
    p.add_argument("--pooling", choices=["max", "mean", "sum", "count"], default="max",  # = POOLINGS
                   help="how a latent's token codes become one value per document: max, mean, sum or count (tokens "
                        "where it fires); default: max")
    p.add_argument("--binary", action="store_true",
                   help="store only whether each latent fires in the document (1) or not; default: off (pooled "
                        "values)")
    p.add_argument("--max-documents", type=_positive_int, default=None, metavar="N",
                   help="embed only the first N documents of --text; default: all of them")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="documents per forward pass; default: 32")
    _add_max_length_flag(p)
    _add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_embed)

    p = _command(sub, "diff", "find the SAE latents that fire in more (or fewer) documents of corpus B than of A",
                 "Reads two `aekit embed` outputs made with the same SAE and ranks latents by the difference of "
                 "their document frequencies; writes diff.csv, diff.json and diff.html.")
    p.add_argument("a", metavar="A", help="embeddings of corpus A: an `aekit embed` output directory or its "
                   "embeddings.safetensors")
    p.add_argument("b", metavar="B", help="embeddings of corpus B, made with the same SAE and pooling as A")
    _add_out_dir_flag(p, "diff-out", "diff.csv", "diff.json", "diff.html")
    p.add_argument("--by", choices=["absolute", "relative"], default="absolute",  # = DIFF_BY
                   help="rank by |f_B − f_A| (absolute) or |log((f_B + 0.001) / (f_A + 0.001))| (relative), f the "
                        "fraction of documents where the latent fires; default: absolute")
    p.add_argument("--min-coverage", type=float, default=0.02, metavar="X",
                   help="rank only latents firing in at least this fraction of A or of B (without it the relative "
                        "ranking is led by rare noise); default: 0.02")
    p.add_argument("--top", type=_positive_int, default=20, metavar="N", help="latents reported; default: 20")
    p.add_argument("--threshold", type=float, default=0.0, metavar="X",
                   help="a latent fires in a document when its pooled value is above X (with count pooling, 1 "
                        "means at least two tokens); default: 0")
    p.add_argument("--n-examples", type=_positive_int, default=3, metavar="N",
                   help="documents shown per latent and corpus, those where it is strongest; default: 3")
    labelled = p.add_argument_group("showing documents and labelling latents (optional)")
    labelled.add_argument("--text-a", metavar="FILE",
                          help="corpus A as given to `aekit embed`, to show its documents as text; default: none "
                               "(document ids only)")
    labelled.add_argument("--text-b", metavar="FILE",
                          help="corpus B as given to `aekit embed`, to show its documents as text; default: none "
                               "(document ids only)")
    _add_labelling_flags(labelled, "each latent by its most frequent top-activating tokens in the documents shown "
                                   "(needs --text-a and/or --text-b)")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_diff)

    p = _command(sub, "correlations", "find the SAE latents that fire in the same documents (NPMI)",
                 "Reads one `aekit embed` output, binarises each latent per document and ranks latent pairs by "
                 "normalised pointwise mutual information; writes correlations.csv, correlations.json and npmi.png.")
    _add_embeddings_arg(p)
    _add_out_dir_flag(p, "correlations-out", "correlations.csv", "correlations.json", "npmi.png")
    p.add_argument("--top", type=_positive_int, default=20, metavar="N", help="latent pairs reported; default: 20")
    p.add_argument("--min-count", type=_positive_int, default=5, metavar="N",
                   help="leave out latents firing in fewer than N documents (their NPMI is noise); default: 5")
    p.add_argument("--threshold", type=float, default=0.0, metavar="X",
                   help="a latent fires in a document when its pooled value is above X; default: 0")
    labelled = p.add_argument_group("labelling latents (optional)")
    labelled.add_argument("--text", metavar="FILE",
                          help="the corpus given to `aekit embed`, needed by --sae; default: none")
    _add_labelling_flags(labelled, "each latent of the pairs by its most frequent top-activating tokens in its "
                                   "five strongest documents")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_correlations)

    p = _command(sub, "cluster", "cluster an embedded corpus along an axis shown by a few example documents",
                 "Chooses the SAE latents whose firing rate differs most between the examples of the axis's values "
                 "and runs k-means on those latents only, so documents group by that axis rather than by what "
                 "dominates them (Jiang et al. 2025); writes clusters.csv, clusters.json and clusters.png.")
    _add_embeddings_arg(p)
    p.add_argument("--positive", nargs="+", metavar="ID",
                   help="example documents of one side of the axis: document ids (for `aekit embed`, 0-based "
                        "corpus positions) separated by spaces or commas, at least 2; use with --negative; "
                        "default: none")
    p.add_argument("--negative", nargs="+", metavar="ID",
                   help="example documents of the other side of the axis, at least 2; default: none")
    p.add_argument("--examples-file", metavar="FILE",
                   help="examples of an axis with any number of values instead of --positive/--negative: a .json "
                        "object mapping document id to value, or a .csv with columns doc_id and value, at least 2 "
                        "examples per value; default: none")
    p.add_argument("--n-latents", type=_positive_int, default=10, metavar="N",  # = DEFAULT_AXIS_LATENTS
                   help="axis latents to cluster on, the values taking turns; default: 10")
    p.add_argument("--n-clusters", type=int, default=None, metavar="N",
                   help="k-means clusters, at least 2; default: the number of values with examples (2 for "
                        "--positive/--negative)")
    p.add_argument("--min-coverage", type=float, default=0.02, metavar="X",  # = DEFAULT_MIN_COVERAGE
                   help="skip latents firing in less than this fraction of all documents (with few examples rare "
                        "latents look decisive by chance); default: 0.02")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds k-means and the plot's jitter; the same seed gives the same clusters; default: 0")
    _add_out_dir_flag(p, "cluster-out", "clusters.csv", "clusters.json", "clusters.png")
    p.set_defaults(func=cmd_cluster)

    p = _command(sub, "retrieve", "rank the documents of an embedded corpus by a property shown by a few examples",
                 "Takes the SAE latents that fire on the examples far more often than on the corpus and ranks every "
                 "other document by how strongly it shows them (Jiang et al. 2025); writes retrieved.csv (the whole "
                 "ranking), retrieved.json and retrieved.html (the top documents).")
    _add_embeddings_arg(p)
    p.add_argument("--query", nargs="+", required=True, metavar="ID",
                   help="example documents that have the property: document ids (for `aekit embed`, 0-based "
                        "corpus positions) separated by spaces or commas, at least 2; required")
    p.add_argument("--n-latents", type=_positive_int, default=20, metavar="N",  # = DEFAULT_QUERY_LATENTS
                   help="query latents: the highest by (fraction of examples where it fires − fraction of the "
                        "corpus); default: 20")
    p.add_argument("--top", type=_positive_int, default=20, metavar="N",
                   help="documents printed and shown in retrieved.json and retrieved.html; default: 20")
    p.add_argument("--text", metavar="FILE",
                   help="the corpus given to `aekit embed`, to show the documents as text; default: none (document "
                        "ids only)")
    _add_out_dir_flag(p, "retrieve-out", "retrieved.csv", "retrieved.json", "retrieved.html")
    p.set_defaults(func=cmd_retrieve)

    # -- select (data selection) --
    p = _command(sub, "select", "select the documents of an embedded corpus most like a few target examples",
                 "Task-specific data selection with SAE codes (2025): candidates are ranked by the generalised "
                 "Jaccard similarity of their pooled codes to the mean of the examples' codes, or by the BM25 or "
                 "random baselines; writes selected.csv, selected.json and selected.png.")
    _add_embeddings_arg(p)
    wanted = p.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--examples", nargs="+", metavar="ID", default=None,
                        help="document ids of the target examples, e.g. 3 17 42 (they are never selected "
                             "themselves); default: none, give this or --examples-file")
    wanted.add_argument("--examples-file", metavar="FILE", default=None,
                        help="text file of the examples' document ids, one per line; default: none, give this or "
                             "--examples")
    p.add_argument("--budget", type=_positive_int, required=True, metavar="N",
                   help="number of documents to select; required")
    p.add_argument("--method", choices=["jaccard", "bm25", "random"], default="jaccard",  # = CLI_METHODS
                   help="jaccard: generalised Jaccard of the SAE codes to the examples' mean; bm25: Okapi BM25 of the "
                        "text (k1 1.5, b 0.75) with the examples' text as the query, needs --text; random: a seeded "
                        "random selection; default: jaccard")
    p.add_argument("--text", metavar="FILE", default=None,
                   help=f"the corpus given to `aekit embed` ({CORPUS_FORMATS}), for bm25 and to show the selected "
                        "texts in selected.csv; default: none")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the random method; default: 0")
    _add_out_dir_flag(p, "select-out", "selected.csv", "selected.json", "selected.png")
    p.set_defaults(func=cmd_select)

    # -- criticality (initialisation at criticality) --
    p = _command(sub, "criticality", "measure MLPs initialised at criticality and off it, layer by layer",
                 "Roberts, Yaida and Hanin (2022): weights N(0, C_W/fan_in) and biases N(0, C_b) at the critical "
                 "(C_b, C_W) of each activation keep the mean squared preactivation E[z²] and the backward signal "
                 "from growing or shrinking exponentially with depth; MLPs at C_W × 0.8, × 1 and × 1.25 are measured "
                 "on the standardised scikit-learn digits; writes criticality.json and criticality.png.")
    p.add_argument("--activations", default="relu,tanh,gelu,linear", metavar="LIST",
                   help="comma-separated activations, each of relu, tanh, gelu and linear; default: "
                        "relu,tanh,gelu,linear")
    p.add_argument("--depth", type=_positive_int, default=24, metavar="N",
                   help="nn.Linear layers per MLP, at least 2; default: 24")
    p.add_argument("--width", type=_positive_int, default=256, metavar="N", help="units per layer; default: 256")
    p.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                   help="networks averaged per activation and C_W scale (seeds 0 to N-1); finite width makes one "
                        "network's E[z²] wander, so flatness within a few per cent needs many; default: 3")
    _add_out_dir_flag(p, "criticality-out", "criticality.json", "criticality.png")
    p.set_defaults(func=cmd_criticality)

    # -- denoiser (low-rank denoisers and subspace clustering) --
    p = _command(sub, "denoiser", "train low-rank denoisers on a mixture of low-rank Gaussians at growing training "
                 "set sizes", "Wang et al. 2024: the optimal denoiser of a mixture of K low-rank Gaussians is a "
                 "softmax-gated mixture of subspace projections; a network of that form with learned bases is trained "
                 "on N = ratio · d samples per ratio and seed and scored on fresh samples (normalised test error, "
                 "principal angles to the true subspaces); writes denoiser.json and denoiser.png.")
    p.add_argument("--d", type=_positive_int, default=64, metavar="N", help="ambient dimension d; default: 64")
    p.add_argument("--components", type=_positive_int, default=2, metavar="N",
                   help="number K of subspaces in the world and in the network; default: 2")
    p.add_argument("--rank", type=_positive_int, default=4, metavar="N",
                   help="dimension r of every subspace, at most d; default: 4")
    p.add_argument("--sigma", type=float, default=0.1, metavar="X",
                   help="noise level σ of x_t = x + σε; default: 0.1")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
                   metavar="X", help="training samples per dimension N/d, one run per value and seed; default: "
                   "0.0625 0.125 0.25 0.5 1 2 4 8")
    p.add_argument("--seeds", type=_positive_int, default=3, metavar="N",
                   help="seeds per ratio (training samples, initial bases, noise); default: 3")
    p.add_argument("--steps", type=_positive_int, default=1000, metavar="N",
                   help="Trainer steps per run (batch 128, Adam lr 0.01); default: 1000")
    _add_out_dir_flag(p, "denoiser-out", "denoiser.json", "denoiser.png")
    p.set_defaults(func=cmd_denoiser)

    # -- map (stacked autoencoder + k-means on a multispectral raster) --
    p = _command(sub, "map", "map the units of a synthetic multispectral raster with a stacked autoencoder and "
                 "k-means", "A seeded H×W scene of K units with distinct spectra over B bands, mixed at borders, "
                 "shaded and noisy; a stacked autoencoder (B → 32 → 16 → 4, pretrained layer by layer, then fine-tuned "
                 "end to end, also once with a head on 5 labelled pixels per unit) gives codes that k-means clusters "
                 "into K groups, against PCA + k-means and k-means on the raw pixels; scored by Hungarian-matched "
                 "accuracy and Cohen's kappa; writes map.json and map.png.")
    p.add_argument("--size", type=_positive_int, default=96, metavar="N",
                   help="the scene is N × N pixels, at least 8; default: 96")
    p.add_argument("--units", type=_positive_int, default=5, metavar="N",
                   help="number K of units (and of k-means clusters), at least 2; default: 5")
    p.add_argument("--bands", type=_positive_int, default=12, metavar="N",
                   help="number B of spectral bands, at least 2; default: 12")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the scene, the networks and k-means, ≥ 0; default: 0")
    p.add_argument("--steps", type=_positive_int, default=3000, metavar="N",
                   help="Trainer steps of the end-to-end fine-tuning (batch 256, Adam lr 0.003); each layer's "
                        "pretraining takes half as many; default: 3000")
    _add_out_dir_flag(p, "map-out", "map.json", "map.png")
    p.set_defaults(func=cmd_map)

    # -- cca (stochastic CCA / PLS / deep CCA with the Eckhart–Young loss) --
    p = _command(sub, "cca", "train stochastic CCA, ridge CCA/PLS or deep CCA with the Eckhart–Young loss",
                 "Chapman, Aguila and Wells 2024: the unconstrained loss −2 tr(UᵀAU) + tr(UᵀBU UᵀBU) of the "
                 "generalised eigenproblem, estimated without bias on minibatches (its quadratic term from two "
                 "halves of each batch), trained by aekit's Trainer on two views (left and right halves of the "
                 "digits images, or a seeded multiview world with known canonical correlations); compares the total "
                 "canonical correlation captured with the exact solution (scipy eigh) and scikit-learn's CCA; writes "
                 "cca.json and cca.png.")
    p.add_argument("--data", choices=["digits", "multiview"], default="digits",
                   help="digits (two 32-dim image halves, 1797 rows) or multiview (20 + 20 dims, 2000 rows); "
                        "default: digits")
    p.add_argument("--model", choices=["linear", "ridge", "deep"], default="linear",
                   help="linear CCA, ridge CCA/PLS (linear, B = (1 − c)Σ + cI) or deep CCA (two MLP encoders); "
                        "default: linear")
    p.add_argument("--k", type=_positive_int, default=4, metavar="N",
                   help="canonical directions learned, at most the smaller view's dimension; default: 4")
    p.add_argument("--epochs", type=_positive_int, default=1, metavar="N",
                   help="passes over the rows; default: 1")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="rows per Trainer step, at least 4 (the loss splits each batch in two halves); default: 32")
    p.add_argument("--ridge", type=float, default=0.5, metavar="X",
                   help="c of --model ridge, in [0, 1]: 0 is CCA, 1 is PLS; default: 0.5")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the world, the initial weights and the batch order; default: 0")
    _add_out_dir_flag(p, "cca-out", "cca.json", "cca.png")
    p.set_defaults(func=cmd_cca)

    # -- anomaly (StackVAE-G time-series anomaly detection) --
    anomaly = _command(sub, "anomaly", "time-series anomaly detection with StackVAE-G on a seeded world",
                       "Li et al.: a VAE over sliding windows with encoder layers shared across channels and a "
                       "learned attention graph mixing the per-channel latents; the world is a multivariate series "
                       "with a known channel graph and planted point, contextual and collective anomalies.")
    anomaly_sub = _add_commands(anomaly, "anomaly_command")
    p = _command(anomaly_sub, "train", "train StackVAE-G on the world's anomaly-free train split and save it")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="new (or empty) directory for the model (config.json + model.safetensors); required")
    p.add_argument("--channels", type=_positive_int, default=12, metavar="N",
                   help="channels of the world, at least 3; default: 12")
    p.add_argument("--length", type=_positive_int, default=6000, metavar="N",
                   help="time steps of each split (train and test), at least 500; default: 6000")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the world, the initial weights and the batch order, ≥ 0; default: 0")
    p.add_argument("--steps", type=_positive_int, default=1000, metavar="N",
                   help="Trainer steps (batch 128 windows of 32 steps, Adam lr 0.003); default: 1000")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_anomaly_train)
    p = _command(anomaly_sub, "score", "score the test split of the world a StackVAE-G was trained on",
                 "Writes anomaly.json (best-threshold F1, point-adjusted F1, AUROC, graph recovery AUROC) and "
                 "anomaly.png (a few channels and the score, true anomalies shaded).")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory written by `aekit anomaly train`")
    _add_out_dir_flag(p, "anomaly-out", "anomaly.json", "anomaly.png")
    p.set_defaults(func=cmd_anomaly_score)

    # -- vision-sae (vision SAEs: splicing, alignment with factors, OOD detection) --
    p = _command(sub, "vision-sae", "train an SAE on a vision transformer's residual stream and score it on the "
                 "scene world", "The SAE reads one hook of a ViT or CLIP image tower (CLS, patch or all tokens). "
                 "Scores: accuracy with the SAE spliced in (factor accuracy for the toy ViT, zero-shot accuracy for a "
                 "CLIP), the best single latent per factor value against a linear probe, and OOD detection of "
                 "held-out shape-hue pairs (SAE reconstruction error and latent rarity against max-softmax and "
                 "Mahalanobis). Writes vision_sae.json, vision_sae.png, features.png and sae/.")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="a local Hugging Face ViT or CLIP directory; default: the bundled toy ViT")
    p.add_argument("--hook", default="blocks.2.hook_resid_post", metavar="NAME",
                   help="hook to read, e.g. blocks.2.hook_resid_post; default: blocks.2.hook_resid_post")
    p.add_argument("--tokens", choices=["all", "cls", "patches"], default="all",
                   help="which tokens the SAE reads and replaces; default: all")
    p.add_argument("--latents", type=_positive_int, default=1024, metavar="N", help="SAE latents; default: 1024")
    p.add_argument("--k", type=_positive_int, default=16, metavar="N", help="active latents per token; default: 16")
    p.add_argument("--steps", type=_positive_int, default=2000, metavar="N",
                   help="SAE training steps (batch 1024 tokens); default: 2000")
    p.add_argument("--n-train", type=_positive_int, default=4000, metavar="N",
                   help="training scenes the SAE reads; default: 4000")
    p.add_argument("--n-eval", type=_positive_int, default=1000, metavar="N",
                   help="held-out test scenes and as many OOD scenes; default: 1000")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the scenes and the SAE; default: 0")
    _add_device_flag(p)
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "vision-sae-out", "vision_sae.json", "vision_sae.png", "features.png", "sae/")
    p.set_defaults(func=cmd_vision_sae)

    # -- vlsae (one SAE shared by image and text embeddings) --
    p = _command(sub, "vlsae", "train VL-SAE, one sparse autoencoder shared by a CLIP's image and caption "
                 "embeddings, and score its concept alignment against per-modality SAEs",
                 "Shen et al. 2025: a distance-based encoder (a latent's activation is 2 minus the distance between "
                 "the unit-normalised embedding and the latent's unit vector, top k kept) and one linear decoder per "
                 "modality, trained on paired embeddings of the scenes world; compared with two separate TopK SAEs "
                 "and one TopK SAE on both modalities (same width, k and steps) on held-out pairs with full captions: "
                 "fraction of active latents shared by an image and its caption, per-pair code overlap, factor "
                 "purity, image-to-caption recall@1; writes vlsae.json, vlsae.png and model/.")
    p.add_argument("--clip", default=None, metavar="DIR",
                   help="a Hugging Face CLIP directory (with its tokenizer); default: the bundled toy CLIP")
    p.add_argument("--pairs", type=_positive_int, default=5000, metavar="N",
                   help="train-split scenes and captions to train on, at least 256; default: 5000")
    p.add_argument("--eval-pairs", type=_positive_int, default=1000, metavar="N",
                   help="held-out test-split scenes, with full captions, to score on, at least 10; default: 1000")
    p.add_argument("--latents", type=_positive_int, default=256, metavar="N",
                   help="latents of every model; default: 256")
    p.add_argument("--k", type=_positive_int, default=8, metavar="N",
                   help="active latents per embedding (TopK), at most --latents; default: 8")
    p.add_argument("--steps", type=_positive_int, default=2000, metavar="N",
                   help="Trainer steps of each model (batch 256, Adam lr 0.001); default: 2000")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the scenes, the captions, the initial weights and the batch order, ≥ 0; default: 0")
    _add_device_flag(p, " for the CLIP and the training", "cpu or cuda")
    _add_out_dir_flag(p, "vlsae-out", "vlsae.json", "vlsae.png", "model/")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=cmd_vlsae)

    # -- psvae (pixel + semantic reconstruction) --
    p = _command(sub, "psvae", "train a VAE that reconstructs both pixels and a frozen ViT's features and probe its "
                 "latents for the scene factors", "After PS-VAE (Zhang et al. 2025): a conv β-VAE on 32×32 scenes "
                 "whose latent also feeds a linear semantic decoder reconstructing the teacher's standardised final "
                 "CLS state (squared error + cosine, weight --semantic-weight); compared with the pixel-only VAE of "
                 "the same architecture and seed and with the teacher's own features by held-out linear-probe accuracy "
                 "per Shapes3D factor and by reconstruction PSNR. Writes psvae.json and psvae.png.")
    p.add_argument("--teacher", metavar="DIR",
                   help="Hugging Face ViT (or CLIP) directory of the frozen teacher; default: the bundled toy ViT")
    _add_scene_study_flags(p, "PSNR and probe accuracy", " (also the probes' training rows)")
    p.add_argument("--semantic-weight", type=float, default=4.0, metavar="X",
                   help="w_sem, weight of the feature loss, ≥ 0; default: 4.0")
    p.add_argument("--beta", type=float, default=0.1, metavar="X",
                   help="weight of the KL term (per pixel, like the reconstruction), ≥ 0; default: 0.1")
    _add_device_flag(p, " for training and the teacher", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "psvae-out", "psvae.json", "psvae.png")
    p.set_defaults(func=cmd_psvae)

    # -- crate-mae (white-box masked autoencoder vs MAE) --
    p = _command(sub, "crate-mae", "train CRATE-MAE and a standard MAE of the same shape on the scene world and "
                 "compare parameters, masked completion and token structure",
                 "Pai et al. 2024: encoder layers Z + MSSA(Z) (attention within learned subspaces U_k) then one ISTA "
                 "sparsification step ReLU(Z + ηDᵀ(Z − DZ) − ηλ), decoder layers their structured inverses; the MAE "
                 "(He et al. 2022) uses pre-LN ViT blocks with a 4× MLP. Both are trained by the Trainer for the "
                 "same steps (batch 32, Adam lr 0.003, 75% of 4×4 patches masked) on 32×32 scenes and scored by "
                 "masked-patch PSNR on unseen scenes and on held-out (shape, hue) pairs; the coding rate and the "
                 "fraction of zeros of the tokens are measured per layer. Writes crate_mae.json and crate_mae.png.")
    p.add_argument("--steps", type=_positive_int, default=1500, metavar="N",
                   help="Trainer steps of each model; default: 1500")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the scenes, the initial weights, the masks and the batch order, ≥ 0; default: 0")
    p.add_argument("--width", type=_positive_int, default=96, metavar="N",
                   help="token width d of both models, a multiple of 4 and of --heads; default: 96")
    p.add_argument("--depth", type=_positive_int, default=4, metavar="N",
                   help="layers of each encoder, and of each decoder; default: 4")
    p.add_argument("--heads", type=_positive_int, default=4, metavar="N",
                   help="attention heads (CRATE: subspaces) per layer; default: 4")
    p.add_argument("--n-train", type=_positive_int, default=10000, metavar="N",
                   help="training scenes (train split), at least 32; default: 10000")
    p.add_argument("--n-eval", type=_positive_int, default=1000, metavar="N",
                   help="scenes of each evaluation set (unseen train-split scenes, held-out pairs); default: 1000")
    _add_device_flag(p, " for training", "auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "crate-mae-out", "crate_mae.json", "crate_mae.png")
    p.set_defaults(func=cmd_crate_mae)

    # -- lvrae (decoders robust to latent noise) --
    p = _command(sub, "lvrae", "train a conv autoencoder whose decoder is robust to noise on its latents and "
                 "measure PSNR against latent noise", "After RAE's noise-augmented decoding (Zheng et al. 2025) and "
                 "LV-RAE (Liu et al. 2026): the decoder reads z + σ·s·ε while training (s: each latent's batch "
                 "standard deviation, σ uniform in [0, --noise-max] per image); compared with the plain autoencoder "
                 "of the same architecture and seed by the PSNR of held-out 32×32 scenes decoded from latents with "
                 "relative noise σ = 0, 0.1, 0.25, 0.5, 1; the target is a PSNR drop at σ = 0.5 of at most half the "
                 "plain one. Writes lvrae.json and lvrae.png.")
    _add_scene_study_flags(p, "the PSNR curves")
    p.add_argument("--noise-max", type=float, default=1.0, metavar="X",
                   help="largest training σ, in latent standard deviations, > 0; default: 1.0")
    _add_device_flag(p, " for training", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "lvrae-out", "lvrae.json", "lvrae.png")
    p.set_defaults(func=cmd_lvrae)

    # -- video-vae (causal spatio-temporal VAE) --
    p = _command(sub, "video-vae", "train a causal spatio-temporal VAE on a seeded moving-shapes video world and "
                 "measure reconstruction per frame, compression and causality",
                 "After LaVin-DiT's ST-VAE (Wang et al. 2024): 3-D convolutions padded on the past side only, so "
                 "latent frame j reads frames ≤ 4j; time is compressed ×4 with the first frame kept alone (1 + 4k "
                 "frames → 1 + k latent frames) and space ×4 or ×8; a diagonal Gaussian latent with a KL term. "
                 "Held-out clips are scored by PSNR at every frame position against each clip's mean frame and "
                 "against bilinear keyframes of a similar size; causality is checked bit for bit. Writes "
                 "video_vae.json, video_vae.png and model/.")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the clips, the initial weights, the batch order and the noise, ≥ 0; default: 0")
    p.add_argument("--steps", type=_positive_int, default=1500, metavar="N",
                   help="Trainer steps (batch 8 clips, Adam lr 0.003); default: 1500")
    p.add_argument("--n-train", type=_positive_int, default=1000, metavar="N",
                   help="training clips, at least 8; default: 1000")
    p.add_argument("--n-eval", type=_positive_int, default=200, metavar="N",
                   help="held-out clips the PSNR is measured on, at least 2; default: 200")
    p.add_argument("--frames", type=_positive_int, default=17, metavar="N",
                   help="frames per clip, 1 + a multiple of 4; default: 17")
    p.add_argument("--spatial", type=int, choices=[4, 8], default=4,
                   help="spatial compression per side (32×32 frames → 8×8 or 4×4 latent sites); default: 4")
    p.add_argument("--latent-channels", type=_positive_int, default=4, metavar="N",
                   help="Gaussian latent channels per latent site; default: 4")
    p.add_argument("--beta", type=float, default=1e-3, metavar="X",
                   help="weight of the KL term (per pixel, like the reconstruction), ≥ 0; default: 0.001")
    p.add_argument("--sprites", type=_positive_int, default=2, metavar="N",
                   help="moving sprites per clip, 1 to 6; default: 2")
    _add_device_flag(p, " for training", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "video-vae-out", "video_vae.json", "video_vae.png", "model/")
    p.set_defaults(func=cmd_video_vae)

    # -- cktgen (specification-conditioned circuit generation) --
    p = _command(sub, "cktgen", "train CktGen on a seeded world of analogue circuits and generate circuits for "
                 "held-out target specifications", "Hou et al. (arXiv 2410.00995): a transformer VAE over circuit "
                 "token sequences and a specification encoder share one latent space (reconstruction from both "
                 "latents, SmoothL1 alignment, InfoNCE with a false-negative filter, specification guidance, KL "
                 "terms); designs are decoded from the latent of a target specification. The world: cascades of "
                 "buffers, amplifiers, dividers and RC sections whose gain and −3 dB bandwidth are computed "
                 "exactly. Scores validity, novelty and Spec-Acc (gain and bandwidth within --tolerance of the "
                 "target) against random tokens, random valid circuits and nearest-training-circuit retrieval; "
                 "writes cktgen.json, cktgen.png and model/.")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the world, the initial weights, the batch order and the sampling, ≥ 0; default: 0")
    p.add_argument("--steps", type=_positive_int, default=1500, metavar="N",
                   help="Trainer steps (batch 128, Adam lr 0.002); default: 1500")
    p.add_argument("--n-train", type=_positive_int, default=4000, metavar="N",
                   help="distinct training circuits, 128 to 20000; default: 4000")
    p.add_argument("--targets", type=_positive_int, default=200, metavar="N",
                   help="held-out circuits whose specifications are the targets; default: 200")
    p.add_argument("--samples", type=_positive_int, default=5, metavar="N",
                   help="designs generated per target; default: 5")
    p.add_argument("--tolerance", type=float, default=0.1, metavar="X",
                   help="relative tolerance of Spec-Acc on gain and bandwidth, in (0, 1); default: 0.1")
    _add_device_flag(p, " for training", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "cktgen-out", "cktgen.json", "cktgen.png", "model/")
    p.set_defaults(func=cmd_cktgen)

    # -- ddmi (latent diffusion for implicit neural representations) --
    p = _command(sub, "ddmi", "train a D2C-VAE that decodes latent grids at any resolution and a latent diffusion "
                 "model on it (DDMI), and score reconstruction at 1× and 2× and sample quality",
                 "After Park et al. 2024: a conv encoder maps 32×32 signals to a Gaussian latent grid, decoded into "
                 "three basis fields whose bilinear interpolation at a coordinate is the positional embedding of a "
                 "coordinate MLP; a DDPM with a small diffusers UNet generates latent grids. --world scenes scores "
                 "PSNR against the 32×32 scenes and their 64×64 renders and samples under a factor-classifier ViT "
                 "(coverage of the (shape, hue) classes, entropy, confidence, Fréchet distance in its features, "
                 "against VAE-prior and Gaussian-latent baselines and a real-vs-real floor); --world sdf trains on "
                 "2-D signed-distance shapes and scores against the exact field. Writes ddmi.json, ddmi.png and "
                 "the models.")
    p.add_argument("--world", default="scenes", choices=("scenes", "sdf"),
                   help="scenes (32×32 3D Shapes scenes) or sdf (2-D signed-distance shapes); default: scenes")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the data, the initial weights, the batch order, the noise and the samples, ≥ 0; "
                        "default: 0")
    p.add_argument("--steps", type=_positive_int, default=1200, metavar="N",
                   help="Trainer steps of the D2C-VAE (batch 32, Adam lr 0.001); default: 1200")
    p.add_argument("--diffusion-steps", type=_positive_int, default=1200, metavar="N",
                   help="Trainer steps of the latent diffusion model (batch 64; scenes only); default: 1200")
    p.add_argument("--n-train", type=_positive_int, default=4000, metavar="N",
                   help="training signals, at least 64; default: 4000")
    p.add_argument("--n-eval", type=_positive_int, default=500, metavar="N",
                   help="held-out signals scored, and samples drawn per generator; default: 500")
    p.add_argument("--vit", metavar="DIR", default=None,
                   help="factor-classifier ViT directory scoring the samples; default: the bundled toy ViT")
    _add_device_flag(p, " for training", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "ddmi-out", "ddmi.json", "ddmi.png", "the model directories")
    p.set_defaults(func=cmd_ddmi)

    # -- epg (pixel-space generation with a pre-trained encoder) --
    p = _command(sub, "epg", "train a pixel-space diffusion model on scenes from scratch and after self-supervised "
                 "pre-training of its encoder, and compare sample quality along training",
                 "After EPG (Lei et al. 2025): stage 1 trains the encoder (a UNet's down path, diffusers blocks) "
                 "with an InfoNCE loss between augmented views at the lowest noise level (EMA target) and one between "
                 "adjacent noise levels of a trajectory; stage 2 joins it to a fresh decoder and trains a DDPM end to "
                 "end. The same architecture, seed and stage-2 steps from scratch is the baseline. Every --eval-every "
                 "steps, --n-samples DDIM samples are scored by the Fréchet distance of the toy ViT's CLS features to "
                 "real test scenes. Writes epg.json, epg.png and model/.")
    p.add_argument("--judge", metavar="DIR",
                   help="Hugging Face ViT directory whose final CLS features the FD uses; default: the bundled toy ViT")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seeds the scenes, the initial weights, the batch order, the noise and the samples, ≥ 0; "
                        "default: 0")
    p.add_argument("--steps", type=_positive_int, default=500, metavar="N",
                   help="stage-2 Trainer steps of each run (batch 64, Adam lr 0.001); default: 500")
    p.add_argument("--pretrain-steps", type=_positive_int, default=250, metavar="N",
                   help="stage-1 Trainer steps of the encoder pre-training; default: 250")
    p.add_argument("--eval-every", type=_positive_int, default=100, metavar="N",
                   help="stage-2 steps between FD evaluations (the Trainer's checkpoints); default: 100")
    p.add_argument("--n-train", type=_positive_int, default=4000, metavar="N",
                   help="training scenes (train split), at least 64; default: 4000")
    p.add_argument("--n-eval", type=_positive_int, default=1000, metavar="N",
                   help="real test scenes the FD compares against, at least 2; default: 1000")
    p.add_argument("--n-samples", type=_positive_int, default=400, metavar="N",
                   help="samples drawn at each evaluation, at least 8; default: 400")
    p.add_argument("--threshold", type=float, default=150.0, metavar="X",
                   help="FD a run must reach for 'steps to threshold', > 0; default: 150")
    _add_device_flag(p, " for training and sampling", "cpu or cuda")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_out_dir_flag(p, "epg-out", "epg.json", "epg.png", "model/")
    p.set_defaults(func=cmd_epg)

    return parser


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except AekitError as e:
        print(f"aekit: error: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"aekit: {_interrupted(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped early (`aekit info DIR | head`): not an error, nothing to say
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as e:  # permissions, full disk: the user's environment, not a bug
        where = f"{e.filename}: " if e.filename else ""
        print(f"aekit: error: {_one_line(where + str(e.strerror or e))}", file=sys.stderr)
        return EXIT_USAGE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # stdout is not a real file
        pass


def _interrupted(args: argparse.Namespace | None) -> str:
    """The interrupt message; for a training run, how to continue it (or that there is nothing to continue)."""
    run_dir = getattr(args, "run_dir", None)
    if run_dir is None:
        return "interrupted"
    if latest_checkpoint(Path(run_dir) / "checkpoints") is not None:
        return f"interrupted; continue the run with `aekit train --resume --out {shlex.quote(str(run_dir))}`"
    return f"interrupted before the first checkpoint of {run_dir}; nothing to resume, start the run again"


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
