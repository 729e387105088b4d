-- Seasons, and every player's standing in each: season 0 is all time, seasons 1 and on are
-- the scheduled ones. A standing's board keys are its rating (conservative ordinal) and its
-- total score, or NULL while it is not on that board (never rated, no round, banned). The
-- boards' bucket counts make a rank a sum over a few hundred rows and a short index walk,
-- not a count of everyone ahead. A player's row keeps who they are: name, first and last
-- seen, and the rated-play ban.
CREATE TABLE seasons (
    id BIGINT PRIMARY KEY,
    started_unix_ms BIGINT NOT NULL,
    ends_unix_ms BIGINT NOT NULL,
    ended_unix_ms BIGINT
);
CREATE TABLE standings (
    season BIGINT NOT NULL,
    player_id TEXT NOT NULL,
    rating DOUBLE PRECISION NOT NULL,
    uncertainty DOUBLE PRECISION NOT NULL,
    rated_rounds BIGINT NOT NULL,
    rounds BIGINT NOT NULL,
    wins BIGINT NOT NULL,
    score BIGINT NOT NULL,
    kills BIGINT NOT NULL,
    deaths BIGINT NOT NULL,
    rating_key DOUBLE PRECISION,
    score_key BIGINT,
    PRIMARY KEY (season, player_id)
);
CREATE INDEX standings_by_rating ON standings (season, rating_key DESC, player_id) WHERE rating_key IS NOT NULL;
CREATE INDEX standings_by_score ON standings (season, score_key DESC, player_id) WHERE score_key IS NOT NULL;
CREATE TABLE board_counts (
    season BIGINT NOT NULL,
    board BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    players BIGINT NOT NULL,
    PRIMARY KEY (season, board, bucket)
);
INSERT INTO standings (season, player_id, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths, rating_key, score_key)
    SELECT 0, id, rating, uncertainty, rated_rounds, rounds, wins, score, kills, deaths,
        CASE WHEN rated_rounds > 0 AND banned = 0 THEN ordinal END,
        CASE WHEN rounds > 0 AND banned = 0 THEN score END
    FROM players;
DROP INDEX players_by_ordinal;
DROP INDEX players_by_score;
ALTER TABLE players DROP COLUMN rating;
ALTER TABLE players DROP COLUMN uncertainty;
ALTER TABLE players DROP COLUMN ordinal;
ALTER TABLE players DROP COLUMN rated_rounds;
ALTER TABLE players DROP COLUMN rounds;
ALTER TABLE players DROP COLUMN wins;
ALTER TABLE players DROP COLUMN score;
ALTER TABLE players DROP COLUMN kills;
ALTER TABLE players DROP COLUMN deaths;
