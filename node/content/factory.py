"""Chooses the node's content store: the embedded one, or the Kubo RPC adapter when
`DCM_IPFS_API_URL` is set."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from marketplace.content.store import ContentStore
from node.config import NodeSettings
from node.content.kubo import KuboStore
from node.content.store import EmbeddedStore


def make_content_store(settings: NodeSettings, sessions: sessionmaker[Session]) -> ContentStore:
    if settings.ipfs_api_url:
        return KuboStore(settings.ipfs_api_url)

    return EmbeddedStore(settings.data_dir / "blocks", sessions)
