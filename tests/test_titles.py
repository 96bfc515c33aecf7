"""Automatic titles: asked of the conversation's model, billed, never over a rename."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, UsageRecord
from conversations.runs import Runs
from conversations.titles import clean_title, generate_title
from tests.conftest import add_message, make_conversation
from tests.upstream import Scripted, chat_completion_stream, openai_usage

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def first_exchange(user: Any, model: Any, title: str = "Provisional title") -> Conversation:
    conversation = make_conversation(user, model, title=title)
    question = add_message(conversation, "user", "How do pelicans fish?")
    add_message(conversation, "assistant", "They scoop.", parent=question, model=model)
    return conversation


def test_titles_are_cleaned_of_quotes_markdown_and_prefixes():
    assert clean_title('"Pelican fishing."') == "Pelican fishing"
    assert clean_title("## **Title:** Pelicans at sea\nmore") == "Pelicans at sea"
    assert clean_title("\n\n  ") == ""
    assert len(clean_title("x" * 500)) == 80


async def test_the_model_names_the_conversation_and_the_call_is_billed(alice, chat_model, upstream):
    upstream.script(
        Scripted(chunks=chat_completion_stream(["Pelicans ", "fishing"], usage=openai_usage(40, 2)))
    )
    conversation = await first_exchange(alice, chat_model)
    frames: list[dict[str, Any]] = []

    async def publish(frame: dict[str, Any]) -> None:
        frames.append(frame)

    title = await generate_title(conversation.pk, Runs().client(), publish)

    await conversation.arefresh_from_db()
    assert title == conversation.title == "Pelicans fishing"
    assert conversation.title_generated
    prompt = upstream.requests[0].json["messages"][0]["content"]
    assert "How do pelicans fish?" in prompt and "They scoop." in prompt
    row = await UsageRecord.objects.aget(kind="title")
    assert (row.input_tokens, row.output_tokens, row.outcome) == (40, 2, "ok")
    assert frames == [{"type": "chat.title_updated", "conversation_id": conversation.pk}]


async def test_a_failed_title_call_keeps_the_first_words_and_is_recorded(
    alice, chat_model, upstream
):
    upstream.script(Scripted.json({"error": {"message": "nope"}}, status=400))
    conversation = await first_exchange(alice, chat_model)

    assert await generate_title(conversation.pk, Runs().client(), _ignore) == ""

    await conversation.arefresh_from_db()
    assert conversation.title == "Provisional title" and not conversation.title_generated
    assert await UsageRecord.objects.filter(kind="title", outcome="error").aexists()


async def test_a_rename_during_the_title_call_wins(alice, chat_model, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["Model title"])))
    conversation = await first_exchange(alice, chat_model)
    await Conversation.objects.filter(pk=conversation.pk).aupdate(
        title="Mine", title_generated=True
    )

    await generate_title(conversation.pk, Runs().client(), _ignore)

    await conversation.arefresh_from_db()
    assert conversation.title == "Mine"
    assert upstream.requests == []  # already titled: nothing is asked


async def _ignore(frame: dict[str, Any]) -> None:
    return None
