"""Concept recovery on the bundled toy GPT-2: SAE latents against the toy language's true concepts.

Trains SAEs on one residual-stream layer of the bundled model (activations of generated prose + task text), then
scores single latents against every per-token concept (best F1 of a latent detector, averaged over the concept's
values) and against the exact log p(topic | words so far) (Hungarian-matched correlation), next to a supervised
linear probe on the same activations (held-out F1 / correlation). Prints SAE, probe and the ratio SAE / probe per
architecture and seed; writes benchmarks/results/concept_recovery.json (concept_recovery_quick.json with --quick).

    OMP_NUM_THREADS=1 python benchmarks/concept_recovery.py --seeds 0 1 --steps 1500
    python benchmarks/concept_recovery.py [--hook blocks.1.hook_resid_post] [--seeds 0 1] [--steps 3000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.analysis.concept_recovery import concept_activations, concept_recovery
from aekit.data import ArraySource
from aekit.data.lm import load_lm
from aekit.train import TrainConfig, Trainer
from aekit.worlds.language import LanguageConfig, LanguageWorld, mixed_documents
from aekit.worlds.toy_lm import ToyLMConfig, bundled_toy_lm_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

ARCHITECTURES = {  # TopK-style only: L0 is set directly, no coefficient calibration needed
    "topk k=8": dict(architecture="topk", k=8),
    "topk k=16": dict(architecture="topk", k=16),
    "topk k=32": dict(architecture="topk", k=32),
    "batchtopk k=16": dict(architecture="batchtopk", k=16),
}


def training_rows(model, tokenizer, hook: str, world: LanguageWorld, n_documents: int, seed: int) -> torch.Tensor:
    from aekit.data.hooks import ActivationCapture
    from aekit.data.lm_source import document_rows

    texts = [d.text for d in mixed_documents(world, n_documents, seed, ToyLMConfig().mixture)]
    capture = ActivationCapture(model, [hook])
    return torch.cat([document_rows(capture, tokenizer, hook, texts[i:i + 64], 128) for i in range(0, len(texts), 64)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hook", default="blocks.1.hook_resid_post")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--n-latents", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="few documents and steps: a smoke run")
    parser.add_argument("--name", default=None,
                        help="write benchmarks/results/<name>.json (default concept_recovery; _quick with --quick)")
    args = parser.parse_args(argv)
    steps, n_train_docs, n_eval_docs = (150, 500, 200) if args.quick else (args.steps, 8000, 1500)

    model, tokenizer = load_lm(bundled_toy_lm_path(), progress=False)
    world = LanguageWorld(LanguageConfig(seed=ToyLMConfig().world_seed))
    x = training_rows(model, tokenizer, args.hook, world, n_train_docs, seed=1001)
    data = concept_activations(model, tokenizer, args.hook, world, n_eval_docs, seed=2002)
    print(f"{args.hook}: {len(x)} training tokens, {len(data.activations)} scored prose tokens, d {x.shape[1]}")

    rows = []
    for name, settings in ARCHITECTURES.items():
        for seed in args.seeds:
            start = time.perf_counter()
            sae = SparseAutoencoder(SAEConfig(d_in=x.shape[1], n_latents=args.n_latents, **settings), seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                Trainer(sae, ArraySource(x, 1024, seed=seed),
                        TrainConfig(steps=steps, batch_size=1024, lr=1e-3, seed=seed, progress=False,
                                    checkpoint_every=0), out_dir=tmp).fit()
            result = concept_recovery(sae.eval(), data, seed=seed)
            rows.append({"architecture": name, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
                         **result})
            concepts = result["concepts"]
            topic = result["topic_posterior"]
            print(f"{name:>15} seed {seed}: " + "  ".join(
                f"{c} {v['sae_best_f1']:.2f}/{v['probe_f1']:.2f}" for c, v in concepts.items())
                + f"  log p(topic|x) {topic['sae_matched_correlation']:.2f}/{topic['probe_correlation']:.2f}")

    print("\nmeans over seeds — SAE / probe (ratio)")
    concept_names = list(rows[0]["concepts"])
    print(f"{'architecture':>15}  " + "  ".join(f"{c:>22}" for c in [*concept_names, "log p(topic|x)"]))
    for name in ARCHITECTURES:
        mine = [r for r in rows if r["architecture"] == name]
        cells = []
        for c in concept_names:
            sae = np.mean([r["concepts"][c]["sae_best_f1"] for r in mine])
            probe = np.mean([r["concepts"][c]["probe_f1"] for r in mine])
            cells.append(f"{sae:.3f} / {probe:.3f} ({sae / probe:.2f})")
        sae = np.mean([r["topic_posterior"]["sae_matched_correlation"] for r in mine])
        probe = np.mean([r["topic_posterior"]["probe_correlation"] for r in mine])
        cells.append(f"{sae:.3f} / {probe:.3f} ({sae / probe:.2f})")
        print(f"{name:>15}  " + "  ".join(f"{cell:>22}" for cell in cells))
    out = write_results(args.name or ("concept_recovery_quick" if args.quick else "concept_recovery"), {
        "benchmark": "concept_recovery", "hook": args.hook, "steps": steps, "n_latents": args.n_latents,
        "seeds": args.seeds, "quick": args.quick, "training_documents": n_train_docs, "scored_documents": n_eval_docs,
        "training_tokens": len(x), "scored_tokens": len(data.activations), "d": int(x.shape[1]),
        "architectures": ARCHITECTURES, "rows": rows}, argv)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
