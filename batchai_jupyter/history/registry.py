"""Experiments, clusters, nodes and datastores: the workspace's registry tables."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from ..cluster_config import ClusterConfig
from ..records import DatastoreRow, NodeRow
from .database import _Database


class _Registry(_Database):
    """Experiments, clusters, datastores and nodes."""

    # -- registry: experiments, clusters, datastores --------------------------------------
    def ensure_experiment(self, name: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES(?, ?)", (name, time.time()))

    def experiments(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM experiments ORDER BY created")]

    def has_experiment(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM experiments WHERE name=?", (name,)))

    def put_cluster(self, name: str, backend: str, config: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO clusters VALUES(?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "backend=excluded.backend, config=excluded.config",
                       (name, backend, json.dumps(config), time.time()))

    def cluster_row(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM clusters WHERE name=?", (name,))
        return _cluster_dict(rows[0]) if rows else None

    def cluster_rows(self) -> list[dict[str, Any]]:
        return [_cluster_dict(r) for r in self.query("SELECT * FROM clusters ORDER BY created")]

    def put_cluster_config(self, config: ClusterConfig) -> None:
        """Store a cluster's settings (insert or replace), in the row shape cluster_row reads."""
        self.put_cluster(config.name, config.backend, config.stored_config())

    def cluster_config(self, name: str) -> ClusterConfig | None:
        row = self.cluster_row(name)
        return ClusterConfig.from_dict(row) if row is not None else None

    def cluster_configs(self, include_deleting: bool = False) -> list[ClusterConfig]:
        """Every cluster's settings, oldest first (those being deleted only when asked)."""
        configs = [ClusterConfig.from_dict(r) for r in self.cluster_rows()]
        return [c for c in configs if include_deleting or not c.deleting]

    def delete_cluster(self, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM clusters WHERE name=?", (name,))
            db.execute("DELETE FROM nodes WHERE cluster=?", (name,))

    def put_datastore(self, name: str, kind: str, config: dict[str, Any], default: bool = False) -> None:
        with self.tx() as db:
            if default:
                db.execute("UPDATE datastores SET is_default=0")
            db.execute("INSERT INTO datastores VALUES(?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "kind=excluded.kind, config=excluded.config",
                       (name, kind, json.dumps(config), int(default), time.time()))

    def datastore_rows(self) -> list[DatastoreRow]:
        return [DatastoreRow(name=r["name"], kind=r["kind"], config=json.loads(r["config"]),
                             is_default=bool(r["is_default"]))
                for r in self.query("SELECT * FROM datastores ORDER BY created")]

    def set_default_datastore(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE datastores SET is_default=(name=?)", (name,))

    # -- nodes ------------------------------------------------------------------------------
    def nodes(self, cluster: str) -> list[NodeRow]:
        return [_node_dict(r) for r in
                self.query("SELECT * FROM nodes WHERE cluster=? ORDER BY id", (cluster,))]

    def put_node(self, cluster: str, node_id: str, state: str, address: str | None = None,
                 run_id: str | None = None, error: str | None = None, gpus: int = 0,
                 info: dict[str, Any] | None = None) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO nodes VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(cluster, id) DO UPDATE SET "
                "address=coalesce(excluded.address, address), state=excluded.state, "
                "run_id=excluded.run_id, error=excluded.error, gpus=excluded.gpus, "
                "since=CASE WHEN state=excluded.state AND coalesce(run_id,'')=coalesce(excluded.run_id,'') "
                "THEN since ELSE excluded.since END, info=excluded.info",
                (cluster, node_id, address, state, run_id, error, gpus, time.time(),
                 json.dumps(info or {})))

    def delete_node(self, cluster: str, node_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM nodes WHERE cluster=? AND id=?", (cluster, node_id))



def _cluster_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "backend": row["backend"], **json.loads(row["config"])}


def _node_dict(row: sqlite3.Row) -> NodeRow:
    return NodeRow(cluster=row["cluster"], id=row["id"], address=row["address"], state=row["state"],
                   run_id=row["run_id"], error=row["error"], gpus=row["gpus"], since=row["since"],
                   info=json.loads(row["info"] or "{}"))
