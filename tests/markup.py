"""What markup a text becomes: markdown rendered as GitHub would (markdown-it, GFM-like, bare
URLs linked when linkify-it is installed), and the tags, attributes, text and table shapes of HTML."""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["Html", "parse_html", "markdown_html"]


class Html(HTMLParser):
    """Tags, attributes, visible text and table shapes (cells per row) of HTML."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.tables = [], [], [], []
        self._row = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k) for k, _ in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = 0
        elif tag in ("td", "th"):
            self._row += 1

    def handle_endtag(self, tag):
        if tag == "tr":
            self.tables[-1].append(self._row)

    def handle_data(self, data):
        self.text.append(data)


def parse_html(html: str) -> Html:
    p = Html()
    p.feed(html)
    p.close()
    return p


def markdown_html(md: str) -> Html:
    """``md`` rendered as GitHub renders it, parsed."""
    from markdown_it import MarkdownIt

    try:
        import linkify_it  # noqa: F401  GitHub links bare URLs: so must the test's renderer

        renderer = MarkdownIt("gfm-like")
    except ImportError:
        renderer = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    return parse_html(renderer.render(md))
