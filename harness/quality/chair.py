"""Object hallucination: CHAIR (Rohrbach et al., "Object Hallucination in Image Captioning",
EMNLP 2018), and, where a data set knows more than which objects an image holds, colour and
relation hallucination.

A caption *mentions* an object when one of its words (singularised, multi-word names joined) is a
word of the vocabulary; the mention is *hallucinated* when the image holds no object of that
category. Over a corpus:

    CHAIR_i = hallucinated mentions / mentions
    CHAIR_s = captions with at least one hallucinated mention / captions

both as exact fractions. The COCO vocabulary is the paper's synonym table for COCO's 80 categories
(``data/coco_synonyms.txt``) with the paper's rules (``utils/chair.py`` of LisaAnne/Hallucination):
tokenised with the Penn Treebank tokenizer NLTK's ``word_tokenize`` runs, singularised with
Pattern's ``singularize``, two-word names joined left to right ("hot dog", "baby bird" -> "bird",
"toilet seat" -> "toilet"), "seat" dropped from a caption that names a toilet. Both tools are
ported here as rule tables (``data/README.md`` names their sources and licences).
``coco_vocabulary(paper_compatible=True)`` counts exactly as the paper's code does, its slips
included; the default mends them (the list is in docs/reference/quality.md).

The shapes world knows every object, its colour and its place, so ``shapes_vocabulary`` also
counts a colour word attached to a shape the image has but not in that colour, and a relation
("to the left of", "above", "on the right", "from left to right") between two shapes it can
identify that the image contradicts, on the axis the world states (left-right in rows and side by
side pairs, top-bottom in stacked pairs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

from harness.datasets.coco import INSTANCES_NAME, SHAPES_VOCABULARY, is_image_id
from harness.errors import DataError, InputMissingError

__all__ = [
    "Vocabulary",
    "Mention",
    "SceneObject",
    "ImageObjects",
    "ColourClaim",
    "RelationClaim",
    "CaptionChair",
    "ChairReport",
    "tokenize_words",
    "singularize_pattern",
    "coco_vocabulary",
    "shapes_vocabulary",
    "shapes_objects",
    "mentions",
    "chair",
    "coco_objects",
    "load_instances",
    "load_objects",
    "DatasetObjects",
    "dataset_objects",
    "chair_for_dataset",
    "INSTANCES_NAME",
    "COCO_SYNONYMS",
    "NO_OBJECTS",
    "NEVER_DRAWN_SHAPES",
]

COCO_SYNONYMS = Path(__file__).resolve().parent / "data" / "coco_synonyms.txt"
NO_OBJECTS = f"CHAIR: no object annotations (a COCO folder gives them in {INSTANCES_NAME})"

# --- the Penn Treebank word tokenizer, as NLTK 3.2.5's word_tokenize runs it --------------------
# Rules of nltk/tokenize/treebank.py (TreebankWordTokenizer) with the three that
# nltk/tokenize/__init__.py puts first ("improved" quotes and final period); NLTK Project,
# Apache License 2.0. Applied to each sentence: see _SENTENCE_END.

_STARTING_QUOTES = (
    (re.compile("([«“‘])"), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r'([ (\[{<])"'), r"\1 `` "),
)
_PUNCTUATION = (
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), r" ... "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
)
_PARENS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_ENDING_QUOTES = (
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"(\S)(\'\')"), r"\1 \2 "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
)
_CONTRACTIONS = tuple(
    re.compile(p)
    for p in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(mor)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)\s",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
)
# NLTK splits sentences with its Punkt model (a data file the harness does not ship) before the
# Treebank rules; here a sentence ends at '.', '!' or '?' followed by white space. The two differ
# only after abbreviations ("mr.", "e.g."), none of them a vocabulary word.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _treebank(text: str) -> list[str]:
    for rx, sub in _STARTING_QUOTES:
        text = rx.sub(sub, text)
    for rx, sub in _PUNCTUATION:
        text = rx.sub(sub, text)
    for rx, sub in (_PARENS, _DOUBLE_DASHES):
        text = rx.sub(sub, text)
    text = " " + text + " "
    for rx, sub in _ENDING_QUOTES:
        text = rx.sub(sub, text)
    for rx in _CONTRACTIONS:
        text = rx.sub(r" \1 \2 ", text)
    return text.split()


def tokenize_words(text: str) -> list[str]:
    """The words of ``text`` as NLTK's ``word_tokenize`` gives them (Treebank rules per sentence)."""
    return [tok for sentence in _SENTENCE_END.split(text.strip()) if sentence for tok in _treebank(sentence)]


# --- Pattern 3.6's singularize (pattern/text/en/inflect.py) -------------------------------------
# Its word lists and rules, kept as they are (the rules adapted there from Bermi Ferrer's
# Inflector); University of Antwerp, BSD 3-Clause licence.

