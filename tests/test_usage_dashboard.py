"""The admin usage dashboard, the read-only ledger changelist and the "My usage" page."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import ChatModel, UsageRecord, User
from conversations.usage import cost_of
from conversations.usage_reports import COLUMNS, SORT_KEYS
from tests.conftest import make_conversation, make_model, make_user

DASHBOARD = "/admin/conversations/usagerecord/dashboard/"
LEDGER = "/admin/conversations/usagerecord/"
RANGE = {"start": "2025-03-01", "end": "2025-03-04"}
DAY1, DAY2, DAY3, DAY4 = (date(2025, 3, d) for d in (1, 2, 3, 4))
FIGURE_LABELS = [c.label for c in COLUMNS]


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Fixtures: 2 people, 2 models, usage on 2 of 4 days (and just outside the range) ------


def ledger_row(
    user: User,
    model: ChatModel,
    when: datetime | date,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    **extra: Any,
) -> UsageRecord:
    row = UsageRecord.objects.create(
        user=user,
        username=user.username,
        model=model,
        model_name=model.display_name,
        provider=model.provider,
        provider_name=model.provider.name,
        upstream_model=model.upstream_id,
        outcome=extra.pop("outcome", "ok"),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_price_per_mtok=model.input_price_per_mtok,
        output_price_per_mtok=model.output_price_per_mtok,
        cost=cost_of(
            input_tokens, output_tokens, model.input_price_per_mtok, model.output_price_per_mtok
        ),
        **extra,
    )
    if not isinstance(when, datetime):
        when = timezone.make_aware(datetime.combine(when, time(12)))
    UsageRecord.objects.filter(pk=row.pk).update(created_at=when)
    return row


@pytest.fixture
def gpt(db: None) -> ChatModel:
    return make_model(
        "http://127.0.0.1:9/v1",
        display_name="GPT test",
        input_price_per_mtok=Decimal("2.50"),
        output_price_per_mtok=Decimal("10.00"),
    )


@pytest.fixture
def claude(db: None) -> ChatModel:
    return make_model(
        "http://127.0.0.1:10",
        protocol="anthropic-messages",
        upstream_id="claude-test",
        display_name="Claude test",
        input_price_per_mtok=Decimal("3.00"),
        output_price_per_mtok=Decimal("15.00"),
    )


@pytest.fixture
def usage(alice: User, bob: User, gpt: ChatModel, claude: ChatModel) -> None:
    ledger_row(
        alice, gpt, DAY1, input_tokens=1000, output_tokens=200, ttft_ms=100, duration_ms=1000
    )
    ledger_row(
        bob, claude, DAY1, input_tokens=500, output_tokens=100, ttft_ms=300, duration_ms=2000
    )
    ledger_row(
        alice, claude, DAY3, input_tokens=2000, output_tokens=1000, ttft_ms=500, duration_ms=3000
    )
    ledger_row(bob, gpt, DAY3, outcome="error", attempt=1, estimated=True, duration_ms=50)
    estimated = {"estimated": True, "ttft_ms": 200, "duration_ms": 600}
    ledger_row(alice, gpt, DAY3, input_tokens=100, output_tokens=50, **estimated)
    # Just outside the range, on either side: never counted.
    ledger_row(alice, gpt, aware(datetime(2025, 2, 28, 23, 59, 59)), input_tokens=7)
    ledger_row(bob, claude, aware(datetime(2025, 3, 5, 0, 0)), input_tokens=9)


# Alice: 0.0045 + 0.021 + 0.00075; Bob: 0.003 + 0 (the failed call)
ALICE_COST, BOB_COST = Decimal("0.02625"), Decimal("0.003")


def aware(moment: datetime) -> datetime:
    return timezone.make_aware(moment)


@pytest.fixture
def root(db: None) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


# --- Reading the page back ----------------------------------------------------------------


class PageReader(HTMLParser):
    """Collects the totals (data-total), the tables (cell texts and links) and chart days."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.links: dict[str, list[dict[str, str]]] = {}
        self.chart_days = 0
        self._total: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self._row_links: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if "data-total" in found:
            self._total = found["data-total"]
            self.totals[self._total] = ""
        elif tag == "table" and found.get("id", "").endswith("-table"):
            self._table = found["id"].removeprefix("usage-").removesuffix("-table")
            self.tables[self._table], self.links[self._table] = [], []
        elif tag == "tr" and self._table:
            self._row, self._row_links = [], {}
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "a" and self._table and "data-link" in found:
            self._row_links[found["data-link"]] = found["href"]
        elif tag == "g" and "usage-chart__day" in found.get("class", "").split():
            self.chart_days += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "dd":
            self._total = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._table:
            self.tables[self._table].append(self._row)
            if self._row_links:  # body rows only: the header row has none
                self.links[self._table].append(self._row_links)
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._total is not None:
            self.totals[self._total] += data
        if self._cell is not None:
            self._cell.append(data)


