-- Each line's entity id in its round's replay, so that erasing a player can rewrite their name
-- and chat there too (NULL in rounds stored before: their name is matched instead).
ALTER TABLE round_players ADD COLUMN net_id BIGINT;
