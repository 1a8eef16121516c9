"""MkDocs hook: benchmark tables rendered from benchmarks/results/*.json, and the benchmarks' plots as site files.

A page line `<!-- results: NAME -->` becomes the table NAME (benchmarks/render_results.py) followed by the line
"Measured with `<command>` on <machine>, <date>." An unknown NAME or a missing or malformed results file stops
the build. Every PNG under benchmarks/results/ is published as `results/<path>`, so a page shows it with
`![...](results/recovery_sweep.png)`.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files


def _load_renderer():
    """benchmarks/render_results.py (standard library only), loaded by its path: benchmarks/ is not a package."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "render_results.py"
    spec = importlib.util.spec_from_file_location("aekit_benchmarks_render_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_results = _load_renderer()

MARKER = re.compile(r"^[ \t]*<!--\s*results:\s*(\S+?)\s*-->[ \t]*$", re.MULTILINE)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace every `<!-- results: NAME -->` line with its rendered table."""

    def replace(match: re.Match) -> str:
        try:
            return render_results.render(match.group(1))
        except render_results.ResultsError as e:
            raise PluginError(f"{page.file.src_uri}: {e}") from None

    return MARKER.sub(replace, markdown)


def on_files(files: Files, config) -> Files:
    """Publish benchmarks/results/**/*.png as results/<relative path>."""
    for png in sorted(render_results.RESULTS.rglob("*.png")):
        uri = "results/" + png.relative_to(render_results.RESULTS).as_posix()
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files
