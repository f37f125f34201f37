"""Sign-In with Ethereum (EIP-4361) messages: build one to sign, parse one strictly.

The node verifies a signed message (`node/auth/siwe.py`); the SDK, CLI and provider
daemon build one here and sign it with their key (`eth_account.messages.encode_defunct`).

Only the message text lives here; no key handling, no clock. The parser follows the
EIP's ABNF line by line and refuses anything it does not recognise, so that what the
node checks is exactly what the wallet showed the user.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from eth_utils import is_checksum_address

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
MAX_MESSAGE_CHARS = 4096

# authority = host [":" port]; host is a DNS name, IPv4 or a bracketed IPv6 literal.
_DOMAIN = re.compile(r"^(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]{0,19}$")
# RFC 3339 date-time (a "T" separator, seconds, optional fraction, Z or an offset).
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@%]*$")
_OPTIONAL_FIELDS = (
    ("expiration_time", "Expiration Time: "),
    ("not_before", "Not Before: "),
    ("request_id", "Request ID: "),
)


class SiweSyntaxError(ValueError):
    """The text is not a well-formed EIP-4361 message; `reason` says where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: dt.datetime
    statement: str | None = None
    version: str = "1"
    scheme: str | None = None
    expiration_time: dt.datetime | None = None
    not_before: dt.datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default_factory=tuple)

    def to_text(self) -> str:
        """The message exactly as the EIP's ABNF lays it out."""
        prefix = f"{self.scheme}://" if self.scheme else ""
        lines = [f"{prefix}{self.domain}{HEADER_SUFFIX}", self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines.append("")
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {format_datetime(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {format_datetime(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {format_datetime(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


def format_datetime(value: dt.datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a `Z`."""
    if value.tzinfo is None:
        raise ValueError("SIWE timestamps must be timezone-aware")
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def build_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: dt.datetime | None = None,
    statement: str | None = None,
    expiration_time: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    request_id: str | None = None,
    resources: tuple[str, ...] | list[str] = (),
    scheme: str | None = None,
) -> str:
    """The text of a sign-in message; raises `SiweSyntaxError` on a field it could not parse
    back (so a client never signs something the node would refuse as malformed)."""
    from eth_utils import to_checksum_address

    message = SiweMessage(
        domain=domain,
        address=to_checksum_address(address),
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at or dt.datetime.now(dt.UTC),
        statement=statement,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
        scheme=scheme,
    )
    text = message.to_text()
    parse_message(text)
    return text


def _parse_datetime(raw: str, name: str) -> dt.datetime:
    if not _DATETIME.match(raw):
        raise SiweSyntaxError(f"{name} is not an RFC 3339 date-time")
    try:
        value = dt.datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SiweSyntaxError(f"{name} is not a valid date-time") from exc
    return value.astimezone(dt.UTC)


def _take(lines: list[str], i: int, label: str) -> str:
    if i >= len(lines) or not lines[i].startswith(label):
        raise SiweSyntaxError(f"line {i + 1}: expected '{label.strip()}'")
    return lines[i][len(label) :]


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly; raise `SiweSyntaxError` on any deviation.

    Accepts the current ABNF (a statement-less message has two empty lines between the
    address and `URI:`) and the older one-empty-line form some wallets still produce.
    """
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        raise SiweSyntaxError(f"message must be a string of at most {MAX_MESSAGE_CHARS} chars")
    if "\r" in text:
        raise SiweSyntaxError("line endings must be LF")
    lines = text.split("\n")

    header = lines[0]
    if not header.endswith(HEADER_SUFFIX):
        raise SiweSyntaxError("line 1: expected '<domain> wants you to sign in ...'")
    authority = header[: -len(HEADER_SUFFIX)]
    scheme: str | None = None
    if "://" in authority:
        scheme, _, authority = authority.partition("://")
        if not _SCHEME.match(scheme):
            raise SiweSyntaxError("line 1: malformed scheme")
    if not _DOMAIN.match(authority):
        raise SiweSyntaxError("line 1: malformed domain")

    if len(lines) < 2 or not _ADDRESS.match(lines[1]):
        raise SiweSyntaxError("line 2: expected a 0x-prefixed 20-byte hex address")
    if not is_checksum_address(lines[1]):
        raise SiweSyntaxError("line 2: address is not EIP-55 checksummed")
    address = lines[1]

    if len(lines) < 4 or lines[2] != "":
        raise SiweSyntaxError("line 3: expected an empty line")
    i = 3
    statement: str | None = None
    if lines[i] == "":
        i += 1  # no statement (current ABNF)
    elif not lines[i].startswith("URI: "):
        statement = lines[i]
        i += 1
        if i >= len(lines) or lines[i] != "":
            raise SiweSyntaxError(f"line {i + 1}: expected an empty line after the statement")
        i += 1
    # else: no statement, older single-empty-line form

    uri = _take(lines, i, "URI: ")
    if not _URI.match(uri):
        raise SiweSyntaxError(f"line {i + 1}: malformed URI")
    i += 1
    version = _take(lines, i, "Version: ")
    if version != "1":
        raise SiweSyntaxError(f"line {i + 1}: unsupported version {version[:8]!r}")
    i += 1
    raw_chain = _take(lines, i, "Chain ID: ")
    if not _CHAIN_ID.match(raw_chain):
        raise SiweSyntaxError(f"line {i + 1}: malformed chain id")
    i += 1
    nonce = _take(lines, i, "Nonce: ")
    if not _NONCE.match(nonce):
        raise SiweSyntaxError(f"line {i + 1}: nonce must be at least 8 alphanumeric chars")
    i += 1
    issued_at = _parse_datetime(_take(lines, i, "Issued At: "), "Issued At")
    i += 1

    optional: dict[str, str] = {}
    for name, label in _OPTIONAL_FIELDS:
        if i < len(lines) and lines[i].startswith(label):
            optional[name] = lines[i][len(label) :]
            i += 1
    resources: list[str] = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            resource = lines[i][2:]
            if not _URI.match(resource):
                raise SiweSyntaxError(f"line {i + 1}: malformed resource URI")
            resources.append(resource)
            i += 1
    if i != len(lines):
        raise SiweSyntaxError(f"line {i + 1}: unexpected content")

    request_id = optional.get("request_id")
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise SiweSyntaxError("Request ID has characters outside pchar")
    return SiweMessage(
        domain=authority,
        address=address,
        uri=uri,
        chain_id=int(raw_chain),
        nonce=nonce,
        issued_at=issued_at,
        statement=statement,
        version=version,
        scheme=scheme,
        expiration_time=(
            _parse_datetime(optional["expiration_time"], "Expiration Time")
            if "expiration_time" in optional
            else None
        ),
        not_before=(
            _parse_datetime(optional["not_before"], "Not Before")
            if "not_before" in optional
            else None
        ),
        request_id=request_id,
        resources=tuple(resources),
    )
