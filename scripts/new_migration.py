"""Autogenerate an Alembic migration for models that no migration creates yet.

    .venv/bin/python scripts/new_migration.py REV_ID "message" [--down 0001_core]

Review the file it writes: it must hold only your domain's tables.
"""

import argparse
import tempfile
from pathlib import Path

from alembic import command

import node.models  # noqa: F401
from node.db import alembic_config, make_engine

parser = argparse.ArgumentParser()
parser.add_argument("rev_id")
parser.add_argument("message")
parser.add_argument("--down", default="0001_core")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'gen.sqlite'}")
    cfg = alembic_config(engine)
    command.upgrade(cfg, "heads")
    command.revision(
        cfg,
        message=args.message,
        autogenerate=True,
        rev_id=args.rev_id,
        head=args.down,
        splice=True,
    )
