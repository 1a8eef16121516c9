"""A small GPT-2 trained on the toy language: a real Hugging Face model whose concepts and task answers are known.

`train_toy_lm` trains `transformers.GPT2LMHeadModel` on CPU on a seeded mixture of prose and task documents
(IOI, greater-than, docstring, induction) and writes a standard Hugging Face directory (config.json,
model.safetensors, tokenizer files) plus training_log.jsonl, training.json and eval.json, atomically.
`evaluate_toy_lm` scores any such directory on held-out task prompts through `aekit.data.lm.load_lm`, the code
path every Hugging Face model takes. `bundled_toy_lm_path()` is the checkpoint shipped with aekit.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config_base import ConfigBase, setting
from ..errors import ConfigError, DataError
from ..fileio import atomic_directory, atomic_write_json, require_fresh_directory
from ..seeding import derive_seed
from .language import (
    BOS,
    PAD,
    TASK_FAMILIES,
    VOCAB,
    LanguageConfig,
    LanguageWorld,
    build_tokenizer,
    encode_words,
    mixed_documents,
    save_tokenizer,
    task_set,
)

__all__ = ["ToyLMConfig", "bundled_toy_lm_path", "evaluate_toy_lm", "train_toy_lm"]

MIXTURE_KINDS = ("prose", *TASK_FAMILIES)
BUNDLED_DIR = "bundled/toy_gpt2"  # package data: the trained checkpoint shipped with aekit


@dataclass
class ToyLMConfig(ConfigBase):
    """Architecture, optimisation and training-mixture settings of the toy GPT-2 (defaults: the bundled one)."""

    section = "toy_lm"

    n_layer: int = setting(4, "transformer blocks")
    n_head: int = setting(4, "attention heads per block (must divide d_model)")
    d_model: int = setting(128, "width of the residual stream")
    # the longest prose document (6 sentences) is 73 tokens, 74 with its EOS
    n_ctx: int = setting(96, "context length in tokens (at least 32, so every task prompt fits)")
    steps: int = setting(3000, "optimizer steps (AdamW)")
    batch_tokens: int = setting(2016, "positions per batch: batch_tokens // n_ctx rows of packed documents")
    lr: float = setting(2e-3, "peak learning rate")
    min_lr_ratio: float = setting(0.1, "the cosine decay ends at lr × min_lr_ratio")
    warmup_steps: int = setting(100, "steps of linear learning-rate warm-up; 0 = none")
    weight_decay: float = setting(0.05, "AdamW weight decay of the weight matrices")
    grad_clip: float = setting(1.0, "maximum global gradient norm")
    seed: int = setting(0, "seeds the initialisation, the training documents and the evaluation prompts")
    world_seed: int = setting(0, "seed of the toy language itself (its word-emission tables)")
    # training mixture: relative weights by document count (task documents are shorter than prose)
    prose: float = setting(0.2, "mixture weight of prose documents (relative, by document count; 0 = none)")
    ioi: float = setting(0.2, "mixture weight of indirect-object-identification documents (0 = none)")
    greater_than: float = setting(0.1, "mixture weight of greater-than documents (0 = none)")
    docstring: float = setting(0.15, "mixture weight of docstring documents (0 = none)")
    # induction forms last (it needs a previous-token head), so it gets the most documents
    induction: float = setting(0.35, "mixture weight of induction documents (0 = none)")
    eval_n: int = setting(500, "held-out prompts per task family scored into eval.json; 0 skips the evaluation")
    log_every: int = setting(10, "steps between records in training_log.jsonl")
    eval_every: int = setting(250, "steps between accuracy checks on 100 held-out prompts per family during "
                                   "training; 0 = never")
    # 1 is several times faster than 2 for this small model on a shared 2-core CPU (idle threads of an
    # oversubscribed OpenMP pool spin), and the numbers do not depend on other load
    threads: int = setting(1, "torch CPU threads while training")

    def validate(self) -> None:
        self._require(self.eval_every >= 0, "eval_every", "must be ≥ 0 (0 turns the in-training evaluation off)")
        for name in ("n_layer", "n_head", "d_model", "n_ctx", "steps", "log_every", "threads"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(self.d_model % self.n_head == 0, "d_model", f"must be divisible by n_head={self.n_head}")
        self._require(self.n_ctx >= 32, "n_ctx", "must be ≥ 32 so every task prompt fits")
        self._require(self.batch_tokens >= self.n_ctx, "batch_tokens", f"must be ≥ n_ctx={self.n_ctx}")
        self._require(self.lr > 0, "lr", "must be > 0")
        self._require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        self._require(self.warmup_steps >= 0, "warmup_steps", "must be ≥ 0")
        self._require(self.weight_decay >= 0, "weight_decay", "must be ≥ 0")
        self._require(self.grad_clip > 0, "grad_clip", "must be > 0")
        self._require(self.eval_n >= 0, "eval_n", "must be ≥ 0 (0 skips the evaluation)")
        for kind in MIXTURE_KINDS:
            self._require(getattr(self, kind) >= 0, kind, "mixture weight must be ≥ 0")
        self._require(sum(getattr(self, k) for k in MIXTURE_KINDS) > 0, "prose",
                      "at least one mixture weight (prose, ioi, greater_than, docstring, induction) must be > 0")

    @property
    def mixture(self) -> dict[str, float]:
        return {kind: getattr(self, kind) for kind in MIXTURE_KINDS}


def bundled_toy_lm_path() -> Path:
    """The directory of the toy GPT-2 shipped inside the aekit package (load it with `aekit.data.lm.load_lm`)."""
    path = Path(str(resources.files("aekit.worlds").joinpath(BUNDLED_DIR)))
    if not (path / "model.safetensors").is_file():
        raise DataError(f"{path}: the bundled toy LM is missing from this aekit installation; reinstall aekit or "
                        "train one with `aekit world train-lm --out DIR`")
    return path


# ---- data ---------------------------------------------------------------------------------------------------


@dataclass
class PackedBatch:
    """Whole documents packed into rows of n_ctx positions, each document isolated from its row-mates.

    `segment` numbers the documents of a row (-1 on padding) and `position` restarts at 0 with every document, so
    a document is computed exactly as if it were alone, starting at position 0 as a prompt does at evaluation
    (letting documents see each other, or start mid-window, left the copy tasks at chance in our runs).
    """

    input_ids: torch.Tensor  # (rows, n_ctx)
    position: torch.Tensor  # (rows, n_ctx)
    segment: torch.Tensor  # (rows, n_ctx)

    def attention_mask(self) -> torch.Tensor:
        """(rows, 1, n_ctx, n_ctx) boolean: causal attention within a document; padding attends to itself."""
        n = self.segment.shape[1]
        same = self.segment[:, :, None] == self.segment[:, None, :]
        allowed = same & torch.tril(torch.ones(n, n, dtype=torch.bool)) & (self.segment[:, None, :] >= 0)
        return (allowed | torch.eye(n, dtype=torch.bool))[:, None]  # a row with no key would give NaN

    def targets(self) -> torch.Tensor:
        """Next-token targets within each document; -100 (ignored) at a document's last token and on padding."""
        same_doc = (self.segment[:, 1:] == self.segment[:, :-1]) & (self.segment[:, 1:] >= 0)
        return self.input_ids[:, 1:].masked_fill(~same_doc, -100)