_PLURAL_PREPOSITIONS = frozenset(
    "about before during of till above behind except off to across below for on under after beneath "
    "from onto until among beside in out unto around besides into over upon at between near since with "
    "athwart betwixt beyond but by".split()
)
_UNINFLECTED = frozenset(
    "bison debris headquarters pincers trout bream diabetes herpes pliers tuna breeches djinn high-jinks "
    "proceedings whiting britches eland homework rabies wildebeest carp elk innings salmon chassis flounder "
    "jackanapes scissors christmas gallows mackerel series clippers georgia measles shears cod graffiti mews "
    "species contretemps mumps swine corps news swiss".split()
)
_UNCOUNTABLE = frozenset(
    "advice equipment happiness luggage news software bread fruit information mathematics progress "
    "understanding butter furniture ketchup mayonnaise research water cheese garbage knowledge meat rice "
    "electricity gravel love mustard sand".split()
)
# "^pie" and "^tie" are compared as written (with the caret), as Pattern does: they never match.
_IE = frozenset(
    "alergie cutie hoagie newbie softie veggie auntie doggie hottie nightie sortie weenie beanie eyrie indie "
    "oldie stoolie yuppie birdie freebie junkie ^pie sweetie zombie bogie goonie laddie pixie techie bombie "
    "groupie laramie quickie ^tie collie hankie lingerie reverie toughie cookie hippie meanie rookie "
    "valkyrie".split()
)
_IRREGULAR = {
    "atlantes": "atlas",
    "atlases": "atlas",
    "axes": "axe",
    "beeves": "beef",
    "brethren": "brother",
    "children": "child",
    "corpora": "corpus",
    "corpuses": "corpus",
    "ephemerides": "ephemeris",
    "feet": "foot",
    "ganglia": "ganglion",
    "geese": "goose",
    "genera": "genus",
    "genii": "genie",
    "graffiti": "graffito",
    "helves": "helve",
    "kine": "cow",
    "leaves": "leaf",
    "loaves": "loaf",
    "men": "man",
    "mongooses": "mongoose",
    "monies": "money",
    "moves": "move",
    "mythoi": "mythos",
    "numena": "numen",
    "occipita": "occiput",
    "octopodes": "octopus",
    "opera": "opus",
    "opuses": "opus",
    "our": "my",
    "oxen": "ox",
    "penes": "penis",
    "penises": "penis",
    "people": "person",
    "sexes": "sex",
    "soliloquies": "soliloquy",
    "teeth": "tooth",
    "testes": "testis",
    "trilbys": "trilby",
    "turves": "turf",
    "zoa": "zoon",
}
_SINGULAR_RULES = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"(?i)(.)ae$", "\\1a"),
        (r"(?i)(.)itis$", "\\1itis"),
        (r"(?i)(.)eaux$", "\\1eau"),
        (r"(?i)(quiz)zes$", "\\1"),
        (r"(?i)(matr)ices$", "\\1ix"),
        (r"(?i)(ap|vert|ind)ices$", "\\1ex"),
        (r"(?i)^(ox)en", "\\1"),
        (r"(?i)(alias|status)es$", "\\1"),
        (r"(?i)([octop|vir])i$", "\\1us"),
        (r"(?i)(cris|ax|test)es$", "\\1is"),
        (r"(?i)(shoe)s$", "\\1"),
        (r"(?i)(o)es$", "\\1"),
        (r"(?i)(bus)es$", "\\1"),
        (r"(?i)([m|l])ice$", "\\1ouse"),
        (r"(?i)(x|ch|ss|sh)es$", "\\1"),
        (r"(?i)(m)ovies$", "\\1ovie"),
        (r"(?i)(.)ombies$", "\\1ombie"),
        (r"(?i)(s)eries$", "\\1eries"),
        (r"(?i)([^aeiouy]|qu)ies$", "\\1y"),
        (r"([aeo]l)ves$", "\\1f"),
        (r"([^d]ea)ves$", "\\1f"),
        (r"arves$", "arf"),
        (r"erves$", "erve"),
        (r"([nlw]i)ves$", "\\1fe"),
        (r"(?i)([lr])ves$", "\\1f"),
        (r"([aeo])ves$", "\\1ve"),
        (r"(?i)(sive)s$", "\\1"),
        (r"(?i)(tive)s$", "\\1"),
        (r"(?i)(hive)s$", "\\1"),
        (r"(?i)([^f])ves$", "\\1fe"),
        (r"(?i)(^analy)ses$", "\\1sis"),
        (r"(?i)((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", "\\1\\2sis"),
        (r"(?i)(.)opses$", "\\1opsis"),
        (r"(?i)(.)yses$", "\\1ysis"),
        (r"(?i)(h|d|r|o|n|b|cl|p)oses$", "\\1ose"),
        (r"(?i)(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", "\\1ose"),
        (r"(?i)(.)oses$", "\\1osis"),
        (r"(?i)([ti])a$", "\\1um"),
        (r"(?i)(n)ews$", "\\1ews"),
        (r"(?i)s$", ""),
    )
)


@lru_cache(maxsize=65536)
def singularize_pattern(word: str) -> str:
    """The singular of ``word`` exactly as Pattern 3.6's ``singularize`` gives it, its slips
    included ("bus" -> "bu", "glass" -> "glas", "ties" -> "ty")."""
    if "-" in word:
        parts = word.split("-")
        if len(parts) > 1 and parts[1] in _PLURAL_PREPOSITIONS:
            return singularize_pattern(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):
        return singularize_pattern(word[:-1]) + "'s"
    w = word.lower()
    if any(x.endswith(w) for x in _UNINFLECTED) or any(x.endswith(w) for x in _UNCOUNTABLE):
        return word
    if any(w.endswith(x + "s") for x in _IE):
        return w
    for plural, singular in _IRREGULAR.items():
        if w.endswith(plural):
            return re.sub("(?i)" + plural + "$", singular, word)
    for rx, inflection in _SINGULAR_RULES:
        m = rx.search(word)
        if m:
            for k, g in enumerate(m.groups()):
                if g is None:
                    inflection = inflection.replace("\\" + str(k + 1), "")
            return rx.sub(inflection, word)
    return word


