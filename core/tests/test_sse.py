"""The SSE decoder against the spec's corner cases, and a property test over arbitrary chunking."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from modelbus.sse import ServerSentEvent, SSEDecoder, encode_sse, iter_sse


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    return list(iter_sse(chunks))


def test_basic_events_and_done() -> None:
    events = decode(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert [e.data for e in events] == ['{"a":1}', "[DONE]"]
    assert events[0].event == "message"


def test_multiline_data_comments_names_ids() -> None:
    events = decode(
        b": keep-alive\n\nevent: message_start\nid: 7\ndata: line1\ndata: line2\n\n"
        b":\n\nretry: 100\ndata:x\n\n"
    )
    assert events == [
        ServerSentEvent(data="line1\nline2", event="message_start", id="7"),
        ServerSentEvent(data="x", event="message", id="7", retry=100),
    ]


def test_crlf_and_cr_line_endings_and_bom() -> None:
    assert [e.data for e in decode(b"\xef\xbb\xbfdata: a\r\n\r\ndata: b\r\rdata: c\n\n")] == ["a", "b", "c"]


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    assert [e.data for e in decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")] == ["a", "b"]


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: 你好\n\n".encode()
    assert [e.data for e in decode(raw[:7], raw[7:])] == ["你好"]


def test_event_without_trailing_blank_line_is_flushed() -> None:
    assert [e.data for e in decode(b"data: last")] == ["last"]


def test_empty_data_lines_and_no_data_events() -> None:
    assert decode(b"event: ping\n\n") == []  # no data: not dispatched
    assert [e.data for e in decode(b"data:\n\n")] == [""]


def test_comments_are_counted() -> None:
    decoder = SSEDecoder()
    decoder.feed(b": keep-alive\n\n: keep-alive\n\ndata: x\n\n")
    assert decoder.comments == 2


event_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.lists(event_text, min_size=1, max_size=3),
            st.none() | st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        ),
        max_size=6,
    ),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_chunking_and_line_ending_decodes_the_same(events, newline, comments, cuts) -> None:
    wire = ""
    for lines, name in events:
        if comments:
            wire += ": keep-alive" + newline + newline
        if name:
            wire += f"event: {name}{newline}"
        wire += "".join(f"data: {line}{newline}" for line in lines) + newline
    raw = wire.encode()
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    chunks = [raw[a:b] for a, b in itertools.pairwise(points)]
    decoded = decode(*chunks)
    assert [(e.data, e.event) for e in decoded] == [
        ("\n".join(lines), name or "message") for lines, name in events
    ]


@given(st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), max_size=50))
def test_encode_decode_roundtrip(data: str) -> None:
    assert [e.data for e in decode(encode_sse(data, event="x"))] == [data]
