"""Text cleaning written with `tf.strings`, so the exported graph applies it too.

Cleaning runs once on the training data (eagerly, to de-duplicate and split)
and once per request inside the SavedModel; both are this one function. The
steps, in order:

1. invalid UTF-8 byte sequences become U+FFFD; input is cut at `max_chars`;
2. HTML tags are removed and character entities decoded (named entities from
   a fixed table, decimal and hexadecimal numeric entities in general). A tag
   is a text element's (`<p>`, `</a>`, `<BR>`, `<img src=...>`, Word's `<o:p>`),
   a comment, a doctype or `<?xml ...?>`: `x < 5 and y > 3`, `List<T>`,
   `<MyComponent />` and `<package-name>` are text (see `_ELEMENTS`);
3. Unicode NFKC normalisation (`normalize="nfkc"`, via tensorflow-text);
4. control and format characters become spaces;
5. optional lower-casing (Unicode-aware);
6. runs of whitespace collapse to one space; leading/trailing space goes.

With `lines=True` (answers as they are shown: `data/prepare.py`) the text keeps
what a reader sees: NFC instead of NFKC (`10³ m²` stays, where NFKC gives
`103 m2`), line breaks (any kind becomes `\n`; at most one blank line in a
row) and the spaces and tabs inside lines, so that a code answer keeps its
indentation; runs of spaces after a line's first word become one space, and
spaces that end a line or the text go, as do the tags that start or end a line.
"""

from __future__ import annotations

import html.entities
import unicodedata

import tensorflow as tf

# Every HTML5 named entity that is terminated by ";" (about 2,100 of them);
# held as two constant string vectors inside the graph.
_ENTITY_NAMES: tuple[str, ...] = tuple(name[:-1] for name in html.entities.html5 if name.endswith(";"))
_ENTITY_TEXTS: tuple[str, ...] = tuple(html.entities.html5[f"{name};"] for name in _ENTITY_NAMES)

# Unicode categories `one_line` reads as spaces: control, format, surrogate, private use, separators.
_BLANKS = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})

# A private marker that cannot survive step 1 in real text: a NUL byte.
_MARK = "\x00"

# HTML's element names that mark up text (current and the common obsolete ones; not the
# form, media and data elements, whose names double as placeholders: `<title>`, `<time>`,
# `<input>`): a tag must name one, in lower case or, as old pages do, in capitals (a single
# capital only for B and P, and A with attributes). So `List<T>`, `impl<S>`, `sum<I>`,
# `<Button onClick=...>`, `List<Map>`, `<package-name>` and Flask's `<int:id>` stay text.
_ELEMENTS = (
    "a|abbr|acronym|address|article|aside|b|basefont|bdi|bdo|big|blockquote|body|br|caption|center|"
    "cite|code|col|colgroup|dd|del|dfn|div|dl|dt|em|fieldset|figcaption|figure|font|footer|h[1-6]|head|"
    "header|hgroup|hr|html|i|iframe|img|ins|kbd|legend|li|main|mark|meta|nav|nobr|noscript|ol|p|pre|q|"
    "rp|rt|ruby|s|samp|script|section|small|span|strike|strong|style|sub|sup|table|tbody|td|tfoot|th|"
    "thead|tr|tt|u|ul|wbr"
)
_CAPITALS = "|".join(name.upper() for name in _ELEMENTS.split("|") if len(name) > 1) + "|[BP]"
# Word's and Excel's namespaced tags (`<o:p>`, `<w:WordDocument>`, `<st1:place>`) count too.
_NAMES = rf"{_ELEMENTS}|{_CAPITALS}|(?:o|v|w|x|m|st1):[A-Za-z][\w.-]*"
_TAG = (
    rf"<!--(?s:.*?)-->|<!(?i:doctype)[^<>]*>|<\?[^<>]*\?>"
    rf"|</?(?:{_NAMES})(?:[\s/][^<>]*)?>|<A\s[^<>]*>|</A>"
)
# Where a tag was, until step 6: a control character, which no text keeps past step 1.
_TAG_MARK = "\x01"


