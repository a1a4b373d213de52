"""Reports of verified and refuted claims: run over many targets, views, HTML, Markdown, SVG plots,
MathML, and the diff of two results files.

    from softmax_oracle.report import write_report
"""

from __future__ import annotations

from softmax_oracle.report.run import run_report, save_report, write_report
from softmax_oracle.report.views import DEFAULT_TARGETS, ReportData, load_results, summary_text

__all__ = ["DEFAULT_TARGETS", "ReportData", "load_results", "run_report", "save_report",
           "summary_text", "write_report"]
