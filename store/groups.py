"""Groups of similar ideas as the NLP and moderators shape them (see nlp/clusters.py), and the
vectors of the shipped texts the NLP compares with. A mixin of `Store`; every method runs
inside the caller's transaction when it writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mitreden.store.chunks import in_chunks
from mitreden.store.records import Records, StoreError, from_blob, to_blob

if TYPE_CHECKING:
    import numpy as np


class GroupRecords(Records):
    """Store methods for grouping and the NLP's cache."""

    # groups of similar ideas (see nlp/clusters.py)

    def cluster_run_id(self) -> int:
        """The latest full recompute; 0 before the first."""
        row = self.db.execute("SELECT max(id) FROM cluster_runs").fetchone()
        return row[0] or 0

    def grouped_state(self) -> str | None:
        """The state the latest full recompute grouped (see `ClusterBook.state`); None before
        the first, or when it ran before states were kept."""
        row = self.db.execute("SELECT state FROM cluster_runs ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def fences(self) -> dict[str, float]:
        cursor = self.db.execute("SELECT lane, fence FROM lanes WHERE fence IS NOT NULL")
        return dict(cursor.fetchall())

    def clusters(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM clusters ORDER BY id")

    def memberships(self) -> list[tuple[int, int, str, int | None]]:
        """(idea, cluster, lane, duplicate_of) of every grouped idea."""
        # One statement, so one snapshot: reading the lanes apart took half as long (37 vs 73
        # ms at 100,000 ideas), but a regroup in another process between the two reads could
        # leave memberships of clusters it had replaced, or of ids it gave anew.
        cursor = self.db.execute(
            "SELECT m.idea_id, m.cluster_id, c.lane, m.duplicate_of FROM cluster_members m "
            "JOIN clusters c ON c.id = m.cluster_id ORDER BY m.idea_id"
        )
        return cursor.fetchall()

    def ideas_state(self) -> tuple:
        """Changes when ideas are added, edited or erased: the regroup job's cue."""
        return self.db.execute("SELECT count(*), max(id), max(updated_at) FROM ideas").fetchone()

    def vectors(self, idea_ids: list[int]) -> dict[int, np.ndarray]:
        found = {}
        for chunk, marks in in_chunks(idea_ids):
            cursor = self.db.execute(
                f"SELECT id, embedding FROM ideas WHERE embedding IS NOT NULL AND id IN ({marks})",
                chunk,
            )
            found.update({i: from_blob(e) for i, e in cursor})
        return found

    def new_cluster(self, lane: str, now: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO clusters (lane, created_at, updated_at) VALUES (?, ?, ?)",
            (lane, now, now),
        )
        return cursor.lastrowid

    def set_membership(
        self, idea_id: int, cluster_id: int, duplicate_of: int | None, placed_at: str | None = None
    ) -> None:
        """Put an idea in a group; `placed_at` when a moderator chose the group, so that
        regroupings leave it there."""
        self.db.execute(
            "INSERT OR REPLACE INTO cluster_members (idea_id, cluster_id, duplicate_of, placed_at) "
            "VALUES (?, ?, ?, ?)",
            (idea_id, cluster_id, duplicate_of, placed_at),
        )

    def placed_ideas(self) -> set[int]:
        """Ideas a moderator put in their group (`set_membership(..., placed_at=...)`)."""
        cursor = self.db.execute("SELECT idea_id FROM cluster_members WHERE placed_at IS NOT NULL")
        return {row[0] for row in cursor}

    def drop_membership(self, idea_id: int) -> None:
        """Take an idea out of its group; a group left empty goes unless a moderator named it."""
        self.db.execute("DELETE FROM cluster_members WHERE idea_id = ?", (idea_id,))
        self.db.execute(
            "UPDATE cluster_members SET duplicate_of = NULL WHERE duplicate_of = ?", (idea_id,)
        )
        self._drop_empty_clusters(keep_named=True)

    def _drop_empty_clusters(self, keep_named: bool) -> int:
        sql = "DELETE FROM clusters WHERE id NOT IN (SELECT cluster_id FROM cluster_members)"
        if keep_named:
            sql += (
                " AND custom_label IS NULL AND id NOT IN "
                "(SELECT merged_into FROM clusters WHERE merged_into IS NOT NULL)"
            )
        return self.db.execute(sql).rowcount

    def save_grouping(
        self,
        groups: list[tuple[int | None, str, list[tuple[int, int | None]]]],
        fences: dict[str, float | None],
        run: dict[str, Any],
    ) -> None:
        """Replace the grouping with a full recompute's, in one transaction.

        `groups` holds (inherited id or None, lane, [(idea, duplicate_of)]); ideas a
        moderator placed are not in it and keep their group. Ideas and groups erased while
        the recompute ran are skipped; ideas that arrived meanwhile keep their
        membership if their group survived and are grouped again by the caller otherwise.
        """
        now = run["at"]
        with self.transaction():
            alive = {row[0] for row in self.db.execute("SELECT id FROM ideas")}
            alive -= self.placed_ideas()  # placed by a moderator while the recompute ran
            existing = {row[0] for row in self.db.execute("SELECT id FROM clusters")}
            grouped = [idea for _, _, members in groups for idea, _ in members if idea in alive]
            for chunk, marks in in_chunks(grouped):
                self.db.execute(f"DELETE FROM cluster_members WHERE idea_id IN ({marks})", chunk)
            rows: list[tuple[int, int, int | None]] = []
            for inherited, lane, members in groups:
                members = [(i, d if d in alive else None) for i, d in members if i in alive]
                if not members:
                    continue
                if inherited is None or inherited not in existing:  # new, or emptied meanwhile
                    cluster_id = self.new_cluster(lane, now)
                else:
                    cluster_id = inherited
                    self.db.execute(
                        "UPDATE clusters SET updated_at = ? WHERE id = ?", (now, cluster_id)
                    )
                rows.extend((idea, cluster_id, dup) for idea, dup in members)
            self.db.executemany(
                "INSERT OR REPLACE INTO cluster_members (idea_id, cluster_id, duplicate_of) "
                "VALUES (?, ?, ?)",
                rows,
            )
            self._drop_empty_clusters(keep_named=False)
            self.db.execute("DELETE FROM lanes")
            self.db.executemany("INSERT INTO lanes VALUES (?, ?)", list(fences.items()))
            self.db.execute(
                "INSERT INTO cluster_runs (at, model, ideas, clusters, kept_ids, seconds, state) "
                "VALUES (:at, :model, :ideas, :clusters, :kept_ids, :seconds, :state)",
                run,
            )
            detail = {k: v for k, v in run.items() if k not in ("at", "state")}
            self.audit(now, "system", "clusters.recomputed", **detail)

    def rename_cluster(self, cluster_id: int, label: str | None, actor: str, now: str) -> None:
        """A moderator's own label for a group; None goes back to the keywords."""
        with self.transaction():
            self._cluster_exists(cluster_id)
            self.db.execute(
                "UPDATE clusters SET custom_label = ?, updated_at = ? WHERE id = ?",
                (label, now, cluster_id),
            )
            self.audit(now, actor, "cluster.renamed", f"cluster:{cluster_id}", label=label)

    def merge_cluster(self, source: int, target: int | None, actor: str, now: str) -> None:
        """Show group `source` as part of `target`; None undoes the merge."""
        with self.transaction():
            self._cluster_exists(source)
            if target is not None:
                self._cluster_exists(target)
                while (
                    row := self._one("SELECT merged_into FROM clusters WHERE id = ?", (target,))
                ) and row["merged_into"] is not None:
                    target = row["merged_into"]
                if target == source:
                    raise StoreError("a group cannot be merged into itself")
                # Merges chain to the final target, so a group is never shown twice.
                self.db.execute(
                    "UPDATE clusters SET merged_into = ? WHERE merged_into = ?", (target, source)
                )
            self.db.execute(
                "UPDATE clusters SET merged_into = ?, updated_at = ? WHERE id = ?",
                (target, now, source),
            )
            self.audit(now, actor, "cluster.merged", f"cluster:{source}", into=target)

    def _cluster_exists(self, cluster_id: int) -> None:
        if self._one("SELECT id FROM clusters WHERE id = ?", (cluster_id,)) is None:
            raise StoreError(f"there is no group {cluster_id}")

    # cache of shipped-text embeddings

    def cached_vectors(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for chunk, marks in in_chunks(hashes):
            cursor = self.db.execute(
                f"SELECT text_hash, vector FROM text_embeddings "
                f"WHERE model = ? AND text_hash IN ({marks})",
                (model, *chunk),
            )
            found.update({h: from_blob(v) for h, v in cursor})
        return found

    def cache_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO text_embeddings VALUES (?, ?, ?)",
                [(model, h, to_blob(v)) for h, v in vectors.items()],
            )
