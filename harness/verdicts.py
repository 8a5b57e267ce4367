"""The words of a canary decision, for everything that judges, records or shows one: the three
verdicts and their exit codes (the shared table, ``harness.errors``), and a metric's
classification as Kayenta names it. A leaf: the judge (``harness.canary``) and the decision
record's model (``harness.report.model``) both import it."""

from __future__ import annotations

from typing import Literal

from harness.errors import EXIT_HOLD, EXIT_OK, EXIT_ROLLBACK

__all__ = ["PROMOTE", "HOLD", "ROLLBACK", "VerdictName", "VERDICT_EXIT", "Classification", "SHARE_OF_IMAGES"]

PROMOTE, HOLD, ROLLBACK = "PROMOTE", "HOLD", "ROLLBACK"
VerdictName = Literal["PROMOTE", "HOLD", "ROLLBACK"]
VERDICT_EXIT = {PROMOTE: EXIT_OK, ROLLBACK: EXIT_ROLLBACK, HOLD: EXIT_HOLD}
# Pass, High or Low (failed in that direction), NoData, or Info (reported, not scored).
Classification = Literal["Pass", "High", "Low", "NoData", "Info"]
SHARE_OF_IMAGES = "share of images"  # the effect unit of a paired sign test