def clean_text(
    texts: tf.Tensor | list[str] | str,
    *,
    lowercase: bool = True,
    normalize: str = "nfkc",
    strip_html: bool = True,
    max_chars: int | None = None,
    lines: bool = False,
) -> tf.Tensor:
    """Cleans a string tensor of any shape element-wise.

    Args:
        texts: strings (tensor, list or scalar).
        lowercase: lower-case the result.
        normalize: `"nfkc"` or `"none"`.
        strip_html: drop tags and decode entities.
        max_chars: keep at most this many characters of each input, so that
            a hostile 1 MB request costs no more than a long question.
        lines: keep line breaks and spaces inside lines, and normalise to NFC
            rather than NFKC: text to show, not to tokenise (see above).

    Returns:
        A `tf.string` tensor of the same shape.

    Example:

    >>> clean_text(["<p>Caf&eacute;&#33;</p>  \\tOK?"], lowercase=False).numpy()[0].decode()
    'Café! OK?'
    """
    x = tf.convert_to_tensor(texts, dtype=tf.string)
    x = tf.strings.unicode_transcode(
        x, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
    )
    if max_chars is not None:
        x = tf.strings.substr(x, 0, max_chars, unit="UTF8_CHAR")
    # NUL and U+0001 are our entity and tag markers below; they are control characters, so
    # dropping them first changes nothing in the output.
    x = tf.strings.regex_replace(x, f"[{_MARK}{_TAG_MARK}]", " ")
    if strip_html:
        x = _decode_entities(_strip_tags(x, lines))
    if normalize == "nfkc":
        import tensorflow_text as tf_text  # deferred: start-up time

        x = tf_text.normalize_utf8(x, "NFC" if lines else "NFKC")
    elif normalize != "none":
        raise ValueError(f"normalize must be 'nfkc' or 'none'; got {normalize!r}")
    x = _blank_controls(x, lines)
    if lowercase:
        x = tf.strings.lower(x, encoding="utf-8")
    return tf.strings.strip(_collapse_spaces(x, lines))


def _strip_tags(x: tf.Tensor, lines: bool) -> tf.Tensor:
    """Step 2's tags as spaces; with `lines`, a tag that starts or ends a line leaves no space
    (nor the source's indentation)."""
    x = tf.strings.regex_replace(x, _TAG, _TAG_MARK)
    if lines:
        x = tf.strings.regex_replace(x, rf"(^|\n)[ \t]*{_TAG_MARK}[{_TAG_MARK} \t]*", r"\1")
        x = tf.strings.regex_replace(x, rf"[ \t]*{_TAG_MARK}[{_TAG_MARK} \t]*(\n|$)", r"\1")
    return tf.strings.regex_replace(x, f"{_TAG_MARK}+", " ")


def _blank_controls(x: tf.Tensor, lines: bool) -> tf.Tensor:
    """Step 4: control and format characters as spaces; with `lines`, line breaks of any kind
    as `\\n` and tabs kept."""
    if not lines:
        return tf.strings.regex_replace(x, r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}]", " ")
    x = tf.strings.regex_replace(x, r"\r\n?|[\x{b}\x{c}\x{85}\p{Zl}\p{Zp}]", "\n")
    return tf.strings.regex_replace(x, r"[\x{0}-\x{8}\x{e}-\x{1f}\x{7f}-\x{9f}\p{Cf}\p{Cs}\p{Co}\p{Zs}]", " ")


def _collapse_spaces(x: tf.Tensor, lines: bool) -> tf.Tensor:
    """Step 6: whitespace runs as one space; with `lines`, only the runs after a line's first
    word (not its indentation), no space at a line's end and at most one blank line."""
    if not lines:
        return tf.strings.regex_replace(x, r"[\s\p{Z}]+", " ")
    x = tf.strings.regex_replace(x, r"([^\s])[ \t]{2,}", r"\1 ")
    x = tf.strings.regex_replace(x, r"[ \t]+(\n|$)", r"\1")
    return tf.strings.regex_replace(x, r"\n{3,}", "\n\n")


def one_line(text: str, normalize: str = "nfkc") -> str:
    """`text` as answers are compared: NFKC (`normalize`), control and format characters as
    spaces, whitespace collapsed; case kept. Two answers with the same `one_line` are one
    answer written two ways (spacing, line breaks, `10³` / `103`).

    >>> one_line("10³  m²\\n  per\\u200byear ")
    '103 m2 per year'
    """
    if normalize == "nfkc":
        text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(c) in _BLANKS else c for c in text)
    return " ".join(text.split())