# --- vocabularies --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """What counts as a mention: ``synonyms`` maps each word or multi-word name to its category;
    ``phrases`` maps word sequences to the word they are read as (``"baby bird"`` -> ``"bird"``,
    ``"hot dog"`` -> itself), joined greedily from the left, longest first; ``drop_if_both`` pairs
    ``(a, b)``: where a caption names both, ``b`` is not a mention (``("toilet", "seat")``).
    ``colours`` and ``sizes`` are the attribute words a colour claim is read from (shapes).
    ``paper_compatible`` singularises every word with Pattern's rules and joins two words at
    most, as the paper's code does; otherwise a word of the vocabulary is left as it is and a
    plural Pattern gets wrong ("ties", "canoes") is read by dropping its s."""

    name: str
    categories: tuple[str, ...]
    synonyms: Mapping[str, str]
    phrases: Mapping[str, str] = field(default_factory=dict)
    drop_if_both: tuple[tuple[str, str], ...] = ()
    colours: frozenset[str] = frozenset()
    sizes: frozenset[str] = frozenset()
    paper_compatible: bool = False

    def __post_init__(self) -> None:
        longest = max((len(p.split(" ")) for p in self.phrases), default=1)
        object.__setattr__(self, "_max_phrase", 2 if self.paper_compatible else max(longest, 1))
        known = {w for form in (*self.synonyms, *self.phrases) for w in form.split(" ") if w}
        object.__setattr__(self, "_known", frozenset(known))
        object.__setattr__(self, "_single", frozenset(s for s in self.synonyms if " " not in s))

    def category(self, word: str) -> str | None:
        """The category ``word`` (a word or joined name) names, or None."""
        return self.synonyms.get(word)

    def singular(self, token: str) -> str:
        if self.paper_compatible:
            return singularize_pattern(token)
        s = singularize_pattern(token)
        if s in self._known:  # Pattern's reading names something: the paper's reading
            return s
        if token in self._known:  # a vocabulary word Pattern mangles ("bus" -> "bu")
            return token
        if token.endswith("s") and token[:-1] in self._single:  # a plural it gets wrong ("ties" -> "ty")
            return token[:-1]
        return s

    def words(self, caption: str) -> list[str]:
        """The caption's words as mentions are read from them: lower case, tokenised,
        singularised, names joined, dropped words gone."""
        words = [self.singular(t) for t in tokenize_words(caption.lower())]
        joined: list[str] = []
        i = 0
        while i < len(words):
            for n in range(self._max_phrase, 1, -1):
                key = " ".join(words[i : i + n])
                if i + n <= len(words) and key in self.phrases:
                    joined.append(self.phrases[key])
                    i += n
                    break
            else:
                joined.append(words[i])
                i += 1
        for keep, drop in self.drop_if_both:
            if keep in joined and drop in joined:
                joined = [w for w in joined if w != drop]
        return joined


def _synonym_lines(path: Path) -> list[list[str]]:
    # The paper: line.strip().split(', '); entries keep any other space they have.
    return [line.strip().split(", ") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# The paper's hard-coded rules (utils/chair.py, CHAIR.__init__), in its order: later entries win.
_COCO_DOUBLE_WORDS = (
    "motor bike",
    "motor cycle",
    "air plane",
    "traffic light",
    "street light",
    "traffic signal",
    "stop light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "suit case",
    "sports ball",
    "baseball bat",
    "baseball glove",
    "tennis racket",
    "wine glass",
    "hot dog",
    "cell phone",
    "mobile phone",
    "teddy bear",
    "hair drier",
    "potted plant",
    "bow tie",
    "laptop computer",
    "stove top oven",
    "home plate",
    "train track",
)
_ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
_VEHICLE_WORDS = ("jet", "train")


def _coco_phrases(multi_word_synonyms: Iterable[str]) -> dict[str, str]:
    phrases = {w: w for w in _COCO_DOUBLE_WORDS}
    for w in _ANIMAL_WORDS:
        phrases[f"baby {w}"] = w
        phrases[f"adult {w}"] = w
    for w in _VEHICLE_WORDS:
        phrases[f"passenger {w}"] = w
    phrases["bow tie"] = "tie"
    phrases["toilet seat"] = "toilet"
    phrases["wine glas"] = "wine glass"
    for w in multi_word_synonyms:
        phrases.setdefault(w, w)
    return phrases


@lru_cache(maxsize=4)
def coco_vocabulary(paper_compatible: bool = False, path: Path = COCO_SYNONYMS) -> Vocabulary:
    """COCO's 80 categories with the CHAIR paper's synonyms and rules.

    ``paper_compatible=True`` reads the table as the paper's code does (an entry keeps the stray
    space or capital it has, so " motor bike", " cheesecake" and "iPhone" never match), joins
    only two-word names ("stove top oven" never joins), and singularises every word with Pattern
    ("bus" becomes "bu" and is never counted)."""
    lines = _synonym_lines(Path(path))
    synonyms: dict[str, str] = {}
    if paper_compatible:
        for line in lines:
            for s in line:
                synonyms[s] = line[0]
        phrases = _coco_phrases(())
    else:
        for line in lines:
            for s in line:
                if s.strip():
                    synonyms[" ".join(s.lower().split())] = line[0]
        phrases = _coco_phrases(s for s in synonyms if " " in s)
    return Vocabulary(
        "coco" + (" (paper-compatible)" if paper_compatible else ""),
        tuple(line[0] for line in lines),
        synonyms,
        phrases,
        (("toilet", "seat"),),
        paper_compatible=paper_compatible,
    )


# Shapes and colours a caption of the shapes world may name. Those the world draws (its SHAPES,
# UNSEEN_SHAPES, COLOURS, UNSEEN_COLOURS), and common words for shapes and colours it never draws:
# naming one is always a hallucination.
# Shapes the world never draws (in no image, under no shift).
NEVER_DRAWN_SHAPES: tuple[str, ...] = ("rectangle", "oval", "pentagon", "octagon", "diamond", "heart")
_SHAPE_SYNONYMS = {
    "circle": ("circle", "disc", "disk"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
    "hexagon": ("hexagon",),
    "rectangle": ("rectangle",),
    "oval": ("oval", "ellipse"),
    "pentagon": ("pentagon",),
    "octagon": ("octagon",),
    "diamond": ("diamond", "rhombus"),
    "heart": ("heart",),
}
_NEVER_DRAWN_COLOURS = ("black", "brown", "grey", "gray")


@lru_cache(maxsize=1)
def shapes_vocabulary() -> Vocabulary:
    """The shapes world's words: its shapes (and a few it never draws), colours and sizes."""
    from harness.datasets.scene import COLOURS, SIZES, UNSEEN_COLOURS

    synonyms = {w: cat for cat, words in _SHAPE_SYNONYMS.items() for w in words}
    return Vocabulary(
        "shapes",
        tuple(_SHAPE_SYNONYMS),
        synonyms,
        colours=frozenset((*COLOURS, *UNSEEN_COLOURS, *_NEVER_DRAWN_COLOURS)),
        sizes=frozenset(SIZES),
    )