def _pack_rows(docs: list[list[int]], n_ctx: int, open_rows: int = 8) -> list[list[list[int]]]:
    """First-fit packing of documents (in order) into rows of at most n_ctx tokens, keeping a few rows open."""
    closed: list[list[list[int]]] = []
    active: list[list[list[int]]] = []
    for doc in docs:
        for row in active:
            if sum(map(len, row)) + len(doc) <= n_ctx:
                row.append(doc)
                break
        else:
            active.append([doc])
            if len(active) > open_rows:
                closed.append(active.pop(0))
    return closed + active


def training_batches(config: ToyLMConfig) -> Iterator[PackedBatch]:
    """The seeded stream of training batches: mixed documents packed into batch_tokens // n_ctx rows each."""
    world = LanguageWorld(LanguageConfig(seed=config.world_seed))
    rows_per_batch = config.batch_tokens // config.n_ctx
    chunk = 0
    while True:  # seeded chunks of documents: the stream does not depend on `steps`
        docs = mixed_documents(world, 4096, derive_seed("toy_lm.train", config.seed, chunk), config.mixture)
        # each document ends with the BOS token as its EOS (as GPT-2's separator), so the model learns to stop
        rows = _pack_rows([encode_words([*doc.tokens, BOS])[: config.n_ctx] for doc in docs], config.n_ctx)
        for start in range(0, len(rows) - rows_per_batch + 1, rows_per_batch):  # drops a last partial batch
            yield packed_batch(rows[start:start + rows_per_batch], config.n_ctx)
        chunk += 1


