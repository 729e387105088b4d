//! The server's settings in layers, one schema for all of them (the serve flags' clap
//! definitions): command-line flags, then `ARENA_<NAME>` environment variables, then a TOML file
//! (`--config FILE` or `ARENA_CONFIG`), then the built-in defaults. clap does the first two and the
//! last; the file's values are installed as the flags' defaults before parsing, so clap's own
//! precedence (flag > env > default) is the whole rule. Unknown keys in the file and unknown
//! `ARENA_` variables are errors that name the key and where it came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

/// Serve arguments that are not settings (no environment variable, not in the file).
const NOT_SETTINGS: [&str; 3] = ["help", "config", "log_format"];

/// Settings that hold secrets: never printed (`arena-server config` shows `<hidden>`, `--help`
/// shows neither the environment's value nor the file's).
pub const SECRETS: [&str; 5] = ["admin_token", "password", "join_token_secret", "lobby_key", "database"];

pub fn is_secret(id: &str) -> bool {
    SECRETS.contains(&id)
}

/// Values from the configuration file, by setting name, as clap would read them from a flag.
#[derive(Debug, Default, Clone)]
pub struct FileLayer {
    pub path: Option<PathBuf>,
    pub values: BTreeMap<String, Vec<String>>,
}

pub fn is_setting(id: &str) -> bool {
    !NOT_SETTINGS.contains(&id)
}

/// The environment variable of a setting: `tick_hz` → `ARENA_TICK_HZ`.
pub fn env_name(id: &str) -> String {
    format!("ARENA_{}", id.to_ascii_uppercase())
}

/// Finds `--config FILE` (or `--config=FILE`) in the arguments, else `ARENA_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("ARENA_CONFIG").map(PathBuf::from)
}

/// Reads and checks the TOML file against the settings `known` (their ids).
pub fn load_file(path: &Path, known: &[String]) -> Result<FileLayer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if !known.contains(&key) {
            return Err(format!(
                "{}: unknown key `{key}` (settings are the serve flags with _ for -, e.g. tick_hz; see `arena-server config`)",
                path.display()
            ));
        }
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(format!(
                "{}: key `{key}` must be a number, text or true/false, not {}",
                path.display(),
                other.type_str()
            )),
        };
        let list = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
            other => vec![scalar(other)?],
        };
        values.insert(key, list);
    }
    Ok(FileLayer { path: Some(path.to_path_buf()), values })
}

/// The serve flags' command with every setting given its environment variable and the file's
/// values as its defaults.
pub fn layer(command: Command, file: &FileLayer) -> Command {
    let values = file.values.clone();
    command.mut_args(move |arg: Arg| {
        let id = arg.get_id().as_str().to_string();
        if !is_setting(&id) {
            return arg;
        }
        let mut arg = arg.env(env_name(&id));
        if is_secret(&id) {
            arg = arg.hide_env_values(true).hide_default_value(true);
        }
        match values.get(&id) {
            Some(list) if arg.get_action().takes_values() => arg.default_values(list.clone()),
            // A switch (`--no-lan`): `no_lan = true` (or 1, yes, on) in the file turns it on.
            Some(list) if list.first().is_some_and(|v| is_truthy(v)) => arg.default_value("true"),
            _ => arg,
        }
    })
}

/// `ARENA_` variables that name no setting (`known`: every variable a setting reads).
/// Kubernetes' service variables (`ARENA_SERVICE_HOST`, `ARENA_PORT_8080_TCP`... for a Service
/// named `arena`) are not ours and are left alone.
pub fn unknown_env(known: &[String]) -> Vec<String> {
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("ARENA_") && name != "ARENA_CONFIG")
        .filter(|name| !is_kubernetes_service_variable(name))
        .filter(|name| !TOOL_VARIABLES.contains(&name.as_str()))
        .filter(|name| !known.iter().any(|known| known == name))
        .collect();
    unknown.sort();
    unknown
}

/// The setting an unknown variable looks like a typo of: the same letters but for the
/// underscores, or one edit away (two for names of 8 letters and more). `ARENA_TICKHZ` is
/// `ARENA_TICK_HZ` mistyped; `ARENA_MAIN` or `ARENA_VERSION` are someone else's.
pub fn near_miss<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let bare = |text: &str| -> Vec<u8> {
        text.trim_start_matches("ARENA_").bytes().filter(|&b| b != b'_').map(|b| b.to_ascii_uppercase()).collect()
    };
    let word = bare(name);
    let limit = if word.len() >= 8 { 2 } else { 1 };
    known
        .iter()
        .map(|setting| (edits(&word, &bare(setting)), setting))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, setting)| setting.as_str())
}

/// Levenshtein distance between two byte strings.
fn edits(a: &[u8], b: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `ARENA_` variables that configure tools around the server, not the server: the peer
/// harness (`../shared/peers/s1-compare.py`) starts the server with them set.
const TOOL_VARIABLES: [&str; 3] = ["ARENA_DIR", "ARENA_SERVER", "ARENA_LOADGEN"];

fn is_kubernetes_service_variable(name: &str) -> bool {
    name.contains("_SERVICE_HOST")
        || name.contains("_SERVICE_PORT")
        || name.ends_with("_PORT")
        || name.contains("_PORT_")
}

fn is_truthy(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

/// Where a setting's value came from, for `arena-server config`.
pub fn source(matches: &ArgMatches, id: &str, file: &FileLayer) -> String {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => "flag".to_string(),
        Some(ValueSource::EnvVariable) => format!("env {}", env_name(id)),
        Some(ValueSource::DefaultValue) if file.values.contains_key(id) => {
            format!("file {}", file.path.as_ref().map_or_else(String::new, |p| p.display().to_string()))
        }
        _ => "default".to_string(),
    }
}

/// One setting as a TOML line: `key = value  # from SOURCE` (commented out when unset; a list
/// for settings that take several values).
pub fn toml_line(id: &str, raw: Option<Vec<String>>, list: bool, source: &str) -> String {
    let quote = |v: &str| {
        if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok_and(f64::is_finite) || v == "true" || v == "false" {
            v.to_string()
        } else {
            toml::Value::String(v.to_string()).to_string()
        }
    };
    let raw = match raw {
        Some(values) if is_secret(id) => Some(values.iter().map(|_| "<hidden>".to_string()).collect()),
        other => other,
    };
    match raw {
        None => format!("# {id} = (unset)  # {source}"),
        Some(values) if values.len() == 1 && !list => format!("{id} = {}  # {source}", quote(&values[0])),
        Some(values) => {
            format!("{id} = [{}]  # {source}", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", "))
        }
    }
}