# --- what an image holds -------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneObject:
    """One object of an image: its category and, where known, its colour and centre (fractions of
    the image side, y downwards)."""

    category: str
    colour: str | None = None
    x: float | None = None
    y: float | None = None


@dataclass(frozen=True)
class ImageObjects:
    """What an image holds. ``axes`` names the axes ("horizontal", "vertical") on which its
    objects' relations are stated, so a relation on them can be checked."""

    objects: tuple[SceneObject, ...]
    axes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, categories: Iterable[str]) -> ImageObjects:
        return cls(tuple(SceneObject(c) for c in sorted(set(categories))))

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(o.category for o in self.objects)


def shapes_objects(scene) -> ImageObjects:
    """A shapes-world scene (``harness.datasets.scene.Scene``) as what its image holds: left-right
    relations stated for a row of three and a side-by-side pair, top-bottom for a stacked pair."""
    objs = tuple(SceneObject(o.shape, o.colour, o.x, o.y) for o in scene.objects)
    return ImageObjects(objs, _shapes_axes(len(objs), scene.relation))


def _shapes_axes(n_objects: int, relation: str | None) -> frozenset[str]:
    if n_objects == 3:
        return frozenset({"horizontal"})
    if n_objects == 2 and relation in ("horizontal", "vertical"):
        return frozenset({relation})
    return frozenset()


# --- mentions, colour and relation claims ---------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    """A word of a caption that names a category: ``word`` as read (singular, joined),
    ``position`` among the caption's words, ``colour`` the colour word attached (shapes)."""

    word: str
    category: str
    position: int
    colour: str | None = None

    @property
    def phrase(self) -> str:
        return f"{self.colour} {self.word}" if self.colour else self.word


def _mentions(words: Sequence[str], vocab: Vocabulary) -> list[Mention]:
    out = []
    attributes = vocab.colours | vocab.sizes
    for pos, word in enumerate(words):
        cat = vocab.category(word)
        if cat is None:
            continue
        colour = None
        j = pos - 1
        while j >= 0 and words[j] in attributes:
            if colour is None and words[j] in vocab.colours:
                colour = words[j]
            j -= 1
        out.append(Mention(word, cat, pos, colour))
    return out


def mentions(caption: str, vocabulary: Vocabulary) -> list[Mention]:
    """The objects ``caption`` mentions, in order, repeats included."""
    return _mentions(vocabulary.words(caption), vocabulary)


@dataclass(frozen=True)
class ColourClaim:
    """A colour word attached to a shape the image holds; hallucinated when no object of that
    shape has that colour."""

    mention: Mention
    hallucinated: bool


@dataclass(frozen=True)
class RelationClaim:
    """``subject relation object`` (``object`` None for "on the left" and the like). Checked when
    both sides name one object of the image each and the image states the relation's axis;
    hallucinated when checked and false."""

    subject: Mention
    relation: str
    object: Mention | None
    checked: bool
    hallucinated: bool

    def describe(self) -> str:
        rel = self.relation.replace("_", " ")
        return f"{self.subject.phrase} {rel}" + (f" {self.object.phrase}" if self.object else "")


