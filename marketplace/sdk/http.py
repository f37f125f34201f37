"""What every client of the node shares: turning an error response of any dialect back into
the domain error it describes, and signing in with a wallet key (SIWE)."""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from typing import Any

import httpx

from marketplace.codes import from_code
from marketplace.errors import MarketplaceError

# Uploads and downloads of datasets and results: no bound on the whole transfer (a large
# dataset takes as long as it takes), but one on each wait for the peer: a node or a
# provider that stops moving bytes for this long is gone, and the transfer fails instead
# of waiting forever (a frozen peer sends no FIN, so only a timeout notices).
TRANSFER_TIMEOUT = httpx.Timeout(connect=30, read=300, write=300, pool=60)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every client of this process shares (httpx's defaults: the CA
    bundle, or SSL_CERT_FILE / SSL_CERT_DIR). Building them loads the whole CA bundle,
    about 37 ms of CPU a time, which httpx would otherwise spend on every new client, http://
    ones included; one context serves any number of connections."""
    return httpx.create_ssl_context()


def error_from_response(resp: httpx.Response) -> MarketplaceError:
    """Rebuild the `MarketplaceError` an error response of any dialect carries."""
    code, message = "HTTP_ERROR", resp.reason_phrase or f"HTTP {resp.status_code}"
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
        elif "detail" in body:
            code = str(body.get("code") or code)
            detail = body.get("message") or body["detail"]
            message = detail if isinstance(detail, str) else str(detail)
        elif "Message" in body:  # the Kubo RPC dialect
            message = str(body["Message"])
            code = str(body.get("ErrorCode") or code)
    if resp.status_code >= 500:  # retryable: the class keeps a 5xx's code when it has one
        message = f"{resp.request.url.path}: {message}"
    return from_code(code, message, resp.status_code)


def raise_for_error(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        raise error_from_response(resp)
    return resp


def siwe_payload(nonce_info: dict[str, Any], account: Any, statement: str) -> dict[str, str]:
    """Build and sign the EIP-4361 message the node asked for (`GET /auth/nonce`)."""
    from eth_account.messages import encode_defunct

    from marketplace.siwe import SiweMessage

    message = SiweMessage(
        domain=nonce_info["domain"],
        address=account.address,
        uri=nonce_info["uri"],
        chain_id=int(nonce_info["chain_id"]),
        nonce=nonce_info["nonce"],
        issued_at=dt.datetime.now(dt.UTC),
        statement=statement,
    ).to_text()
    signature = account.sign_message(encode_defunct(text=message)).signature.hex()
    if not signature.startswith("0x"):
        signature = "0x" + signature
    return {"message": message, "signature": signature}
