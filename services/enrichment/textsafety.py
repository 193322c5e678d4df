"""What user text may look like on its way to an LLM, and what the LLM's answer may look like on its way back.

In: every piece of user-written text goes into the prompt inside `<openhr_data field="…">…</openhr_data>`
and the system prompt says that such content is data, never instructions. So that a user cannot close the
block and write instructions after it, their text loses everything that could pass for a tag: angle brackets
and their look-alikes (full-width, small, mathematical, CJK ones) become parentheses and the tag's own name
is broken up. Control and invisible format characters (zero-width spaces, bidi overrides) are removed.

Out: the answer is shown as plain text, so markup is stripped rather than escaped: HTML tags (scripts and
styles with their content), markdown syntax (links keep their text, images go), and every URL, so that an
answer cannot send a reader to an address nobody chose. Then the text is capped at a sentence or word
boundary.
"""

from __future__ import annotations

import html
import re
import unicodedata

DATA_TAG = "openhr_data"

# Angle brackets and characters an LLM may read as one (after NFKC, which already folds the full-width
# and small forms into < and >).
_OPENING = "<\u2039\u2329\u27e8\u3008\u300a\u2a79\u02c2\u1438\u276e"
_CLOSING = ">\u203a\u232a\u27e9\u3009\u300b\u2a7a\u02c3\u1433\u276f"
_BRACKETS = str.maketrans({**dict.fromkeys(_OPENING, "("), **dict.fromkeys(_CLOSING, ")")})
_TAG_NAME = re.compile(r"openhr[\W_]*data", re.IGNORECASE)
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_FIELD = re.compile(r"[a-z][a-z0-9_.\[\]]{0,60}")


# Unicode's categories Cc (control), Cf (format: zero-width, bidi overrides, tag characters), Co (private use)
# and Cs (surrogates), but the newline, as of Unicode 14 (Python 3.11's unicodedata; tests/enrichment/
# test_llm_text.py compares the class with unicodedata over every code point). One regex instead of a
# unicodedata call per character: 20x faster on a 3 KB answer.
INVISIBLE = re.compile(
    r"[\U00000000-\U00000009\U0000000b-\U0000001f\U0000007f-\U0000009f\U000000ad\U00000600-\U00000605"
    r"\U0000061c\U000006dd\U0000070f\U00000890-\U00000891\U000008e2\U0000180e\U0000200b-\U0000200f"
    r"\U0000202a-\U0000202e\U00002060-\U00002064\U00002066-\U0000206f\U0000d800-\U0000f8ff\U0000feff"
    r"\U0000fff9-\U0000fffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    r"\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
)


def _printable(text: str) -> str:
    """NFKC, without control characters (but newlines) and invisible format characters."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\t", " ")
    return INVISIBLE.sub("", text)


def neutralize(text: str, limit: int) -> str:
    """User text that can no longer open or close a data block, on at most `limit` characters."""
    text = _printable(text).translate(_BRACKETS)
    text = _TAG_NAME.sub("openhr data", text)
    text = _BLANK_LINES.sub("\n", _SPACES.sub(" ", text)).strip()
    return text[:limit].rstrip()


def data_block(field: str, text: str, limit: int) -> str:
    """User text as data for a prompt: `<openhr_data field="headline">…</openhr_data>`."""
    if not _FIELD.fullmatch(field):
        raise ValueError(f"not a field name: {field!r}")
    return f'<{DATA_TAG} field="{field}">{neutralize(text, limit)}</{DATA_TAG}>'


_SCRIPTS = re.compile(r"<(script|style|iframe|object|template)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_COMMENTS = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_TAGS = re.compile(r"</?[a-zA-Z!?][^<>]*>")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_REF_LINK = re.compile(r"\[([^\]]*)\]\[[^\]]*\]")
_MD_REF_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_MD_QUOTE = re.compile(r"^\s*(?:>\s?)+", re.MULTILINE)
_MD_LIST = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+", re.MULTILINE)
_MD_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$", re.MULTILINE)
_MD_STRONG = re.compile(r"(\*\*|__)(.+?)\1", re.DOTALL)
_MD_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_MD_STRIKE = re.compile(r"~~(.+?)~~")
# A URL runs to the next space, less the punctuation that ends its sentence.
_URL = re.compile(
    r"(?:(?:\b[a-z][a-z0-9+.\-]*://|\bwww\.|\b(?:javascript|data|vbscript|mailto|file):)\S*?"
    r"|\b(?:[a-z0-9\-]+\.)+[a-z]{2,}/\S*?)(?=[.,;:!?)]*(?:\s|$))",
    re.IGNORECASE,
)
_STRAY = str.maketrans(dict.fromkeys("<>`"))
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]|<\s*>")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?])")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def plain_text(text: str, limit: int) -> str:
    """An LLM's answer as plain text without markup or URLs, at most `limit` characters."""
    text = _printable(text)
    # Entities first, twice, so that an escaped tag ("&amp;lt;script&amp;gt;") is a tag when tags go.
    text = html.unescape(html.unescape(text))
    text = _SCRIPTS.sub(" ", text)
    text = _COMMENTS.sub(" ", text)
    text = _TAGS.sub(" ", text)
    text = _MD_IMAGE.sub(" ", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_REF_LINK.sub(r"\1", text)
    text = _MD_REF_DEFINITION.sub("", text)
    text = _URL.sub("", text)
    for pattern in (_MD_FENCE, _MD_RULE, _MD_HEADING, _MD_QUOTE, _MD_LIST):
        text = pattern.sub("", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    text = _MD_STRIKE.sub(r"\1", text)
    # What is left of < and > after the tags went cannot open one either.
    text = text.translate(_STRAY)
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", text))
    text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()
    text = text.strip(_QUOTES + " \n")
    return cap(text, limit)


def cap(text: str, limit: int) -> str:
    """`text` if short enough, else cut after its last full sentence within `limit` (when that keeps at
    least half of it), else at a word boundary with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [match.end() for match in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]].strip()
    cut = head[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "\u2026"
