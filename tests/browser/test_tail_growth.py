"""static/js/chat.js applying delta frames: after every frame, the answer's DOM is exactly
what parsing the frame's HTML gives, whether the page grew the open tail in place or parsed
it whole; and growth at the end (a word, new list items, a new row, highlighted code) is
applied without parsing the tail again.

The frames are the server's own (IncrementalRenderer and frames.delta) for a corpus of
Markdown cut into every one-character delta and into uneven ones, dispatched on a socket
built by the page's own `htmx.createWebSocket`, so they reach the same listener as live
frames do.
"""

from __future__ import annotations

import random

import pytest
from playwright.sync_api import Page

from conversations import frames
from conversations.rendering.incremental import IncrementalRenderer
from tests.browser.conftest import log_in
from tests.browser.server import LiveServer
from tests.test_rendering import CORPUS

PK = 987654
# Runs in the page: an answer's parts, the page's socket listener, and a check of the DOM
# after each frame. Returns the first frame whose DOM differs, and how often the open tail
# was parsed whole (every parse the page does goes through a <template>).
APPLY = """
([pk, steps]) => {
  const article = document.createElement("article");
  article.id = "message-" + pk;
  for (const name of ["blocks", "tail", "reasoning"]) {
    const part = document.createElement("div");
    part.id = article.id + "-" + name;
    article.append(part);
  }
  document.getElementById("messages").append(article);
  const blocks = document.getElementById(article.id + "-blocks");
  const tail = document.getElementById(article.id + "-tail");

  const innerHTML = Object.getOwnPropertyDescriptor(Element.prototype, "innerHTML");
  let parses = 0;
  Object.defineProperty(HTMLTemplateElement.prototype, "innerHTML", {
    configurable: true,
    get() { return innerHTML.get.call(this); },
    set(value) { parses++; innerHTML.set.call(this, value); },
  });
  const reference = document.createElement("div");
  function same(live, html) {
    const want = live.cloneNode(false);
    innerHTML.set.call(reference, html);
    want.append(...reference.childNodes);
    const got = live.cloneNode(true);
    got.normalize(); // growth adds text as text nodes of their own
    return got.isEqualNode(want);
  }

  const socket = htmx.createWebSocket("ws://127.0.0.1:9/none");
  socket.close(); // only its listeners are wanted
  let shownBlocks = "";
  const wholeParses = [];
  let allKept = true; // every node a frame found (whitespace aside) was still there after it
  try {
    for (const [index, [frame, newBlocks, tailHtml]] of steps.entries()) {
      const before = parses;
      const drawn = [];
      for (const walker = document.createTreeWalker(tail); walker.nextNode(); ) {
        if (walker.currentNode.nodeType === Node.ELEMENT_NODE || walker.currentNode.data.trim()) {
          drawn.push(walker.currentNode);
        }
      }
      socket.dispatchEvent(new MessageEvent("message", { data: frame }));
      if (!drawn.every((node) => node.isConnected)) allKept = false;
      if (parses > before) wholeParses.push(index);
      if (index === 0 && tail.firstChild) tail.firstChild.keptMark = true; // an expando, not markup
      shownBlocks += newBlocks;
      if (!same(blocks, shownBlocks) || !same(tail, tailHtml)) {
        return { index, got: tail.innerHTML, want: tailHtml, wholeParses };
      }
    }
    const firstKept = tail.firstChild?.keptMark === true;
    return { index: null, wholeParses, allKept, firstKept, movedOn: blocks.firstChild?.keptMark === true };
  } finally {
    delete HTMLTemplateElement.prototype.innerHTML;
    article.remove();
  }
}
"""


def steps(text: str, cuts: list[int]) -> list[tuple[str, str, str]]:
    """The delta frames of `text` fed in pieces ending at `cuts`, then finished."""
    renderer = IncrementalRenderer()
    start, updates = 0, []
    for cut in [*sorted(set(cuts)), len(text)]:
        updates.append(renderer.feed(text[start:cut]))
        start = cut
    updates.append(renderer.finish())
    return [
        (frames.delta(PK, u.new_blocks_html, u.tail_html, ""), u.new_blocks_html, u.tail_html)
        for u in updates
    ]


def apply(page: Page, live: LiveServer, found: list[tuple[str, str, str]]) -> dict:
    if not page.url.startswith(live.url):
        log_in(page, live)
    return dict(page.evaluate(APPLY, [PK, found]))


def apply_tails(page: Page, live: LiveServer, tails: list[str]) -> dict:
    """Frames that only replace the open tail, in turn; each must leave exactly its HTML."""
    result = apply(page, live, [(frames.delta(PK, "", tail, ""), "", tail) for tail in tails])
    assert result["index"] is None, result
    return result


