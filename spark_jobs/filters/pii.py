"""Secrets and PII redaction: emails, public IP addresses, API keys, tokens and private keys.

The detectors follow detect-secrets' plugins (fixed-format keys: AWS, GitHub, Slack, Stripe, Google, JWT, PEM
private keys; plus a keyword detector that needs a secret-looking name *and* a high-entropy value, which is how
detect-secrets keeps false positives down). Each match is replaced by a stable placeholder naming its kind, so
the same input always redacts to the same output, the code around it keeps its syntax (placeholders sit inside
the same string literal), and a model sees a consistent token instead of a random fake.

IP addresses: only global ones are redacted; private, loopback, link-local, multicast, reserved and
documentation ranges (192.0.2.0/24...) are configuration, not personal data, and are kept.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spark_jobs.filters.base import PipelineStep, Verdict

Span = tuple[int, int]


@dataclass(frozen=True)
class Detector:
    """One kind of secret: a regex for candidates, and a check that turns a candidate into the span to redact.

    Patterns start with a literal or a narrow character class, never with a look-behind, so the regex engine can
    skip ahead to candidates; context (word boundaries, a keyword before a value, the local part of an email) is
    checked in Python on the few candidates. That, and the hints, make redaction cost a few regex scans per file.
    """

    kind: str
    pattern: re.Pattern[str]
    placeholder: str
    # Lower-case substrings one of which every match contains: a detector runs only on texts that have one.
    hints: tuple[str, ...]
    # match, whole text -> the span to replace, or None to keep the candidate. Default: the whole match.
    span: Callable[[re.Match[str], str], Span | None] | None = None

    def spans(self, text: str) -> list[Span]:
        out: list[Span] = []
        for match in self.pattern.finditer(text):
            span = self.span(match, text) if self.span else match.span()
            if span is not None and (not out or span[0] >= out[-1][1]):
                out.append(span)
        return out


def shannon_entropy(text: str) -> float:
    """Bits per character.

    >>> round(shannon_entropy("aaaa"), 2), round(shannon_entropy("abcd"), 2)
    (0.0, 2.0)
    """
    if not text:
        return 0.0
    counts = Counter(text)
    return sum(n / len(text) * math.log2(len(text) / n) for n in counts.values())


def _high_entropy(value: str) -> bool:
    """detect-secrets' limits: 4.5 bits/char for base64-like values (3.7 under 32 characters), 3.0 for hex."""
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return shannon_entropy(value) > 3.0
    return shannon_entropy(value) > (4.5 if len(value) >= 32 else 3.7)


