"""Branches of a conversation: the path on screen, and the versions (siblings) of each message.

Every message points at its parent; an edit or a regeneration adds a sibling. The branch on
screen ends at the newest message, or at the one picked by hand since
(`Conversation.shown_leaf_id`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

from conversations import sql
from conversations.models import Conversation, Message


@dataclass(frozen=True)
class Version:
    index: int  # 1-based position among its siblings
    count: int
    previous_id: int | None
    next_id: int | None


@dataclass
class Thread:
    messages: list[Message]  # the active path, oldest first
    versions: dict[int, Version] = field(default_factory=dict)


def children_of(messages: list[Message]) -> dict[int | None, list[Message]]:
    children: dict[int | None, list[Message]] = defaultdict(list)
    for message in messages:  # ordered by id, so siblings come oldest first
        children[message.parent_id].append(message)
    return children


class Node(Protocol):
    @property
    def pk(self) -> int: ...
    @property
    def parent_id(self) -> int | None: ...


N = TypeVar("N", bound=Node)


class Earlier(NamedTuple):
    """An earlier message as far as a prompt needs it. A tuple: every submission makes one
    for each message before it, and a frozen dataclass costs three times as much to make."""

    pk: int
    parent_id: int | None
    role: str
    content: str
    has_images: bool = False


def path_to(by_id: dict[int, N], leaf: N | None) -> list[N]:
    path: list[N] = []
    seen: set[int] = set()
    while leaf is not None and leaf.pk not in seen:
        seen.add(leaf.pk)
        path.append(leaf)
        leaf = by_id.get(leaf.parent_id) if leaf.parent_id else None
    return path[::-1]


def newest_leaf(start: Message, children: dict[int | None, list[Message]]) -> Message:
    """Follow the newest child down to a leaf: what a version switch shows."""
    node = start
    while children.get(node.pk):
        node = children[node.pk][-1]
    return node


def build(messages: list[Message], leaf_id: int | None) -> Thread:
    """The thread on screen from all of a conversation's messages (already loaded)."""
    if not messages:
        return Thread([])
    by_id = {m.pk: m for m in messages}
    children = children_of(messages)
    if all(m.parent_id is None for m in messages[1:]) and len(children[None]) == len(messages):
        return Thread(messages)  # a conversation from before branching: a straight list
    leaf = by_id.get(leaf_id) if leaf_id else None
    path = path_to(by_id, leaf or newest_leaf(children[None][-1], children))
    versions = {m.pk: v for m in path if (v := _version(m, children)) is not None}
    return Thread(path, versions)


def _version(message: Message, children: dict[int | None, list[Message]]) -> Version | None:
    return _position(message.pk, [sibling.pk for sibling in children[message.parent_id]])


def _position(pk: int, siblings: list[int]) -> Version | None:
    """Where `pk` stands among its siblings' ids, oldest first."""
    if len(siblings) < 2:
        return None
    i = siblings.index(pk)
    return Version(
        index=i + 1,
        count=len(siblings),
        previous_id=siblings[i - 1] if i > 0 else None,
        next_id=siblings[i + 1] if i + 1 < len(siblings) else None,
    )


def thread_of(conversation: Conversation) -> Thread:
    messages = list(conversation.messages.prefetch_related("attachments").order_by("id"))
    return build(messages, shown_leaf_id(conversation, messages))


def shown_leaf_id(conversation: Conversation, messages: list[Message]) -> int | None:
    """The leaf on screen, from all of the conversation's messages ordered by id."""
    return conversation.shown_leaf_id(messages[-1].pk if messages else None)


def current_leaf_id(conversation: Conversation) -> int | None:
    """The leaf on screen now, read afresh (another tab may have sent or switched since);
    the conversation's picked branch is refreshed on the way."""
    found = sql.rows(
        "SELECT c.current_leaf_id, c.current_leaf_as_of,"
        " (SELECT max(m.id) FROM {message} m WHERE m.conversation_id = c.id)"
        " FROM {conversation} c WHERE c.id = %s",
        [conversation.pk],
    )
    if not found:
        return None
    conversation.current_leaf_id, conversation.current_leaf_as_of, newest = found[0]
    return conversation.shown_leaf_id(newest)


def ancestors(message: Message) -> list[Earlier]:
    """The messages before this one on its branch, oldest first (what the upstream sees).

    Read as plain rows, only the fields a prompt needs, in plain SQL: a long conversation is
    read on every submission, and model instances or the ORM's query building would cost
    more than the query. Whether a question has images comes with it (most have none).
    """
    rows = sql.rows(
        "SELECT m.id, m.parent_id, m.role, m.content,"
        " EXISTS (SELECT 1 FROM {attachment} a WHERE a.message_id = m.id)"
        " FROM {message} m WHERE m.conversation_id = %s AND m.id < %s ORDER BY m.id",
        [message.conversation_id, message.pk],
    )
    messages = [
        Earlier(pk, parent, role, content, bool(images))
        for pk, parent, role, content, images in rows
    ]
    if all(m.parent_id is None for m in messages) and message.parent_id is None:
        return messages  # a straight list, from before branching
    by_id = {m.pk: m for m in messages}
    parent = by_id.get(message.parent_id) if message.parent_id else None
    return path_to(by_id, parent)


def version_of(message: Message) -> Version | None:
    """The version position of one message among its siblings (None when it has none)."""
    if message.parent_id is None and message.role == Message.Role.ASSISTANT:
        return None  # an answer always has a question above it; this one predates branching
    siblings = sql.rows(
        "SELECT id FROM {message} WHERE conversation_id = %s AND role = %s"
        " AND (parent_id = %s OR (parent_id IS NULL AND %s)) ORDER BY id",
        [message.conversation_id, message.role, message.parent_id, message.parent_id is None],
    )
    return _position(message.pk, [pk for (pk,) in siblings])


def generating(conversation_id: int) -> bool:
    """Whether an answer in this conversation is still being written."""
    pending, streaming = Message.LIVE_STATUSES
    return bool(
        sql.rows(
            "SELECT 1 FROM {message} WHERE conversation_id = %s AND status IN (%s, %s) LIMIT 1",
            [conversation_id, pending, streaming],
        )
    )
