-- bizchat schema, migration 0006: the pseudonymisation key leaves the workspace.
--
-- Until now a generated key was kept in settings (key 'pseudonym_key'), where
-- `bizchat sql` could read it and where it travelled with every copy of the data it
-- protects. Before this runs, bizchat.store moves it into the key file beside the
-- workspace (<workspace>.key, owner-only; bizchat.keyfile). Here it is deleted, and the
-- file is marked for compaction: DuckDB keeps deleted values in the file until it is
-- rewritten, and bizchat.open compacts right after this migration.
INSERT OR REPLACE INTO settings (key, value)
SELECT 'privacy.compaction_pending', strftime(now(), '%Y-%m-%dT%H:%M:%S+00:00')
WHERE EXISTS (SELECT 1 FROM settings WHERE key = 'pseudonym_key');

DELETE FROM settings WHERE key = 'pseudonym_key';
