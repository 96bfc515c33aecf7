"""Markdown to safe HTML: the static renderer, its variants and the streaming renderer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pygments
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it.parser_block import ParserBlock

from conversations.rendering import (
    IncrementalRenderer,
    RenderUpdate,
    render_json_answer,
    render_markdown,
    render_plain,
)
from conversations.rendering.sanitize import sanitize

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
REL = 'rel="noopener noreferrer nofollow"'

CORPUS = [
    "# Title\n\nOne paragraph\nwith two lines.\n\n## Sub *title*\n\nText.\n",
    "- tight\n- list\n\n- now loose\n\ntext after\n",
    "1. one\n\n2. two\n\n   nested paragraph\n\n   - inner\n   - list\n\n3. three\n\nout\n",
    "3. starts at three\n4. four\n\n1) other delimiter\n2) list\n",
    "~~~markdown\n```python\nprint('inner fence')\n```\n\nstill inside\n~~~\n\nafter the fence\n",
    "```python\ndef f():\n\n    return 1\n```\n\n```\nno language\n```\n\n"
    "```nosuchlang\n<b>\n```\n",
    "```\nan unclosed fence\n\nruns to the end\n",
    "| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n| 4 | 5 | 6 |\n\n| x |\n|---|\n| y |\n\nafter\n",
    "> quoted\n> lines\n\n> another quote\n\n>> nested\n\nplain\n",
    "    indented code\n\n    continues after a blank\n\nthen prose\n",
    "Setext\n======\n\nAnother\n-------\n\n* * *\n\n___\n",
    "see [one] and [two][] and [three][x]\n\nmiddle\n\n[one]: https://one.example\n"
    '[two]: /media/two "T"\n[x]: mailto:a@b.example\n\nlast\n',
    "[early]: https://early.example\n\nuses [early]\n\nuses [EARLY] too\n",
    "- item\n  ```\n  code in item\n\n  more code\n  ```\n\n- next item\n\nend\n",
    'a *b* **c** ~~d~~ `e` <http://auto.example> [f](https://f.example "t") ![g](' + PNG + ")\n",
    "crlf\r\n\r\nline\rbreaks\r\n\r\nand a NUL \0 here\n",
    "para\n# heading interrupts\n> quote interrupts\n- list interrupts\n\ntrailing",
    "- [ ] task\n- [x] done\n\n[1] citation without a definition\n\nlater [1]\n",
    "",
    "\n\n\n",
    "no trailing newline",
]


def stream(text: str, cuts: list[int]) -> str:
    """Feed `text` cut at `cuts`; all emitted blocks plus the final tail."""
    renderer = IncrementalRenderer()
    pieces, start = [], 0
    for cut in [*sorted(cuts), len(text)]:
        pieces.append(renderer.feed(text[start:cut]).new_blocks_html)
        start = cut
    return "".join(pieces) + renderer.finish().tail_html


# --- render_markdown ---------------------------------------------------------------


def test_headings_and_emphasis():
    html = render_markdown("# One\n\n### Three *em* **strong** ~~gone~~\n")
    assert "<h1>One</h1>" in html
    assert "<h3>Three <em>em</em> <strong>strong</strong> <s>gone</s></h3>" in html


def test_lists_keep_their_start_number():
    html = render_markdown("- a\n- b\n\n3. c\n4. d\n")
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in html
    assert '<ol start="3">\n<li>c</li>' in html


def test_table_alignment_travels_as_a_class_not_a_style():
    html = render_markdown("| l | c | r |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n")
    assert '<th class="align-left">l</th>' in html
    assert '<td class="align-center">2</td>' in html
    assert '<td class="align-right">3</td>' in html
    assert "style" not in html


def test_fenced_code_with_a_known_language_is_highlighted_with_classes():
    html = render_markdown("```python\ndef f():\n    return 1\n```\n")
    assert html.startswith('<pre class="highlight"><code class="language-python">')
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">f</span>' in html
    assert "style=" not in html


def test_language_class_uses_the_canonical_pygments_name():
    html = render_markdown("```C++\nint x;\n```\n")
    assert '<code class="language-cpp">' in html


def test_unknown_language_is_escaped_plain_code():
    html = render_markdown("```nosuchlang\n<b>x</b>\n```\n")
    assert html == (
        '<pre class="highlight"><code class="language-nosuchlang">'
        "&lt;b&gt;x&lt;/b&gt;\n</code></pre>\n"
    )


def test_fence_without_language_is_not_guessed():
    html = render_markdown("```\ndef f(): pass\n```\n")
    assert html == '<pre class="highlight"><code>def f(): pass\n</code></pre>\n'


def test_unsafe_language_name_is_dropped():
    html = render_markdown('```"><x\ncode\n```\n')
    assert html == '<pre class="highlight"><code>code\n</code></pre>\n'


def test_highlighting_keeps_the_code_exactly():
    code = "\n\n  x = 1  \n\n"
    html = render_markdown(f"```python\n{code}```\n")
    text = re.sub(r"<[^>]+>", "", html)
    assert text == code + "\n"


def test_links_open_in_a_new_tab_without_referrer_or_opener():
    html = render_markdown('[site](https://example.com "Title")')
    assert (f'<a href="https://example.com" title="Title" target="_blank" {REL}>site</a>') in html


def test_autolinks_and_email_links_are_kept():
    html = render_markdown("<https://example.com> <someone@example.com>")
    assert 'href="https://example.com"' in html
    assert 'href="mailto:someone@example.com"' in html


def test_bare_urls_are_not_linkified():
    assert "<a" not in render_markdown("see https://example.com now")


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](relative/page)",
        "[x](/admin/)",
    ],
)
def test_links_to_other_schemes_or_paths_are_not_links(source):
    assert "<a" not in render_markdown(source)


def test_protocol_relative_link_is_spelled_https():
    assert 'href="https://example.com/x"' in render_markdown("[x](//example.com/x)")


def test_remote_image_becomes_a_link_with_its_alt_text():
    html = render_markdown("![the chart](https://attacker.example/log?q=secret)")
    assert "<img" not in html
    assert f'<a href="https://attacker.example/log?q=secret" target="_blank" {REL}>' in html
    assert ">the chart</a>" in html


def test_protocol_relative_image_without_alt_becomes_a_link_showing_its_url():
    html = render_markdown("![](//attacker.example/p.gif)")
    assert "<img" not in html
    assert 'href="https://attacker.example/p.gif"' in html
    assert ">//attacker.example/p.gif</a>" in html


def test_remote_image_inside_a_link_becomes_text_not_a_nested_link():
    html = render_markdown("[![alt](https://a.example/i.png)](https://b.example)")
    assert html.count("<a ") == 1
    assert "<img" not in html


def test_data_url_png_image_is_kept_and_lazy():
    html = render_markdown(f"![dot]({PNG})")
    assert f'<img src="{PNG}" alt="dot" loading="lazy">' in html


def test_media_image_is_kept():
    html = render_markdown('![up](/media/uploads/a.png "T")')
    assert '<img src="/media/uploads/a.png" alt="up" title="T" loading="lazy">' in html


@pytest.mark.parametrize(
    "src",
    ["/media/../admin/", "/media/%2e%2e/x", "/static/x.png", "data:image/svg+xml;base64,PD4="],
)
def test_other_images_are_not_loaded(src):
    assert "<img" not in render_markdown(f"![x]({src})")


def test_raw_html_is_shown_as_text():
    html = render_markdown('<script>alert(1)</script>\n\n<div hx-get="/x">hi</div>\n')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;div hx-get=" in html
    assert "<script" not in html
    assert "<div" not in html


def test_sanitiser_strips_what_our_markdown_never_produces():
    dirty = (
        '<p id="x" style="color:red" onclick="a()" hx-get="/" data-hx-post="/">t</p>'
        '<span class="Evil!">s</span><em class="k">e</em><iframe src="https://x"></iframe>'
    )
    assert sanitize(dirty) == "<p>t</p><span>s</span><em>e</em>"


@pytest.mark.parametrize("text", CORPUS)
def test_rendering_is_a_fixed_point_of_the_sanitiser(text):
    html = render_markdown(text)
    assert sanitize(html) == html


# --- render_plain and render_json_answer -------------------------------------------


def test_plain_text_is_escaped_with_line_breaks():
    assert render_plain("a <b>\r\nc & d\n") == "a &lt;b&gt;<br>\nc &amp; d<br>\n"


def test_json_answer_is_pretty_printed_and_highlighted():
    html = render_json_answer('{"b": [1, 2], "a": "<x>"}')
    assert html.startswith('<pre class="highlight"><code class="language-json">')
    assert '<span class="nt">"b"</span>' in html
    text = re.sub(r"<[^>]+>", "", html)
    assert text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "&lt;x&gt;"\n}\n\n'


def test_json_answer_is_the_markdown_render_of_its_pretty_form():
    expected = render_markdown('```json\n{\n  "k": [\n    1\n  ]\n}\n```\n')
    assert render_json_answer('{"k":[1]}') == expected


@pytest.mark.parametrize("text", ["not json", "# heading", "42", '"a string"', "{broken"])
def test_anything_but_a_json_object_or_array_falls_back_to_markdown(text):
    assert render_json_answer(text) == render_markdown(text)


# --- IncrementalRenderer --------------------------------------------------------------


@pytest.mark.parametrize("text", CORPUS)
def test_text_split_at_every_position_streams_to_the_same_html(text):
    expected = render_markdown(text)
    for cut in range(len(text) + 1):
        assert stream(text, [cut]) == expected, cut


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), text=st.sampled_from(CORPUS))
def test_corpus_split_at_random_streams_to_the_same_html(data, text):
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    assert stream(text, cuts) == render_markdown(text)


MARKDOWN_PIECES = [
    *("\n", "\n\n", " ", "    ", "\t", "```", "~~~", "- ", "* ", "1. ", "2) ", "> ", "# "),
    *("|", "---", "===", "[x]", "[x]: /media/u", '[y]: https://h "t"', "'t'", "(", ")"),
    *("[a](https://b)", "![i](https://c)", "text", "`", "***", "_", "\\", "<b>", "&amp;"),
    *("\r", "\r\n", "| a | b |", "|---|---|", "1", "[", "]", ":"),
]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), pieces=st.lists(st.sampled_from(MARKDOWN_PIECES), max_size=40))
def test_generated_markdown_split_at_random_streams_to_the_same_html(data, pieces):
    text = "".join(pieces)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    assert stream(text, cuts) == render_markdown(text)


WORDS_AND_MARKS = [*MARKDOWN_PIECES, "word", " and", "Text", "é", "中文", "🙂", "x_y", "a;", "&"]
WORDS_AND_MARKS += ["&amp", "&#12", "[a](b", "[x](<u", "<http://e", "*em", "**b", "~~s", "x)"]
WORDS_AND_MARKS += ["- **", "1. `", "_", "***", "``", "* * ", "- - "]
LAST_WORDS = ["word", " Text", "é", "x)", "a;", "'q'", "1", "", "word ", "x  "]
PLAIN_WORDS = [
    " more",
    "words",
    "more ",
    ",",
    ".",
    " 42",
    "'s",
    '"q"',
    "é",
    "🙂",
    "—",
    "-",
    ":",
    "/",
    "=",
]
MARKS = ["#", "*", "_", "`", ")", "]", "[", "|", ";", "&", "<", ">", "\\", "~", "\t", " ", "\xa0"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=st.tuples(
        st.lists(st.sampled_from(WORDS_AND_MARKS), max_size=30), st.sampled_from(LAST_WORDS)
    ).map(lambda parts: "".join(parts[0]) + parts[1]),
    added=st.lists(st.sampled_from(PLAIN_WORDS * 4 + MARKS), min_size=1, max_size=6).map("".join),
)
def test_words_added_to_a_drawing_draw_what_a_whole_render_draws(src, added):
    from conversations.rendering.live_append import appended

    drawn = appended(src, render_markdown(src), added)
    assert drawn is None or drawn == render_markdown(src + added)


@pytest.mark.parametrize(
    ("src", "added"),
    [
        ("Some words", " and more"),
        ("Ends in spaces  ", "then text"),
        ("- an item", " grows"),
        ("> a quote", " grows"),
        ("1. one\n2. two", " three"),
        ("- a\n  - nested", " item"),
        ("Intro\n\nsee (a", " b) and c; d"),
        ("Über", " café 🙂 — “quoted”"),
        ("Some *open emphasis", " and words"),
        ("- **Term**: an explanation", " that grows"),
        ("1. `code` first", ", then words"),
        ("_Emphasis_ opens it", " and more"),
    ],
)
def test_plain_words_are_added_to_the_last_drawing(src, added):
    from conversations.rendering.live_append import appended

    assert appended(src, render_markdown(src), added) == render_markdown(src + added)


@pytest.mark.parametrize(
    ("src", "added"),
    [
        ("Intro\n1", ". item"),  # an ordered list starts
        ("Intro\r1", ". item"),  # "\r" ends a line too
        ("- a\n\n      code", " more"),  # code in a list item, not a line of text
        ("see [a](https://b", ")"),  # closes the link
        ("x &amp", ";"),  # ends the entity
        ("a *b", "*"),
        ("snake_", "case"),  # the text after `_` decides what it is
        ("# Head", "ing"),
        ("| a | b |\n|---|---|\n| c", " d"),
        ("```\ncode", " more"),
        ("Text", "\n==="),
        ("- **", "Term"),  # still could be a rule: "- ** *"
        ("- ``", "code"),
        ("[a", "b"),
    ],
)
def test_text_that_may_change_what_is_drawn_is_rendered(src, added):
    from conversations.rendering.live_append import appended

    assert appended(src, render_markdown(src), added) is None


@pytest.mark.parametrize(
    "start",
    ["", "# Title\n\n", "- first\n- ", "> ", "1. one\n\n2. ", "- a\n  - ", "Intro\n\n* "],
)
@pytest.mark.parametrize("space", ["before", "after"])  # tokens " word" or "word "
def test_words_streamed_onto_a_line_of_text_are_not_rendered_again(monkeypatch, start, space):
    words = "The answer (about 4 characters a token) grows, word by word: 12 + 30 = 42! "
    text = start + "Streaming " + words * 40
    after = 1 if space == "after" else 0
    cuts = [len(start) + m.start() + after for m in re.finditer(" ", text[len(start) :])]
    work = stream_checked(text, cuts, monkeypatch)
    # Rendered again every frame, the line would be parsed about 400 times: 1.2 MB.
    assert work < 3 * len(text)


def test_closed_blocks_are_emitted_before_the_end():
    renderer = IncrementalRenderer()
    first = renderer.feed("# Title\n\nFirst para")
    assert first == RenderUpdate("", "<h1>Title</h1>\n<p>First para</p>\n")
    second = renderer.feed("graph.\n\n- a list\n")
    assert second.new_blocks_html == "<h1>Title</h1>\n<p>First paragraph.</p>\n"
    assert renderer.finish() == RenderUpdate("", "<ul>\n<li>a list</li>\n</ul>\n")


def test_a_list_stays_in_the_tail_while_it_may_continue():
    renderer = IncrementalRenderer()
    assert renderer.feed("- a\n\n- b\n\n").new_blocks_html == ""
    assert renderer.feed("  more of b\n\nafter\n").new_blocks_html.startswith("<ul>")


def test_an_open_fence_is_never_split_at_blank_lines():
    renderer = IncrementalRenderer()
    emitted = renderer.feed("```\none\n\ntwo\n\nthree\n").new_blocks_html
    emitted += renderer.feed("```\n\nafter\n").new_blocks_html
    assert emitted == '<pre class="highlight"><code>one\n\ntwo\n\nthree\n</code></pre>\n'


def test_block_using_a_later_reference_definition_waits_for_it():
    renderer = IncrementalRenderer()
    held = renderer.feed("see [docs]\n\nmore\n\n")
    assert held.new_blocks_html == ""
    assert "<p>see [docs]</p>" in held.tail_html
    update = renderer.feed("[docs]: https://docs.example\n\nend\n")
    assert update.new_blocks_html.startswith('<p>see <a href="https://docs.example"')
    assert renderer.finish().tail_html == "<p>end</p>\n"


def test_feed_after_finish_is_an_error():
    renderer = IncrementalRenderer()
    renderer.finish()
    with pytest.raises(RuntimeError):
        renderer.feed("x")


def document(blocks: int, cite: bool = False) -> str:
    """A long reply of varied blocks; with `cite`, every paragraph cites an undefined [n]."""
    note = " [{i}]" if cite else ""
    shapes = [
        "## Heading {i}",
        "Paragraph {i} with *some* text, `code` and [a link](https://e.example/{i})." + note,
        "- item {i}\n- second item",
        "```python\nx = {i}\n```",
        "> quote {i}\n> over two lines",
        "| a | b |\n|---|---|\n| {i} | x |",
    ]
    return "\n\n".join(shapes[i % len(shapes)].format(i=i) for i in range(blocks)) + "\n"


def count_parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now until monkeypatch.undo(), [0] counts the characters handed to markdown-it."""
    seen = [0]
    parse = ParserBlock.parse

    def counting(self: ParserBlock, src: str, *args: Any, **kwargs: Any) -> Any:
        seen[0] += len(src)
        return parse(self, src, *args, **kwargs)

    monkeypatch.setattr(ParserBlock, "parse", counting)
    return seen