def _free_before(text: str, start: int, word: str) -> bool:
    """True when the character before ``start`` is not one of ``word`` (alphanumerics plus the given extras)."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in word)


def _bounded(extra: str, group: int = 0) -> Callable[[re.Match[str], str], Span | None]:
    def span(match: re.Match[str], text: str) -> Span | None:
        return match.span(group) if _free_before(text, match.start(), extra) else None
    return span


def _public_ip(extra: str) -> Callable[[re.Match[str], str], Span | None]:
    def span(match: re.Match[str], text: str) -> Span | None:
        if not _free_before(text, match.start(), extra):
            return None
        try:
            address = ipaddress.ip_address(match.group(0))
        except ValueError:
            return None
        return match.span() if address.is_global and not address.is_multicast else None
    return span


_KEYWORD_BEFORE = re.compile(
    r"(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?key|auth[_-]?token|access[_-]?token|client[_-]?secret|"
    r"password|passwd|pwd|private[_-]?key|token)[\"']?\s*$", re.IGNORECASE)


def _keyword_value(match: re.Match[str], text: str) -> Span | None:
    """A quoted high-entropy value assigned to a secret-looking name (detect-secrets' keyword plugin)."""
    if not _KEYWORD_BEFORE.search(text, max(0, match.start() - 40), match.start()):
        return None
    return match.span(1) if _high_entropy(match.group(1)) else None


_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _email(match: re.Match[str], text: str) -> Span | None:
    """Extend an ``@domain.tld`` candidate left over its local part (1-64 characters, not starting with a dot)."""
    start = match.start()
    while start > 0 and text[start - 1] in _EMAIL_LOCAL and match.start() - start < 64:
        start -= 1
    while start < match.start() and text[start] in "._%+-":
        start += 1
    if start == match.start() or (start > 0 and text[start - 1] in _EMAIL_LOCAL):
        return None
    return start, match.end()


# Order matters: longer, more specific formats first, so a private key block is not half-eaten by a token rule.
DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", re.compile(
        r"-----BEGIN[A-Z ]{0,32}PRIVATE KEY( BLOCK)?-----[\s\S]{16,16384}?-----END[A-Z ]{0,32}PRIVATE KEY( BLOCK)?-----"),
        "<PRIVATE_KEY>", ("private key",)),
    Detector("aws_access_key", re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
             "<AWS_ACCESS_KEY>", ("a3t", "akia", "asia", "abia", "acca"), _bounded("")),
    Detector("aws_secret_key", re.compile(
        r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        "<AWS_SECRET_KEY>", ("aws",), lambda m, _t: m.span(1)),
    Detector("github_token", re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{82})(?!\w)"),
             "<GITHUB_TOKEN>", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), _bounded("_")),
    Detector("slack_token", re.compile(r"xox[abposr]-[0-9A-Za-z-]{10,72}(?![\w-])"), "<SLACK_TOKEN>", ("xox",),
             _bounded("_")),
    Detector("stripe_key", re.compile(r"[rs]k_live_[0-9A-Za-z]{24,99}(?!\w)"), "<STRIPE_KEY>", ("k_live_",),
             _bounded("_")),
    Detector("google_api_key", re.compile(r"AIza[0-9A-Za-z_-]{35}(?![\w-])"), "<GOOGLE_API_KEY>", ("aiza",),
             _bounded("_")),
    Detector("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "<JWT>", ("eyj",),
             _bounded("_")),
    Detector("keyword_secret", re.compile(r"(?::=|=>|[:=])\s*[\"']([A-Za-z0-9+/_.~=-]{16,128})[\"']"), "<SECRET>",
             ("key", "secret", "token", "passw", "pwd"), _keyword_value),
    Detector("email", re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"),
             "<EMAIL>", ("@",), _email),
    # Candidates only; ipaddress validates octets and ranges.
    Detector("ip_address", re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])"), "<IP_ADDRESS>", (".",),
             _public_ip("._")),
    Detector("ip_address", re.compile(r"[0-9A-Fa-f]{1,4}:(?:[0-9A-Fa-f]{1,4}:){1,6}[0-9A-Fa-f]{1,4}(?![\w:])"),
             "<IP_ADDRESS>", (":",), _public_ip("_:.")),
)
KINDS = tuple(dict.fromkeys(d.kind for d in DETECTORS))


def redact(text: str, detectors: tuple[Detector, ...] = DETECTORS) -> tuple[str, Counter[str]]:
    """``text`` with every detected secret/PII replaced by its placeholder, and the count per kind.

    >>> redact("mail bob@corp.example.com from 8.8.8.8, not 10.0.0.1")
    ('mail <EMAIL> from <IP_ADDRESS>, not 10.0.0.1', Counter({'email': 1, 'ip_address': 1}))
    """
    counts: Counter[str] = Counter()
    lowered = text.lower()
    for detector in detectors:
        if not any(hint in lowered for hint in detector.hints):
            continue
        spans = detector.spans(text)
        if not spans:
            continue
        pieces, last = [], 0
        for start, end in spans:
            pieces += [text[last:start], detector.placeholder]
            last = end
        pieces.append(text[last:])
        text = "".join(pieces)
        lowered = text.lower()
        counts[detector.kind] += len(spans)
    return text, counts


class PiiRedactor(PipelineStep):
    """Rewrite each file with its secrets and PII redacted; never drops. Metrics: ``redacted:<kind>`` counts and
    ``files_redacted``."""

    name = "pii_redact"

    def __init__(self, kinds: tuple[str, ...] | None = None):
        super().__init__()
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown PII kinds {unknown}; known: {list(KINDS)}")
        self.detectors = tuple(d for d in DETECTORS if kinds is None or d.kind in kinds)

    def process(self, doc: dict[str, Any]) -> Verdict:
        content, counts = redact(doc["content"], self.detectors)
        for kind, n in counts.items():
            self.count(f"redacted:{kind}", n)
        if counts:
            self.count("files_redacted")
            return Verdict(True, content=content)
        return Verdict(True)