def read(html: bytes) -> PageReader:
    reader = PageReader()
    reader.feed(html.decode())
    return reader


def shown_rows(page: PageReader, table: str) -> list[list[str]]:
    """A table's cells without the drill-down column, sort arrows and thousands separators."""
    rows = page.tables[table]
    return [[cell.rstrip(" ▲▼").replace(",", "") for cell in row[:-1]] for row in rows]


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- Totals, days, chart -------------------------------------------------------------------


@pytest.mark.usefixtures("usage")
def test_the_dashboard_shows_totals_for_the_range(admin_client):
    response = admin_client.get(DASHBOARD, RANGE)

    assert response.status_code == 200
    totals = read(response.content).totals
    assert totals["calls"] == "5"
    assert totals["input"] == "3,600"
    assert totals["output"] == "1,350"
    assert totals["cost"] == "0.02925" == str(ALICE_COST + BOB_COST)
    assert totals["failures"] == "1"
    assert totals["estimated"] == "2"
    assert totals["ttft"] == "275 ms"  # (100 + 300 + 500 + 200) / 4: the failed call had none
    assert totals["duration"] == "1,330 ms"  # (1000 + 2000 + 3000 + 50 + 600) / 5


@pytest.mark.usefixtures("usage")
def test_the_per_day_series_includes_days_without_usage(admin_client):
    page = read(admin_client.get(DASHBOARD, RANGE).content)

    days = shown_rows(page, "days")[1:]
    assert [row[0] for row in days] == ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"]
    calls = FIGURE_LABELS.index("Calls") + 1
    cost = FIGURE_LABELS.index("Cost") + 1
    assert [row[calls] for row in days] == ["2", "0", "3", "0"]
    assert [row[cost] for row in days] == ["0.0075", "0.00", "0.02175", "0.00"]
    assert page.chart_days == 4


@pytest.mark.usefixtures("usage")
def test_the_chart_is_inline_svg_with_axis_labels_and_no_inline_styles(admin_client):
    html = admin_client.get(DASHBOARD, RANGE).content.decode()

    start = html.index('<svg xmlns="http://www.w3.org/2000/svg" id="usage-chart"')
    svg = html[start : html.index("</svg>", start)]
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert ">Tokens</text>" in svg and ">Cost</text>" in svg and ">Day</text>" in svg
    assert ">Mar 1</text>" in svg and ">Mar 4</text>" in svg
    assert "style=" not in html.split("<body", 1)[1].replace("stylesheet", "")
    assert "<script" not in svg
    assert "/static/css/usage.css" in html


def test_day_boundaries_follow_the_sites_time_zone(settings, alice, gpt, admin_client):
    settings.TIME_ZONE = "America/New_York"
    # 03:00 UTC on March 2nd is still March 1st in New York.
    ledger_row(alice, gpt, datetime(2025, 3, 2, 3, 0, tzinfo=UTC), input_tokens=10)

    page = read(admin_client.get(DASHBOARD, RANGE).content)

    days = {row[0]: row[1] for row in shown_rows(page, "days")[1:]}
    assert days["2025-03-01"] == "1" and days["2025-03-02"] == "0"


