"""The one way the harness reads YAML: safe tags only, and bounded, so a file cannot make it crash,
hang or fill its memory.

Every YAML file the harness reads (SLO specs, judge configs, log-import mappings, adapter files,
the shipped alert windows) goes through ``load_yaml`` or ``load_yaml_all``. Besides what PyYAML's
safe loader refuses, they refuse, each with a one-line error that names the file and the line:

* collections nested more than ``MAX_DEPTH`` levels deep;
* aliases that expand a document by more than ``MAX_ALIAS_NODES`` nodes (scalars and collections)
  or ``MAX_ALIAS_CHARS`` characters of scalar text (a "billion laughs"), and an alias inside the
  value it refers to; both are counted on the composed nodes, before anything is constructed;
* a key given twice in one mapping (YAML would keep the last one silently);
* integers of more than ``MAX_INT_DIGITS`` digits, and scalars whose tag cannot hold them
  (``2024-13-45``, ``!!float abc``).

libyaml parses and composes when PyYAML has it (as ``yaml.CSafeLoader`` does); the checks walk
the composed nodes once.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from harness.errors import DataError, HarnessError
from harness.text import one_line, short_repr

__all__ = [
    "MAX_DEPTH",
    "MAX_ALIAS_NODES",
    "MAX_ALIAS_CHARS",
    "MAX_INT_DIGITS",
    "load_yaml",
    "load_yaml_all",
]

MAX_DEPTH = 100  # collections inside collections
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to a document
MAX_ALIAS_CHARS = 1_000_000  # characters of scalar text that aliases may add to a document
MAX_INT_DIGITS = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """A document the harness will not read: what is wrong, and the mark of where."""

    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor, refusing a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep=deep)
        keys = [key for key, _ in node.value]  # before merge keys (<<) are flattened into the node
        merges = any(key.tag == _MERGE_TAG for key in keys)
        mapping = super().construct_mapping(node, deep=deep)
        if merges or len(mapping) < len(keys):
            self._refuse_twice(node, keys)
        return mapping

    def _refuse_twice(self, mapping: MappingNode, keys: list[Any]) -> None:
        """Refuse the first key that repeats an earlier one of the same mapping (merged keys aside:
        a key given in the mapping itself overrides a merged one, as YAML means it to)."""
        first: dict[Any, int] = {}
        for i, node in enumerate(keys):
            if node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(node, deep=True)  # already constructed: from the cache
            try:
                j = first.setdefault(key, i)
            except TypeError:  # unhashable keys are refused by the safe constructor itself
                continue
            if j == i:
                continue
            if keys[j] is node:  # one anchored key twice: the alias has no line of its own
                raise _Refused(f"key {short_repr(key)} given twice (through the same alias)", mapping.start_mark)
            line = keys[j].start_mark.line + 1
            raise _Refused(f"key {short_repr(key)} given twice (first at line {line})", node.start_mark)


def _scalar(tag: str, construct: Any) -> Any:
    """``construct`` for the scalars of ``tag``, raising ``_Refused`` at the scalar's line where
    PyYAML would let a Python error out (``!!bool maybe``, ``2024-13-45``, ``!!int 0x``)."""

    def checked(self, node):
        if tag == "int" and isinstance(node, ScalarNode):
            number = node.value.lstrip("+-")
            digits = sum(c.isalnum() for c in (number[2:] if number[:2].lower() in ("0x", "0o", "0b") else number))
            if digits > MAX_INT_DIGITS:  # int() of it is slow, or refused past 4300 digits
                raise _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark)
        try:
            return construct(self, node)
        except (ValueError, OverflowError, LookupError, AttributeError, TypeError) as exc:
            why = f" ({one_line(exc, 120)})" if isinstance(exc, (ValueError, OverflowError)) else ""
            raise _Refused(f"{short_repr(node.value)} is not a valid {tag}{why}", node.start_mark) from None

    return checked


for _tag in ("null", "bool", "int", "float", "binary", "timestamp"):
    _full = f"tag:yaml.org,2002:{_tag}"
    _Constructor.add_constructor(_full, _scalar(_tag, SafeConstructor.yaml_constructors[_full]))
del _tag, _full


try:
    from yaml.cyaml import CParser as _Parser  # libyaml: the parser and composer in C

    class _Loader(_Parser, _Constructor, Resolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            _Constructor.__init__(self)
            Resolver.__init__(self)

except ImportError:  # PyYAML without libyaml: the same documents, composed in Python
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(Reader, Scanner, Parser, Composer, _Constructor, Resolver):  # type: ignore[no-redef]
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _Constructor.__init__(self)
            Resolver.__init__(self)


_BUSY = object()  # a collection whose children are being walked


def _check(root: Any) -> None:
    """Raise ``_Refused`` when the document at ``root`` nests too deeply, when its aliases expand it
    past the bounds, or when an alias sits inside the value it refers to.

    One walk over the composed nodes, in document order; a node met again is an alias (its anchor
    comes first), which adds the whole expansion of that node. Per node it keeps (nodes, chars,
    nodes added by aliases, chars added by aliases, nesting height) of its expansion.
    """
    if isinstance(root, ScalarNode):
        return
    seen: dict[int, Any] = {id(root): _BUSY}
    # A frame: [node, its children, the next child, then the node's five figures so far].
    frames: list[list[Any]] = [[root, _children(root), 0, 1, 0, 0, 0, 0]]
    while frames:
        f = frames[-1]
        kids, i, nodes, chars, added, added_chars, height = f[1], f[2], f[3], f[4], f[5], f[6], f[7]
        pushed = False
        while i < len(kids):
            child = kids[i]
            i += 1
            stats = seen.get(id(child))
            if stats is None:
                if isinstance(child, ScalarNode):
                    size = len(child.value)
                    seen[id(child)] = (1, size, 0, 0, 0)
                    nodes += 1
                    chars += size
                    continue
                if len(frames) >= MAX_DEPTH:
                    raise _Refused(f"nested more than {MAX_DEPTH} levels deep", child.start_mark)
                seen[id(child)] = _BUSY
                f[2:] = [i, nodes, chars, added, added_chars, height]
                frames.append([child, _children(child), 0, 1, 0, 0, 0, 0])
                pushed = True
                break
            if stats is _BUSY:
                raise _Refused("an alias inside the value it refers to", child.start_mark)
            # Met before: an alias, which repeats the whole expansion of that node.
            nodes += stats[0]
            chars += stats[1]
            added += stats[0]
            added_chars += stats[1]
            height = max(height, stats[4])
        if pushed:
            continue
        frames.pop()
        node = f[0]
        if added > MAX_ALIAS_NODES or added_chars > MAX_ALIAS_CHARS:
            what = f"{MAX_ALIAS_NODES:,} nodes" if added > MAX_ALIAS_NODES else f"{MAX_ALIAS_CHARS:,} characters"
            raise _Refused(f"aliases expand this value by more than {what}", node.start_mark)
        height += 1
        if height > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep through aliases", node.start_mark)
        seen[id(node)] = (nodes, chars, added, added_chars, height)
        if frames:
            parent = frames[-1]
            parent[3] += nodes
            parent[4] += chars
            parent[5] += added
            parent[6] += added_chars
            parent[7] = max(parent[7], height)


def _children(node: Any) -> list[Any]:
    if isinstance(node, SequenceNode):
        return node.value
    return [part for pair in node.value for part in pair]


def _error(exc: BaseException, source: str, error: type[HarnessError]) -> HarnessError:
    """The one-line error for a document ``load_yaml`` will not read."""
    deep = f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(exc, RecursionError):  # composed in Python, nested past the interpreter's stack
        return error(f"{source}: {deep}")
    if isinstance(exc, _Refused):
        return error(f"{source}: line {exc.mark.line + 1}: {exc.message}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ... but found another"
        problem = f"{context} {problem}"
    line = f"line {mark.line + 1}" if mark is not None else ""
    if "nesting depth" in problem:  # libyaml's own bound (1000 levels), met before the harness's
        return error(f"{source}: {line}: {deep}" if line else f"{source}: {deep}")
    where = f" at {line}" if line else ""
    return error(f"{source}: not valid YAML{where}: {one_line(problem, 200)}")


def _construct(loader: Any, node: Any) -> Any:
    _check(node)
    return loader.construct_document(node)


def _documents(text: str, source: str, error: type[HarnessError], single: bool) -> list[Any]:
    loader = _Loader(text)
    try:
        if single:
            node = loader.get_single_node()
            return [] if node is None else [_construct(loader, node)]
        docs = []
        while loader.check_node():
            docs.append(_construct(loader, loader.get_node()))
        return docs
    except (yaml.YAMLError, _Refused, RecursionError) as exc:
        raise _error(exc, source, error) from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str, error: type[HarnessError] = DataError) -> Any:
    """The one document in ``text`` (None when it is empty); ``error`` (a ``DataError`` unless told)
    with one line naming ``source`` when it is not valid YAML or is refused (see the module)."""
    docs = _documents(text, source, error, single=True)
    return docs[0] if docs else None


def load_yaml_all(text: str, source: str, error: type[HarnessError] = DataError) -> list[Any]:
    """Every document in ``text``, in order (an empty one as None); errors as ``load_yaml``."""
    return _documents(text, source, error, single=False)
