"""Validate the answers before anything is generated: one line on stderr and exit 1 on a bad answer.

Cookiecutter renders this file with Jinja before running it. Every answer arrives as a JSON string
inside a raw string (Jinja's ``tojson`` escapes quotes), so no answer can break this script's syntax.
"""

from __future__ import annotations

import json
import re
import sys
from urllib.parse import urlsplit

# fmt: off
ANSWERS: dict[str, str] = {
    "provider_name": json.loads(r'{{ cookiecutter.provider_name | tojson }}'),
    "provider_slug": json.loads(r'{{ cookiecutter.provider_slug | tojson }}'),
    "base_url": json.loads(r'{{ cookiecutter.base_url | tojson }}'),
    "docs_url": json.loads(r'{{ cookiecutter.docs_url | tojson }}'),
    "jurisdiction": json.loads(r'{{ cookiecutter.jurisdiction | tojson }}'),
    "api_key_env": json.loads(r'{{ cookiecutter.api_key_env | tojson }}'),
    "auth_style": json.loads(r'{{ cookiecutter.auth_style | tojson }}'),
    "auth_header_name": json.loads(r'{{ cookiecutter.auth_header_name | tojson }}'),
    "auth_query_param": json.loads(r'{{ cookiecutter.auth_query_param | tojson }}'),
    "protocol": json.loads(r'{{ cookiecutter.protocol | tojson }}'),
    "author": json.loads(r'{{ cookiecutter.author | tojson }}'),
    "author_email": json.loads(r'{{ cookiecutter.author_email | tojson }}'),
    "license": json.loads(r'{{ cookiecutter.license | tojson }}'),
}
# fmt: on

SLUG = re.compile(r"[a-z][a-z0-9_-]*")
ENV_VAR = re.compile(r"[A-Z][A-Z0-9_]*")
HEADER = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
QUERY_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
JURISDICTION = re.compile(r"[A-Z]{2,10}")
EMAIL = re.compile(r"[^@\s\"\\]+@[^@\s\"\\]+\.[^@\s\"\\]+")
# characters that would need escaping in the Python, TOML, JSON and Markdown files the name goes into
UNSAFE_TEXT = re.compile(r"[\"\\{}<>`\x00-\x1f\x7f]")
CHOICES = {
    "auth_style": ("bearer", "header", "query"),
    "protocol": ("openai-compatible", "native"),
    "license": ("Apache-2.0", "MIT"),
}
# lengths that keep every generated line within the generated project's line-length limit (110)
MAX_NAME = 40
MAX_URL = 90
# header names the core or HTTP itself sets: sending the key in one of them would break requests
RESERVED_HEADERS = {"content-type", "accept", "content-length", "host", "transfer-encoding", "connection"}


def check_url(field: str, value: str) -> str | None:
    if len(value) > MAX_URL:
        return f"{field} is longer than {MAX_URL} characters"
    if not value or value != value.strip() or any(c in value for c in " \t\"'<>\\{}"):
        return f"{field} {value!r} must be a URL without spaces or quotes, e.g. https://api.example.com/v1"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"{field} {value!r} must start with http:// or https://"
    if not parts.hostname:
        return f"{field} {value!r} has no host name"
    if field == "base_url" and (parts.query or parts.fragment):
        return f"base_url {value!r} must not have a query or fragment: paths are appended to it"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{field} {value!r} has an invalid port"
    return None


def check_text(field: str, value: str, example: str, limit: int) -> str | None:
    if not value.strip():
        return f"{field} must not be empty, e.g. {example!r}"
    if value != value.strip():
        return f"{field} {value!r} must not start or end with spaces"
    if UNSAFE_TEXT.search(value):
        return f"{field} {value!r} must not contain quotes, backslashes, braces, <, >, ` or control codes"
    if len(value) > limit:
        return f"{field} is longer than {limit} characters"
    return None


def problems(answers: dict[str, str]) -> list[str]:
    """Every problem with the answers, each as one line that says what to answer instead."""
    found: list[str] = []

    def add(problem: str | None) -> None:
        if problem:
            found.append(problem)

    for field, choices in CHOICES.items():
        if answers[field] not in choices:
            add(f"{field} {answers[field]!r} is not one of: {', '.join(choices)}")
    add(check_text("provider_name", answers["provider_name"], "Acme AI", MAX_NAME))
    if not any(c.isalnum() for c in answers["provider_name"]):
        add(f"provider_name {answers['provider_name']!r} needs at least one letter or digit")

    slug = answers["provider_slug"]
    if not SLUG.fullmatch(slug):
        add(
            f"provider_slug {slug!r} must be lowercase, start with a letter and use only a-z, 0-9, - and _ "
            "(answer provider_slug yourself, e.g. 'acme')"
        )
    elif slug[-1] in "-_" or "--" in slug or "__" in slug:
        add(f"provider_slug {slug!r} must not end with or repeat - or _")
    elif len(slug) > MAX_NAME:
        add(f"provider_slug {slug!r} is longer than {MAX_NAME} characters")

    add(check_url("base_url", answers["base_url"]))
    add(check_url("docs_url", answers["docs_url"]))

    if not JURISDICTION.fullmatch(answers["jurisdiction"]):
        add(f"jurisdiction {answers['jurisdiction']!r} must be an upper-case code such as US, EU, CN, SG")
    if not ENV_VAR.fullmatch(answers["api_key_env"]) or len(answers["api_key_env"]) > MAX_NAME:
        add(
            f"api_key_env {answers['api_key_env']!r} must be an environment variable name in upper case "
            f"(A-Z, 0-9, _; at most {MAX_NAME}), e.g. ACME_API_KEY"
        )

    if answers["auth_style"] == "header":
        header = answers["auth_header_name"]
        if not HEADER.fullmatch(header) or len(header) > MAX_NAME:
            add(
                f"auth_header_name {header!r} must be an HTTP header name (letters, digits, -; "
                f"at most {MAX_NAME}), e.g. x-api-key"
            )
        elif header.lower() in RESERVED_HEADERS:
            add(f"auth_header_name {header!r} is set by HTTP itself; choose another header")
    param = answers["auth_query_param"]
    if answers["auth_style"] == "query" and (not QUERY_PARAM.fullmatch(param) or len(param) > MAX_NAME):
        add(
            f"auth_query_param {param!r} must be a query parameter name "
            f"(letters, digits, _ . -; at most {MAX_NAME}), e.g. key"
        )

    add(check_text("author", answers["author"], "Your Name", 80))
    email = answers["author_email"]
    if email and not EMAIL.fullmatch(email):
        add(f"author_email {email!r} is not an e-mail address (leave it empty to omit it)")
    return found


def main() -> int:
    found = problems(ANSWERS)
    if found:
        extra = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        print(f"error: {found[0]}{extra}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
