"""A model judge's run as a typed report: ``judge.json`` (every caption's judgement, the counts,
what the run cost, the agreement with people and whether the judge may gate) and ``judge.md``, in
which everything the model or the inputs wrote (reasons, answers, errors, captions, ids) is escaped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.quality.agreement import Agreement, Figure, Gating
from harness.quality.judge_model import STATUSES, JudgeRun

__all__ = ["JudgeReport", "JUDGE_JSON", "JUDGE_MD", "write_judge_report", "MD_ROWS"]

JUDGE_JSON, JUDGE_MD = "judge.json", "judge.md"
MD_ROWS = 200  # captions listed in judge.md (judge.json holds every one)


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _figure(f: Figure) -> str:
    ci = f"{f.interval.low:.3f} to {f.interval.high:.3f}" if f.interval is not None else "–"
    return f"{_fmt(f.value)} | {ci}"


@dataclass(frozen=True)
class JudgeReport:
    judge: dict[str, Any]  # ModelJudge.describe()
    run: JudgeRun
    agreement: Agreement | None = None
    gating: Gating | None = None
    ratings: str | None = None  # the ratings file the agreement is with

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "judge": self.judge,
            "counts": r.counts(),
            "n_captions": len(r.judgements),
            "mean_score": self.mean_score(),
            "requests_sent": r.requests_sent,
            "from_cache": r.from_cache,
            "usage": {
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost": r.cost,
                "answers_without_usage": r.without_usage,
            },
            "ratings": self.ratings,
            "agreement": self.agreement.to_dict() if self.agreement is not None else None,
            "gating": self.gating.to_dict() if self.gating is not None else None,
            "judgements": [j.to_dict() for j in r.judgements],
        }

    def mean_score(self) -> float | None:
        scores = [j.score for j in self.run.judgements if j.score is not None]
        return sum(scores) / len(scores) if scores else None

    def table(self) -> str:
        """The summary a terminal shows (the model's own text is left out)."""
        from harness.text import one_line

        r, counts = self.run, self.run.counts()
        lines = [
            f"judge {one_line(self.judge['model'], 80)}: {len(r.judgements)} captions, "
            + ", ".join(f"{counts[s]} {s}" for s in STATUSES),
            f"mean score {_fmt(self.mean_score())}; requests sent {r.requests_sent}, from the cache {r.from_cache}; "
            f"tokens {r.prompt_tokens} in, {r.completion_tokens} out"
            + (f"; cost {r.cost:.4f}" if r.cost is not None else ""),
        ]
        if self.agreement is not None:
            a = self.agreement
            lines.append(f"agreement with people on {a.n_pairs} captions (95% bootstrap interval):")
            for name, f in (
                ("Kendall tau-b", a.kendall_tau_b),
                ("Spearman rho", a.spearman_rho),
                ("weighted kappa", a.weighted_kappa),
            ):
                ci = f" ({f.interval.low:.3f} to {f.interval.high:.3f})" if f.interval is not None else ""
                lines.append(f"  {name:<15} {_fmt(f.value)}{ci}")
        if self.gating is not None:
            lines.append(("may gate: " if self.gating.allowed else "not gating: ") + self.gating.reason)
        return "\n".join(lines)

    def markdown(self) -> str:
        from harness.report.markdown import code_span, inline_text

        r, counts = self.run, self.run.counts()
        j = self.judge
        out = [
            "# A model as judge",
            "",
            f"Model {code_span(j['model'])} at {code_span(j['url'])} ({j['protocol']}), rubric sha256 "
            f"`{j['rubric_sha256'][:12]}`.",
            "",
            "| captions | " + " | ".join(STATUSES) + " | mean score | requests sent | from the cache | tokens in | "
            "tokens out | cost |",
            "| ---: | " + " | ".join("---:" for _ in STATUSES) + " | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {len(r.judgements)} | "
            + " | ".join(str(counts[s]) for s in STATUSES)
            + f" | {_fmt(self.mean_score())} | {r.requests_sent} | {r.from_cache} | {r.prompt_tokens} | "
            f"{r.completion_tokens} | {'–' if r.cost is None else f'{r.cost:.4f}'} |",
            "",
        ]
        if r.without_usage:
            out += [f"{r.without_usage} answers reported no token usage: not in the tokens and cost.", ""]
        if self.agreement is not None:
            a = self.agreement
            out += [
                "## Agreement with people",
                "",
                f"Captions both scored by the judge and rated by people: {a.n_pairs} ({a.ratings_used} ratings in "
                f"{code_span(self.ratings)}). Rated captions the judge did not score: {a.rated_not_scored}. "
                f"Ratings of no judged caption: {a.ratings_unmatched}.",
                "",
                f"| figure | value | {a.weighted_kappa.interval.level:.0%} bootstrap interval |"
                if a.weighted_kappa.interval is not None
                else "| figure | value | bootstrap interval |",
                "| --- | ---: | --- |",
                f"| Kendall tau-b | {_figure(a.kendall_tau_b)} |",
                f"| Spearman rho | {_figure(a.spearman_rho)} |",
                f"| weighted kappa (quadratic) | {_figure(a.weighted_kappa)} |",
                "",
            ]
        if self.gating is not None:
            g = self.gating
            word = "**May gate**" if g.allowed else "**Not gating**"
            out += [f"{word}: {inline_text(g.reason)}.", ""]
        out += [
            "## Captions",
            "",
            "| image | status | score | reason or error | caption |",
            "| --- | --- | ---: | --- | --- |",
        ]
        for x in r.judgements[:MD_ROWS]:
            why = x.reason if x.reason is not None else x.detail
            score = "–" if x.score is None else str(x.score)
            out.append(
                f"| {code_span(x.image_id, 40, cell=True)} | {x.status}{' (cached)' if x.cached else ''} | {score} | "
                f"{inline_text(why, 200)} | {inline_text(x.caption, 160)} |"
            )
        if len(r.judgements) > MD_ROWS:
            out += ["", f"The first {MD_ROWS} of {len(r.judgements)} captions; `{JUDGE_JSON}` holds every one."]
        return "\n".join(out) + "\n"


def write_judge_report(report: JudgeReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``judge.json`` and ``judge.md`` in ``out_dir`` (each replaced whole)."""
    import os

    from harness.quality.report import write_quality

    out = Path(out_dir)
    js = write_quality(report.to_dict(), out, JUDGE_JSON)
    md = out / JUDGE_MD
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(report.markdown(), encoding="utf-8")
    os.replace(tmp, md)
    return js, md