_BINARY = (
    (("to", "the", "left", "of"), "left_of"),
    (("to", "the", "right", "of"), "right_of"),
    (("on", "top", "of"), "above"),
    (("left", "of"), "left_of"),
    (("right", "of"), "right_of"),
    (("above",), "above"),
    (("over",), "above"),
    (("below",), "below"),
    (("under",), "below"),
    (("beneath",), "below"),
    (("underneath",), "below"),
)
_UNARY = (
    (("on", "the", "left"), "on_the_left"),
    (("at", "the", "left"), "on_the_left"),
    (("on", "the", "right"), "on_the_right"),
    (("at", "the", "right"), "on_the_right"),
    (("at", "the", "top"), "at_the_top"),
    (("on", "top"), "at_the_top"),
    (("at", "the", "bottom"), "at_the_bottom"),
    (("on", "the", "bottom"), "at_the_bottom"),
)
_ORDER = ((("from", "left", "to", "right"), "left_of"), (("from", "right", "to", "left"), "right_of"))
_AXIS = {
    "left_of": "horizontal",
    "right_of": "horizontal",
    "on_the_left": "horizontal",
    "on_the_right": "horizontal",
    "above": "vertical",
    "below": "vertical",
    "at_the_top": "vertical",
    "at_the_bottom": "vertical",
}
_DETERMINERS = frozenset({"a", "an", "the", "one"})


def _contains(seq: Sequence[str], pattern: Sequence[str]) -> bool:
    n = len(pattern)
    return any(tuple(seq[i : i + n]) == tuple(pattern) for i in range(len(seq) - n + 1))


def _relation_claims(words: Sequence[str], found: Sequence[Mention], vocab: Vocabulary):
    """(subject, relation, object) triples read from the words between and after mentions."""
    lead = vocab.colours | vocab.sizes | _DETERMINERS
    claims: list[tuple[Mention, str, Mention | None]] = []
    for k, m in enumerate(found):
        nxt = found[k + 1] if k + 1 < len(found) else None
        end = len(words)
        if nxt is not None:
            end = nxt.position
            while end - 1 > m.position and words[end - 1] in lead:
                end -= 1
        seg = tuple(words[m.position + 1 : end])
        binary = next((rel for p, rel in _BINARY if nxt is not None and seg[-len(p) :] == p), None)
        if binary is not None:
            claims.append((m, binary, nxt))
            continue
        unary = next((rel for p, rel in _UNARY if seg[: len(p)] == p and seg[len(p) : len(p) + 1] != ("of",)), None)
        if unary is not None:
            claims.append((m, unary, None))
    for pattern, rel in _ORDER:
        if _contains(words, pattern):
            pairs = {(a.position, b.position) for a, r, b in claims if b is not None and r == rel}
            for a, b in zip(found, found[1:]):
                if (a.position, b.position) not in pairs:
                    claims.append((a, rel, b))
    return claims


def _resolve(m: Mention, image: ImageObjects) -> SceneObject | None:
    hits = [o for o in image.objects if o.category == m.category and (m.colour is None or o.colour == m.colour)]
    return hits[0] if len(hits) == 1 and hits[0].x is not None and hits[0].y is not None else None


def _holds(rel: str, a: SceneObject, b: SceneObject | None, image: ImageObjects) -> bool:
    if b is not None:
        return {
            "left_of": a.x < b.x,
            "right_of": a.x > b.x,
            "above": a.y < b.y,
            "below": a.y > b.y,
        }[rel]
    others = [o for o in image.objects if o is not a]
    return {
        "on_the_left": all(a.x < o.x for o in others),
        "on_the_right": all(a.x > o.x for o in others),
        "at_the_top": all(a.y < o.y for o in others),
        "at_the_bottom": all(a.y > o.y for o in others),
    }[rel]


def _check_relation(subject: Mention, rel: str, obj: Mention | None, image: ImageObjects) -> RelationClaim:
    a = _resolve(subject, image)
    b = _resolve(obj, image) if obj is not None else None
    checkable = (
        a is not None
        and (obj is None or (b is not None and b is not a))
        and _AXIS[rel] in image.axes
        and (obj is not None or len(image.objects) >= 2)
    )
    return RelationClaim(subject, rel, obj, checkable, checkable and not _holds(rel, a, b, image))


# --- the figures -----------------------------------------------------------------------------------


