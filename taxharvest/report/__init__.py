"""Reports: one self-contained HTML file per run, plots embedded."""

from taxharvest.report.html import render_report, runs_of

__all__ = ["render_report", "runs_of"]
