"""Sign-In with Ethereum (EIP-4361) on the node: issue nonces, verify signed messages.

Checks, in order: the message parses (else 422); its domain is ours; its chain id is
the node's chain's (which is per data dir: `node.chain.evm`); it was issued neither in
the future nor before its nonce could exist (`Issued At` within the nonce lifetime, a
clock skew of `siwe_clock_skew_seconds` allowed for wallets whose clock runs ahead);
it is inside its `Not Before`/`Expiration Time` window; the signature recovers to the
address it names (EOA signatures only, EIP-191 personal_sign); and finally its nonce is
consumed in one conditional UPDATE, so a replayed message fails. The wallet's user row
is created on first sign-in.
"""

from __future__ import annotations

import datetime as dt
import secrets
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy.orm import Session

from marketplace.errors import (
    InvalidCredentials,
    InvalidSignature,
    NonceInvalid,
    SiweChainMismatch,
    SiweDomainMismatch,
    SiweExpired,
    SiweNotYetValid,
    ValidationFailed,
)
from marketplace.siwe import SiweMessage, SiweSyntaxError, parse_message
from node.auth import repository
from node.config import NodeSettings
from node.db import utcnow
from node.models.auth import SiweNonce, User


def expected_domain(settings: NodeSettings) -> str:
    """`settings.siwe_domain`, else the host[:port] of `settings.public_url`."""
    if settings.siwe_domain:
        return settings.siwe_domain.lower()
    netloc = urlsplit(settings.public_url).netloc
    return netloc.rpartition("@")[2].lower()


def issue_nonce(session: Session, settings: NodeSettings) -> SiweNonce:
    now = utcnow()
    # Housekeeping keeps the table at (nonce rate x lifetime) rows.
    repository.delete_stale_nonces(session, now)
    return repository.add_nonce(
        session, secrets.token_hex(16), now + dt.timedelta(seconds=settings.siwe_nonce_seconds)
    )


def _parse(message: str) -> SiweMessage:
    try:
        return parse_message(message)
    except SiweSyntaxError as exc:
        raise ValidationFailed(
            f"Malformed SIWE message: {exc.reason}",
            details=[{"loc": ["body", "message"], "msg": exc.reason, "type": "siwe_syntax"}],
        ) from exc


def claimed_address(message: str) -> str | None:
    """The address a message names, if it parses (for per-address limits)."""
    try:
        return parse_message(message).address
    except SiweSyntaxError:
        return None


def _check_claims(
    parsed: SiweMessage, settings: NodeSettings, chain_id: int, now: dt.datetime
) -> None:
    if parsed.domain.lower() != expected_domain(settings):
        raise SiweDomainMismatch(f"Message is for domain {parsed.domain!r}, not this node")
    if parsed.scheme is not None and parsed.scheme.lower() != urlsplit(settings.public_url).scheme:
        raise SiweDomainMismatch(f"Message names scheme {parsed.scheme!r}, not this node's")
    if parsed.chain_id != chain_id:
        raise SiweChainMismatch(
            f"Message is for chain {parsed.chain_id}, this node uses {chain_id}"
        )
    skew = dt.timedelta(seconds=settings.siwe_clock_skew_seconds)
    if parsed.issued_at > now + skew:
        raise SiweNotYetValid("Sign-in message is issued in the future (Issued At)")
    if parsed.issued_at < now - dt.timedelta(seconds=settings.siwe_nonce_seconds) - skew:
        raise SiweExpired("Sign-in message was issued before its nonce could exist")
    if parsed.expiration_time is not None and parsed.expiration_time <= now:
        raise SiweExpired("Sign-in message has expired")
    if parsed.not_before is not None and parsed.not_before > now + skew:
        raise SiweNotYetValid("Sign-in message is not valid yet")


def _recover(message: str, signature: str) -> str:
    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise InvalidSignature("Signature does not recover to an address") from exc


def sign_in(
    session: Session, settings: NodeSettings, message: str, signature: str, *, chain_id: int
) -> User:
    """Verify a signed EIP-4361 message for chain `chain_id`; return the wallet's user
    (created if new)."""
    parsed = _parse(message)
    now = utcnow()
    _check_claims(parsed, settings, chain_id, now)
    if _recover(message, signature) != parsed.address:
        raise InvalidSignature("Signature was not made by the message's address")
    if not repository.consume_nonce(session, parsed.nonce, now):
        raise NonceInvalid("Nonce unknown, already used or expired")
    user = repository.get_or_create_wallet_user(session, parsed.address)
    if not user.is_active:
        raise InvalidCredentials("Account disabled")
    return user
