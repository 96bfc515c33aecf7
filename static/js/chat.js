// Chat page behaviour htmx does not cover: streamed deltas, keyboard sending, idempotency
// keys, scrolling, copy buttons, the mobile sidebar and the connection indicator. No inline
// scripts (CSP).
(function () {
  "use strict";

  function newClientId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // works on plain-http LANs too, unlike randomUUID
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function ensureClientId() {
    const input = document.getElementById("client-id");
    if (input && !input.value) input.value = newClientId();
  }

  function composerText() {
    return document.getElementById("composer-text");
  }

  function isGenerating() {
    const actions = document.getElementById("composer-actions");
    return actions && actions.classList.contains("is-generating");
  }

  // Keep the view at the end while new text arrives, unless the reader scrolled up: judged
  // when the content has grown, against where its end was before. (A scroll listener would
  // run after every one of these scrolls too, several times a second while an answer streams.)
  // Where the browser anchors scrolling (app.css, .thread__end), it has already followed the
  // end by the time this runs (except from the very top), and nothing is written.
  let lastEnd = 0; // the thread's scrollHeight when last judged
  let lastHeight = 0; // and its own height (the composer grows with a draft)
  let toEnd = true; // follow the next growth whatever the position (the reader just sent)
  let anchored = false; // the browser follows the streaming answer itself (see `grown`)
  function threadPane() {
    return document.getElementById("thread");
  }
  function keepAtEnd() {
    const pane = threadPane();
    if (!pane) return;
    const end = pane.scrollHeight;
    const height = pane.clientHeight;
    // Anchored, the answer's growth was not judged here: the end as it is now stands for
    // the end before (the browser kept a reader who was there at it).
    const near = (anchored ? end : lastEnd) - (pane.scrollTop + (lastHeight || height)) < 80;
    if ((toEnd || near) && end - pane.scrollTop - height > 1) pane.scrollTop = end;
    toEnd = false;
    lastEnd = end;
    lastHeight = height;
  }
  // After htmx's frames: at most once per animation frame, as reading scrollHeight forces a layout.
  let scrollQueued = false;
  function scrollToEnd() {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      keepAtEnd();
    });
  }
  // A streaming answer grows without htmx events: follow it right after the browser's own
  // layout, where reading scrollHeight costs nothing. Once the pane has scrolled, a browser
  // that anchors scrolling follows the answer by itself (or leaves a reader who scrolled up
  // where they are), and the answer is no longer observed: a call here on every frame cost
  // about a twentieth of the page's scripting while an answer streams (README, Benchmarks).
  // Anchoring does nothing at the very top, so a thread that stops overflowing (the window
  // grew, a box of reasoning was closed) has its answer observed again.
  const ANCHORS = CSS.supports("overflow-anchor", "auto"); // not Safari
  let followed = null;
  let followedMessage = ""; // its message id, as delta frames give it
  function grown() {
    if (followed && !followed.isConnected) follow(null); // the finished answer replaced it
    keepAtEnd();
    if (!ANCHORS || !followed) return;
    const pane = threadPane();
    if (!anchored && pane.scrollTop > 0) {
      growth.unobserve(followed);
      anchored = true;
    } else if (anchored && pane.scrollHeight <= pane.clientHeight) {
      growth.observe(followed);
      anchored = false;
    }
  }
  const growth = new ResizeObserver(grown);
  function follow(message) {
    if (message === followed) return;
    if (followed) growth.unobserve(followed);
    followed = message;
    anchored = false;
    if (message) growth.observe(message);
  }

  // --- Streamed answers: delta frames are applied here, before htmx sees them --------
  // About 20 frames a second per answer. htmx's oob swap of each (a parsed document,
  // clones, node processing, events) cost ~2 ms; most frames only add a few words to the
  // tail, and replacing laid-out text costs far more than adding to it.
  // conversations/frames.py `delta()` builds them: parts that each start with DELTA_PART.
  // The server's sanitiser never lets that string (or any data-* attribute) into content.
  const DELTA_PART = '<div data-delta="';
  const PART_HEAD = /(blocks|tail|reasoning)" data-message="(\d+)" hx-swap-oob="[^"]*">/y;
  const PART_END = "</div>";
  const CLOSING_TAG_ONLY = /^<\/[a-z][a-z0-9]*>$/;
  const SPACE = /\s/;
  const CLOSING_TAG = /<\/([a-z][a-z0-9]*)>\s*/g;
  const TAG = /<(\/?)([a-z][a-z0-9]*)[^>]*>/g; // attribute values have < and > escaped
  const TAG_HERE = /<(\/?)([a-z][a-z0-9]*)[^>]*>/y;
  const NEWLINE_DROPPED = new Set(["pre", "listing", "textarea"]); // right after the start tag
  const VOID_TAGS = new Set(["br", "hr", "img", "wbr"]);
  const TEXT_ONLY = /^[^<&\r\0]+$/;
  const TABLE_PARTS = new Set(["table", "thead", "tbody", "tfoot", "tr"]);
  const parser = document.createElement("template"); // parses inertly: nothing loads or runs
  const shownTails = new WeakMap(); // tail element -> the HTML it shows

  // Whether `text` holds `part` at `at`. Equal slices compared, not startsWith or endsWith:
  // V8 compares those a character at a time, about 10 ns each, and a long table's tail is
  // tens of kilobytes, compared several times a frame.
  function hasAt(text, part, at = 0) {
    return at >= 0 && text.length >= at + part.length && text.slice(at, at + part.length) === part;
  }

  // The run of closing tags (each followed by any whitespace) that ends `html`: where it
  // starts, and its text. Read from the end: a regex anchored at the end is tried from
  // every position of the tail, every frame.
  function closingRun(html) {
    let index = html.length;
    for (let end = html.length; ; ) {
      while (end > 0 && SPACE.test(html[end - 1])) end--;
      const start = html.lastIndexOf("<", end - 1);
      if (start < 0 || html[end - 1] !== ">" || !CLOSING_TAG_ONLY.test(html.slice(start, end))) break;
      index = end = start;
    }
    return { index, text: html.slice(index) };
  }

  // The frame's parts, read by their heads and ends: a regex over each part's content cost
  // more than the rest of reading it, for a long tail.
  function deltaParts(frame) {
    const parts = [];
    for (let start = 0; start < frame.length; ) {
      if (!hasAt(frame, DELTA_PART, start)) return null;
      PART_HEAD.lastIndex = start + DELTA_PART.length;
      const head = PART_HEAD.exec(frame);
      if (!head) return null;
      let next = frame.indexOf(DELTA_PART, PART_HEAD.lastIndex);
      if (next < 0) next = frame.length;
      const end = next - PART_END.length;
      if (end < PART_HEAD.lastIndex || !hasAt(frame, PART_END, end)) return null;
      const html = frame.slice(PART_HEAD.lastIndex, end);
      parts.push({ name: head[1], message: head[2], html });
      start = next;
    }
    return parts;
  }

  function parsed(html) {
    parser.innerHTML = html;
    return parser.content;
  }

  // What `html` adds to `shown` (the tail as last drawn), as pieces to append at the end of
  // elements that are open there, or null when it is not growth at the end. `shown` ends
  // with a run of closing tags (whitespace between them); `html` keeps what comes before
  // some point of that run, then adds text or whole elements, closing some of the run's
  // elements in order as it goes, and ends with the rest of the run: a word growing in a
  // list item, new items after it, then a new block after the list. The whitespace that
  // `shown` had between the closing tags it passes is replaced by what `html` has there.
  function growthOf(shown, html) {
    const run = closingRun(shown);
    if (html.length <= shown.length || !hasAt(html, shown.slice(0, run.index))) return null;
    // A loop on exec, not Array.from over matchAll: streaming a long table, that line took
    // about a quarter of the page's scripting (README, Benchmarks).
    const tags = []; // innermost first
    CLOSING_TAG.lastIndex = 0; // exec ends back at 0 (the run is closing tags only)
    for (let match; (match = CLOSING_TAG.exec(run.text)); ) {
      const start = run.index + match.index;
      tags.push({ name: match[1], start, end: start + match[1].length + 3 });
    }
    let from = 0; // the closing tags that html still has where shown has them
    while (from < tags.length && hasAt(html, shown.slice(run.index, tags[from].end), run.index)) from++;
    const at = from ? tags[from - 1].end : run.index;
    for (let to = from; to <= tags.length; to++) {
      const kept = to < tags.length ? tags[to].start : shown.length; // shown[kept:] stays
      const end = html.length - (shown.length - kept);
      if (end < at || !hasAt(html, shown.slice(kept), end)) continue;
      const pieces = piecesOf(html.slice(at, end), tags, from, to);
      if (pieces) return { run, tags, from, pieces, afterTag: !from && shown[at - 1] === ">" };
    }
    return null;
  }

  // `added` cut where it closes the run's elements `from` to `to` (exclusive), in order:
  // each piece closes every element it opens; null if `added` does anything else.
  function piecesOf(added, tags, from, to) {
    if (/[\r\0]/.test(added)) return null; // the parser rewrites these with what came before
    const pieces = [];
    const open = []; // elements opened in the current piece
    let level = from;
    let start = 0; // of the current piece
    let loose = false; // whether it has text outside its elements
    let last = 0; // the end of the last tag
    for (const match of added.matchAll(TAG)) {
      const [tag, closing, name] = match;
      if (!open.length && /\S/.test(added.slice(last, match.index))) loose = true;
      last = match.index + tag.length;
      if (VOID_TAGS.has(name)) continue;
      if (!closing) open.push(name);
      else if (open.length) {
        if (open.pop() !== name) return null;
      } else {
        if (level === to || tags[level].name !== name) return null;
        pieces.push({ level, html: added.slice(start, match.index), loose });
        level++;
        start = last;
        loose = false;
      }
    }
    if (open.length || level !== to) return null;
    if (/\S/.test(added.slice(last))) loose = true;
    pieces.push({ level, html: added.slice(start), loose });
    return pieces;
  }

  // Where text last grew in a tail: the tail's HTML since, the element the text went into,
  // where the closing tags after it start in that HTML, and their text. The next frame most
  // often adds words there again, and is checked against these without reading the tail's
  // closing tags and finding their elements anew. Dropped by any other change to the tail.
  const textEnds = new WeakMap(); // tail element -> { shown, element, at, closing }

  // `html` is `shown` with text added where text last grew: appends it there.
  function growText(tail, shown, html) {
    const end = textEnds.get(tail);
    if (!end || end.shown !== shown) return false;
    const cut = html.length - end.closing.length;
    if (cut <= end.at || !hasAt(html, end.closing, cut) || !hasAt(html, shown.slice(0, end.at))) return false;
    const added = html.slice(end.at, cut);
    if (!TEXT_ONLY.test(added) || !end.element.isConnected) return false;
    end.element.append(added);
    end.shown = html;
    end.at = cut;
    return true;
  }

  // Applies to the tail's DOM what `html` adds to `shown` (see growthOf); false when that
  // needs a whole parse.
  function growTail(tail, shown, html) {
    if (growText(tail, shown, html)) return true;
    const growth = growthOf(shown, html);
    if (!growth) return false;
    const { run, tags, pieces } = growth;
    const open = []; // the elements of the closing tags, innermost first, then the tail
    let node = tail;
    for (let i = tags.length - 1; i >= 0; i--) {
      node = node.lastElementChild;
      if (!node || node.localName !== tags[i].name) return false;
      open[i] = node;
    }
    open.push(tail);
    for (const { level, html: added, loose } of pieces) {
      if (loose && TABLE_PARTS.has(open[level].localName)) return false; // text there would move out
      for (let after = level && open[level - 1].nextSibling; after; after = after.nextSibling) {
        if (after.nodeType !== Node.TEXT_NODE) return false; // not what shown says
      }
    }
    if (growth.afterTag && pieces[0].html[0] === "\n") return false; // <pre> drops that newline
    textEnds.delete(tail);
    for (const { level, html: added } of pieces) {
      if (level) while (open[level - 1].nextSibling) open[level - 1].nextSibling.remove();
      if (!added) continue;
      const parent = open[level];
      if (TEXT_ONLY.test(added)) parent.append(added); // a text node of its own: extending a long one costs more
      else parent.insertAdjacentHTML("beforeend", added);
    }
    const [piece] = pieces;
    if (!growth.from && pieces.length === 1 && !piece.level && TEXT_ONLY.test(piece.html)
      && !TABLE_PARTS.has(open[0].localName)) {
      // Text added in the innermost element, before the same closing tags (in a table's
      // rows a parse would move text out: growthOf's pieces say when).
      textEnds.set(tail, { shown: html, element: open[0], at: html.length - run.text.length, closing: run.text });
    }
    return true;
  }

  // How long a start `html` shares with `shown`.
  function sharedLength(shown, html) {
    let low = 0;
    let high = Math.min(shown.length, html.length);
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (hasAt(html, shown.slice(0, mid))) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  // From `at` (outside any tag) to the end of `html`: the elements open at `at` in the order
  // they close (name, where the closing tag starts, how many child elements start after
  // `at`), then how many of the tail's own elements start after it; null if tags mismatch.
  function closingsAfter(html, at) {
    const levels = [];
    const open = [];
    let after = 0;
    // A slice, not TAG.lastIndex: matchAll elsewhere starts where a shared regex last stopped.
    for (const match of html.slice(at).matchAll(TAG)) {
      const [, closing, name] = match;
      if (VOID_TAGS.has(name)) {
        if (!open.length) after++;
      } else if (!closing) {
        if (!open.length) after++;
        open.push(name);
      } else if (open.length) {
        if (open.pop() !== name) return null;
      } else {
        levels.push({ name, close: at + match.index, after });
        after = 0;
      }
    }
    return open.length ? null : { levels, after };
  }

  // Where the start tag of the `count`-th element open at `at` (1: the innermost) starts.
  function openedAt(html, at, count) {
    let depth = 0;
    for (let i = html.lastIndexOf("<", at - 1); i >= 0; i = html.lastIndexOf("<", i - 1)) {
      TAG_HERE.lastIndex = i;
      const match = TAG_HERE.exec(html);
      if (!match) return -1;
      if (VOID_TAGS.has(match[2])) continue;
      if (match[1]) depth++;
      else if (depth) depth--;
      else if (--count === 0) return i;
    }
    return -1;
  }

  // The names of the elements at the top level of `html`, in order; null when it has text
  // there (whitespace aside: in a table, a parse moves text out) or its tags do not pair up.
  function topLevelNames(html) {
    const names = [];
    const open = [];
    let last = 0;
    for (const match of html.matchAll(TAG)) {
      const [tag, closing, name] = match;
      if (!open.length && /\S/.test(html.slice(last, match.index))) return null;
      last = match.index + tag.length;
      if (!open.length && !closing) names.push(name);
      if (VOID_TAGS.has(name)) continue;
      if (!closing) open.push(name);
      else if (open.pop() !== name) return null;
    }
    return open.length || /\S/.test(html.slice(last)) ? null : names;
  }

  // The tail changed near its end other than by growth (a table row's cells filled in,
  // emphasis closed, a code token lexed anew): re-draws from the node where `html` first
  // differs from `shown` to the end of the innermost element around that point which
  // `html` closes with the same text after it as `shown` does. What comes before stays
  // (and is not laid out again). False when it cannot tell, or all would be re-drawn.
  function redrawChange(tail, shown, html) {
    let at = sharedLength(shown, html);
    const tagStart = shown.lastIndexOf("<", at - 1);
    if (tagStart > shown.lastIndexOf(">", at - 1)) at = tagStart; // not inside a tag
    const was = closingsAfter(shown, at);
    const now = closingsAfter(html, at);
    if (!was || !now || was.levels.length !== now.levels.length) return false;
    const depth = was.levels.length; // the tail's level; 0 is the innermost element
    let level = 0;
    for (; level < depth; level++) {
      if (was.levels[level].name !== now.levels[level].name) return false;
      const rest = shown.slice(was.levels[level].close);
      if (html.length - now.levels[level].close === rest.length && hasAt(html, rest, now.levels[level].close)) break;
    }
    // The elements of the levels from the tail down to `level`, found from their ends.
    const elements = [];
    let node = tail;
    for (let i = depth - 1; i >= level - 1 && i >= 0; i--) {
      const after = i + 1 < depth ? was.levels[i + 1].after : was.after;
      node = node.children[node.children.length - 1 - after];
      if (!node || node.localName !== was.levels[i].name) return false;
      elements[i] = node;
    }
    const parent = level < depth ? elements[level] : tail;
    const end = level < depth ? now.levels[level].close : html.length;
    let from; // where the re-drawn part starts in both
    let first; // the first node re-drawn (null: none, only additions)
    if (level === 0) {
      from = shown.lastIndexOf(">", at - 1) + 1;
      const kept = parent.children.length - (depth ? was.levels[0].after : was.after);
      first = kept ? parent.children[kept - 1].nextSibling : parent.firstChild;
    } else {
      from = openedAt(shown, at, level);
      first = elements[level - 1];
    }
    const added = html.slice(from, end);
    if (from < 0 || /[\r\0]/.test(added)) return false;
    if (parent === tail && first === tail.firstChild) return false; // morph keeps what it can
    if (TABLE_PARTS.has(parent.localName) && !topLevelNames(added)) return false;
    const previous = first ? first.previousSibling : parent.lastChild;
    if (added[0] === "\n" && !previous && NEWLINE_DROPPED.has(parent.localName)) return false;
    while (first) {
      const gone = first;
      first = first.nextSibling;
      gone.remove();
    }
    parent.insertAdjacentHTML("beforeend", added);
    return true;
  }

  function sameKind(a, b) {
    return a.nodeType === Node.ELEMENT_NODE && a.nodeName === b.nodeName && a.id === b.id;
  }

  function syncAttributes(live, next) {
    for (const { name } of Array.from(live.attributes)) {
      if (!next.hasAttribute(name)) live.removeAttribute(name);
    }
    for (const { name, value } of next.attributes) {
      if (live.getAttribute(name) !== value) live.setAttribute(name, value);
    }
  }

  // Makes `live`'s children equal to `next`'s (parsed), keeping every node that has not
  // changed, changing attributes in place, and adding text after text that only grew: what
  // is kept is not laid out again. `live` may hold a text as several adjacent text nodes
  // (growTail adds them) where `next` holds one. A node of `next` that matches none at its
  // place may match a later one of `live` (a box that went away): those between go.
  function morph(live, next) {
    let a = live.firstChild;
    let b = next.firstChild;
    while (a && b) {
      if (a.nodeType === Node.TEXT_NODE && b.nodeType === Node.TEXT_NODE) {
        let last = a;
        let text = a.data;
        while (last.nextSibling?.nodeType === Node.TEXT_NODE) {
          last = last.nextSibling;
          text += last.data;
        }
        if (!hasAt(b.data, text)) break;
        if (b.data.length > text.length) {
          last.after(b.data.slice(text.length));
          last = last.nextSibling;
        }
        a = last.nextSibling;
      } else if (a.isEqualNode(b)) {
        a = a.nextSibling;
      } else if (sameKind(a, b)) {
        syncAttributes(a, b);
        morph(a, b);
        a = a.nextSibling;
      } else {
        let later = a.nextSibling;
        while (later && !(b.id ? later.id === b.id : sameKind(later, b))) later = later.nextSibling;
        if (!later) break;
        while (a !== later) {
          const gone = a;
          a = a.nextSibling;
          gone.remove();
        }
        continue;
      }
      b = b.nextSibling;
    }
    while (a) {
      const gone = a;
      a = a.nextSibling;
      gone.remove();
    }
    const added = [];
    for (; b; b = b.nextSibling) added.push(b);
    live.append(...added);
  }

  // The tail's first nodes, when `html`, the start of `shown`, is whole blocks of it: the
  // tail showed more than one block and only the first ones finished (a heading and the
  // paragraph after it). Null when the nodes are not those blocks.
  function leadingBlocks(tail, shown, html) {
    const names = html.length < shown.length && hasAt(shown, html) && topLevelNames(html);
    if (!names || !names.length) return null;
    const nodes = [];
    let node = tail.firstChild;
    for (const name of names) {
      for (; node && node.nodeType === Node.TEXT_NODE && !node.data.trim(); node = node.nextSibling) nodes.push(node);
      if (!node || node.localName !== name) return null; // the parse moved something
      nodes.push(node);
      node = node.nextSibling;
    }
    const space = html.slice(html.lastIndexOf(">") + 1); // whitespace after the last block
    if (space) {
      if (node?.nodeType !== Node.TEXT_NODE || !hasAt(node.data, space)) return null;
      if (node.data.length > space.length) node.splitText(space.length);
      nodes.push(node);
    }
    return nodes;
  }

  // Blocks finished: they start with what the tail showed, most often, as the open block
  // was the tail. The tail's nodes are grown to the finished blocks and moved after the
  // blocks, instead of the blocks being parsed anew and the tail's nodes thrown away (the
  // tail part that follows starts from nothing). When only the tail's first blocks
  // finished, those move and the rest stays for the tail part. False when the blocks are
  // neither.
  function promoteTail(blocks, message, html) {
    const tail = document.getElementById("message-" + message + "-tail");
    const shown = tail && shownTails.get(tail);
    if (!shown) return false;
    if (html === shown || growTail(tail, shown, html)) {
      blocks.append(...tail.childNodes);
      shownTails.set(tail, "");
      textEnds.delete(tail);
      return true;
    }
    const leading = leadingBlocks(tail, shown, html);
    if (!leading) return false;
    blocks.append(...leading);
    shownTails.set(tail, shown.slice(html.length));
    textEnds.delete(tail);
    return true;
  }

  function applyPart(part) {
    const target = document.getElementById("message-" + part.message + "-" + part.name);
    if (!target) return; // not shown in this tab (another version, or not drawn yet)
    if (part.name === "blocks") {
      if (!promoteTail(target, part.message, part.html)) target.insertAdjacentHTML("beforeend", part.html);
    } else if (part.name === "tail") {
      const shown = shownTails.get(target);
      const grown = shown === part.html || (shown !== undefined && growTail(target, shown, part.html));
      if (!grown) {
        textEnds.delete(target);
        if (shown === undefined || !redrawChange(target, shown, part.html)) morph(target, parsed(part.html));
      }
      shownTails.set(target, part.html);
    } else {
      target.append(parsed(part.html).textContent); // escaped text, decoded; never HTML
    }
  }

  // Registered before htmx's own listener on the same socket, which then never sees deltas.
  function onSocketMessage(event) {
    const frame = event.data;
    if (typeof frame !== "string" || !frame.startsWith(DELTA_PART)) return; // htmx's
    const parts = deltaParts(frame);
    if (!parts) return; // a shape this script does not know: htmx applies it
    event.stopImmediatePropagation();
    parts.forEach(applyPart);
    const message = parts[0].message;
    if (message === followedMessage && followed?.isConnected) return; // looked up once
    followedMessage = message;
    const article = document.getElementById("message-" + message);
    markWriting(article);
    follow(article);
  }

  // An answer's first text, where this tab drew it waiting, comes as a delta (a whole
  // redraw of the answer cost the server half a millisecond on the first token's way):
  // the answer is marked as being written here, its badge taking the label it carries.
  function markWriting(article) {
    if (article?.dataset.status !== "pending") return;
    article.dataset.status = "streaming";
    article.classList.replace("is-pending", "is-streaming");
    const badge = article.querySelector("[data-writing-label]");
    if (badge) badge.lastChild.textContent = badge.dataset.writingLabel;
  }

  // An answer redrawn whole (it finished, failed or was stopped, or its first text came)
  // where this tab streamed it: htmx would swap in a new article, and laying a long answer
  // out anew was the longest task of the whole stream. The streamed nodes equal the stored
  // HTML (the server builds that from the same blocks), so the answer is morphed in place:
  // only what differs changes (the badge, the footer, the box of reasoning).
  function onOobBeforeSwap(event) {
    const live = event.detail.target;
    const next = event.detail.fragment?.firstElementChild;
    if (!live?.matches?.("article.message") || !next || next.id !== live.id) return;
    const blocks = document.getElementById(live.id + "-blocks");
    if (!blocks) return; // not streamed in this tab: htmx draws it
    const tail = document.getElementById(live.id + "-tail");
    if (tail) {
      shownTails.delete(tail);
      textEnds.delete(tail);
    }
    if (tail && !next.querySelector("#" + live.id + "-blocks")) {
      // Settled: one Markdown text, the blocks with what the open block had.
      blocks.append(...tail.childNodes);
      tail.remove();
      blocks.removeAttribute("id"); // so that morph takes it for the settled text
    }
    syncAttributes(live, next);
    morph(live, next);
    event.detail.shouldSwap = false;
    htmx.process(live); // binds the buttons that came (Retry, Regenerate, versions)
    if (!live.matches(".is-streaming, .is-pending")) addCopyButtons(live);
  }

  function autosize(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, window.innerHeight * 0.4) + "px";
  }

  function addCopyButtons(root) {
    root.querySelectorAll(".markdown pre").forEach((pre) => {
      if (pre.querySelector(".copy-code")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "copy-code";
      button.textContent = "Copy";
      button.dataset.action = "copy-code";
      pre.appendChild(button);
    });
  }

  async function copyText(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1200);
    } catch (error) {
      button.textContent = "Copy failed";
    }
  }

  // --- Conversation settings: show only what the chosen model supports -------------
  function selectedModel() {
    const select = document.getElementById("model-select");
    return select ? select.options[select.selectedIndex] : null;
  }

  function syncModelFields() {
    const option = selectedModel();
    const protocol = option ? option.dataset.protocol : "";
    const caps = option ? (option.dataset.capabilities || "").split(" ") : [];
    document.querySelectorAll("[data-param]").forEach((field) => {
      const ok = field.dataset.protocols.split(" ").includes(protocol)
        && (!field.dataset.capability || caps.includes(field.dataset.capability));
      field.hidden = !ok;
      // Disabled fields are not sent, so a setting the model cannot take never leaves the page.
      field.querySelectorAll("input, select, textarea").forEach((input) => { input.disabled = !ok; });
    });
    const warning = document.getElementById("vision-warning");
    const hasImages = !!document.querySelector("#attachments .attachment-chip");
    if (warning) warning.hidden = !(hasImages && !caps.includes("vision"));
  }

  // --- Images: picker, paste and drop all go through the same file input --------------
  function attachFiles(files) {
    const input = document.getElementById("attach-input");
    const images = Array.from(files || []).filter((file) => file.type.startsWith("image/") || !file.type);
    if (!input || !images.length) return false;
    const transfer = new DataTransfer();
    images.forEach((file) => transfer.items.add(file));
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function showLightbox(link) {
    let dialog = document.getElementById("lightbox");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "lightbox";
      dialog.className = "lightbox";
      dialog.addEventListener("click", () => dialog.close());
      document.body.appendChild(dialog);
    }
    const image = document.createElement("img");
    image.src = link.href;
    image.alt = link.querySelector("img")?.alt || "";
    dialog.replaceChildren(image);
    dialog.showModal();
  }

  function onClick(event) {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const action = target.dataset.action;
    if (action === "open-settings") {
      syncModelFields();
      document.getElementById("settings-dialog").showModal();
    } else if (action === "close-settings") {
      document.getElementById("settings-dialog").close();
    } else if (action === "remove-attachment") {
      target.closest(".attachment-chip")?.remove();
      syncModelFields();
    } else if (action === "lightbox") {
      if (event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      showLightbox(target);
    } else if (action === "open-dialog") {
      target.closest("details")?.removeAttribute("open");
      document.getElementById(target.dataset.dialog)?.showModal();
    } else if (action === "close-dialog") {
      target.closest("dialog")?.close();
    } else if (action === "edit-message") {
      const message = target.closest(".message");
      const form = message.querySelector(".edit-form");
      message.classList.add("is-editing");
      form.hidden = false;
      const textarea = form.querySelector("textarea");
      textarea.focus();
      textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    } else if (action === "cancel-edit") {
      const message = target.closest(".message");
      message.classList.remove("is-editing");
      message.querySelector(".edit-form").hidden = true;
    } else if (action === "toggle-sidebar") {
      document.getElementById("layout").classList.toggle("sidebar-open");
    } else if (action === "dismiss") {
      target.closest(".notice")?.remove();
    } else if (action === "copy-code") {
      const code = target.closest("pre").querySelector("code");
      copyText(code ? code.innerText : "", target);
    } else if (action === "copy-message") {
      const body = target.closest(".message").querySelector(".message__body");
      copyText(body ? body.innerText : "", target);
    } else if (action === "copy-link") {
      const input = target.closest("[data-copy-scope]")?.querySelector("input");
      if (!input) return;
      input.select(); // still selected if the clipboard is unavailable (plain-http LANs)
      copyText(input.value, target);
    }
  }

  function onKeydown(event) {
    const textarea = composerText();
    if (event.target !== textarea || event.key !== "Enter") return;
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    if (!textarea.value.trim() || isGenerating()) return;
    textarea.form.requestSubmit();
  }

  function onConfigSend(event) {
    const params = event.detail.parameters;
    if ((params.action || "send") !== "send") return;
    if (!String(params.text || "").trim()) {
      event.preventDefault(); // nothing to send; keep the socket quiet
      return;
    }
    ensureClientId();
    params.client_id = document.getElementById("client-id").value;
    toEnd = true;
  }

  // Only the last message's answer can be regenerated (the server draws it so): when new
  // messages are appended, the answer that was last loses its button.
  function onlyTheLastAnswerRegenerates() {
    const last = document.querySelector("#messages > article.message:last-of-type");
    for (const button of document.querySelectorAll("#messages [data-testid=regenerate]")) {
      if (!last?.contains(button)) button.remove();
    }
  }

  function onOobAfterSwap(event) {
    const target = event.target; // the element just swapped in (detail.target is the old one)
    if (!target || !target.id) return;
    if (target.id === "client-id" && target.dataset.accepted) {
      // The server accepted the message: only now is the composer cleared (nothing is lost).
      const textarea = composerText();
      textarea.value = "";
      document.getElementById("attachments")?.replaceChildren();
      syncModelFields();
      autosize(textarea);
      // The composer is always in view: no scrolling into view, which lays the page out
      // at once (11 ms of the send, right after the new messages went in). Focusing the
      // element that has focus does nothing.
      textarea.focus({ preventScroll: true });
    } else if (target.id === "location" && target.dataset.url) {
      history.replaceState(null, "", target.dataset.url);
      if (target.dataset.title) document.title = target.dataset.title;
      // A reconnect must come back to this conversation, not to "new".
      document.getElementById("layout").dataset.wsUrl = target.dataset.ws;
    }
  }

  function setConnection(state) {
    const indicator = document.getElementById("connection");
    if (indicator) indicator.dataset.state = state;
  }

  // The newest message on the page (the last of the thread shown): on (re)connect the server
  // redraws the thread if it has moved on meanwhile, and skips what the page already has.
  function shownUpTo() {
    const last = document.getElementById("messages")?.querySelector(":scope > article.message:last-of-type");
    return last ? last.id.replace("message-", "") : "0";
  }

  // htmx's ws extension calls this on every (re)connect: follow the conversation's socket URL,
  // say what the page shows, and take the delta frames first.
  if (window.htmx) {
    htmx.createWebSocket = function (url) {
      const path = document.getElementById("layout")?.dataset.wsUrl;
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const address = new URL(path ? scheme + location.host + path : url, location.href);
      address.searchParams.set("after", shownUpTo());
      const socket = new WebSocket(address);
      socket.addEventListener("message", onSocketMessage);
      return socket;
    };
  }

  document.addEventListener("click", onClick);
  // Menus close after a choice, or on a click anywhere else.
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      const inItems = event.target.closest?.(".menu__items");
      if (!menu.contains(event.target) || (inItems && menu.contains(inItems))) menu.removeAttribute("open");
    });
  });
  document.addEventListener("change", (event) => {
    if (event.target.id === "model-select") syncModelFields();
  });
  document.addEventListener("paste", (event) => {
    if (event.target === composerText() && attachFiles(event.clipboardData?.files)) event.preventDefault();
  });
  document.addEventListener("dragover", (event) => {
    const composer = event.target.closest?.("#composer");
    if (!composer || !event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault();
    composer.classList.add("is-dragging");
  });
  document.addEventListener("dragleave", (event) => {
    event.target.closest?.("#composer")?.classList.remove("is-dragging");
  });
  document.addEventListener("drop", (event) => {
    const composer = event.target.closest?.("#composer");
    if (!composer) return;
    event.preventDefault();
    composer.classList.remove("is-dragging");
    attachFiles(event.dataTransfer?.files);
  });
  // A refused upload answers 400 with a plain-words fragment: show it as a notice.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.requestConfig?.elt?.id !== "attach-input") return;
    if (event.detail.xhr.status >= 400 && event.detail.xhr.status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      event.detail.target = document.getElementById("notices");
    }
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form?.matches?.("form[data-close-dialog]") && event.detail.successful) form.closest("dialog")?.close();
  });
  // Clicking the title renames the conversation.
  document.addEventListener("dblclick", (event) => {
    if (event.target.closest?.("#chat-title")) document.getElementById("rename-dialog")?.showModal();
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt?.id !== "attach-input") return;
    event.detail.elt.value = ""; // the same file can be picked again
    syncModelFields();
  });
  document.addEventListener("keydown", onKeydown);
  document.addEventListener("input", (event) => {
    if (event.target === composerText()) autosize(event.target);
  });
  document.addEventListener("htmx:wsConfigSend", onConfigSend);
  document.addEventListener("htmx:oobBeforeSwap", onOobBeforeSwap);
  document.addEventListener("htmx:oobAfterSwap", onOobAfterSwap);
  document.addEventListener("htmx:wsAfterMessage", () => {
    onlyTheLastAnswerRegenerates(); // messages may have been appended (deltas never come here)
    scrollToEnd();
  });
  // Copy buttons go on finished answers only, not on every streamed frame.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const article = event.target;
    if (article?.matches?.("article.message") && !article.matches(".is-streaming, .is-pending")) {
      addCopyButtons(article);
    } else if (event.target?.id === "messages") {
      addCopyButtons(event.target);
    }
  });
  document.addEventListener("htmx:wsOpen", () => setConnection("open"));
  document.addEventListener("htmx:wsClose", () => setConnection("closed"));
  document.addEventListener("DOMContentLoaded", () => {
    ensureClientId();
    addCopyButtons(document);
    const textarea = composerText();
    if (textarea) autosize(textarea);
    syncModelFields();
    keepAtEnd(); // after the composer took its height
    // The thread's own height changes too (the composer grows with its text, the window is
    // resized): a reader at the end stays there.
    const pane = threadPane();
    if (pane) growth.observe(pane);
    // A box of reasoning closed changes no observed size once the answer is anchored.
    document.addEventListener("toggle", () => { if (anchored) grown(); }, true);
  });
})();
