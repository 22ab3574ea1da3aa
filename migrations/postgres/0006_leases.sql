-- Periodic work that one replica does for all (the pull request poll): the replica holding a
-- lease renews it each round; when that replica stops, another takes over once it lapses.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
