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


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    placeholder: str
    # Which regex group is the secret (0: the whole match); the rest of the match is kept.
    group: int = 0
    accept: Callable[[str], bool] | None = None


def shannon_entropy(text: str) -> float:
    """Bits per character.

    >>> round(shannon_entropy("aaaa"), 2), round(shannon_entropy("abcd"), 2)
    (0.0, 2.0)
    """
    if not text:
        return 0.0
    counts = Counter(text)
    return sum(n / len(text) * math.log2(len(text) / n) for n in counts.values())


def _is_public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _high_entropy(value: str) -> bool:
    """detect-secrets' limits: 4.5 bits/char for base64-like values, 3.0 for hex."""
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return shannon_entropy(value) > 3.0
    return shannon_entropy(value) > 4.5 - (0.0 if len(value) >= 32 else 0.8)


_KEYWORD = r"(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?key|auth[_-]?token|access[_-]?token|" \
           r"client[_-]?secret|password|passwd|pwd|private[_-]?key|token)"

# Order matters: longer, more specific formats first, so a private key block is not half-eaten by a token rule.
DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", re.compile(
        r"-----BEGIN[A-Z ]{0,32}PRIVATE KEY( BLOCK)?-----[\s\S]{16,16384}?-----END[A-Z ]{0,32}PRIVATE KEY( BLOCK)?-----"),
        "<PRIVATE_KEY>"),
    Detector("aws_access_key", re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), "<AWS_ACCESS_KEY>"),
    Detector("aws_secret_key", re.compile(
        r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        "<AWS_SECRET_KEY>", group=1),
    Detector("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{82})\b"),
             "<GITHUB_TOKEN>"),
    Detector("slack_token", re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,72}\b"), "<SLACK_TOKEN>"),
    Detector("stripe_key", re.compile(r"\b[rs]k_live_[0-9A-Za-z]{24,99}\b"), "<STRIPE_KEY>"),
    Detector("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "<GOOGLE_API_KEY>"),
    Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "<JWT>"),
    Detector("keyword_secret", re.compile(
        _KEYWORD + r"[\"']?\s*(?::=|=>|[:=])\s*[\"']([A-Za-z0-9+/_.~=-]{16,128})[\"']", re.IGNORECASE),
        "<SECRET>", group=1, accept=_high_entropy),
    Detector("email", re.compile(
        r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
        r"[A-Za-z]{2,24}\b"), "<EMAIL>"),
    Detector("ip_address", re.compile(
        r"(?<![\w.:])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])"
        r"|(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])"),
        "<IP_ADDRESS>", accept=_is_public_ip),
)
KINDS = tuple(d.kind for d in DETECTORS)


def redact(text: str, detectors: tuple[Detector, ...] = DETECTORS) -> tuple[str, Counter[str]]:
    """``text`` with every detected secret/PII replaced by its placeholder, and the count per kind.

    >>> redact("mail bob@corp.example.com from 8.8.8.8, not 10.0.0.1")
    ('mail <EMAIL> from <IP_ADDRESS>, not 10.0.0.1', Counter({'email': 1, 'ip_address': 1}))
    """
    counts: Counter[str] = Counter()
    for detector in detectors:
        def substitute(match: re.Match[str], detector: Detector = detector) -> str:
            secret = match.group(detector.group)
            if secret is None or (detector.accept is not None and not detector.accept(secret)):
                return match.group(0)
            counts[detector.kind] += 1
            start, end = match.start(detector.group) - match.start(), match.end(detector.group) - match.start()
            whole = match.group(0)
            return whole[:start] + detector.placeholder + whole[end:]

        text = detector.pattern.sub(substitute, text)
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