def test_the_default_range_is_the_last_30_days(alice, gpt, admin_client):
    today = timezone.localdate()
    ledger_row(alice, gpt, today, input_tokens=1)
    ledger_row(alice, gpt, today - timedelta(days=29), input_tokens=10)
    ledger_row(alice, gpt, today - timedelta(days=30), input_tokens=100)

    page = read(admin_client.get(DASHBOARD).content)

    assert page.totals["input"] == "11"
    assert len(page.tables["days"]) == 1 + 30
    assert page.chart_days == 30


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "yesterday"}, "The start date must be a date written as YYYY-MM-DD."),
        ({"end": "2025-02-30"}, "The end date must be a date written as YYYY-MM-DD."),
        ({"start": "2025-03-05", "end": "2025-03-01"}, "The start date is after the end date."),
        ({"start": "2020-01-01", "end": "2025-01-01"}, "Choose a range of at most 366 days."),
    ],
)
def test_an_invalid_range_says_why_instead_of_failing(admin_client, params, message):
    response = admin_client.get(DASHBOARD, params)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="usage-range"' in response.content.decode()  # the form is there to fix it
    assert admin_client.get(DASHBOARD, {**params, "format": "csv"}).content.decode() == message


# --- Sorting ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("usage")
@pytest.mark.parametrize(
    ("sort", "users", "models"),
    [
        ("-cost", ["alice", "bob"], ["Claude test", "GPT test"]),
        ("cost", ["bob", "alice"], ["GPT test", "Claude test"]),
        ("name", ["alice", "bob"], ["Claude test", "GPT test"]),
        ("-name", ["bob", "alice"], ["GPT test", "Claude test"]),
        ("-calls", ["alice", "bob"], ["GPT test", "Claude test"]),
        ("failures", ["alice", "bob"], ["Claude test", "GPT test"]),
        ("-failures", ["bob", "alice"], ["GPT test", "Claude test"]),
        ("provider", ["alice", "bob"], ["Claude test", "GPT test"]),  # users: the default
        ("-drop table", ["alice", "bob"], ["Claude test", "GPT test"]),  # not whitelisted
    ],
)
def test_breakdowns_sort_by_the_chosen_column(admin_client, sort, users, models):
    page = read(admin_client.get(DASHBOARD, {**RANGE, "sort": sort}).content)

    assert [row[0] for row in page.tables["users"][1:]] == users
    assert [row[0] for row in page.tables["models"][1:]] == models


@pytest.mark.usefixtures("usage")
@pytest.mark.parametrize("key", sorted(SORT_KEYS - {"name", "provider"}))
@pytest.mark.parametrize("descending", [False, True])
def test_every_figure_column_sorts_both_ways(admin_client, key, descending):
    sort = f"-{key}" if descending else key
    page = read(admin_client.get(DASHBOARD, {**RANGE, "sort": sort}).content)

    for table, names in (("users", 1), ("models", 2)):
        header, *rows = shown_rows(page, table)
        column = names + [c.key for c in COLUMNS].index(key)
        values = [Decimal(row[column]) for row in rows if row[column] != "\u2014"]
        assert values == sorted(values, reverse=descending), (table, header[column], values)


@pytest.mark.usefixtures("usage")
def test_header_links_toggle_the_sort_and_keep_the_range(admin_client):
    html = admin_client.get(DASHBOARD, {**RANGE, "sort": "-cost"}).content.decode()

    assert 'aria-sort="descending"' in html
    assert f'href="?start={RANGE["start"]}&amp;end={RANGE["end"]}&amp;sort=cost"' in html
    assert 'href="?start=2025-03-01&amp;end=2025-03-04&amp;sort=name"' in html
    assert 'href="?start=2025-03-01&amp;end=2025-03-04&amp;sort=-calls"' in html


# --- CSV ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("usage")
@pytest.mark.parametrize("table", ["users", "models", "days"])
@pytest.mark.parametrize("sort", ["-cost", "name", "ttft"])
def test_the_csv_export_matches_the_table_on_screen(admin_client, table, sort):
    page = read(admin_client.get(DASHBOARD, {**RANGE, "sort": sort}).content)

    response = admin_client.get(DASHBOARD, {**RANGE, "sort": sort, "format": "csv", "table": table})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"usage-{table}-2025-03-01-2025-03-04.csv" in response["Content-Disposition"]
    screen = [[cell.replace("\u2014", "") for cell in row] for row in shown_rows(page, table)]
    assert csv_rows(response) == screen


