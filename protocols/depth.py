"""How deeply a YAML text nests, measured on the raw text before any parsing.

Why: the YAML parser takes time that grows with the square of the nesting (16,000 ``[`` cost
it 100 s) and the builder recurses once per level. A protocol nests four levels deep (the file,
``steps``, a step, its ``burst``); a file that nests more than :data:`MAX_DEPTH` levels is
refused at once, at the line and column where it gets too deep.

The scanner is pragmatic, not a YAML parser. It counts flow collections (``[`` and ``{``) and
block collections (a ``- `` list item or a ``key:`` on a line more indented than the lines
above), and skips what cannot open a collection: quoted text (also across lines), comments,
block scalars (``|`` and ``>``), and brackets inside plain text of block context
(``title: a [b``). It may count a level more than the parser sees (a list of plain items, a
list at the same indentation as its key); never enough more to refuse a real protocol.
"""

from __future__ import annotations

import re

#: The deepest nesting a protocol file may have (it needs 4).
MAX_DEPTH = 50

#: YAML's line breaks (a lone carriage return is one too).
LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: In block context, after plain text: the ``:`` of a mapping, or a comment.
_BLOCK_STOP = re.compile(r":(?=[ \t]|$)|(?<=[ \t])#")
#: In flow context: anything that opens, closes or separates, quotes and comments.
_FLOW_STOP = re.compile(r"[\[\]{},:'\"#]")
_SPACES = " \t"


def too_deep(text: str, limit: int = MAX_DEPTH) -> tuple[int, int] | None:
    """1-based line and column where ``text`` first nests deeper than ``limit``, or None."""
    return _Scanner(limit).scan(text)


class _Scanner:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Columns of the open block collections, innermost last.
        self.blocks: list[int] = []
        self.flow = 0
        #: The quote character of a quoted scalar that goes on past the end of a line.
        self.quote = ""
        #: Indentation of the line that opened a block scalar (``|`` or ``>``), or None.
        self.block_scalar: int | None = None
        #: At a place where a node may start (after ``key: ``, ``- ``, ``[``, ``,``...).
        self.node_start = False
        #: Column of the node that starts the current line or list item: it becomes a block
        #: collection when a ``- `` or a ``key:`` follows.
        self.pending: int | None = None

    def scan(self, text: str) -> tuple[int, int] | None:
        for number, line in enumerate(LINE_BREAK.split(text), start=1):
            found = self.line(line)
            if found is not None:
                return number, found
        return None

    def open_block(self, column: int) -> int | None:
        """A block collection at ``column``; its 1-based column when that is too deep."""
        if not self.blocks or self.blocks[-1] < column:
            self.blocks.append(column)
            if len(self.blocks) + self.flow > self.limit:
                return column + 1
        return None

    def line(self, line: str) -> int | None:  # one small state machine
        indent = len(line) - len(line.lstrip(" "))
        if self.block_scalar is not None:
            if not line.strip() or indent > self.block_scalar:
                return None
            self.block_scalar = None
        pos = 0
        if self.quote:
            pos = self.close_quote(line, 0)
            if self.quote:
                return None
        elif self.flow == 0:
            rest = line[indent:]
            if not rest.strip() or rest.lstrip(_SPACES).startswith("#") or rest.startswith("%"):
                return None
            if rest.startswith(("---", "...")) and rest[3:4] in ("", " ", "\t"):
                self.blocks.clear()
                pos = indent + 3
            else:
                while self.blocks and self.blocks[-1] > indent:
                    self.blocks.pop()
                pos = indent
            self.node_start = True
            self.pending = pos
        n = len(line)
        while pos < n:
            char = line[pos]
            if char in _SPACES:
                pos += 1
                continue
            if char == "#" and (pos == 0 or line[pos - 1] in _SPACES):
                return None
            if self.node_start:
                if self.flow == 0 and char in "-?:" and line[pos + 1 : pos + 2] in ("", " ", "\t"):
                    # a list item, a complex key, or a value with an empty key: a collection
                    # opens where the node began
                    too = self.open_block(pos if self.pending is None else self.pending)
                    if too is not None:
                        return too
                    pos += 1
                    while pos < n and line[pos] in _SPACES:
                        pos += 1
                    self.pending = pos
                    continue
                if char in "[{":
                    self.flow += 1
                    if len(self.blocks) + self.flow > self.limit:
                        return pos + 1
                    self.pending = None
                    pos += 1
                    continue
                if char in "'\"":
                    self.quote = char
                    pos = self.close_quote(line, pos + 1)
                    if self.quote:
                        return None
                    self.node_start = False
                    continue
                if char in "|>" and self.flow == 0:
                    self.block_scalar = indent
                    return None
                if char in "&!":
                    while pos < n and line[pos] not in _SPACES and line[pos] not in ",[]{}":
                        pos += 1
                    continue
                self.node_start = False  # plain text (or an alias) starts here
            if self.flow == 0:
                found = _BLOCK_STOP.search(line, pos)
                if found is None or found.group() == "#":
                    return None
                if self.pending is not None:  # "key:" opens a mapping where the node began
                    too = self.open_block(self.pending)
                    if too is not None:
                        return too
                    self.pending = None
                self.node_start = True
                pos = found.end()
                continue
            found = _FLOW_STOP.search(line, pos)
            if found is None:
                return None
            pos = found.start()
            char = line[pos]
            pos += 1
            if char in "[{":
                self.flow += 1
                if len(self.blocks) + self.flow > self.limit:
                    return pos
                self.node_start = True
            elif char in "]}":
                self.flow = max(0, self.flow - 1)
                self.node_start = False
            elif char in ",:":
                self.node_start = char == "," or line[pos : pos + 1] in ("", " ", "\t")
            elif char == "#" and pos >= 2 and line[pos - 2] in _SPACES:
                return None
        return None

    def close_quote(self, line: str, pos: int) -> int:
        """Past the closing quote of ``self.quote`` on ``line`` (then the quote is over), or
        the end of the line (the quoted text goes on)."""
        quote, n = self.quote, len(line)
        while pos < n:
            if quote == "'":
                end = line.find("'", pos)
                if end < 0:
                    return n
                if line[end + 1 : end + 2] == "'":  # '' is a quote inside the text
                    pos = end + 2
                    continue
            else:
                end = line.find('"', pos)
                if end < 0:
                    return n
                backslashes = len(line[pos:end]) - len(line[pos:end].rstrip("\\"))
                if backslashes % 2:
                    pos = end + 1
                    continue
            self.quote = ""
            return end + 1
        return n