DOCUMENT = (
    "## Section 1\n\nThe relay, with **bold** and `code` in it.\n\n"
    "- first token\n- second item\n- third item\n\n"
    "```python\ndef step_1(x):\n    return x * 1 + 1\n```\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n"
    "1. one\n   - inner *item*\n   - and another\n2. two\n\n> quoted\n> lines\n\nend\n"
)
TEXTS = [text for text in CORPUS if text.strip()] + [DOCUMENT]


@pytest.mark.parametrize("pieces", ["characters", "uneven"])
def test_every_frame_leaves_exactly_the_parsed_html(
    page: Page, live: LiveServer, pieces: str
) -> None:
    chance = random.Random(5)
    for text in TEXTS:
        if pieces == "characters":
            cuts = list(range(1, len(text)))
        else:
            cuts, at = [], 0
            while at < len(text):
                at += chance.randint(1, 9)
                cuts.append(min(at, len(text)))
        found = steps(text, cuts)
        result = apply(page, live, found)
        assert result["index"] is None, (text, result)


# Frames drawn in place, never parsed whole (only the first frame, with nothing drawn yet,
# is), keeping every node before the change (the first one is checked). Growth at the end is
# appended: every node drawn before stays (the whitespace between closing tags aside).
GROWTH = {
    "a word grows": ["<p>a</p>\n", "<p>a wor</p>\n", "<p>a word</p>\n"],
    "list items, then a block after the list": [
        "<ul>\n<li>first</li>\n</ul>\n",
        "<ul>\n<li>first item</li>\n<li>sec</li>\n</ul>\n",
        "<ul>\n<li>first item</li>\n<li>second</li>\n</ul>\n<p>after</p>\n",
    ],
    "table rows": [
        "<table>\n<thead>\n<tr>\n<th>a</th>\n</tr>\n</thead>\n</table>\n",
        "<table>\n<thead>\n<tr>\n<th>a</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>1</td>\n</tr>\n</tbody>\n</table>\n",
        "<table>\n<thead>\n<tr>\n<th>a</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>1</td>\n</tr>\n<tr>\n<td>2</td>\n</tr>\n</tbody>\n</table>\n",
    ],
    "highlighted code: a name grows, then the line goes on": [
        '<pre><code class="language-python"><span class="k">def</span> '
        '<span class="nf">st</span>\n</code></pre>\n',
        '<pre><code class="language-python"><span class="k">def</span> '
        '<span class="nf">step</span><span class="p">(</span>\n</code></pre>\n',
    ],
}
# A change near the end is redrawn from there to the end of the innermost element around it.
CHANGED = {
    "emphasis closes": ["<p>a **bo</p>\n", "<p>a <strong>bold</strong></p>\n"],
    # markdown-it draws a row's missing cells empty: the row fills in before it ends.
    "a table row's cells fill in": [
        "<table>\n<tbody>\n<tr>\n<td>1</td>\n<td>it</td>\n<td></td>\n</tr>\n</tbody>\n</table>\n",
        "<table>\n<tbody>\n<tr>\n<td>1</td>\n<td>item</td>\n<td>3</td>\n</tr>\n</tbody>\n</table>\n",
        "<table>\n<tbody>\n<tr>\n<td>1</td>\n<td>item</td>\n<td>3</td>\n</tr>\n"
        "<tr>\n<td>2</td>\n<td></td>\n<td></td>\n</tr>\n</tbody>\n</table>\n",
    ],
    "emphasis closes between words": [
        "<p>a *b</p>\n",
        "<p>a *bo</p>\n",
        "<p>a *bol</p>\n",
        "<p>a <em>bold</em></p>\n",
        "<p>a <em>bold</em> and</p>\n",
        "<p>a <em>bold</em> and more</p>\n",
    ],
    "a code token lexed anew": [
        '<p>code:</p>\n<pre><code><span class="n">ret</span>\n</code></pre>\n',
        '<p>code:</p>\n<pre><code><span class="k">return</span> <span class="mi">1</span>\n'
        "</code></pre>\n",
    ],
}


@pytest.mark.parametrize(("name", "tails"), [*GROWTH.items(), *CHANGED.items()])
def test_growth_and_changes_near_the_end_are_drawn_in_place(
    page: Page, live: LiveServer, name: str, tails: list[str]
) -> None:
    result = apply_tails(page, live, tails)
    assert result["wholeParses"] == [0]
    assert result["firstKept"] is True
    assert result["allKept"] is True or name in CHANGED


