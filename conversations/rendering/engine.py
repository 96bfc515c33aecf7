"""markdown-it set up for untrusted text: the one place Markdown becomes HTML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from .highlight import LiveFences, render_fence
from .sanitize import sanitize
from .urls import is_inline_image, is_remote, link_href

_ALIGN_STYLES = {f"text-align:{side}": f"align-{side}" for side in ("left", "center", "right")}


def render_markdown(text: str) -> str:
    """Markdown from a model or a user to sanitised HTML."""
    return render_source(text, {})


def render_source(src: str, env: EnvType) -> str:
    """Render `src` with a caller-owned env, whose "references" it reads and extends."""
    return sanitize(_MD.render(src, env))


def top_level_block_lines(src: str) -> list[int]:
    """The line numbers where markdown-it starts a top-level block (block pass only)."""
    tokens: list[Token] = []
    _MD.block.parse(src, _MD, {}, tokens)
    return [t.map[0] for t in tokens if t.level == 0 and t.nesting >= 0 and t.map]


def _fence(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info)
    live = env.get("live_fences")
    if isinstance(live, LiveFences):  # a streaming tail: see LiveFences
        return live.render(token.content, info, token.map[0] if token.map else idx)
    return render_fence(token.content, info)


def _apply_policies(state: StateCore) -> None:
    # After the inline pass, so every link and image is a token we can rewrite.
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            _align_by_class(token)
        elif token.type == "inline" and token.children:
            token.children = _police_inline(state, token.children)


def _align_by_class(token: Token) -> None:
    # The sanitiser drops every style attribute, so alignment travels as a class.
    style = token.attrs.pop("style", None)
    if isinstance(style, str) and style in _ALIGN_STYLES:
        token.attrSet("class", _ALIGN_STYLES[style])


def _police_inline(state: StateCore, children: list[Token]) -> list[Token]:
    kept: list[Token] = []
    dropping_link = in_link = False
    for token in children:
        if token.type == "link_open":
            href = link_href(str(token.attrGet("href") or ""))
            dropping_link, in_link = href is None, True
            if href is None:
                continue  # a link we do not allow keeps its text, loses its target
            token.attrSet("href", href)
        elif token.type == "link_close":
            in_link = False
            if dropping_link:
                continue
        elif token.type == "image":
            kept.extend(_police_image(state, token, in_link))
            continue
        kept.append(token)
    return kept


def _police_image(state: StateCore, image: Token, in_link: bool) -> list[Token]:
    src = str(image.attrGet("src") or "")
    if is_inline_image(src):
        return [image]
    alt = _PLAIN.renderInlineAsText(image.children, state.md.options, state.env)
    href = link_href(src) if is_remote(src) else None
    # A remote image would make the reader's browser fetch a URL a model chose (and could
    # fill with the conversation); we show a link to it instead, or just its text.
    if href is None or in_link:
        return [_text(alt or src)]
    link = Token("link_open", "a", 1, attrs={"href": href})
    if image.attrGet("title"):
        link.attrSet("title", str(image.attrGet("title")))
    return [link, _text(alt or src), Token("link_close", "a", -1)]


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.core.ruler.after("inline", "untrusted_content", _apply_policies)
    return md


_MD = _build()
_PLAIN = RendererHTML()  # for alt text as plain text, as markdown-it itself does