@pytest.mark.usefixtures("usage")
def test_the_csv_writes_decimal_costs_exactly(admin_client):
    response = admin_client.get(DASHBOARD, {**RANGE, "format": "csv", "table": "users"})

    header, *rows = csv_rows(response)
    cost = header.index("Cost")
    assert {row[0]: Decimal(row[cost]) for row in rows} == {"alice": ALICE_COST, "bob": BOB_COST}
    assert [row[cost] for row in rows] == ["0.02625", "0.003"]


def test_the_csv_export_links_are_on_the_page(admin_client, alice, gpt):
    html = admin_client.get(DASHBOARD, {**RANGE, "sort": "name"}).content.decode()

    for table in ("users", "models", "days"):
        assert f"sort=name&amp;format=csv&amp;table={table}" in html


def test_an_unknown_csv_table_is_refused(admin_client):
    response = admin_client.get(DASHBOARD, {"format": "csv", "table": "secrets"})

    assert response.status_code == 400
    assert "table=users" in response.content.decode()


def test_csv_cells_that_look_like_formulas_are_defused(admin_client, gpt):
    user = make_user("=cmd")
    ledger_row(user, gpt, DAY1, input_tokens=1)

    rows = csv_rows(admin_client.get(DASHBOARD, {**RANGE, "format": "csv", "table": "users"}))

    assert rows[1][0] == "'=cmd"


# --- Drilling down --------------------------------------------------------------------------


@pytest.mark.usefixtures("usage")
def test_user_rows_drill_down_to_the_ledger_and_conversations(admin_client, alice, bob):
    make_conversation(alice, title="Alice's chat")
    make_conversation(bob, title="Bob's chat")
    page = read(admin_client.get(DASHBOARD, {**RANGE, "sort": "name"}).content)
    alice_links = page.links["users"][0]

    assert query_of(alice_links["ledger"]) == {
        "user__id__exact": [str(alice.pk)],
        "created_at__date__gte": ["2025-03-01"],
        "created_at__date__lte": ["2025-03-04"],
    }
    assert query_of(alice_links["conversations"]) == {"owner__id__exact": [str(alice.pk)]}
    ledger = admin_client.get(alice_links["ledger"])
    assert ledger.status_code == 200
    assert {r.username for r in ledger.context["cl"].queryset} == {"alice"}
    assert ledger.context["cl"].result_count == 3  # not the row of Feb 28th
    conversations = admin_client.get(alice_links["conversations"])
    assert conversations.status_code == 200
    assert [c.title for c in conversations.context["cl"].queryset] == ["Alice's chat"]


@pytest.mark.usefixtures("usage")
def test_model_and_day_rows_drill_down_to_the_filtered_ledger(admin_client, gpt):
    page = read(admin_client.get(DASHBOARD, {**RANGE, "sort": "-calls"}).content)
    gpt_links = page.links["models"][0]

    assert query_of(gpt_links["ledger"])["model__id__exact"] == [str(gpt.pk)]
    assert query_of(gpt_links["conversations"]) == {"model__id__exact": [str(gpt.pk)]}
    ledger = admin_client.get(gpt_links["ledger"])
    assert ledger.context["cl"].result_count == 3
    day3 = page.links["days"][2]["ledger"]
    assert query_of(day3)["created_at__date__gte"] == query_of(day3)["created_at__date__lte"]
    assert admin_client.get(day3).context["cl"].result_count == 3


def test_rows_of_deleted_accounts_still_drill_down_by_name(admin_client, gpt):
    gone = make_user("carol")
    ledger_row(gone, gpt, DAY1, input_tokens=5)
    gone.delete()

    page = read(admin_client.get(DASHBOARD, RANGE).content)

    [links] = page.links["users"]
    assert "conversations" not in links
    assert query_of(links["ledger"])["username"] == ["carol"]
    ledger = admin_client.get(links["ledger"])
    assert ledger.context["cl"].result_count == 1


