-- Players (by public id: a hash, never a guest's secret), their rating and totals, rounds, and
-- every player's line in them. Portable SQL: SQLite and PostgreSQL run it alike.
CREATE TABLE players (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    rating DOUBLE PRECISION NOT NULL,
    uncertainty DOUBLE PRECISION NOT NULL,
    ordinal DOUBLE PRECISION NOT NULL,
    rated_rounds BIGINT NOT NULL,
    rounds BIGINT NOT NULL,
    wins BIGINT NOT NULL,
    score BIGINT NOT NULL,
    kills BIGINT NOT NULL,
    deaths BIGINT NOT NULL,
    first_unix_ms BIGINT NOT NULL,
    last_unix_ms BIGINT NOT NULL,
    banned BIGINT NOT NULL
);
CREATE INDEX players_by_ordinal ON players (ordinal DESC, id);
CREATE INDEX players_by_score ON players (score DESC, id);
CREATE TABLE rounds (
    id TEXT PRIMARY KEY,
    server TEXT NOT NULL,
    room TEXT NOT NULL,
    number BIGINT NOT NULL,
    map TEXT NOT NULL,
    ended_unix_ms BIGINT NOT NULL,
    why TEXT NOT NULL,
    seconds BIGINT NOT NULL,
    replay TEXT,
    rated BIGINT NOT NULL
);
CREATE INDEX rounds_by_end ON rounds (ended_unix_ms);
CREATE TABLE round_players (
    round_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    player_id TEXT,
    name TEXT NOT NULL,
    place BIGINT NOT NULL,
    bot BIGINT NOT NULL,
    left_early BIGINT NOT NULL,
    score BIGINT NOT NULL,
    kills BIGINT NOT NULL,
    deaths BIGINT NOT NULL,
    orbs BIGINT NOT NULL,
    shots BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    seconds_played BIGINT NOT NULL,
    ordinal_before DOUBLE PRECISION,
    ordinal_after DOUBLE PRECISION,
    PRIMARY KEY (round_id, line)
);
CREATE INDEX round_players_by_player ON round_players (player_id, round_id);
