//! Matches that count: every finished round is stored with its players' places and figures,
//! rated (Weng-Lin), and shown on boards and profiles. [`record`] is what a room hands over
//! (plain data, no database); [`writer`] takes it off the rooms' path, spools it to disk and
//! commits it to [`db`] (SQLite by default, PostgreSQL for a fleet); [`rating`] decides who is
//! rated and how.

pub mod boards;
pub mod db;
pub mod rating;
pub mod record;
pub mod season;
pub mod standing;
pub mod write;
pub mod writer;