# --- Who may see it, and what it costs ---------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_admin_login(client, db):
    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_people_who_are_not_staff_are_sent_to_the_admin_login(client, alice):
    client.force_login(alice)

    response = client.get(DASHBOARD)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get(DASHBOARD + "?format=csv&table=users").status_code == 302


def test_staff_need_permission_to_view_the_ledger(client, db):
    staff = make_user("helper", is_staff=True)
    client.force_login(staff)
    assert client.get(DASHBOARD).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_usagerecord"))
    client.force_login(User.objects.get(pk=staff.pk))

    assert client.get(DASHBOARD).status_code == 200


@pytest.mark.usefixtures("usage")
def test_the_dashboard_runs_as_many_queries_for_30_days_as_for_3(
    admin_client, django_assert_max_num_queries
):
    counts = []
    for start in ("2025-03-01", "2025-02-02"):  # 3 days, then 30 days, to March 3rd
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(6):
            response = admin_client.get(DASHBOARD, {"start": start, "end": "2025-03-03"})
        assert response.status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1]
    assert read(response.content).chart_days == 30


# --- The ledger changelist -----------------------------------------------------------------------


@pytest.mark.usefixtures("usage")
def test_the_ledger_changelist_is_read_only_with_filters_and_a_dashboard_link(admin_client):
    response = admin_client.get(LEDGER)
    html = response.content.decode()

    assert response.status_code == 200
    assert response.context["cl"].result_count == 7
    assert f'href="{DASHBOARD}"' in html
    assert "/admin/conversations/usagerecord/add/" not in html
    assert 'name="action"' not in html  # no delete action
    filters = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"user", "model", "provider", "outcome", "kind", "estimated"} <= filters
    assert admin_client.get(LEDGER + "add/").status_code == 403
    row = UsageRecord.objects.first()
    assert row is not None
    assert admin_client.post(f"{LEDGER}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.count() == 7


@pytest.mark.usefixtures("usage")
def test_the_ledger_searches_by_username_and_model_name(admin_client):
    by_user = admin_client.get(LEDGER, {"q": "bob"}).context["cl"]
    by_model = admin_client.get(LEDGER, {"q": "Claude"}).context["cl"]

    assert {r.username for r in by_user.queryset} == {"bob"}
    assert {r.model_name for r in by_model.queryset} == {"Claude test"}


# --- My usage ------------------------------------------------------------------------------------


def test_my_usage_shows_only_my_rows(client, alice, bob, gpt, claude):
    today = timezone.localdate()
    ledger_row(alice, gpt, today, input_tokens=1000, output_tokens=100)
    ledger_row(bob, claude, today, input_tokens=777_777, output_tokens=1)
    ledger_row(bob, gpt, today, input_tokens=555_555, output_tokens=1)
    client.force_login(alice)

    response = client.get("/usage/")
    html = response.content.decode()

    assert response.status_code == 200
    page = read(response.content)
    assert page.totals["calls"] == "1"  # today's card comes first
    assert page.totals["tokens"] == "1,000 / 100"
    assert page.totals["cost"] == str(cost_of(1000, 100, Decimal("2.50"), Decimal("10.00")))
    assert "GPT test" in html and "Claude test" not in html
    assert "777,777" not in html and "555,555" not in html and "bob" not in html


def test_my_usage_lists_the_last_30_days_and_leaves_room_for_budgets(client, alice, gpt):
    today = timezone.localdate()
    ledger_row(alice, gpt, today - timedelta(days=3), input_tokens=40)
    ledger_row(alice, gpt, today - timedelta(days=45), input_tokens=9000)
    client.force_login(alice)

    html = client.get("/usage/").content.decode()

    assert html.count('<time datetime="') == 30
    assert f'<time datetime="{(today - timedelta(days=29)).isoformat()}"' in html
    assert "9,000" not in html
    assert "/static/css/usage.css" in html


def test_my_usage_needs_a_login(client, db):
    response = client.get("/usage/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_sidebar_links_to_my_usage(client, alice):
    client.force_login(alice)

    assert 'href="/usage/"' in client.get("/").content.decode()
