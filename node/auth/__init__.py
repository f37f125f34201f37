"""Authentication of the node.

Credentials, all sent as `Authorization: Bearer ...`:

- access token (HS256 JWT, `typ=access`) from `POST /auth/login` (username/password,
  Argon2id), `POST /auth/siwe` (EIP-4361 wallet sign-in; subject = checksummed address)
  or `POST /auth/refresh`. Refresh tokens (`typ=refresh`) rotate on every use; a revoked
  one presented again revokes all of the user's refresh tokens (401 REFRESH_TOKEN_REUSED).
- API key `dcm_...`, created by a workspace owner under `/workspaces/{id}/api-keys`: acts
  as its creator, only in its workspace, with min(key role, creator's role).

Missing or bad credentials are 401 with `WWW-Authenticate: Bearer` and a stable code
(INVALID_CREDENTIALS, INVALID_TOKEN, TOKEN_EXPIRED, INVALID_API_KEY, INVALID_SIGNATURE,
NONCE_INVALID, SIWE_DOMAIN_MISMATCH, SIWE_CHAIN_MISMATCH, SIWE_EXPIRED,
SIWE_NOT_YET_VALID); a malformed SIWE message is 422 VALIDATION_ERROR at
`["body", "message"]`. Who may do what is decided by `node.authz.policy`.

Every `/auth` route is rate limited per client address, login and SIWE failures also per
account, and rejected bearer credentials per client address: 429 `RATE_LIMIT_EXCEEDED`
with `Retry-After` (`node.limits.rates`). Password hashes run a few at a time
(`node.auth.passwords.HashingGate`). Token claims are type- and range-checked before
any lookup (`node.auth.tokens`).
"""
