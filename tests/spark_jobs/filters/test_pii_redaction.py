"""Secrets and PII come out redacted with stable placeholders; look-alikes stay."""

import pytest
from filter_records import record

from spark_jobs.filters.pii import KINDS, PiiRedactor, redact

PRIVATE_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi7jLRMmvsQ0Y0U4hTgGzEGQ8cM
k2V1dEWM3AnvRb/TeRGSB6chSvwyKOUxR8iNfbs6kDwTmt9Hh7E4DTYIcXl4kTgx
-----END RSA PRIVATE KEY-----"""

PLANTED = f'''import boto3

AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MAINTAINER = "Jane Doe <jane.doe@example-corp.com>"
SERVER = "203.0.113.77"  # documentation range: kept
UPSTREAM = "151.101.1.69"
KEY = """{PRIVATE_KEY}"""
'''


def test_planted_aws_key_email_private_key_are_redacted():
    out, counts = redact(PLANTED)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "jane.doe@", "151.101.1.69", "MIIEowIBAAK"):
        assert secret not in out
    assert 'AWS_ACCESS_KEY_ID = "<AWS_ACCESS_KEY>"' in out
    assert 'aws_secret_access_key = "<AWS_SECRET_KEY>"' in out
    assert "Jane Doe <<EMAIL>>" in out and 'KEY = """<PRIVATE_KEY>"""' in out
    assert '"203.0.113.77"' in out and 'UPSTREAM = "<IP_ADDRESS>"' in out
    assert counts == {"aws_access_key": 1, "aws_secret_key": 1, "email": 1, "private_key": 1, "ip_address": 1}
    assert compile(out, "planted.py", "exec")  # placeholders keep the code parseable


@pytest.mark.parametrize("text,kind", [
    ("token = 'ghp_" + "a1B2" * 9 + "'", "github_token"),
    ("SLACK = 'xoxb-1234567890-abcdefghij'", "slack_token"),
    ("stripe.api_key = 'sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "'", "stripe_key"),
    ("key=AIzaSyD-1234567890abcdefghijklmnopqrstu", "google_api_key"),
    ("auth = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'", "jwt"),
    ('client_secret = "Zx8qL2vR9tY4wB7nK1mP5sD3"', "keyword_secret"),
    ("ping 2001:4860:4860:0:0:0:0:8888 now", "ip_address"),
])
def test_token_formats(text, kind):
    out, counts = redact(text)
    assert counts == {kind: 1}, (out, counts)


@pytest.mark.parametrize("text", [
    'password = "changeme"',                       # short and low entropy: a placeholder, not a secret
    'api_key = "your-api-key-goes-here-please"',   # low entropy
    "bind 127.0.0.1 and 10.1.2.3 and 192.168.0.1",  # private / loopback
    "mac 00:1A:2B:3C:4D:5E at 12:30:45",           # not IPs
    "std::vector<int> v; a::b::c",
    "print('user at example dot com')",
])
def test_look_alikes_are_kept(text):
    assert redact(text) == (text, {})


def test_redaction_is_stable():
    assert redact(PLANTED)[0] == redact(PLANTED)[0]
    assert redact(redact(PLANTED)[0]) == (redact(PLANTED)[0], {})  # idempotent


def test_redactor_step_metrics_and_kind_selection():
    step = PiiRedactor()
    out = step.process(record("settings.py", PLANTED))
    assert out.keep and "<EMAIL>" in out.content
    metrics = step.take_metrics()
    assert metrics["files_redacted"] == 1 and metrics["redacted:private_key"] == 1
    only_email = PiiRedactor(kinds=("email",)).process(record("s.py", PLANTED))
    assert "AKIAIOSFODNN7EXAMPLE" in only_email.content and "<EMAIL>" in only_email.content
    assert PiiRedactor().process(record("clean.py", "x = 1\n")).content is None
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PiiRedactor(kinds=("phone",))
    assert "email" in KINDS