def packed_batch(rows: list[list[list[int]]], n_ctx: int) -> PackedBatch:
    """One batch of `rows` (each a list of token-id documents, at most n_ctx ids together), padded on the right."""
    shape = (len(rows), n_ctx)
    batch = PackedBatch(torch.full(shape, VOCAB.index(PAD)), torch.zeros(shape, dtype=torch.long),
                        torch.full(shape, -1))
    for r, row in enumerate(rows):
        at = 0
        for d, doc in enumerate(row):
            batch.input_ids[r, at:at + len(doc)] = torch.tensor(doc)
            batch.position[r, at:at + len(doc)] = torch.arange(len(doc))
            batch.segment[r, at:at + len(doc)] = d
            at += len(doc)
    return batch


def check_packed_attention(model) -> None:
    """Raise ConfigError unless the model computes a packed row exactly like its documents alone.

    Packing relies on the attention implementation honouring a 4-D boolean mask and per-document positions;
    this is checked once before training rather than trusted.
    """
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randint(3, vocab, (1, 5), generator=generator), torch.randint(3, vocab, (1, 4), generator=generator)
    packed = PackedBatch(torch.cat([a, b], 1), torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]]),
                         torch.tensor([[0] * 5 + [1] * 4]))
    with torch.no_grad():
        together = model(input_ids=packed.input_ids, position_ids=packed.position,
                         attention_mask=packed.attention_mask()).logits
        alone = torch.cat([model(input_ids=a).logits, model(input_ids=b).logits], 1)
    if not torch.allclose(together, alone, atol=1e-4):
        raise ConfigError(f"toy LM training: this transformers version ({_transformers_version()}) does not honour "
                          "4-D attention masks for GPT-2 with the sdpa attention; install transformers ≥ 4.48")


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _lr_at(step: int, config: ToyLMConfig) -> float:
    """Linear warm-up, then cosine decay from lr to lr * min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_model(config: ToyLMConfig):
    """A freshly initialised GPT2LMHeadModel (seeded by the caller) sized by `config`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    bos = VOCAB.index(BOS)
    hf_config = GPT2Config(
        vocab_size=len(VOCAB), n_positions=config.n_ctx, n_embd=config.d_model, n_layer=config.n_layer,
        n_head=config.n_head, activation_function="gelu",  # exact GELU: one kernel instead of gelu_new's five
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,  # no dropout: small data-rich runs do not need it
        bos_token_id=bos, eos_token_id=bos, pad_token_id=VOCAB.index(PAD),
    )
    hf_config._attn_implementation = "sdpa"  # honours the 4-D masks of packed training batches
    return GPT2LMHeadModel(hf_config)


# ---- training -----------------------------------------------------------------------------------------------


