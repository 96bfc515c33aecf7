"""The open tail grown by plain words at the end of its last line: drawn by adding them to
the last drawing instead of rendering the whole block again.

Most frames of an answer add a few words to the paragraph or list item being written. What
markdown-it draws for such a line is its text; what nh3 keeps of it is that text, with only
`&`, `<`, `>` and no-break spaces escaped. So when the added text holds none of the
characters that mean something in Markdown, and the line it lands on is already a line of
text in the last paragraph, list item or quote, the new drawing is the old one with the text
inserted before the closing tags. Anything else is rendered as before; commits and the end
of the answer are always rendered whole.
"""

from __future__ import annotations

import re
import unicodedata

# What may close the block that the last line ends: a paragraph, list item or quote.
_CLOSERS = ("</p>\n", "</li>\n", "</ul>\n", "</ol>\n", "</blockquote>\n")
# Quote and list markers at the start of a line, before its text.
_LINE_START = re.compile(r"[ >]*(?:(?:[-*+]|\d{1,9}[.)]) +)?")
# Emphasis or a code span that may open the text ("- **Term**: ..."): before a letter, none
# of these can make the line a rule, a fence or a list.
_OPENING = re.compile(r"(?:[*_]{1,3}|`)?")
# ASCII that is text wherever it stands inside a line of text. Left out: what opens or
# closes something inline (`*_[]<>`\\~|`, `)` of a link, `&` and `;` of entities), `#`
# (closing an ATX heading), tabs and line ends.
_PLAIN_ASCII = frozenset(" !\"$%'(+,-./:=?@^{}")
# Letters, digits and those: the common case, checked at once.
_ALL_PLAIN_ASCII = re.compile(f"[A-Za-z0-9{re.escape(''.join(sorted(_PLAIN_ASCII)))}]*")
_CHECKED = 32  # characters of the line that the drawing must end with


def appended(src: str, html: str, added: str) -> str | None:
    """The drawing of `src + added`, from `html`, the drawing of `src`; None when it takes a
    render to know."""
    drawn = src.rstrip(" ")  # a paragraph's trailing spaces are not drawn...
    grown = (src[len(drawn) :] + added).rstrip(" ")  # ...until text follows them
    if not drawn or not added:
        return None
    line = drawn[max(drawn.rfind("\n"), drawn.rfind("\r")) + 1 :]  # "\r" ends lines too
    added_text = drawn[-1] + grown
    if not _ALL_PLAIN_ASCII.fullmatch(added_text) and not all(
        _text_here(char, src, line) for char in added_text
    ):
        return None
    text = line[_LINE_START.match(line).end() :]  # type: ignore[union-attr]
    first = _OPENING.match(text).end()  # type: ignore[union-attr]
    if first >= len(text) or not text[first].isalpha():
        return None  # the line could still turn out to be a heading, a fence, a list...
    closed = _closers_start(html)
    if closed == len(html):
        return None
    body = html[:closed]
    end = len(text)
    while end > 0 and len(text) - end < _CHECKED and _text_here(text[end - 1], src, line):
        end -= 1
    if not body.endswith(text[end:]):
        return None  # the last line's text is not what the drawing ends with
    return body + grown + html[closed:]


def _closers_start(html: str) -> int:
    """Where the closing tags that end `html` start (len(html) if it ends otherwise)."""
    end = len(html)
    while found := next((tag for tag in _CLOSERS if html.endswith(tag, 0, end)), None):
        end -= len(found)
    return end


def _plain(char: str) -> bool:
    if char < "\x80":
        return char.isalnum() or char in _PLAIN_ASCII
    return unicodedata.category(char)[0] not in "ZC"  # no-break and other spaces, controls


def _text_here(char: str, src: str, line: str) -> bool:
    """Plain, or text in this place though not everywhere: `)` when no link destination is
    open (it would close it), `;` when no entity is being written on the line (it would end
    it). Each is drawn as itself."""
    if _plain(char):
        return True
    if char == ")":
        return "](" not in src
    return char == ";" and "&" not in line
