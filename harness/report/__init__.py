"""The decision record and its renderings."""

from harness.report.decision import DECISION_NAME, DecisionParts, build_decision, load_decision, write_decision
from harness.report.markdown import render_markdown

__all__ = ["DECISION_NAME", "DecisionParts", "build_decision", "load_decision", "write_decision", "render_markdown"]
