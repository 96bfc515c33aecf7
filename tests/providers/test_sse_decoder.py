"""The incremental SSE decoder, on hand-written byte streams."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.providers.sse import SSEDecoder, SSEMessage, clean_text, load_object


def decode(*chunks: bytes, max_size: int = 1024 * 1024) -> list[SSEMessage]:
    decoder = SSEDecoder(max_size)
    out = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def test_a_blank_line_dispatches_the_event_with_its_name():
    assert decode(b"event: ping\ndata: {}\n\n") == [SSEMessage("ping", "{}")]


def test_an_event_without_a_name_is_called_message():
    assert decode(b"data: hi\n\n") == [SSEMessage("message", "hi")]


def test_multi_line_data_is_joined_with_newlines():
    assert decode(b"data: one\ndata:two\ndata:  three\n\n") == [
        SSEMessage("message", "one\ntwo\n three")
    ]


def test_only_one_space_after_the_colon_is_removed():
    assert decode(b"data:no space\n\ndata:  two spaces\n\n") == [
        SSEMessage("message", "no space"),
        SSEMessage("message", " two spaces"),
    ]


def test_comments_and_unknown_fields_are_ignored():
    stream = b": keep-alive\nid: 7\nretry: 1000\nfoo: bar\ndata: x\n\n: trailing\n\n"
    assert decode(stream) == [SSEMessage("message", "x")]


def test_a_field_without_colon_has_an_empty_value():
    assert decode(b"data\n\n") == [SSEMessage("message", "")]


def test_blank_lines_without_data_dispatch_nothing():
    assert decode(b"\n\n\nevent: lonely\n\n") == []


def test_crlf_cr_and_lf_line_endings_are_all_understood():
    expected = [SSEMessage("a", "1"), SSEMessage("b", "2"), SSEMessage("c", "3")]
    stream = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n"
    assert decode(stream) == expected


def test_crlf_split_between_chunks_is_one_line_ending():
    assert decode(b"data: 1\r", b"\ndata: 2\r", b"\n\r", b"\n") == [SSEMessage("message", "1\n2")]


def test_a_multibyte_character_split_between_chunks_survives():
    raw = "data: héllo 🌍 日本\n\n".encode()
    chunks = [raw[i : i + 1] for i in range(len(raw))]
    assert decode(*chunks) == [SSEMessage("message", "héllo 🌍 日本")]


def test_a_byte_order_mark_at_the_start_is_dropped():
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEMessage("message", "x")]


def test_invalid_utf8_becomes_replacement_characters():
    assert decode(b"data: a\xffb\n\n") == [SSEMessage("message", "a\ufffdb")]


def test_a_last_line_without_newline_is_still_delivered_at_close():
    assert decode(b"data: [DONE]") == [SSEMessage("message", "[DONE]")]


def test_an_overlong_line_sets_an_error_instead_of_growing():
    decoder = SSEDecoder(max_size=64)
    assert decoder.feed(b"data: ok\n\n") == [SSEMessage("message", "ok")]
    assert decoder.feed(b"data: " + b"x" * 100) == []
    assert decoder.error is not None
    assert decoder.feed(b"\n\ndata: later\n\n") == []
    assert decoder.close() == []


def test_an_overlong_line_in_one_chunk_is_refused_too():
    decoder = SSEDecoder(max_size=64)
    assert decoder.feed(b"data: " + b"x" * 100 + b"\n\n") == []
    assert decoder.error is not None


def test_an_event_made_of_many_small_data_lines_is_bounded_too():
    decoder = SSEDecoder(max_size=64)
    decoder.feed(b"data: 0123456789\n" * 10)
    assert decoder.error is not None


def test_feeding_a_long_line_byte_by_byte_stays_fast():
    decoder = SSEDecoder()
    line = b"data: " + b"y" * 200_000 + b"\n\n"
    out = [m for i in range(len(line)) for m in decoder.feed(line[i : i + 1])]
    assert out == [SSEMessage("message", "y" * 200_000)]


def test_clean_text_drops_nul_and_lone_surrogates():
    assert clean_text("a\x00b") == "ab"
    assert clean_text("x\ud800y") == "x\ufffdy"
    assert clean_text("🌍") == "🌍"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_bytes_in_any_chunks_never_crash_the_decoder(data, sizes):
    decoder = SSEDecoder(max_size=128)
    pos = 0
    for size in sizes:
        decoder.feed(data[pos : pos + size])
        pos += size
    decoder.feed(data[pos:])
    for message in decoder.close():
        message.data.encode("utf-8")  # always valid text


def test_json_the_fast_reader_refuses_is_still_read():
    # orjson reads nearly every event; these it refuses, and the standard library does not.
    assert load_object('{"a": NaN}') is not None
    assert load_object('{"text": "x\\ud800y"}') == {"text": "x\ud800y"}
    assert load_object('{"text": "日本 🌍"}') == {"text": "日本 🌍"}
    assert load_object("[1, 2]") is None
    assert load_object("{broken") is None


_SSE_BYTES = st.lists(
    st.sampled_from(
        [
            b"data:",
            b"data: ",
            b"event: x",
            b":c",
            b"\r",
            b"\n",
            b"\r\n",
            b"a",
            b"\xc3\xa9",
            b"\xff",
            b"\xef\xbb\xbf",
        ]
    ),
    max_size=60,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(_SSE_BYTES, st.lists(st.integers(min_value=0, max_value=12), max_size=20))
def test_how_the_bytes_are_cut_never_changes_the_messages(data, cuts):
    whole = SSEDecoder()
    expected = whole.feed(data) + whole.close()
    pieces, pos = SSEDecoder(), 0
    got = []
    for size in cuts:
        got += pieces.feed(data[pos : pos + size])
        pos += size
    got += pieces.feed(data[pos:]) + pieces.close()
    assert got == expected
