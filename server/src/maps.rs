//! The maps a room can be played on: every file in `assets/maps/`, embedded at build time so the
//! binary needs no files beside it, plus the one `--map FILE` loads.

use std::sync::Arc;

use shared::map::MapDef;

/// The map the server uses when none is given: `assets/maps/arena.json`, embedded at build time
/// so the binary needs no files next to it.
pub const DEFAULT_MAP_JSON: &str = include_str!("../../assets/maps/arena.json");

/// Every map shipped in `assets/maps/` (a test checks the directory and this list agree).
pub const BUILTIN_MAPS: [(&str, &str); 3] = [
    ("arena.json", include_str!("../../assets/maps/arena.json")),
    ("duel.json", include_str!("../../assets/maps/duel.json")),
    ("crossfire.json", include_str!("../../assets/maps/crossfire.json")),
];

/// The maps a host may choose from, by id. The first one is the default for new rooms.
#[derive(Debug, Clone)]
pub struct MapCatalog {
    maps: Vec<Arc<MapDef>>,
}

impl MapCatalog {
    /// The built-in maps with `default` first (replacing a built-in map of the same id).
    pub fn with_default(default: Arc<MapDef>) -> MapCatalog {
        let mut maps = vec![default.clone()];
        for (file, json) in BUILTIN_MAPS {
            let map = MapDef::from_json(json).unwrap_or_else(|error| panic!("built-in map {file} is invalid: {error}"));
            if map.id != default.id {
                maps.push(Arc::new(map));
            }
        }
        MapCatalog { maps }
    }

    pub fn default_map(&self) -> Arc<MapDef> {
        self.maps[0].clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<MapDef>> {
        self.maps.iter().find(|map| map.id == id).cloned()
    }

    pub fn ids(&self) -> Vec<String> {
        self.maps.iter().map(|map| map.id.clone()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<MapDef>> {
        self.maps.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_file_is_built_in_and_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/maps");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".json"))
            .collect();
        files.sort();
        let mut listed: Vec<String> = BUILTIN_MAPS.iter().map(|(file, _)| file.to_string()).collect();
        listed.sort();
        assert_eq!(files, listed, "assets/maps/ and BUILTIN_MAPS disagree");
        let catalog = MapCatalog::with_default(Arc::new(MapDef::from_json(BUILTIN_MAPS[0].1).unwrap()));
        assert_eq!(catalog.ids(), ["arena", "duel", "crossfire"]);
        assert!(catalog.get("duel").is_some() && catalog.get("nope").is_none());
    }
}
