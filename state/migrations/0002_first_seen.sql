-- Schema version 2: when Aegis first saw each (package, version, source), for the
-- release-age quarantine (policy rule package.release-age, see
-- docs/operator-guide.md "Release-age quarantine"). apt metadata has no publish date.
-- Like every row of this store it is writable by group aegis: untrusted, and a member who
-- writes an earlier time shortens the quarantine.
CREATE TABLE first_seen (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    release_date TEXT,
    PRIMARY KEY (package, version, source)
);