def train_toy_lm(out_dir: str | Path, config: ToyLMConfig | None = None, progress: bool = True,
                 overwrite: bool = False) -> dict[str, Any]:
    """Train the toy GPT-2 on CPU and write its Hugging Face directory to `out_dir` (atomically).

    Returns a summary: steps, tokens, wall time, final loss and the held-out evaluation (also in eval.json).
    `overwrite=False` refuses an `out_dir` that exists and is not empty.
    """
    config = config or ToyLMConfig()
    config.validate()
    out_dir = Path(out_dir)
    if not overwrite:
        require_fresh_directory(out_dir, "the toy LM output directory")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(out_dir, config, progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(out_dir: Path, config: ToyLMConfig, progress: bool) -> dict[str, Any]:
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    return fit_toy_lm(build_model(config), training_batches(config), config, out_dir, progress, start)


def fit_toy_lm(model, batches: Iterator[PackedBatch], config: ToyLMConfig, out_dir: Path, progress: bool,
               start: float, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one training loop of toy LMs: `config.steps` AdamW steps on `batches`, then the directory is written.

    Used for training from scratch and for fine-tuning (`aekit.worlds.toy_finetune`); `provenance` is added to
    training.json. `start` is the perf_counter time the run's wall time counts from.
    """
    from tqdm.auto import tqdm

    model.train()
    check_packed_attention(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    with atomic_directory(out_dir) as tmp:
        log_path = tmp / "training_log.jsonl"
        running, count, loss_value, tokens = 0.0, 0, float("nan"), 0
        with open(log_path, "w") as log, tqdm(range(config.steps), desc="toy LM", disable=not progress) as bar:
            for step in bar:
                lr = _lr_at(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = next(batches)
                logits = model(input_ids=batch.input_ids, position_ids=batch.position,
                               attention_mask=batch.attention_mask()).logits
                targets = batch.targets()
                loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                       ignore_index=-100)
                tokens += int((targets != -100).sum())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                running, count = running + loss.item(), count + 1
                if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                    loss_value = running / count
                    record = {"step": step + 1, "loss": round(loss_value, 5), "lr": lr, "tokens": tokens,
                              "elapsed": round(time.perf_counter() - start, 2)}
                    if config.eval_every and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
                        record["accuracy"] = _quick_accuracy(model, config.seed)
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{loss_value:.3f}")
                    running, count = 0.0, 0
        model.eval()
        model.save_pretrained(tmp)  # config.json + model.safetensors
        save_tokenizer(tmp, max_length=config.n_ctx)
        train_seconds = time.perf_counter() - start
        summary: dict[str, Any] = {
            "steps": config.steps, "tokens": tokens,
            "train_seconds": round(train_seconds, 1), "final_loss": round(loss_value, 5),
            "parameters": sum(p.numel() for p in model.parameters()),
            "config": config.to_dict(), "language": LanguageConfig(seed=config.world_seed).to_dict(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor(),
            **(provenance or {}),
        }
        atomic_write_json(tmp / "training.json", summary)
        if config.eval_n:
            summary["eval"] = evaluate_toy_lm(tmp, n=config.eval_n, seed=config.seed)
            atomic_write_json(tmp / "eval.json", summary["eval"])
    summary["out_dir"] = str(out_dir)
    return summary


# ---- evaluation ---------------------------------------------------------------------------------------------


@torch.no_grad()
def _last_token_logprobs(model, tokenizer, prompts: list[str], batch_size: int = 128) -> torch.Tensor:
    """log p(next token | prompt) at each prompt's last token, (n, vocab); prompts padded on the right."""
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True)
        logits = model(input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device)).logits
        last = enc.attention_mask.sum(1).to(device) - 1
        out.append(torch.log_softmax(logits[torch.arange(len(last)), last].float(), -1).cpu())
    return torch.cat(out)


