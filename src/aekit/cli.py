"""`aekit <command>`: parse, validate, call the API, print. The only place that exits.

Every user mistake becomes one line on stderr ("aekit: error: ...") and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ._version import __version__
from .commands import workflows
from .errors import AekitError, ConfigError
from .models import SAEConfig
from .train import TrainConfig

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a one-line ConfigError instead of usage + exit."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_flags(parser: argparse.ArgumentParser, sections=(("model", SAEConfig), ("train", TrainConfig)),
                      title: str = "{section} settings (override the config file)") -> None:
    """One flag per config field; values are strings, converted and checked by the dataclasses."""
    for section, cls in sections:
        group = parser.add_argument_group(title.format(section=section))
        for name in cls.field_names():
            default = getattr(cls(), name)
            group.add_argument(_flag(name), dest=f"{section}.{name}", metavar="V", default=None,
                               help=f"default: {default}")


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
    from .commands.caching import cache_activations

    store = cache_activations(
        args.model, args.hook, args.text, args.out, batch_size=args.batch_size, max_length=args.max_length,
        max_tokens=args.max_tokens, dtype=args.dtype, device=args.device, progress=not args.quiet,
    )
    shape = "×".join(str(n) for n in store.provenance.get("hook_shape", [store.d]))
    print(f"{'tokens':>15}: {store.rows}")
    print(f"{'documents':>15}: {store.provenance.get('documents')}")
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
    print(f"outputs: {Path(args.out) / 'results.json'}, {table}, traversal PNGs in {args.out}")
    del result
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aekit", description="Interpretable latent codes with autoencoders.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a sparse autoencoder on an array file or activation store")
    p.add_argument("--config", help="YAML/JSON file with model/train settings")
    p.add_argument("--data", help="array file (.npy .npz .safetensors .pt) or activation store directory")
    p.add_argument("--out", help="new directory for the run (model, checkpoints, metrics, plot)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    on_the_fly = p.add_argument_group("activations on the fly (instead of --data)")
    on_the_fly.add_argument("--lm", help="language model directory or hub name")
    on_the_fly.add_argument("--hook", help="hook name, e.g. blocks.6.hook_resid_post")
    on_the_fly.add_argument("--text", help="corpus: .txt, .jsonl or .parquet")
    on_the_fly.add_argument("--max-length", type=_positive_int, default=128, help="tokens per document (default 128)")
    on_the_fly.add_argument("--max-documents", type=_positive_int, default=None, help="use the first N documents")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="reconstruction and sparsity metrics of a saved model on data")
    p.add_argument("model_dir")
    p.add_argument("--data", help="activations: an array file or an activation store")
    p.add_argument("--lm", help="spliced evaluation: language model directory or hub name")
    p.add_argument("--hook", help="spliced evaluation: hook the SAE replaces, e.g. blocks.6.hook_resid_post")
    p.add_argument("--text", help="spliced evaluation: corpus (.txt, .jsonl, .parquet)")
    p.add_argument("--max-documents", type=_positive_int, default=256)
    p.add_argument("--max-length", type=_positive_int, default=128)
    p.add_argument("--max-rows", type=_positive_int, default=262144)
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("info", help="print a saved model's configuration, provenance and tensor shapes")
    p.add_argument("model_dir")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="the whole pipeline on bundled ground truth (toy LM or feature world)")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--world", choices=["language", "features"], default="language",
                   help="language: the bundled toy GPT-2 end to end (default); features: synthetic feature world")
    p.add_argument("--steps", type=_positive_int, default=None, help="SAE steps (default 1500 language, 4000 features)")
    p.add_argument("--documents", type=_positive_int, default=6000, help="generated documents cached (language)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cache", help="run a text corpus through a Hugging Face causal LM into an activation store")
    p.add_argument("--model", required=True, help="local model directory or Hugging Face hub name")
    p.add_argument("--hook", required=True, help="hook name, e.g. blocks.6.hook_resid_post or blocks.2.attn.hook_z")
    p.add_argument("--text", required=True, help="corpus: .txt (one document per line), .jsonl ('text' field), "
                   ".parquet ('text' column, needs pyarrow)")
    p.add_argument("--out", required=True, help="new activation store directory")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="documents per forward pass (default: 8)")
    p.add_argument("--max-length", type=_positive_int, default=None,
                   help="tokens per document, longer ones are truncated (default: min(512, model positions))")
    p.add_argument("--max-tokens", type=_positive_int, default=None, help="stop after this many stored tokens")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="model weights and stored activations (default: float32)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("report", help="write a self-contained HTML feature report of an SAE on a text corpus")
    p.add_argument("model_dir")
    p.add_argument("--text", required=True, help="corpus: .txt, .jsonl or .parquet")
    p.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    p.add_argument("--lm", help="language model (default: the one recorded in the SAE's provenance)")
    p.add_argument("--hook", help="hook name (default: the one recorded in the SAE's provenance)")
    p.add_argument("--features", help="comma-separated feature indices to show (default: spread over density)")
    p.add_argument("--n-features", type=_positive_int, default=32, help="features shown when --features is not given")
    p.add_argument("--max-documents", type=_positive_int, default=2000)
    p.add_argument("--max-tokens", type=_positive_int, default=50_000)
    p.add_argument("--max-length", type=_positive_int, default=128)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)

    world = sub.add_parser("world", help="the toy language world and its bundled GPT-2")
    world_sub = world.add_subparsers(dest="world_command", required=True, parser_class=_Parser)
    p = world_sub.add_parser("train-lm", help="train the toy GPT-2 on the toy language (CPU, seeded)")
    p.add_argument("--out", required=True, help="new directory for the Hugging Face model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .worlds.toy_lm import ToyLMConfig

    _add_config_flags(p, (("toy_lm", ToyLMConfig),), title="toy model settings")
    p.set_defaults(func=cmd_world_train_lm)
    p = world_sub.add_parser("eval-lm", help="held-out accuracy per task family of a toy LM (default: bundled)")
    p.add_argument("model_dir", nargs="?", default=None)
    p.add_argument("--n", type=_positive_int, default=500, help="prompts per task family")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_world_eval_lm)

    p = sub.add_parser("disentangle", help="train disentanglement models on a factor world over seeds; metric table")
    p.add_argument("--world", default="shapes3d", help="shapes3d or dsprites")
    p.add_argument("--models", default="ae,betavae,qlae,xfactors",
                   help="comma-separated: ae, betavae, betatcvae, vqvae, qlae, xfactors")
    p.add_argument("--seeds", type=_positive_int, default=3)
    p.add_argument("--steps", type=_positive_int, default=2000)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--n-train", type=_positive_int, default=30_000)
    p.add_argument("--n-eval", type=_positive_int, default=10_000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default="disentangle-out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_disentangle)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except AekitError as e:
        print(f"aekit: error: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("aekit: interrupted; a run with checkpoints continues with `aekit train --resume --out DIR`",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:  # permissions, full disk: the user's environment, not a bug
        where = f"{e.filename}: " if e.filename else ""
        print(f"aekit: error: {_one_line(where + str(e.strerror or e))}", file=sys.stderr)
        return EXIT_USAGE


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
