"""The documentation's benchmark tables come from the committed result files, never from typed numbers.

benchmarks/render_results.py renders each table NAME from its JSON; docs/hooks/results_tables.py puts it into the
pages. These tests render every NAME from the committed files, check that a number from the file appears where
it belongs, and that an unknown name or a missing or malformed file is an error rather than an empty table.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str):
    """A module of benchmarks/ by its file (the directory is not a package, and stays off sys.path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_results = _load("render_results")
results_io = _load("results_io")
NAMES, ResultsError, render = render_results.NAMES, render_results.ResultsError, render_results.render


def _row(table: str, first_cell: str) -> str:
    """The table row whose first cell is `first_cell`."""
    for line in table.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return line
    raise AssertionError(f"no row '{first_cell}' in\n{table}")


# NAME -> (first cell of a row, the text that row must contain, computed from the file)
def _expect_sae_step(data):
    row = next(r for r in data["rows"] if r["name"] == "aekit topk")
    return "aekit topk", f"| {row['ms_per_step']:.1f} | {row['ratio_to_matmul']:.2f} |"


def _expect_recovery(study, arch="topk"):
    def expect(data):
        entry = data[study]["summary"][arch]["parent_f1" if study == "absorption" else "mcc"]
        n = len({row["seed"] for row in data[study]["rows"]})
        return arch, f"{entry['mean']:.3f} ± {entry['std']:.3f}" if n > 1 else f"{entry['mean']:.3f}"
    return expect


def _expect_sweep(data):
    entry = data["sweep"]
    law, ratio = entry["laws"][0], entry["ratios"][-1]
    mcc = entry["summary"][f"{law} {ratio}x topk"]["mcc"]
    n = len({row["seed"] for row in entry["rows"]})
    return law, f"| {mcc['mean']:.3f} ± {mcc['std']:.3f} |" if n > 1 else f"| {mcc['mean']:.3f} |"


def _expect_concepts(data):
    arch = data["rows"][0]["architecture"]
    mine = [r for r in data["rows"] if r["architecture"] == arch]
    sae = statistics.fmean(r["concepts"]["formality"]["sae_best_f1"] for r in mine)
    return arch, f"{sae:.3f} / "


def _expect_disentangle(data):
    first = data["settings"]["models"][0]
    label = render_results.DISENTANGLE_MODELS.get(first, first)
    entry = data["summary"][first]["dci_d"]
    value = f"{entry['mean']:.3f}" + (f" ± {entry['ci95']:.3f}" if entry.get("ci95") is not None else "")
    return label, f"| {value} |"


def _first_task(data):
    return next(iter(data["tasks"].values()))


def _expect_circuits_time(data):
    seconds = _first_task(data)["seconds"]["discrete_codes"]["mean"]
    return "discrete SAE codes", f"| {seconds:.3f} s (1×) |"


EXPECTED = {
    "sae_step": _expect_sae_step,
    "sae_step_dead_latents": _expect_sae_step,
    "recovery_uncorrelated": _expect_recovery("uncorrelated"),
    "recovery_absorption": _expect_recovery("absorption", "matryoshka"),
    "recovery_hierarchical": _expect_recovery("hierarchical"),
    "recovery_hierarchical_unit_norm": _expect_recovery("hierarchical_unit_norm", "batchtopk"),
    "recovery_sweep": _expect_sweep,
    "concept_recovery": _expect_concepts,
    "cache_throughput": lambda d: ("plain forward pass (tokenise + forward to the logits)",
                                   f"{d['plain_forward_tokens_per_s']:,.0f} tokens/s"),
    "store_memory": lambda d: ("in-memory control", f"| {d['runs'][-1]['peak_rss_mib']:.0f} |"),
    "screen_survivors": lambda d: ("survivors per row: mean / median / p99 / max", f"{d['survivors']['mean']:.1f} / "),
    "disentangle": _expect_disentangle,
    "disentangle_long": _expect_disentangle,
    "toy_lm_eval": lambda d: ("IOI", f"logit diff IO − S {d['ioi']['logit_diff']:.2f}"),
    "demo": lambda d: ("**CE loss recovered** (vs zero / vs mean ablation)",
                       f"**{d['spliced']['ce_recovered_zero']:.3f}** / {d['spliced']['ce_recovered_mean']:.3f}"),
    "demo_concepts": lambda d: ("formality", f"| {d['concepts']['formality']['sae_best_f1']:.3f} |"),
    "circuits_auc": lambda d: ("discrete SAE codes", "| {mean:.3f} ± {std:.3f} |".format(
        **_first_task(d)["auc"]["discrete_codes"])),
    "circuits_sensitivity": lambda d: ("10 prompt pairs", "| {mean:.3f} ± {std:.3f} |".format(
        **_first_task(d)["sensitivity"]["prompts"]["10"])),
    "circuits_time": _expect_circuits_time,
    "circuits_time_scale": lambda d: ("discrete SAE codes", f"| {d['scale']['seconds']['discrete_codes']:.1f} s |"),
    "embeddings_analysis": lambda d: ("dataset diffing, top 10 by absolute difference",
                                      "| {mean:.2f} ± {std:.2f} |".format(**d["diffing"]["absolute"]["recall"])),
    "embeddings_selection": lambda d: ("ioi, 1 example(s)", "| {mean:.2f} ± {std:.2f} |".format(
        **d["selection"]["precision"]["ioi/1"]["sae_jaccard"])),
    "embeddings_finetune": lambda d: ("random", "| {:.3f} |".format(
        d["selection"]["finetune"]["methods"]["random"]["target_accuracy"])),
    "criticality": lambda d: ("relu, C_W × 1", "| {:.3g} ± ".format(
        next(e for e in d["summary"] if e["activation"] == "relu" and e["c_w_scale"] == 1)["ratio_last_first"])),
    "axial_attention": lambda d: ("16×16 (256 positions), default kernel", "| {:.1f} |".format(
        next(r for r in d["rows"] if r["side"] == 16 and r["backend"] == "default" and r["method"] == "full")[
            "seconds_min"] * 1e3)),
    "low_rank_denoiser": lambda d: ("{ratio:g} ({n_train})".format(**d["summary"][0]),
                                    "| {error_mean:.4f} ± {error_std:.4f} |".format(**d["summary"][0])),
    "stochastic_cca": lambda d: ("digits", "| {pcc_mean:.3f} ± {pcc_std:.3f} |".format(**d["summary"][0])),
    "anomaly": lambda d: ("StackVAE-G", "| {f1_mean:.3f} ± {f1_std:.3f} |".format(**d["summary"][0])),
    "psvae": lambda d: ("PS-VAE", "| {mean:.3f} ± {std:.3f} |".format(**d["summary"][1]["probe_mean"])),
    "lvrae": lambda d: ("noise-trained", "| {drop_mean:.2f} ± {drop_std:.2f} |".format(**d["summary"][1])),
    "epg": lambda d: ("EPG (pre-trained encoder)", "| {:.1f} |".format(
        d["runs"]["EPG (pre-trained encoder)"]["final_frechet"])),
    "cktgen": lambda d: ("CktGen", "| {spec_acc_mean:.3f} ± {spec_acc_std:.3f} |".format(**d["summary"][0])),
    "video_vae": lambda d: ("causal video VAE", "| {:,} | {:.2f}".format(d["summary"][0]["values_per_clip"],
                                                                     d["summary"][0]["psnr_mean"])),
    "ddmi": lambda d: ("DDMI (latent diffusion)", "| {:.1f} |".format(
        d["scenes"]["samples"]["DDMI (latent diffusion)"]["frechet"])),
    "ddmi_reconstruction": lambda d: ("sdf ({} steps; 2× vs the exact field)".format(d["settings"]["sdf_steps"]),
                                      "| {:.2f} |".format(d["sdf"]["reconstruction"]["psnr_2x"])),
    "crate_mae": lambda d: ("CRATE-MAE", "| {:,} | {:.3f} |".format(
        d["summary"]["CRATE-MAE"]["parameters"], d["targets"]["parameter_ratio"])),
    "vlsae": lambda d: ("VL-SAE", "| {shared_fraction_mean:.3f} ± {shared_fraction_std:.3f} |".format(
        **d["summary"][0])),
    "toy_vision": lambda d: ("toy ViT", "| {:.3f} |".format(d["models"]["vit"]["test"]["mean"])),
    "vision_sae": lambda d: ("toy ViT", "| {:.3f}".format(d["studies"]["vit"]["summary"]["fvu"]["mean"])),
    "raster_mapping": lambda d: ("raw k-means", "| {accuracy:.3f} |".format(**d["summary"]["raw k-means"])),
    "embeddings_throughput": lambda d: ("SAE document embeddings (max pooling)",
                                        f"| {d['throughput']['sae_docs_per_second']:,.0f} |"),
}


def test_every_table_name_has_an_expectation():
    assert set(EXPECTED) == set(NAMES)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_table_renders_from_its_committed_file(name):
    path = NAMES[name].path
    if not path.is_file():  # the speed benchmarks are measured on a quiet machine: benchmarks/run_all_speed.sh
        pytest.skip(f"{path.relative_to(REPO)} not written yet; write it with `{NAMES[name].how}`")
    data = json.loads(path.read_text())
    if name.startswith("recovery_") and name.removeprefix("recovery_") not in data:
        pytest.skip(f"study {name.removeprefix('recovery_')} not in {path.name} yet; write it with `{NAMES[name].how}`")
    text = render(name)
    table, _, line = text.rpartition("\n\n")
    header, rule, *rows = table.splitlines()
    assert rule == "|" + "---|" * (header.count(" | ") + 1) and rows
    assert all(row.count(" | ") == header.count(" | ") for row in rows)  # every row fills every column
    first_cell, value = EXPECTED[name](data)
    assert value in _row(table, first_cell)
    provenance = (data.get(name.removeprefix("recovery_")) or {}).get("provenance") if name.startswith("recovery_") \
        else data.get("provenance")
    if provenance:
        assert line == render_results.provenance_line(provenance)
        assert line.startswith(f"Measured with `{provenance['command']}` on ") and provenance["date_utc"][:10] in line
    else:  # written before benchmarks recorded their machine: the line says so instead of guessing
        assert "machine not recorded in the file" in line


def test_speed_tables_render_from_minimal_files(tmp_path):
    """The renderers of the results measured last, on the fields their benchmarks write (placeholder numbers)."""
    (tmp_path / "cache_throughput.json").write_text(json.dumps({
        "documents": 10, "n_layer": 2, "width": 8, "batch_size": 4, "repeats": 1, "plain_forward_tokens_per_s": 1000.0,
        "cache_last_block": {"hook": "blocks.1.hook_resid_post", "tokens_per_s": 1100.0, "ratio_to_plain_forward": 1.1},
        "cache_middle_block": {"hook": "blocks.0.hook_resid_post", "tokens_per_s": 1500.0,
                               "ratio_to_plain_forward": 1.5},
        "train_rows_per_s_from_memory": 200.0, "train_rows_per_s_from_store": 180.0,
        "train_store_to_memory_ratio": 0.9}))
    assert "| `aekit cache` at the last block (`blocks.1.hook_resid_post`) | 1,100 tokens/s | 1.10 |" in \
        render("cache_throughput", tmp_path)
    runs = [{"source": "store", "multiple": m, "rows": 8 * m, "store_mib": m, "peak_rss_mib": 400.0 + m,
             "max_resident_rows": 8} for m in (1, 4)]
    (tmp_path / "store_memory.json").write_text(json.dumps({
        "settings": {"d": 4, "buffer_rows": 8, "steps": 3}, "runs": runs}))
    assert "| store | 4× | 32 | 4 | 404 | 1.01 | 8 |" in render("store_memory", tmp_path)
    concept = {"sae_best_f1": 0.5, "probe_f1": 1.0, "ratio": 0.5, "values": 2}
    (tmp_path / "demo.json").write_text(json.dumps({
        "settings": {"hook": "blocks.1.hook_resid_post", "sae": "topk", "steps": 5}, "wall_seconds": 12.3,
        "reconstruction": {"fvu": 0.25, "l0": 16.0, "dead_fraction": 0.01},
        "spliced": {"n_tokens": 100, "ce_clean": 1.0, "ce_sae": 1.5, "ce_zero": 11.0, "ce_mean": 6.0,
                    "ce_recovered_zero": 0.95, "ce_recovered_mean": 0.9, "kl_sae": 0.2, "delta_loss": 0.5},
        "concepts": {"formality": concept}, "scored_tokens": 50,
        "topic_posterior": {"sae_matched_correlation": 0.3, "probe_correlation": 0.6, "ratio": 0.5}}))
    demo = render("demo", tmp_path)
    assert "| **CE loss recovered** (vs zero / vs mean ablation) | **0.950** / 0.900 |" in demo
    assert demo.endswith("Provenance not recorded in the file.")
    assert "| log p(topic \\| x): matched correlation / probe correlation | 0.300 | 0.600 | 0.50 |" in \
        render("demo_concepts", tmp_path)


def test_an_unknown_name_is_an_error():
    with pytest.raises(ResultsError, match="unknown results table 'sae_steps'.*known: .*sae_step"):
        render("sae_steps")


def test_a_missing_file_is_an_error_naming_the_command_that_writes_it(tmp_path):
    with pytest.raises(ResultsError, match=r"concept_recovery.json: missing; write it with `python benchmarks/"):
        render("concept_recovery", tmp_path)


def test_a_malformed_file_is_an_error(tmp_path):
    (tmp_path / "cache_throughput.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not a readable JSON results file"):
        render("cache_throughput", tmp_path)
    (tmp_path / "cache_throughput.json").write_text(json.dumps({"plain_forward_tokens_per_s": 1.0}))
    with pytest.raises(ResultsError, match="lacks or mangles a field .*cache_last_block"):
        render("cache_throughput", tmp_path)
    (tmp_path / "recovery.json").write_text(json.dumps({"uncorrelated": {}}))
    with pytest.raises(ResultsError, match="no study 'sweep'"):
        render("recovery_sweep", tmp_path)


def test_machine_summary_and_provenance_line():
    machine = {"cpu": "Some CPU", "logical_cores": 8, "usable_cores": 4, "ram_gib": 31.4, "torch": "2.13.0",
               "torch_threads": 1, "cpu_features": ["avx512f", "amx_bf16"], "gpus": ["Some GPU"]}
    assert render_results.machine_summary(machine) == ("Some CPU, 4 logical cores, 31 GiB RAM, AMX, Some GPU; "
                                                       "torch 2.13.0 with 1 thread")
    line = render_results.provenance_line({"command": "python benchmarks/x.py --a 1", "machine": machine,
                                           "date_utc": "2026-12-01T10:20:30Z", "aekit_version": "0.1.0",
                                           "git": {"commit": "abcdef12"}})
    assert line == ("Measured with `python benchmarks/x.py --a 1` on Some CPU, 4 logical cores, 31 GiB RAM, AMX, "
                    "Some GPU; torch 2.13.0 with 1 thread, 2026-12-01 10:20 UTC (aekit 0.1.0, commit abcdef1).")
    assert "machine not recorded" in render_results.machine_summary(None)


def test_write_results_records_provenance(tmp_path):
    out = tmp_path / "x.json"
    path = results_io.write_results("x", {"value": 1.5}, ["--steps", "3"], out=out)
    assert path == out
    record = json.loads(out.read_text())
    assert record["value"] == 1.5
    p = record["provenance"]
    assert p["command"].endswith("--steps 3") and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", p["date_utc"])
    assert {"cpu", "logical_cores", "ram_gib", "os", "python", "torch", "torch_threads", "cpu_features",
            "gpus"} <= set(p["machine"])
    assert p["aekit_version"] and set(p["git"]) >= {"commit", "dirty"}
    assert render_results.provenance_line(p).startswith("Measured with `")
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            results_io.results_path(bad)


def test_legacy_dates_match_the_git_history():
    """Files without provenance carry the date and commit that added them, as the git history says."""
    files = {"disentangle.json": "benchmarks/results/disentangle.json",
             "disentangle_6000steps_1seed.json": "benchmarks/results/disentangle_6000steps_1seed.json",
             "eval.json": "src/aekit/worlds/bundled/toy_gpt2/eval.json"}
    for key, path in files.items():
        try:
            log = subprocess.run(["git", "-C", str(REPO), "log", "--follow", "--diff-filter=A", "--format=%h %cs",
                                  "--", path], capture_output=True, text=True, timeout=30, check=True).stdout.split()
        except (OSError, subprocess.SubprocessError):
            pytest.skip("no git history here")
        if len(log) < 2:
            pytest.skip("shallow or missing git history")
        commit, date = log[-2], log[-1]  # the first commit that added the file
        assert f"on {date} (commit {commit[:7]})" in render_results.LEGACY_ORIGIN[key]


def test_docs_pages_name_only_known_tables():
    pages = sorted((REPO / "docs").glob("**/*.md"))
    if not pages:
        pytest.skip("no documentation pages")
    used = {m for page in pages for m in re.findall(r"<!--\s*results:\s*(\S+?)\s*-->", page.read_text())}
    assert used <= set(NAMES), used - set(NAMES)


def _hook():
    pytest.importorskip("mkdocs")
    spec = importlib.util.spec_from_file_location("results_tables_hook", REPO / "docs" / "hooks" / "results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mkdocs_hook_replaces_markers_and_fails_on_unknown_names():
    from mkdocs.exceptions import PluginError

    hook = _hook()

    class Page:
        class file:
            src_uri = "page.md"

    markdown = "# Title\n\n<!-- results: toy_lm_eval -->\n\nText <!-- results: toy_lm_eval --> inline stays.\n"
    out = hook.on_page_markdown(markdown, Page, None, None)
    assert out.startswith("# Title\n\n" + render("toy_lm_eval") + "\n\nText <!-- results: toy_lm_eval -->")
    with pytest.raises(PluginError, match="page.md: unknown results table 'nope'"):
        hook.on_page_markdown("<!-- results: nope -->\n", Page, None, None)


def test_the_mkdocs_hook_publishes_the_result_plots(tmp_path):
    pytest.importorskip("mkdocs")
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

    (tmp_path / "docs").mkdir()
    config = MkDocsConfig()
    config.load_dict({"site_name": "t", "docs_dir": str(tmp_path / "docs"), "site_dir": str(tmp_path / "site"),
                      "hooks": [str(REPO / "docs" / "hooks" / "results_tables.py")]})
    errors, _ = config.validate()
    assert not errors
    files = config.plugins.on_files(Files([]), config=config)  # as `mkdocs build` runs the hook
    pngs = sorted(render_results.RESULTS.rglob("*.png"))
    assert pngs and sorted(f.src_uri for f in files) == sorted(
        "results/" + p.relative_to(render_results.RESULTS).as_posix() for p in pngs)
    assert all(f.abs_src_path and Path(f.abs_src_path).is_file() for f in files)