def _fraction(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


@dataclass(frozen=True)
class CaptionChair:
    """One caption against its image: every mention, those of categories the image lacks, the
    image's categories, and (shapes) its colour and relation claims."""

    image_id: Any
    caption: str
    mentioned: tuple[Mention, ...]
    hallucinated: tuple[Mention, ...]
    in_image: tuple[str, ...]
    colours: tuple[ColourClaim, ...] = ()
    relations: tuple[RelationClaim, ...] = ()

    @property
    def chair_i(self) -> Fraction | None:
        """Hallucinated mentions over mentions (None for a caption that mentions nothing)."""
        return _fraction(len(self.hallucinated), len(self.mentioned))

    @property
    def chair_s(self) -> bool:
        return bool(self.hallucinated)

    def to_dict(self, attributes: bool = False) -> dict:
        doc: dict[str, Any] = {
            "image_id": self.image_id,
            "mentioned": [m.category for m in self.mentioned],
            "hallucinated": [m.category for m in self.hallucinated],
            "hallucinated_words": [m.word for m in self.hallucinated],
            "in_image": list(self.in_image),
        }
        if attributes:
            doc["colour_hallucinated"] = [c.mention.phrase for c in self.colours if c.hallucinated]
            doc["relation_hallucinated"] = [r.describe() for r in self.relations if r.hallucinated]
        return doc


def _rate(num: int, den: int) -> dict:
    f = _fraction(num, den)
    return {"rate": None if f is None else float(f), "rate_exact": None if f is None else str(f)}


@dataclass(frozen=True)
class ChairReport:
    """CHAIR over a set of captions, caption by caption and over the corpus."""

    vocabulary: str
    captions: tuple[CaptionChair, ...]
    attributes: bool = False  # colour and relation claims were read (shapes)

    @property
    def mentions(self) -> int:
        return sum(len(c.mentioned) for c in self.captions)

    @property
    def hallucinated(self) -> int:
        return sum(len(c.hallucinated) for c in self.captions)

    @property
    def hallucinated_captions(self) -> int:
        return sum(c.chair_s for c in self.captions)

    @property
    def chair_i(self) -> Fraction | None:
        """Hallucinated mentions over mentions, all captions together (None: no mention)."""
        return _fraction(self.hallucinated, self.mentions)

    @property
    def chair_s(self) -> Fraction | None:
        """Captions with a hallucinated mention over captions (None: no caption)."""
        return _fraction(self.hallucinated_captions, len(self.captions))

    def colour_counts(self) -> tuple[int, int, int]:
        """Colour claims checked, those hallucinated, captions with one."""
        claims = [c for cap in self.captions for c in cap.colours]
        bad = sum(c.hallucinated for c in claims)
        return len(claims), bad, sum(any(c.hallucinated for c in cap.colours) for cap in self.captions)

    def relation_counts(self) -> tuple[int, int, int, int]:
        """Relation claims checked, those hallucinated, captions with one, claims not checkable."""
        claims = [r for cap in self.captions for r in cap.relations]
        checked = [r for r in claims if r.checked]
        bad = sum(r.hallucinated for r in checked)
        with_bad = sum(any(r.hallucinated for r in cap.relations) for cap in self.captions)
        return len(checked), bad, with_bad, len(claims) - len(checked)

    def to_dict(self, per_image: bool = True) -> dict:
        n = len(self.captions)
        i, s = self.chair_i, self.chair_s
        doc: dict[str, Any] = {
            "vocabulary": self.vocabulary,
            "captions": n,
            "mentions": self.mentions,
            "hallucinated": self.hallucinated,
            "hallucinated_captions": self.hallucinated_captions,
            "chair_i": None if i is None else float(i),
            "chair_i_exact": None if i is None else str(i),
            "chair_s": None if s is None else float(s),
            "chair_s_exact": None if s is None else str(s),
        }
        if self.attributes:
            claims, bad, with_bad = self.colour_counts()
            doc["colour"] = {"claims": claims, "hallucinated": bad, "captions_with_one": with_bad, **_rate(bad, claims)}
            checked, bad, with_bad, unchecked = self.relation_counts()
            doc["relation"] = {
                "claims": checked,
                "hallucinated": bad,
                "captions_with_one": with_bad,
                "not_checkable": unchecked,
                **_rate(bad, checked),
            }
        if per_image:
            doc["per_image"] = [c.to_dict(self.attributes) for c in self.captions]
        return doc

    def lines(self) -> list[str]:
        """The corpus figures in a few lines of text."""

        def show(f: Fraction | None, num: int, den: int, what: str) -> str:
            return ("n/a" if f is None else f"{float(f):.4f}") + f" ({num} of {den} {what})"

        out = [
            f"CHAIR_i {show(self.chair_i, self.hallucinated, self.mentions, 'mentions')}   "
            f"CHAIR_s {show(self.chair_s, self.hallucinated_captions, len(self.captions), 'captions')}   "
            f"[{self.vocabulary}]"
        ]
        if self.attributes:
            claims, bad, _ = self.colour_counts()
            checked, rbad, _, unchecked = self.relation_counts()
            out.append(
                f"colour hallucination {show(_fraction(bad, claims), bad, claims, 'colour words')}   "
                f"relation hallucination {show(_fraction(rbad, checked), rbad, checked, 'relations checked')}"
                + (f", {unchecked} not checkable" if unchecked else "")
            )
        return out


def _as_objects(value: Any) -> ImageObjects:
    if isinstance(value, ImageObjects):
        return value
    if isinstance(value, str):
        raise DataError(f"an image's objects must be a list of category names, not the string {value[:60]!r}")
    return ImageObjects.of(value)


def chair(
    captions: Mapping[Hashable, str],
    objects_per_image: Mapping[Hashable, ImageObjects | Iterable[str]],
    vocabulary: Vocabulary | None = None,
) -> ChairReport:
    """CHAIR of ``captions`` (image id -> caption) against what each image holds
    (``objects_per_image``: image id -> category names or ``ImageObjects``), in the order of
    ``captions``. ``vocabulary`` defaults to ``coco_vocabulary()``; category names of the images
    are taken through it (a synonym names its category). An image id without objects is refused."""
    vocab = vocabulary if vocabulary is not None else coco_vocabulary()
    missing = [k for k in captions if k not in objects_per_image]
    if missing:
        sample = ", ".join(repr(k) for k in missing[:3])
        raise DataError(f"{len(missing)} captioned images have no object annotations (e.g. {sample})")
    attributes = bool(vocab.colours)
    rows = []
    for image_id, caption in captions.items():
        image = _as_objects(objects_per_image[image_id])
        present = {vocab.category(c) or c for c in image.categories}
        words = vocab.words(caption)
        found = _mentions(words, vocab)
        colours: tuple[ColourClaim, ...] = ()
        relations: tuple[RelationClaim, ...] = ()
        if attributes:
            colours = tuple(
                ColourClaim(m, not any(o.category == m.category and o.colour == m.colour for o in image.objects))
                for m in found
                if m.colour is not None and m.category in present
            )
            relations = tuple(_check_relation(a, r, b, image) for a, r, b in _relation_claims(words, found, vocab))
        rows.append(
            CaptionChair(
                image_id,
                caption,
                tuple(found),
                tuple(m for m in found if m.category not in present),
                tuple(sorted(present)),
                colours,
                relations,
            )
        )
    return ChairReport(vocab.name, tuple(rows), attributes)


# --- COCO folders -------------------------------------------------------------------------------------


def _instances_path(folder: str | Path) -> Path:
    p = Path(folder)
    return (p if p.is_dir() else p.parent) / INSTANCES_NAME


def _read_instances(path: Path) -> dict:
    """The instances file at ``path``, its shape checked (COCO instances format)."""
    if not path.is_file():
        raise InputMissingError(f"{path}: not a file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("categories"), list):
        raise DataError(f"{path}: expected an object with a 'categories' list (COCO instances format)")
    if not isinstance(doc.get("annotations"), list):
        raise DataError(f"{path}: expected an 'annotations' list (COCO instances format)")
    return doc


def _instances(path: Path, doc: dict) -> tuple[dict[Any, str], dict[Any, dict], list[tuple[Any, str, dict]]]:
    """The file's category names by id, its images by id, and (image id, category name,
    annotation) for each annotation; errors name the file and the entry."""
    names: dict[Any, str] = {}
    for k, c in enumerate(doc["categories"]):
        if not isinstance(c, dict) or not is_image_id(c.get("id")) or not isinstance(c.get("name"), str):
            raise DataError(f"{path}: categories[{k}] needs a whole-number or string 'id' and a string 'name'")
        names[c["id"]] = c["name"]
    images: dict[Any, dict] = {}
    for k, im in enumerate(doc.get("images") or []):
        if not isinstance(im, dict) or not is_image_id(im.get("id")):
            raise DataError(f"{path}: images[{k}] needs a whole-number or string 'id'")
        images[im["id"]] = im
    rows = []
    for k, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not is_image_id(a.get("image_id")) or not is_image_id(a.get("category_id")):
            raise DataError(f"{path}: annotations[{k}] needs a whole-number or string 'image_id' and 'category_id'")
        if a["category_id"] not in names:
            raise DataError(f"{path}: annotations[{k}].category_id {a['category_id']!r} is not among the categories")
        rows.append((a["image_id"], names[a["category_id"]], a))
    return names, images, rows


def load_instances(folder: str | Path) -> dict[Any, tuple[str, ...]] | None:
    """Category names of each image from the COCO instances file ``instances.json`` of a COCO
    folder (``folder`` the folder or its ``captions.json``): image id -> names, an image listed
    in the file's ``images`` without an annotation holding none. None when the folder has no
    instances file. Errors name the file and what is wrong with it (exit 65)."""
    path = _instances_path(folder)
    if not path.exists():
        return None
    _, images, rows = _instances(path, _read_instances(path))
    out: dict[Any, set[str]] = {k: set() for k in images}
    for image_id, name, _ in rows:
        out.setdefault(image_id, set()).add(name)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _shapes_image_objects(path: Path, doc: dict) -> dict[Any, ImageObjects]:
    """What each image holds, from an instances file the shapes world wrote
    (``harness.datasets.coco.write_coco``): each object's category, colour and centre (the
    middle of its ``bbox``, as a fraction of the image's side), each image's relation axes."""
    _, images, rows = _instances(path, doc)
    objects: dict[Any, list[SceneObject]] = {k: [] for k in images}
    for k, (image_id, name, a) in enumerate(rows):
        im = images.get(image_id)
        if im is None:
            raise DataError(f"{path}: annotations[{k}].image_id {image_id!r} is not among the images")
        box, colour = a.get("bbox"), a.get("colour")
        w, h = im.get("width"), im.get("height")
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
            raise DataError(f"{path}: annotations[{k}] needs a 'bbox' of four numbers")
        if not isinstance(colour, str):
            raise DataError(f"{path}: annotations[{k}] needs a string 'colour' (a shapes-world file)")
        if not (_number(w) and _number(h) and w > 0 and h > 0):
            raise DataError(f"{path}: the image of annotations[{k}] needs a positive 'width' and 'height'")
        x, y = (box[0] + box[2] / 2) / w, (box[1] + box[3] / 2) / h
        objects[image_id].append(SceneObject(name, colour, x, y))
    out = {}
    for image_id, objs in objects.items():
        relation = images[image_id].get("relation")
        if relation is not None and relation not in ("horizontal", "vertical"):
            raise DataError(f"{path}: image {image_id!r}: relation must be horizontal, vertical or null")
        out[image_id] = ImageObjects(tuple(objs), _shapes_axes(len(objs), relation))
    return out


def load_objects(folder: str | Path) -> tuple[str, dict[Any, Any]] | None:
    """What each image of a COCO folder holds, from its ``instances.json``, and the vocabulary its
    captions are read with: ``("shapes", image id -> ImageObjects)`` for a file the shapes world
    wrote (its ``info.vocabulary`` is "shapes": each object's colour and centre, each image's
    relation axes), else ``("coco", image id -> category names)`` as ``load_instances`` gives
    them. None when the folder has no instances file (or no folder is there)."""
    path = _instances_path(folder)
    if not path.exists():
        return None
    doc = _read_instances(path)
    info = doc.get("info")
    if isinstance(info, dict) and info.get("vocabulary") == SHAPES_VOCABULARY:
        return SHAPES_VOCABULARY, _shapes_image_objects(path, doc)
    return "coco", load_instances(folder) or {}


def coco_objects(
    image_ids: Iterable[Hashable],
    instances: Mapping[Hashable, Iterable[str]],
    references: Mapping[Hashable, Sequence[str]] | None = None,
    vocabulary: Vocabulary | None = None,
) -> dict[Hashable, ImageObjects]:
    """What each image holds, as the paper takes it: the categories of its instance annotations
    (none where it has no annotation), joined by the categories its reference captions mention
    (``references``; pass None to use the annotations alone)."""
    vocab = vocabulary if vocabulary is not None else coco_vocabulary()
    out = {}
    for k in image_ids:
        cats = {vocab.category(c) or c for c in instances.get(k, ())}
        for ref in (references or {}).get(k, ()):
            cats.update(m.category for m in mentions(ref, vocab))
        out[k] = ImageObjects.of(cats)
    return out


def chair_for_dataset(
    kind: str,
    captions: Mapping[Hashable, str],
    objects: Mapping[Hashable, Any],
    references: Mapping[Hashable, Sequence[str]] | None = None,
) -> ChairReport:
    """CHAIR of an evaluation's captions: ``kind`` "shapes" (``objects`` holds each image's
    ``ImageObjects``) or "coco" (``objects`` holds each image's instance categories, joined by
    the categories its ``references`` mention, as the paper does)."""
    if kind == "shapes":
        return chair(captions, objects, shapes_vocabulary())
    if kind == "coco":
        vocab = coco_vocabulary()
        return chair(captions, coco_objects(captions, objects, references, vocab), vocab)
    raise ValueError(f"unknown object annotations {kind!r}")


@dataclass(frozen=True)
class DatasetObjects:
    """What each image of a data set holds, keyed by image id as text (as the records name
    images), and the vocabulary its captions are read with: what the judge's ``hallucination``
    metric reads a caption against."""

    vocabulary: Vocabulary
    images: Mapping[str, ImageObjects]

    def chair(self, captions: Mapping[str, str]) -> ChairReport:
        """CHAIR of ``captions`` (image id as text -> caption) of the set's images (a caption of
        an image the set does not hold is left out)."""
        return chair({k: c for k, c in captions.items() if k in self.images}, self.images, self.vocabulary)

    def hallucinated(self, image_ids: Sequence[str], captions: Sequence[str]) -> list[bool | None]:
        """Per caption, whether it names an object its image lacks (its CHAIR_s); None where the set
        does not hold the image. Each distinct (image, caption) is read once: traffic repeats them."""
        keys = list(zip(map(str, image_ids), map(str, captions)))
        known = sorted({k for k in keys if k[0] in self.images})
        report = chair({k: k[1] for k in known}, {k: self.images[k[0]] for k in known}, self.vocabulary)
        flag = {c.image_id: c.chair_s for c in report.captions}
        return [flag.get(k) for k in keys]


def dataset_objects(folder: str | Path) -> DatasetObjects | None:
    """What each image of a COCO folder holds (``load_objects``), for every image of the folder: a
    shapes-world file gives each image's objects; a COCO file each image's instance categories,
    joined by those its reference captions mention (as the paper and ``chair_for_dataset`` do).
    None when the folder has no ``instances.json``."""
    from harness.datasets import load_coco

    loaded = load_objects(folder) if Path(folder).is_dir() else None
    if loaded is None:
        return None
    kind, per_image = loaded
    ds = load_coco(folder)
    if kind == SHAPES_VOCABULARY:
        images = {str(it.image_id): _as_objects(per_image.get(it.image_id, ())) for it in ds.items}
        return DatasetObjects(shapes_vocabulary(), images)
    vocab = coco_vocabulary()
    joined = coco_objects([it.image_id for it in ds.items], per_image, ds.references(), vocab)
    return DatasetObjects(vocab, {str(k): v for k, v in joined.items()})
