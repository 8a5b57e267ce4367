"""The COCO caption tokenizer: Stanford PTBTokenizer through pycocoevalcap, one Java call a corpus.

Without Java, a Python tokenizer that follows the same rules (lower case, PTB splitting of
punctuation and clitics, punctuation removed) stands in, and says so.
"""

from __future__ import annotations

import re
import shutil
from typing import Hashable, Mapping, Sequence

__all__ = ["ptb_tokenize", "python_tokenize", "tokenize", "PTB_NAME", "PYTHON_NAME"]

PTB_NAME = "PTBTokenizer (Stanford CoreNLP 3.4.1, pycocoevalcap)"
PYTHON_NAME = "python PTB-style tokenizer (java not found; figures may differ slightly from COCO's)"

# Characters that PTBTokenizer with -preserveLines would read as a line break.
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_PUNCTUATION = {"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"'}
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_TOKEN = re.compile(r"n't\b|'(?:s|m|d|ll|re|ve)\b|\w+(?=n't\b)|[\w]+(?:[.\-/][\w]+)*|\.\.\.|--|\S")


def ptb_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
    """Lower-cased, punctuation-free PTB tokens joined by spaces, as COCO evaluation uses them.

    The same Java command and post-processing as pycocoevalcap's ``PTBTokenizer``, with the
    temporary file in the system's temp folder and the tokenizer's chatter kept off stderr.
    """
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    if not captions:
        return {}
    keys = [k for k, caps in captions.items() for _ in caps]
    lines = [_LINE_BREAKS.sub(" ", c) for caps in captions.values() for c in caps]
    jar_dir = Path(ptb.__file__).resolve().parent
    fd, tmp = tempfile.mkstemp(suffix=".txt", prefix="ptb-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write("\n".join(lines).encode())
        cmd = [
            "java",
            "-cp",
            ptb.STANFORD_CORENLP_3_4_1_JAR,
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            tmp,
        ]
        proc = subprocess.run(cmd, cwd=jar_dir, capture_output=True)
    finally:
        os.unlink(tmp)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"PTBTokenizer failed: {err[-1] if err else proc.returncode}")
    out: dict[Hashable, list[str]] = {k: [] for k in captions}
    for k, line in zip(keys, proc.stdout.decode().split("\n")):
        out[k].append(" ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS))
    # A corpus ending in empty captions gets fewer lines back: those captions tokenize to "".
    return {k: (out[k] + [""] * len(captions[k]))[: len(captions[k])] for k in captions}


def python_tokenize(captions: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
    """The PTB rules COCO captions need, in Python: for machines without Java."""
    return {
        k: [" ".join(_BRACKETS.get(t, t) for t in _TOKEN.findall(c.lower()) if t not in _PUNCTUATION) for c in caps]
        for k, caps in captions.items()
    }


def tokenize(captions: Mapping[Hashable, Sequence[str]]) -> tuple[dict[Hashable, list[str]], str]:
    """Tokens by PTBTokenizer where Java is present, else by the Python tokenizer; and which ran."""
    if shutil.which("java") is None:
        return python_tokenize(captions), PYTHON_NAME
    return ptb_tokenize(captions), PTB_NAME