def _decode_entities(x: tf.Tensor) -> tf.Tensor:
    """Decodes named, decimal and hexadecimal entities in a single pass.

    Each entity is wrapped in markers (`\\0nlt\\0`, `\\0d65\\0`, `\\0x41\\0`).
    Splitting on the marker puts entity payloads at odd positions of each
    row; those are decoded and the row is joined again. A single pass means
    "&amp;lt;" becomes the literal text "&lt;", as an HTML parser would give.
    """
    shape = tf.shape(x)
    flat = tf.reshape(x, [-1])
    marked = tf.strings.regex_replace(flat, r"&#([0-9]{1,7});", _MARK + r"d\1" + _MARK)
    marked = tf.strings.regex_replace(marked, r"&#[xX]([0-9a-fA-F]{1,6});", _MARK + r"x\1" + _MARK)
    marked = tf.strings.regex_replace(marked, r"&([A-Za-z][A-Za-z0-9]{0,31});", _MARK + r"n\1" + _MARK)
    pieces = tf.strings.split(marked, sep=_MARK)
    values = pieces.flat_values
    entity_index = tf.where(tf.math.equal(_positions_in_rows(pieces) % 2, 1))
    decoded = _payload_to_text(tf.gather_nd(values, entity_index))
    values = tf.tensor_scatter_nd_update(values, entity_index, decoded)
    joined = tf.strings.reduce_join(pieces.with_flat_values(values), axis=-1)
    return tf.reshape(joined, shape)


def _payload_to_text(payload: tf.Tensor) -> tf.Tensor:
    kind = tf.strings.substr(payload, 0, 1)
    digits = tf.strings.substr(payload, 1, 16)
    chars = tf.strings.unicode_decode(digits, "UTF-8")
    # '0'-'9' -> 0-9, 'a'-'f' / 'A'-'F' -> 10-15; the regexes above only mark
    # valid digits, so no other character reaches this point.
    lowered = tf.bitwise.bitwise_or(chars, 32)
    digit_values = tf.where(chars <= 57, chars - 48, lowered - 87)
    base = tf.where(tf.equal(kind, "x"), 16, 10)
    lengths = digit_values.row_lengths()
    exponents = tf.cast(
        tf.gather(lengths, digit_values.value_rowids()) - 1 - _positions_in_rows(digit_values),
        tf.float64,
    )
    row_base = tf.cast(tf.gather(base, digit_values.value_rowids()), tf.float64)
    weights = tf.math.pow(row_base, exponents)
    terms = tf.cast(digit_values.flat_values, tf.float64) * weights
    code_points = tf.math.segment_sum(terms, digit_values.value_rowids())
    code_points = tf.pad(code_points, [[0, tf.shape(payload)[0] - tf.shape(code_points)[0]]])
    valid = (code_points > 0) & (code_points <= 0x10FFFF)
    valid &= ~((code_points >= 0xD800) & (code_points <= 0xDFFF))
    code_points = tf.where(valid, code_points, 0xFFFD)
    numeric = tf.strings.unicode_encode(tf.cast(code_points, tf.int32)[:, None], "UTF-8", errors="replace")
    return tf.where(tf.equal(kind, "n"), _lookup_named(digits), numeric)


def _lookup_named(names: tf.Tensor) -> tf.Tensor:
    """Maps entity names to their text; unknown names are put back as `&name;`."""
    keys = tf.constant(_ENTITY_NAMES)
    matches = tf.equal(names[:, None], keys[None, :])
    found = tf.reduce_any(matches, axis=1)
    index = tf.argmax(tf.cast(matches, tf.int32), axis=1)
    text = tf.gather(tf.constant(_ENTITY_TEXTS), index)
    return tf.where(found, text, tf.strings.join(["&", names, ";"]))


def _positions_in_rows(ragged: tf.RaggedTensor) -> tf.Tensor:
    row_starts = tf.gather(ragged.row_splits, ragged.value_rowids())
    return tf.range(tf.shape(ragged.flat_values, out_type=tf.int64)[0]) - row_starts