def _quick_accuracy(model, seed: int, n: int = 100) -> dict[str, float]:
    """Top-1 accuracy per family on `n` held-out prompts, for the training log (the model goes back to training)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(), pad_token=PAD)
    model.eval()
    scores = {family: round(_score_family(model, tokenizer, family, n, seed, corrupted=False)["accuracy"], 3)
              for family in TASK_FAMILIES}
    model.train()
    return scores


def _score_family(model, tokenizer, family: str, n: int, seed: int, corrupted: bool = True) -> dict[str, float]:
    """Top-1 accuracy on held-out prompts, plus the family's own measures (see evaluate_toy_lm)."""
    tasks = task_set(family, n, seed=seed, split="test")
    vocab = tokenizer.get_vocab()
    clean = _last_token_logprobs(model, tokenizer, tasks.prompts)
    top1 = clean.argmax(-1)
    result: dict[str, float] = {"n": len(tasks)}
    if family == "greater_than":
        year_ids = torch.tensor([vocab[f"{y:02d}"] for y in range(100)])
        yy = torch.tensor([m["yy"] for m in tasks.metadata])
        later = torch.arange(100)[None, :] > yy[:, None]  # (n, 100): which year tokens are valid answers
        p_years = clean[:, year_ids].exp()
        is_year = top1[:, None] == year_ids[None, :]
        result["accuracy"] = float((is_year & later).any(-1).float().mean())
        result["prob_greater"] = float((p_years * later).sum(-1).mean())  # probability mass on years > YY
        result["prob_diff"] = float(((p_years * later).sum(-1) - (p_years * ~later).sum(-1)).mean())
        if corrupted:  # the same later years, after the start year was replaced by 01
            p_corrupted = _last_token_logprobs(model, tokenizer, tasks.corrupted_prompts)[:, year_ids].exp()
            result["corrupted_prob_greater"] = float((p_corrupted * later).sum(-1).mean())
        return result
    answers = torch.tensor([vocab[a] for a in tasks.answers])
    result["accuracy"] = float((top1 == answers).float().mean())
    result["answer_prob"] = float(clean.gather(1, answers[:, None]).exp().mean())
    if corrupted:
        top1_corrupted = _last_token_logprobs(model, tokenizer, tasks.corrupted_prompts).argmax(-1)
        result["corrupted_accuracy"] = float((top1_corrupted == answers).float().mean())
    if family == "ioi":
        subject = torch.tensor([vocab[m["s"]] for m in tasks.metadata])
        result["logit_diff"] = float((clean.gather(1, answers[:, None]) - clean.gather(1, subject[:, None])).mean())
    return result


@torch.no_grad()
def _prose_loss(model, tokenizer, n_docs: int, seed: int, world_seed: int) -> float:
    """Mean next-token cross-entropy (nats) over held-out prose documents (a document stream no run trains on)."""
    docs = LanguageWorld(LanguageConfig(seed=world_seed)).documents(n_docs, seed=derive_seed("toy_lm.eval", seed))
    # a document longer than the context is scored on its first n_positions tokens
    enc = tokenizer([d.text for d in docs], return_tensors="pt", padding=True, truncation=True,
                    max_length=model.config.n_positions)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, n_docs, 128):
        ids, mask = enc.input_ids[i:i + 128].to(device), enc.attention_mask[i:i + 128].to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                       ignore_index=-100, reduction="sum"))
        count += int((targets != -100).sum())
    return total / count


def evaluate_toy_lm(model_dir: str | Path, n: int = 500, seed: int = 0, device: str | None = "cpu",
                    world_seed: int = 0) -> dict[str, Any]:
    """Held-out scores of a toy LM directory, loaded through `aekit.data.lm.load_lm`.

    Per task family, on `n` "test"-split prompts: top-1 accuracy (for greater-than: the top token is a year after
    YY, plus the probability mass on later years and its difference to earlier ones), the answer's probability,
    and the accuracy on corrupted prompts (near chance when the corruption removed the information). Also the
    mean next-token loss on `n` held-out prose documents.
    """
    from ..data.lm import load_lm

    model, tokenizer = load_lm(str(model_dir), device=device, progress=False)
    results: dict[str, Any] = {"n": n, "seed": seed, "split": "test"}
    for family in TASK_FAMILIES:
        results[family] = _score_family(model, tokenizer, family, n, seed)
    results["prose_loss"] = round(_prose_loss(model, tokenizer, max(n, 1), seed, world_seed), 5)
    results["prose_loss_uniform"] = round(float(np.log(len(VOCAB))), 5)  # the loss of knowing nothing, for scale
    return results
