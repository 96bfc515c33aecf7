"""Budgets (money and tokens, per person, group and site, per day and month) and the rate limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from conversations import quotas
from conversations.models import Budget, Message, UsageRecord
from tests.conftest import add_message, make_conversation, make_model, make_user
from tests.test_consumers import frames_until, open_socket, send_frame
from tests.upstream import Scripted, chat_completion_stream

NOON = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
check = async_to_sync(quotas.check)


@pytest.fixture(autouse=True)
def _plain(settings):
    """UTC and no rate limit unless a test says otherwise; a fast hasher for the many people."""
    settings.TIME_ZONE = "UTC"
    settings.RATE_LIMIT_PER_MINUTE = 0
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def priced(db):
    return make_model(
        "http://127.0.0.1:9/v1",
        input_price_per_mtok=Decimal("3"),
        output_price_per_mtok=Decimal("15"),
    )


def spend(user, cost="0", tokens=0, at=NOON) -> UsageRecord:
    record = UsageRecord.objects.create(
        user=user,
        username=user.username,
        provider_name="p",
        model_name="m",
        upstream_model="m",
        outcome="ok",
        input_tokens=tokens // 2,
        output_tokens=tokens - tokens // 2,
        cost=Decimal(cost),
    )
    UsageRecord.objects.filter(pk=record.pk).update(created_at=at)
    return record


def budget(scope="site", period="day", cost=None, tokens=None, **who) -> Budget:
    found = Budget(scope=scope, period=period, max_cost=cost, max_tokens=tokens, **who)
    found.full_clean()
    found.save()
    return found


def team(name, *members) -> Group:
    group = Group.objects.create(name=name)
    group.user_set.add(*members)
    return group


def outcome(user, model, now=NOON) -> str:
    try:
        warnings = check(user, model, now=now)
    except quotas.QuotaExceeded as exc:
        return f"refused: {exc.message}"
    return " ".join(warnings) or "ok"


# --- Boundaries ----------------------------------------------------------------------

MONEY = ["3.9999", "4.00", "4.9999", "5.00", "5.02"]
TOKENS = [799, 800, 999, 1000, 1004]
EXPECTED = ["ok", "warning", "warning", "refused", "refused"]


@pytest.mark.parametrize("period", ["day", "month"])
@pytest.mark.parametrize(("spent", "expected"), list(zip(MONEY, EXPECTED, strict=True)))
def test_money_budgets_warn_at_80_percent_and_refuse_at_100(alice, priced, period, spent, expected):
    budget("user", period, cost=Decimal("5.00"), user=alice)
    spend(alice, cost=spent)
    said = outcome(alice, priced)
    adjective = {"day": "daily", "month": "monthly"}[period]
    if expected == "ok":
        assert said == "ok"
    elif expected == "warning":
        percent = 80 if spent == "4.00" else 99
        assert said == f"You have used {percent}% of your {adjective} budget of $5.00."
    else:
        assert said.startswith(
            f"refused: You have used your {adjective} budget of $5.00 (spent ${spent})."
        )


@pytest.mark.parametrize("period", ["day", "month"])
@pytest.mark.parametrize(("spent", "expected"), list(zip(TOKENS, EXPECTED, strict=True)))
def test_token_budgets_count_input_and_output_and_warn_then_refuse(
    alice, priced, period, spent, expected
):
    budget("user", period, tokens=1000, user=alice)
    spend(alice, tokens=spent)
    said = outcome(alice, priced)
    adjective = {"day": "daily", "month": "monthly"}[period]
    if expected == "ok":
        assert said == "ok"
    elif expected == "warning":
        percent = spent * 100 // 1000
        assert said == f"You have used {percent}% of your {adjective} token budget of 1,000 tokens."
    else:
        assert said.startswith(
            f"refused: You have used your {adjective} token budget of 1,000 tokens "
            f"(used {spent:,})."
        )


def test_a_refusal_says_when_a_day_budget_resets(alice, priced):
    budget("user", "day", cost=Decimal(5), user=alice)
    spend(alice, cost="5.02", at=NOON)
    said = outcome(alice, priced, now=datetime(2025, 6, 15, 20, 48, tzinfo=UTC))
    assert said == (
        "refused: You have used your daily budget of $5.00 (spent $5.02). "
        "It resets at 00:00 UTC (in 3 h 12 min)."
    )


def test_a_refusal_says_when_a_month_budget_resets(alice, priced):
    budget("user", "month", tokens=100, user=alice)
    spend(alice, tokens=150)
    assert outcome(alice, priced).endswith("It resets on 1 July at 00:00 UTC (in 15 days).")


def test_spend_from_before_the_period_does_not_count(alice, priced):
    budget("user", "day", cost=Decimal(5), user=alice)
    spend(alice, cost="9", at=datetime(2025, 6, 14, 23, 59, tzinfo=UTC))
    spend(alice, cost="1", at=datetime(2025, 6, 15, 0, 0, tzinfo=UTC))
    assert outcome(alice, priced) == "ok"
    budget("user", "month", cost=Decimal(10), user=alice)
    assert outcome(alice, priced).startswith("refused: You have used your monthly budget")


def test_periods_follow_the_sites_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    late_evening = datetime(2025, 3, 10, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    day = quotas.window("day", late_evening)
    assert day.start == datetime(2025, 3, 9, 23, 0, tzinfo=UTC)
    assert day.end == datetime(2025, 3, 10, 23, 0, tzinfo=UTC)  # the next local midnight
    month = quotas.window("month", late_evening)
    assert month.start == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)
    assert month.end == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)  # 1 April, summer time
    new_month = quotas.window("month", datetime(2025, 1, 31, 23, 30, tzinfo=UTC))
    assert new_month.start == datetime(2025, 1, 31, 23, 0, tzinfo=UTC)  # already 1 February


def test_the_reset_is_named_in_local_time(settings, alice, priced):
    settings.TIME_ZONE = "Europe/Berlin"
    budget("user", "day", cost=Decimal(1), user=alice)
    spend(alice, cost="1", at=datetime(2025, 3, 10, 22, 0, tzinfo=UTC))
    said = outcome(alice, priced, now=datetime(2025, 3, 10, 22, 30, tzinfo=UTC))
    assert said.endswith("It resets at 00:00 CET (in 30 min).")


# --- Who is bound ---------------------------------------------------------------------


def test_a_group_budget_counts_all_members_together(alice, bob, priced):
    research = team("Research", alice, bob)
    carol = make_user("carol")
    budget("group", "month", cost=Decimal(10), group=research)
    spend(alice, cost="6")
    spend(bob, cost="3")
    spend(carol, cost="50")  # not a member: does not count
    assert outcome(alice, priced) == (
        "Team “Research” has used 90% of its monthly budget of $10.00."
    )
    spend(bob, cost="1")
    for member in (alice, bob):
        assert outcome(member, priced).startswith(
            "refused: Team “Research” has used its monthly budget of $10.00 (spent $10.00). "
            "It resets on 1 July"
        )
    assert outcome(carol, priced) == "ok"


def test_a_member_of_two_groups_is_bound_by_both_and_counted_once_in_each(alice, bob, priced):
    research, ops = team("Research", alice, bob), team("Ops", alice)
    budget("group", "day", tokens=1000, group=research)
    budget("group", "day", tokens=500, group=ops)
    spend(alice, tokens=400)
    spend(bob, tokens=450)
    statuses = {s.label: s for s in quotas.budgets_for(alice, now=NOON)}
    assert statuses["Team “Research”"].spent_tokens == 850
    assert statuses["Team “Ops”"].spent_tokens == 400
    said = outcome(alice, priced)
    assert "Team “Research” has used 85% of its daily token budget of 1,000 tokens." in said
    assert "Team “Ops” has used 80% of its daily token budget of 500 tokens." in said


def test_the_site_default_applies_to_each_person_on_their_own(alice, bob, priced):
    budget("site", "day", cost=Decimal(2))
    spend(alice, cost="2")
    spend(bob, cost="1")
    assert outcome(alice, priced).startswith("refused: You have used your daily budget of $2.00")
    assert outcome(bob, priced) == "ok"


def test_a_personal_budget_replaces_the_site_default_of_its_period(alice, priced):
    budget("site", "day", cost=Decimal(2))
    budget("site", "month", cost=Decimal(20))
    budget("user", "day", cost=Decimal(8), user=alice)
    spend(alice, cost="3")
    assert outcome(alice, priced) == "ok"
    spend(alice, cost="15")
    assert outcome(alice, priced).startswith("refused: You have used your daily budget of $8.00")
    assert [s.label for s in quotas.budgets_for(alice, now=NOON)] == [
        "Site default",
        "Personal budget",
    ]


def test_the_refusal_names_the_budget_that_keeps_the_user_waiting_longest(alice, priced):
    budget("user", "day", cost=Decimal(1), user=alice)
    budget("site", "month", tokens=10)
    spend(alice, cost="2", tokens=20)
    assert "monthly token budget" in outcome(alice, priced)


def test_money_limits_do_not_stop_a_free_model_but_token_limits_do(alice, db):
    free = make_model("http://127.0.0.1:9/v1")
    budget("user", "day", cost=Decimal(1), user=alice)
    spend(alice, cost="1.5", tokens=10)
    assert outcome(alice, free) == "ok"
    budget("user", "month", tokens=10, user=alice)
    assert outcome(alice, free).startswith("refused: You have used your monthly token budget")


def test_budgets_for_reports_each_budget_for_the_usage_page(alice, priced):
    budget("user", "day", cost=Decimal(5), tokens=10_000, user=alice)
    spend(alice, cost="1.25", tokens=9_000)
    (status,) = quotas.budgets_for(alice, now=NOON)
    assert status.label == "Personal budget" and status.period == "day"
    assert (status.limit_cost, status.limit_tokens) == (Decimal(5), 10_000)
    assert (status.spent_cost, status.spent_tokens) == (Decimal("1.25"), 9_000)
    assert status.percent == 90 and status.warning and not status.exceeded
    assert status.resets_at == datetime(2025, 6, 16, tzinfo=UTC)


def test_money_is_written_with_the_configured_currency_symbol(settings, alice, priced):
    settings.CURRENCY_SYMBOL = "€"
    budget("user", "day", cost=Decimal("5.00"), user=alice)
    spend(alice, cost="5.00")
    assert outcome(alice, priced).startswith(
        "refused: You have used your daily budget of €5.00 (spent €5.00)."
    )

    settings.CURRENCY_SYMBOL = "<b>CHF</b> "  # escaped on the page like any text
    spend(alice, cost="2.50", at=timezone.now())  # today, as the usage page counts
    client = Client()
    client.force_login(alice)
    page = client.get("/usage/").content.decode()
    row = page[page.index('data-testid="budget"') :]
    row = row[: row.index("</tr>")]
    assert "&lt;b&gt;CHF&lt;/b&gt; 2.50" in row and "&lt;b&gt;CHF&lt;/b&gt; 5.00" in row
    assert "$" not in row and "<b>" not in row


def test_the_check_takes_a_constant_few_queries(alice, bob, priced, django_assert_num_queries):
    for number in range(5):
        group = team(f"Team {number}", alice, bob)
        budget("group", "month", cost=Decimal(100), group=group)
    budget("site", "day", cost=Decimal(10))
    budget("user", "month", tokens=10**6, user=alice)
    alice.requests_per_minute = 5
    for _ in range(30):
        spend(alice, cost="0.1", tokens=100)
        spend(bob, cost="0.1", tokens=100)
    # the rate limit with whether any budget applies, the budgets, own spend, group spend
    with django_assert_num_queries(4):
        assert check(alice, priced, now=NOON) == []


def test_without_budgets_the_check_is_one_small_query(
    alice, bob, priced, django_assert_num_queries
):
    budget("user", "month", cost=Decimal(1), user=bob)  # binds bob, not alice
    budget("group", "month", cost=Decimal(1), group=team("Other team", bob))
    alice.requests_per_minute = 5
    with django_assert_num_queries(1):  # the rate limit, and whether any budget applies
        assert check(alice, priced, now=NOON) == []


# --- The rate limit --------------------------------------------------------------------


def sent(user, count, seconds_ago):
    """`count` messages, each with its answer (the request upstream the limit counts)."""
    conversation = make_conversation(user)
    for _ in range(count):
        pair = [
            add_message(conversation, "user", "hi"),
            add_message(conversation, "assistant", "hello"),
        ]
        at = NOON - timedelta(seconds=seconds_ago)
        Message.objects.filter(pk__in=[m.pk for m in pair]).update(created_at=at)


def test_the_rate_limit_refuses_at_the_limit_and_says_when_to_retry(settings, alice, priced):
    settings.RATE_LIMIT_PER_MINUTE = 3
    sent(alice, 2, seconds_ago=45)
    assert outcome(alice, priced) == "ok"
    sent(alice, 1, seconds_ago=10)
    assert outcome(alice, priced) == (
        "refused: You can send 3 messages a minute. Try again in 15 s."
    )
    sent(alice, 2, seconds_ago=5)  # over the limit: wait until only two are left
    assert outcome(alice, priced).endswith("Try again in 50 s.")


def test_submissions_older_than_a_minute_do_not_count(settings, alice, priced):
    settings.RATE_LIMIT_PER_MINUTE = 2
    sent(alice, 10, seconds_ago=60)
    sent(alice, 1, seconds_ago=30)
    assert outcome(alice, priced) == "ok"


def test_a_persons_own_rate_limit_overrides_the_site_one(settings, alice, bob, priced):
    settings.RATE_LIMIT_PER_MINUTE = 2
    alice.requests_per_minute = 5
    bob.requests_per_minute = 0  # unlimited
    sent(alice, 4, seconds_ago=1)
    sent(bob, 50, seconds_ago=1)
    assert outcome(alice, priced) == "ok"
    assert outcome(bob, priced) == "ok"
    sent(alice, 1, seconds_ago=1)
    assert outcome(alice, priced).startswith("refused: You can send 5 messages a minute.")


def test_only_the_persons_own_requests_count(settings, alice, bob, priced):
    settings.RATE_LIMIT_PER_MINUTE = 1
    sent(bob, 5, seconds_ago=1)
    assert outcome(alice, priced) == "ok"
    conversation = make_conversation(alice)
    add_message(conversation, "user", "a question alone asked nothing upstream")
    assert outcome(alice, priced, now=timezone.now()) == "ok"
    add_message(conversation, "assistant", "an answer (here a regenerated one) did")
    assert outcome(alice, priced, now=timezone.now()).startswith("refused: You can send 1")


# --- Admin ---------------------------------------------------------------------------


@pytest.fixture
def admin_client_(db):
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_the_budget_list_shows_spend_and_percent_used(admin_client_, alice, bob):
    budget("user", "day", cost=Decimal(5), user=alice)
    budget("group", "month", tokens=1000, group=team("Research", alice, bob))
    budget("site", "day", cost=Decimal(10))
    spend(alice, cost="4", tokens=300, at=datetime.now(UTC))
    spend(bob, cost="9", tokens=600, at=datetime.now(UTC))
    page = admin_client_.get("/admin/conversations/budget/").content.decode()
    assert "$4.00 · 300 tokens (80%)" in page  # alice's own
    assert "$13.00 · 900 tokens (90%)" in page  # the team together
    assert "highest, bob: $9.00 · 600 tokens (90%)" in page  # alice has her own daily budget


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"scope": "user"}, "Choose the person this budget is for."),
        ({"scope": "group"}, "Choose the group this budget is for."),
        ({"scope": "site", "max_cost": "", "max_tokens": ""}, "Set a money limit, a token limit"),
        ({"scope": "site", "max_cost": "-1"}, "A budget cannot be negative."),
        ({"scope": "site", "user": "ALICE"}, "Only a personal budget names a person"),
    ],
)
def test_the_budget_form_refuses_incomplete_budgets(admin_client_, alice, fields, error):
    data = {"scope": "site", "period": "day", "max_cost": "5", "max_tokens": "", **fields}
    if data.get("user") == "ALICE":
        data["user"] = str(alice.pk)
    response = admin_client_.post("/admin/conversations/budget/add/", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Budget.objects.exists()


def test_the_user_admin_offers_a_personal_rate_limit(admin_client_, alice):
    page = admin_client_.get(f"/admin/conversations/user/{alice.pk}/change/").content.decode()
    assert 'name="requests_per_minute"' in page


# --- Over the websocket ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_a_refused_submission_saves_nothing_sends_nothing_and_names_the_limit(
    alice, upstream
):
    model = await sync_to_async(make_model)(upstream.url, input_price_per_mtok=Decimal(1))
    await sync_to_async(budget)("user", "day", cost=Decimal(5), user=alice)
    await sync_to_async(spend)(alice, cost="5.00", at=datetime.now(UTC))
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hello", model=model.pk))
    frame = await socket.receive_from(timeout=5)
    await socket.disconnect()
    assert "You have used your daily budget of $5.00 (spent $5.00)" in frame
    assert 'role="alert"' in frame
    assert upstream.requests == []
    assert not await Message.objects.aexists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_an_accepted_submission_near_a_budget_carries_a_warning(alice, upstream):
    upstream.script(Scripted(chunks=chat_completion_stream(["fine"])))
    model = await sync_to_async(make_model)(upstream.url, input_price_per_mtok=Decimal(1))
    await sync_to_async(budget)("user", "month", tokens=1000, user=alice)
    await sync_to_async(spend)(alice, tokens=850, at=datetime.now(UTC))
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("hello", model=model.pk))
    frames = await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.disconnect()
    assert any("You have used 85% of your monthly token budget" in f for f in frames)
    assert len(upstream.requests) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_the_rate_limit_holds_over_the_websocket(settings, alice, upstream):
    settings.RATE_LIMIT_PER_MINUTE = 1
    upstream.script(Scripted(chunks=chat_completion_stream(["one"])))
    await sync_to_async(make_model)(upstream.url)
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("first", client_id="a"))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.send_to(text_data=send_frame("second", client_id="b"))
    frame = await socket.receive_from(timeout=5)
    await socket.disconnect()
    assert "You can send 1 message a minute. Try again in" in frame
    assert await Message.objects.acount() == 2
    assert len(upstream.requests) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_streams")
async def test_regenerated_answers_count_against_the_rate_limit(settings, alice, upstream):
    """Each asks the upstream again, so a button pressed in a loop cannot get round it."""
    settings.RATE_LIMIT_PER_MINUTE = 2
    settings.AUTO_TITLES = False
    upstream.script(*(Scripted(chunks=chat_completion_stream([word])) for word in ("a", "b")))
    await sync_to_async(make_model)(upstream.url)
    socket, _, _ = await open_socket(alice)
    await socket.send_to(text_data=send_frame("first", client_id="a"))
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    answer = await Message.objects.aget(role="assistant")
    regenerate = json.dumps({"action": "regenerate", "message": str(answer.pk)})
    await socket.send_to(text_data=regenerate)
    await frames_until(socket, r'data-role="assistant" data-status="complete"')
    await socket.send_to(text_data=regenerate)
    await frames_until(socket, r"You can send 2 messages a minute")
    await socket.disconnect()
    assert len(upstream.requests) == 2
    assert await Message.objects.filter(role="assistant").acount() == 2