# Frames the page must parse whole to draw them as a parse of the frame would.
RESHAPED = {
    "nothing kept": ["<p>a</p>\n", "<h2>a</h2>\n"],
    # A parse moves text out of a table; appended in place, it would stay in the row group.
    "text in a table": [
        "<table>\n<tbody>\n<tr>\n<td>1</td>\n</tr>\n</tbody>\n</table>\n",
        "<table>\n<tbody>\n<tr>\n<td>1</td>\n</tr>\nloose</tbody>\n</table>\n",
    ],
    # A parse drops a newline right after <pre>.
    "a newline opens a pre": ["<pre></pre>\n", "<pre>\nx</pre>\n"],
    "a newline opens a pre that had text": ["<pre>a</pre>\n", "<pre>\nb</pre>\n"],
}


@pytest.mark.parametrize("name", list(RESHAPED))
def test_a_reshaped_tail_is_parsed_whole_and_drawn_exactly(
    page: Page, live: LiveServer, name: str
) -> None:
    result = apply_tails(page, live, RESHAPED[name])
    assert result["wholeParses"] == list(range(len(RESHAPED[name])))


def test_a_finished_block_keeps_the_nodes_the_tail_drew_for_it(
    page: Page, live: LiveServer
) -> None:
    """The open paragraph finishes (grown a little, then as it was, with a list after it):
    the tail's nodes move to the blocks; nothing is parsed after the first frame."""
    found = [
        ("", "<p>first par</p>\n"),
        ("<p>first paragraph</p>\n", "<p>sec</p>\n"),
        ("<p>second</p>\n<ul>\n<li>x</li>\n</ul>\n", "<p>third</p>\n"),
        ("<p>third</p>\n", ""),
    ]
    result = apply(page, live, [(frames.delta(PK, b, t, ""), b, t) for b, t in found])
    assert result["index"] is None, result
    assert result["wholeParses"] == [0]
    assert result["allKept"] is True
    assert result["movedOn"] is True  # the first paragraph's node, drawn in the first frame


def test_when_only_the_tails_first_blocks_finish_their_nodes_move(
    page: Page, live: LiveServer
) -> None:
    """The tail shows a heading and a paragraph; the heading finishes alone, then a list
    item's paragraph: those nodes move to the blocks, the rest stays drawn in the tail."""
    found = [
        ("", "<h2>Title</h2>\n<p>first par</p>\n"),
        ("<h2>Title</h2>\n", "<p>first paragraph</p>\n<p>sec</p>\n"),
        ("<p>first paragraph</p>", "\n<p>second</p>\n"),  # the whitespace after it stays
        ("", "\n<p>second one</p>\n"),
    ]
    result = apply(page, live, [(frames.delta(PK, b, t, ""), b, t) for b, t in found])
    assert result["index"] is None, result
    assert result["wholeParses"] == [0]
    assert result["allKept"] is True
    assert result["movedOn"] is True  # the heading's node, drawn in the first frame


def test_text_after_whitespace_in_a_table_row_is_drawn_as_a_parse_draws_it(
    page: Page, live: LiveServer
) -> None:
    """Whitespace grows in place in an empty row; text after it would be moved out of the
    table by a parse, so it is not appended where the whitespace went."""
    row = "<table>\n<tbody>\n<tr>\n{}</tr>\n</tbody>\n</table>\n"
    result = apply_tails(page, live, [row.format(""), row.format(" \n"), row.format(" \nx")])
    assert result["wholeParses"] == [0, 2]


# Whether a frame got past the page's delta listener to the socket's next one (htmx's).
PASSED_ON = """
(frame) => {
  const socket = htmx.createWebSocket("ws://127.0.0.1:9/none");
  socket.close(); // only its listeners are wanted
  let reached = false;
  socket.addEventListener("message", () => { reached = true; });
  socket.dispatchEvent(new MessageEvent("message", { data: frame }));
  return reached;
}
"""
GOOD = frames.delta(PK, "<p>a</p>\n", "<p>b</p>\n", "thinking")


@pytest.mark.parametrize(
    ("frame", "passed_on"),
    [
        (GOOD, False),
        (frames.delta(PK, "", "<p>only a tail</p>\n", ""), False),
        (GOOD.replace('data-delta="tail"', 'data-delta="other"'), True),  # a part it does not know
        (GOOD.removesuffix("</div>"), True),  # a part not closed
        (GOOD.replace('</div><div data-delta="tail"', '</div>x<div data-delta="tail"'), True),
        ("<p>not a delta</p>", True),
    ],
)
def test_only_frames_of_the_known_shape_are_taken_from_htmx(
    page: Page, live: LiveServer, frame: str, passed_on: bool
) -> None:
    log_in(page, live)
    assert page.evaluate(PASSED_ON, frame) is passed_on
