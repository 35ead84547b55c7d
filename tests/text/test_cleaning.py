import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa_assistant.text.cleaning import clean_text


def clean(text: str | bytes, **options) -> str:
    return clean_text([text], **options).numpy()[0].decode("utf-8")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>Caf&eacute;&#33;</p>  \tOK?", "café! ok?"),
        ("&lt;b&gt; &amp;lt; &quot;q&quot; &#39;s&#x27;", "<b> &lt; \"q\" 's'"),
        ("A&#66;C &#x1F600; &NotEqualTilde; &unknown; & alone", "abc 😀 ≂̸ &unknown; & alone"),
        ("&#0; &#xD800; &#1114112;", "\ufffd \ufffd \ufffd"),
        ("ﬁ Ｈｅｌｌｏ ①", "fi hello 1"),
        ("zero\u200bwidth\x00nul\x07bell", "zero width nul bell"),
        ("line\r\nbreak\u2028sep", "line break sep"),
        ("ÉCOLE Straße ΣΊΣΥΦΟΣ", "école straße σίσυφος"),
        ("   ", ""),
        ("", ""),
    ],
)
def test_cleaning_cases(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert clean(b"bad \xff\xfe bytes") == "bad \ufffd\ufffd bytes"


def test_options_turn_steps_off() -> None:
    assert clean("<b>A&amp;B</b>", lowercase=False, strip_html=False) == "<b>A&amp;B</b>"
    assert clean("ﬁ", normalize="none") == "ﬁ"


def test_max_chars_cuts_before_cleaning() -> None:
    assert clean("abcdef", max_chars=3) == "abc"
    assert clean("éèêë", max_chars=2) == "éè"  # characters, not bytes


def test_any_shape_is_kept() -> None:
    out = clean_text([["A", "B"], ["&#67;", "d"]])
    assert out.shape == (2, 2)
    assert out.numpy()[1, 0] == b"c"


text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=60, deadline=None)
@given(text)
def test_output_is_clean_normalised_lowercase_text(raw: str) -> None:
    out = clean(raw)
    assert out == out.strip()
    assert "  " not in out
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in out)
    assert all(not c.isspace() or c == " " for c in out)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="&<"), max_size=60))
def test_cleaning_is_idempotent_on_text_without_markup(raw: str) -> None:
    once = clean(raw)
    assert clean(once) == once


@settings(max_examples=30, deadline=None)
@given(st.lists(text, min_size=1, max_size=5))
def test_batch_equals_elementwise(texts: list[str]) -> None:
    batch = [v.decode("utf-8") for v in clean_text(texts).numpy()]
    assert batch == [clean(t) for t in texts]


@settings(max_examples=25, deadline=None)
@given(text, st.integers(min_value=0, max_value=80))
def test_max_chars_reads_only_the_first_characters(raw: str, limit: int) -> None:
    # What a request costs is bounded by max_chars: nothing after it changes the output.
    assert clean(raw, max_chars=limit) == clean(raw[:limit], max_chars=limit)
    assert clean(raw + "tail &amp; <b>x</b>", max_chars=len(raw)) == clean(raw, max_chars=len(raw))


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_give_valid_utf8(raw: bytes) -> None:
    out = clean_text([raw]).numpy()[0]
    assert out.decode("utf-8") == out.decode("utf-8").strip()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x < 5 and y > 3", "x < 5 and y > 3"),
        ("List<T> and <MyComponent />", "List<T> and <MyComponent />"),
        ("<P CLASS='a'>A</P><br/>b<!-- note\n -->c<!DOCTYPE html>", "A b c"),
    ],
)
def test_only_html_elements_comments_and_doctypes_are_tags(raw: str, expected: str) -> None:
    assert clean(raw, lowercase=False) == expected
    assert clean(raw, lowercase=False, lines=True) == expected


def test_lines_keep_breaks_indentation_and_characters() -> None:
    raw = "  def f():\r\n      return 1   \n\n\n\n10³ m²\u00a0x\u2028end\x07"
    assert clean(raw, lowercase=False, lines=True) == "def f():\n      return 1\n\n10³ m² x\nend"
    assert clean(raw, lowercase=False) == "def f(): return 1 103 m2 x end"


@settings(max_examples=60, deadline=None)
@given(text)
def test_lines_output_is_shown_text_without_stray_whitespace(raw: str) -> None:
    out = clean(raw, lowercase=False, lines=True)
    assert out == out.strip()
    assert "\n\n\n" not in out
    assert "\r" not in out
    assert not any(line != line.rstrip() for line in out.split("\n"))
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in "\n\t" for c in out)
    assert out == unicodedata.normalize("NFC", out)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("impl<S> Foo for Bar<S>, fn sum<I>(x: I)", "impl<S> Foo for Bar<S>, fn sum<I>(x: I)"),
        (
            "List<Map> <Button onClick={f}>Go</Button> <Input/>",
            "List<Map> <Button onClick={f}>Go</Button> <Input/>",
        ),
        ("<P>Old</P><BR><B>bold</B> <A HREF='x'>link</A>", "Old bold link"),
        ("<o:p></o:p>Text<?xml version='1.0'?> <w:WordDocument>w</w:WordDocument>", "Text w"),
        (
            "@app.route('/items/<int:index>') and pip install <package-name> <title>",
            "@app.route('/items/<int:index>') and pip install <package-name> <title>",
        ),
    ],
)
def test_code_keeps_its_angle_brackets_and_old_or_namespaced_html_goes(raw: str, expected: str) -> None:
    assert clean(raw, lowercase=False) == expected


def test_tags_that_start_or_end_a_line_leave_no_indentation() -> None:
    html = "<ul>\n  <li>Open 9 to 5</li>\n  <li>Closed on Sundays</li>\n</ul>\n<p>One</p>\n<p>Two</p>"
    assert clean(html, lowercase=False, lines=True) == "Open 9 to 5\nClosed on Sundays\n\nOne\nTwo"