def engine_work(text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Characters handed to markdown-it while streaming `text` in word-sized tokens."""
    seen = count_parsed(monkeypatch)
    renderer = IncrementalRenderer()
    out = "".join(renderer.feed(t).new_blocks_html for t in re.findall(r"\s*\S+|\s+", text))
    assert out + renderer.finish().tail_html == render_markdown(text)
    monkeypatch.undo()
    return seen[0]


def test_streaming_work_grows_linearly(monkeypatch):
    small, large = document(1000), document(2000)
    small_work, large_work = engine_work(small, monkeypatch), engine_work(large, monkeypatch)
    assert large_work < 15 * len(large)
    # Twice the text, about twice the work: nothing is rescanned from the start.
    assert large_work / small_work < 1.1 * len(large) / len(small)


def test_undefined_references_do_not_make_streaming_quadratic(monkeypatch):
    text = document(2000, cite=True)
    assert engine_work(text, monkeypatch) < 15 * len(text)


def python_module(functions: int) -> str:
    """Code as models write it: a docstring, imports, decorators, classes and functions."""
    parts = ['"""A module.\n\nWith a docstring over several lines.\n"""\n\nimport os\n\n']
    for n in range(functions):
        parts.append(
            f"@cache\ndef step_{n}(value: int, name: str = 'x{n}') -> dict:\n"
            f"    # add {n}, then say so\n    total = value * {n} + 1\n"
            f'    return {{"total": total, "label": f"{{name}}-{n}"}}\n\n\n'
        )
        if n % 5 == 4:
            parts.append(
                f"class Thing{n}:\n    size = {n}\n\n    def grow(self):\n        pass\n\n\n"
            )
    return "".join(parts)


def stream_code(code: str, monkeypatch: pytest.MonkeyPatch, language: str = "python") -> int:
    """Stream one code block line by line; every tail must be the block rendered whole.
    Returns the characters handed to Pygments while streaming."""
    seen = [0]

    def counting(code: str, *args: Any) -> str:
        seen[0] += len(code)
        return str(pygments.highlight(code, *args))

    monkeypatch.setattr("conversations.rendering.highlight.highlight", counting)
    text = f"```{language}\n{code}```\n"
    renderer, fed, work = IncrementalRenderer(), "", 0
    for line in text.splitlines(keepends=True):
        fed += line
        before = seen[0]
        update = renderer.feed(line)
        work += seen[0] - before
        assert update.new_blocks_html + update.tail_html == render_markdown(fed), len(fed)
    monkeypatch.undo()
    assert renderer.finish().tail_html == render_markdown(text)
    return work


def function_body(lines: int) -> str:
    """One long function: no line at column 0 to start a piece at."""
    steps = "".join(f"    value = step_{n}(value, {n})  # note {n}\n" for n in range(lines))
    return "def run(value):\n" + steps + "    return value\n"


def json_rows(rows: int) -> str:
    items = ",\n".join(f'  {{"id": {n}, "name": "item {n}", "ok": true}}' for n in range(rows))
    return "[\n" + items + "\n]\n"


@pytest.mark.parametrize(
    ("make", "size", "language"),
    [(python_module, 20, "python"), (function_body, 80, "python"), (json_rows, 80, "json")],
)
def test_a_long_code_block_streams_drawn_as_a_whole_render_with_linear_highlighting(
    monkeypatch, make, size, language
):
    small, large = make(size), make(2 * size)
    small_work = stream_code(small, monkeypatch, language)
    large_work = stream_code(large, monkeypatch, language)
    # Only the lines after the last settled piece are highlighted again each frame.
    assert large_work / small_work < 1.3 * len(large) / len(small)
    assert large_work < 40 * len(large)


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ('x = 1\n"""\n' + "".join(f"line {n} of a long string\n" for n in range(60)) + '"""\n'
         + "y = 2\n" * 30, "python"),
        ("int a;\n/*\n" + "".join(f" * comment line {n}\n" for n in range(60)) + " */\n"
         + "int b;\n" * 30, "c"),
        ("<ul>\n" + "".join(f'  <li class="x">item {n}</li>\n' for n in range(60)) + "</ul>\n",
         "html"),
    ],
)  # fmt: skip
def test_no_piece_starts_where_highlighting_it_alone_would_show(monkeypatch, code, language):
    stream_code(code, monkeypatch, language)  # every frame as a whole render draws it


def test_a_string_across_a_settled_piece_is_exact_once_the_block_is_final():
    # A line at column 0 inside a docstring, 30 lines in: while streaming, a piece may start
    # there; the finished block is highlighted whole.
    lines = [f"x_{n} = {n}\n" for n in range(30)]
    code = "".join(lines) + 'DOC = """\nstarts here\nends here\n"""\n' + "".join(lines)
    text = f"```python\n{code}```\n\nafter\n"
    for cuts in ([], list(range(0, len(text), 7)), [m.end() for m in re.finditer("\n", text)]):
        assert stream(text, cuts) == render_markdown(text)


def long_table(rows: int) -> str:
    head = "| # | name | note | price |\n|--:|:-----|:----:|------|\n"
    shapes = [
        "| {n} | item {n} | **bold** and `a \\| b` | {n}.50 |",
        "| {n} | [link](https://e.example/{n}) | *em* |",  # a cell short: filled in empty
        "| {n} | extra | cells | here | dropped |",
        "{n} | no leading pipe | x | y",
    ]
    return head + "".join(shapes[n % 4].format(n=n) + "\n" for n in range(rows))


def stream_checked(text: str, cuts: list[int], monkeypatch: pytest.MonkeyPatch) -> int:
    """Feed `text` cut at `cuts`; after every cut the blocks so far and the tail must be what
    a whole render of the text so far draws. Returns the characters handed to markdown-it
    while streaming (the checks' own renders not counted)."""
    seen = count_parsed(monkeypatch)
    renderer, blocks, work, start = IncrementalRenderer(), "", 0, 0
    for cut in [*cuts, len(text)]:
        before = seen[0]
        update = renderer.feed(text[start:cut])
        work += seen[0] - before
        blocks += update.new_blocks_html
        assert blocks + update.tail_html == render_markdown(text[:cut]), cut
        start = cut
    monkeypatch.undo()
    assert blocks + renderer.finish().tail_html == render_markdown(text)
    return work


def line_ends(text: str) -> list[int]:
    return [m.end() for m in re.finditer("\n", text)]


def test_a_long_table_streams_drawn_as_a_whole_render_with_linear_work(monkeypatch):
    small, large = long_table(60), long_table(120)
    small_work = stream_checked(small, line_ends(small), monkeypatch)
    large_work = stream_checked(large, line_ends(large), monkeypatch)
    # Settled rows are not parsed again: twice the rows, about twice the work.
    assert large_work / small_work < 1.3 * len(large) / len(small)
    assert large_work < 15 * len(large)


@pytest.mark.parametrize(
    "after",
    [
        "\nA paragraph after a blank line.\n",
        "A line without a blank: one more row\n\nthen text\n",
        "# a heading ends the table\n",
        "> so does a quote\n",
        "\n| new | table |\n|---|---|\n| 1 | 2 |\n",
    ],
)
def test_what_follows_a_long_table_is_drawn_as_a_whole_render(monkeypatch, after):
    text = long_table(50) + after
    stream_checked(text, list(range(0, len(text), 7)), monkeypatch)


def test_once_a_line_ends_a_long_table_its_rows_are_not_tried_again_each_frame():
    from conversations.rendering.live_tables import LiveTable

    renders: list[str] = []

    def render(src: str) -> str:
        renders.append(src)
        return render_markdown(src)

    table, text = LiveTable(), long_table(30)
    assert table.render(text, render) is not None  # rows settled
    text += "# a heading ends the table\n"
    before = len(renders)
    for n in range(30):  # a paragraph keeps the tail open, a line a frame
        text += f"more text {n}\n"
        assert table.render(text, render) == render_markdown(text)
    # Each frame renders the rows after the settled ones; the group holding the heading is
    # tried once, not every frame.
    assert len(renders) - before <= 30 + 1


def test_a_long_table_is_committed_from_its_settled_rows(monkeypatch):
    head = "| n | name | total |\n|--:|:--|---|\n"
    table = head + "".join(f"| {n} | **item** `{n}` | {n * 3} |\n" for n in range(300))
    renderer = IncrementalRenderer()
    start = 0
    for end in line_ends(table):
        renderer.feed(table[start:end])
        start = end
    seen = count_parsed(monkeypatch)
    committed = renderer.feed("\nAfter the table.\n")  # the paragraph starts a new block
    monkeypatch.undo()
    assert committed.new_blocks_html == render_markdown(table + "\n")
    # Rendered whole, the commit would parse the table again; its settled rows are reused.
    assert seen[0] < len(table) / 5


@pytest.mark.parametrize("ending", ["\nThe end.\n", ""])
def test_a_long_table_citing_a_later_definition_ends_up_linked(ending):
    # Its first rows look the label up in vain, and are settled long before the table is
    # committed or finished: it is drawn again once the definition arrives.
    head = "| n | source |\n|---|---|\n"
    cite = [f"| {n} | see [docs] or {n} |\n" for n in range(20)]
    table = head + "".join(cite) + "".join(f"| {n} | plain |\n" for n in range(20, 60))
    text = table + "\nA paragraph.\n\n[docs]: https://docs.example\n" + ending
    expected = render_markdown(text)
    assert expected.count('<a href="https://docs.example"') == 20
    assert stream(text, line_ends(text)) == expected
    assert stream(table, line_ends(table)) == render_markdown(table)  # finished as a table


def test_a_table_that_could_reach_the_cell_cap_is_rendered_whole(monkeypatch):
    # markdown-it fills in at most 65,536 missing cells per table and ends it there; rows
    # drawn in groups would each stay under the cap.
    columns = 1_000
    head = "|" + " c |" * columns + "\n|" + "---|" * columns + "\n"
    text = head + "".join(f"| {n} |\n" for n in range(80)) + "\nafter\n"
    assert render_markdown(text).count("<tr>") < 80  # the cap ends the table early
    stream_checked(text, line_ends(text)[::16], monkeypatch)


# --- highlight.css ----------------------------------------------------------------------


def test_highlight_css_colours_tokens_in_light_and_dark():
    css = (Path(__file__).parent.parent / "static" / "css" / "highlight.css").read_text()
    light, dark = css.split("@media (prefers-color-scheme: dark) {")
    assert ".highlight .k {" in light
    assert ".highlight .k {" in dark
    assert "Generated" in css.splitlines()[0] + css.splitlines()[1]
