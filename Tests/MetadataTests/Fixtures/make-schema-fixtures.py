#!/usr/bin/env python3
"""Writes schema-N.db for every released schema version N below the newest: a database
as registryd left it at that version (the migration SQL of Sources/Metadata/Schema/
Migrations.swift up to N, which is never edited once released), holding a repository
with a tagged manifest over two linked blobs, its tag history, an upload session, and
from schema 2 on a user in a namespace, from 3 an audit record, from 4 a pinned blob
(from 5 pinned by an instance whose lease ran out).

SQLiteMetadataStoreTests opens a copy of each and checks the migration to the newest
schema keeps every fact. Run again only when a new migration is released (to add the
file of the version it replaces); the files are committed.
"""
import os
import re
import sqlite3

here = os.path.dirname(os.path.abspath(__file__))
source = open(os.path.join(here, "../../../Sources/Metadata/Schema/Migrations.swift")).read()
migrations = {int(number): sql for number, sql in re.findall(r'\(\s*(\d+),\s*"""\n(.*?)"""\s*\)', source, re.S)}
newest = max(migrations)

config = "sha256:" + "1" * 64
layer = "sha256:" + "2" * 64
manifest = "sha256:" + "3" * 64
pinned = "sha256:" + "4" * 64
content = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' + config.encode() + b'","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"' + layer.encode() + b'","size":3}]}'
at = 1_700_000_000

for version in range(1, newest):
    path = os.path.join(here, f"schema-{version}.db")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
    for number in range(1, version + 1):
        db.executescript(migrations[number])
        db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (number, at))
    # Migration 5 keeps the ages a collection compares in milliseconds.
    created, scale = ("created_at_ms", 1000) if version >= 5 else ("created_at", 1)
    db.execute("INSERT INTO repositories (id, name, is_public, created_at) VALUES (1, 'team/app', 1, ?)", (at,))
    for digest, size in [(config, 2), (layer, 3)]:
        db.execute(f"INSERT INTO blobs (digest, size, {created}) VALUES (?, ?, ?)", (digest, size, at * scale))
        db.execute(f"INSERT INTO repository_blobs (repository_id, digest, {created}) VALUES (1, ?, ?)", (digest, (at + 1) * scale))
    db.execute(f"INSERT INTO manifests (id, repository_id, digest, media_type, content, {created}) VALUES (1, 1, ?, 'application/vnd.oci.image.manifest.v1+json', ?, ?)",
               (manifest, content, (at + 2) * scale))
    db.executemany("INSERT INTO manifest_references (manifest_id, kind, digest) VALUES (1, 'blob', ?)", [(config,), (layer,)])
    db.execute("INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (1, 'v1', ?, ?)", (manifest, at + 2))
    db.execute("INSERT INTO tag_history (repository_id, tag, old_digest, new_digest, actor, at) VALUES (1, 'v1', NULL, ?, 'admin', ?)", (manifest, at + 2))
    db.execute("INSERT INTO upload_sessions (id, repository_id, principal, digest_algorithm, size, created_at, updated_at) VALUES ('0b5f1a7e-1111-4222-8333-944455556666', 1, 'admin', 'sha256', 7, ?, ?)", (at, at))
    if version >= 2:
        db.execute("INSERT INTO users (id, name, password_hash, is_staff, created_at, updated_at) VALUES (1, 'admin', '$2b$04$abcdefghijklmnopqrstuu5Tq5TQ0C0M4zCz6HiYfxZ2Q9j6f6Y9a', 1, ?, ?)", (at, at))
        db.execute("INSERT INTO namespaces (id, name, created_at) VALUES (1, 'team', ?)", (at,))
        db.execute("INSERT INTO namespace_members (namespace_id, user_id, role) VALUES (1, 1, 'owner')")
    if version >= 3:
        db.execute("INSERT INTO audit_log (at, actor, method, params) VALUES (?, 'uid 0 (root)', 'user.create', '{\"name\":\"admin\"}')", (at,))
    if version == 4:
        db.execute("INSERT INTO blobs (digest, size, created_at, pins, pinned_at) VALUES (?, 5, ?, 1, ?)", (pinned, at, at))
    if version >= 5:
        # A pin of an instance whose lease ran out long ago.
        db.execute("INSERT INTO blobs (digest, size, created_at_ms) VALUES (?, 5, ?)", (pinned, at * 1000))
        db.execute("INSERT INTO instances (id, started_at_ms, lease_expires_at_ms) VALUES ('gone', ?, ?)", (at * 1000, (at + 60) * 1000))
        db.execute("INSERT INTO blob_pins (upload_id, digest, instance, pinned_at_ms) VALUES ('0b5f1a7e-1111-4222-8333-944455557777', ?, 'gone', ?)", (pinned, at * 1000))
    db.commit()
    db.execute("VACUUM")
    db.close()
    print("wrote", path)
