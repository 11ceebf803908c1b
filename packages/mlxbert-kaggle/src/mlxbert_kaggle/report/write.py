"""``write_report``: a run folder -> ``report.html`` (figures embedded) + the figures as PNG.

Files::

    REPORT.html            the page, self-contained (default RUN_DIR/report.html)
    REPORT-figures/*.png   each figure, with figures.json listing them

The page replaces an earlier mlxbert report at the same place; any other existing file (or
a figures folder that is not a report's) is replaced only when asked (``overwrite``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from mlxbert_glue.task_model import atomic_dir, write_text

from ..errors import InputError
from . import html, sections
from .figures import figure_class
from .load import load_run
from .summary import RunSummary

MANIFEST = "figures.json"


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote, and the summary it showed."""

    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    summary: RunSummary | None = None


def report_paths(run_dir: str | Path, output: str | Path | None = None) -> tuple[Path, Path]:
    """(page, figures folder) for a run folder and an optional ``--output``."""
    page = Path(output) if output is not None else Path(run_dir) / "report.html"
    return page, page.with_name(f"{page.stem}-figures")


def _is_report(page: Path) -> bool:
    try:
        with page.open(encoding="utf-8", errors="replace") as f:
            head = f.read(2048)
    except OSError:
        return False
    return f'<meta name="generator" content="{html.GENERATOR}">' in head


def check_output(page: Path, folder: Path, overwrite: bool) -> None:
    """Refuse an output that cannot be written or would replace what is not a report."""
    if page.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--output {page}: the report is an HTML file; name it *.html")
    if page.is_dir():
        raise InputError(f"--output {page} is a folder; give a file name such as report.html")
    parent = page.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {page}: {parent} is not a folder")
    if page.exists() and not overwrite and not _is_report(page):
        raise InputError(
            f"{page} exists and is not an mlxbert report; pass --overwrite to replace it"
        )
    ours = folder.is_dir() and (folder / MANIFEST).is_file()
    if folder.exists() and not overwrite and not ours:
        raise InputError(
            f"{folder} exists and does not hold a report's figures; pass --overwrite to "
            "replace it, or choose another --output"
        )


def write_report(
    run_dir: str | Path, output: str | Path | None = None, *, overwrite: bool = False
) -> ReportFiles:
    """Write the report of a run folder (see the module doc); returns the files written.

    Raises :class:`InputError` for a folder that holds no run, an unusable output path, or
    a missing matplotlib (``PlottingUnavailable``, with the install hint).
    """
    run_dir = Path(run_dir)
    page, folder = report_paths(run_dir, output)
    check_output(page, folder, overwrite)
    figure_class()  # fail early, with the install hint, when matplotlib is missing
    summary = load_run(run_dir)
    built = sections.build(summary)
    pngs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    for section in built:
        for name, fig, caption in section.figures:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            pngs[name], captions[name] = buffer.getvalue(), caption
    written: dict[str, Path] = {}
    with atomic_dir(folder) as tmp:
        for name, png in pngs.items():
            (tmp / f"{name}.png").write_bytes(png)
            written[name] = folder / f"{name}.png"
        manifest = {"run": str(run_dir), "report": page.name, "figures": captions}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    headline = f"{summary.metric}: {summary.score:.4f}"
    subtitle = f"{summary.kind} run in {run_dir} · task {summary.task}"
    write_text(page, html.page(summary.title, subtitle, headline, built, pngs))
    return ReportFiles(page, written, summary)


__all__ = ["MANIFEST", "ReportFiles", "check_output", "report_paths", "write_report"]
