//! Map format: a rectangle of floor with axis-aligned walls, spawn points and an orb budget.
//!
//! Maps are JSON files under `assets/maps/` (see `assets/maps/README.md`). Parsing validates
//! everything a hostile or careless file could get wrong, so the rules can trust a [`MapDef`].

use glam::Vec2;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::quant::MAX_COORD;

/// An axis-aligned rectangle: top-left corner plus size, in world units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn min(&self) -> Vec2 {
        Vec2::new(self.x, self.y)
    }

    pub fn max(&self) -> Vec2 {
        Vec2::new(self.x + self.w, self.y + self.h)
    }

    /// Closest point of the rectangle to `p`.
    pub fn closest_point(&self, p: Vec2) -> Vec2 {
        p.clamp(self.min(), self.max())
    }

    /// True when a circle at `center` with `radius` overlaps the rectangle.
    pub fn overlaps_circle(&self, center: Vec2, radius: f32) -> bool {
        self.closest_point(center).distance_squared(center) < radius * radius
    }
}

/// A playable map. Coordinates run from (0, 0) at the top-left to (`width`, `height`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapDef {
    /// Short stable identifier sent in the welcome (e.g. `"arena"`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    pub width: f32,
    pub height: f32,
    pub walls: Vec<Rect>,
    /// Where players (re)spawn; the server picks the one farthest from living players.
    pub spawns: Vec<Vec2>,
    /// How many orbs the room keeps on the floor at all times.
    pub orbs: u16,
}

#[derive(Debug, Error)]
pub enum MapError {
    #[error("map is not valid JSON for the map format: {0}")]
    Json(#[from] serde_json::Error),
    #[error("map is invalid: {0}")]
    Invalid(String),
}

impl MapDef {
    /// Parses and validates a map from its JSON text.
    pub fn from_json(text: &str) -> Result<MapDef, MapError> {
        let map: MapDef = serde_json::from_str(text)?;
        map.validate()?;
        Ok(map)
    }

    /// An open square map without walls (used by benchmark scenarios).
    pub fn open(id: &str, size: f32, orbs: u16) -> MapDef {
        MapDef {
            id: id.to_string(),
            name: id.to_string(),
            width: size,
            height: size,
            walls: Vec::new(),
            spawns: vec![Vec2::splat(size / 2.0)],
            orbs,
        }
    }

    pub fn validate(&self) -> Result<(), MapError> {
        let bad = |why: String| Err(MapError::Invalid(why));
        if self.id.is_empty() || self.id.len() > 32 {
            return bad(format!("id must be 1..=32 bytes, got {:?}", self.id));
        }
        let size_ok = |v: f32| v.is_finite() && (100.0..=MAX_COORD).contains(&v);
        if !size_ok(self.width) || !size_ok(self.height) {
            return bad(format!("size {}x{} must be within 100..={MAX_COORD}", self.width, self.height));
        }
        if self.walls.len() > 4096 {
            return bad(format!("too many walls ({})", self.walls.len()));
        }
        for (index, wall) in self.walls.iter().enumerate() {
            let finite = [wall.x, wall.y, wall.w, wall.h].iter().all(|v| v.is_finite());
            if !finite || wall.w <= 0.0 || wall.h <= 0.0 {
                return bad(format!("wall {index} must have finite position and positive size"));
            }
        }
        if self.spawns.is_empty() || self.spawns.len() > 256 {
            return bad("needs 1..=256 spawn points".to_string());
        }
        for (index, spawn) in self.spawns.iter().enumerate() {
            if !self.is_free(*spawn, crate::rules::consts::PLAYER_RADIUS) {
                return bad(format!("spawn {index} at {spawn} is outside the map or in a wall"));
            }
        }
        if self.orbs > 10_000 {
            return bad(format!("orb count {} is over 10000", self.orbs));
        }
        Ok(())
    }

    /// True when a circle at `p` lies inside the map and touches no wall.
    pub fn is_free(&self, p: Vec2, radius: f32) -> bool {
        p.is_finite()
            && p.x >= radius
            && p.y >= radius
            && p.x <= self.width - radius
            && p.y <= self.height - radius
            && !self.walls.iter().any(|w| w.overlaps_circle(p, radius))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARENA: &str = include_str!("../../assets/maps/arena.json");

    #[test]
    fn shipped_map_is_valid() {
        let map = MapDef::from_json(ARENA).expect("assets/maps/arena.json parses");
        assert_eq!(map.id, "arena");
        assert!(!map.walls.is_empty());
        assert!(map.spawns.len() >= 8);
    }

    #[test]
    fn rejects_spawn_inside_wall() {
        let text = r#"{"id":"x","name":"x","width":1000,"height":1000,
            "walls":[{"x":0,"y":0,"w":500,"h":500}],"spawns":[[100,100]],"orbs":1}"#;
        let err = MapDef::from_json(text);
        assert!(matches!(err, Err(MapError::Invalid(_))), "{err:?}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(MapDef::from_json("{"), Err(MapError::Json(_))));
    }
}
