//! `cargo xtask floors`: keeps the import graph that ARCHITECTURE.md draws.
//!
//! ARCHITECTURE.md's "Floors" table puts every source file of `shared/`, `server/` and
//! `client-web/` on a numbered floor. This reads each file's paths (`use` lines, groups included,
//! and paths written inline such as `crate::room::Room`), resolves each to the file that defines
//! the module it names, and fails on:
//! - an arrow up: a file naming a file on a higher floor;
//! - a circle: files that reach each other (on one floor or across floors), found as the strongly
//!   connected components of the file graph;
//! - a file no row of the table covers;
//! - a source file over [`MAX_LINES`] lines (a test module's own file, `*tests.rs`, aside: a large
//!   test module goes in a file of its own, `#[cfg(test)] #[path = "x_tests.rs"] mod tests;`).
//!
//! Method calls are not arrows (an `impl Room` block in `room/seats.rs` that `room/state.rs`
//! calls is reached through the type, and only `seats.rs` names `state.rs`). `#[cfg(test)]`
//! modules are left out: a test may reach across floors to set up what it checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Longest source file, in lines (test modules' own files aside).
pub const MAX_LINES: usize = 800;

/// One row of the table: a floor, the crate folder, and the paths (files or folders ending in
/// `/`) under its `src/`.
#[derive(Debug, Clone)]
pub struct Row {
    pub floor: u32,
    pub krate: String,
    pub paths: Vec<String>,
}

/// What the check found wrong, one line each.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    let rows = parse_table(&doc)?;
    let crates: BTreeSet<String> = rows.iter().map(|r| r.krate.clone()).collect();
    let mut problems = Vec::new();
    // The table and the map of changes name only what exists.
    for row in &rows {
        for path in &row.paths {
            if !root.join(&row.krate).join("src").join(path).exists() {
                problems.push(format!("the floors table names {}/src/{path}, which does not exist", row.krate));
            }
        }
    }
    for path in named_paths(&doc, "\n## Where to change what") {
        if !root.join(&path).exists() {
            problems.push(format!("\"Where to change what\" names {path}, which does not exist"));
        }
    }
    for krate in crates {
        let src = root.join(&krate).join("src");
        let mut files = BTreeMap::new();
        collect(&src, &src, &mut files)?;
        let krate_rows: Vec<&Row> = rows.iter().filter(|r| r.krate == krate).collect();
        problems.extend(check_crate(&krate, &files, &krate_rows));
    }
    Ok(problems)
}

/// Runs the check and prints what it found; an error when anything is wrong.
pub fn run(root: &Path) -> Result<()> {
    let problems = check(root)?;
    for problem in &problems {
        println!("floors: {problem}");
    }
    if !problems.is_empty() {
        bail!("{} floor problem(s) (see ARCHITECTURE.md, \"Floors\")", problems.len());
    }
    println!("floors: every arrow points down, no circle, no file over {MAX_LINES} lines");
    Ok(())
}

/// The rows of the table under the `## Floors` heading: `| N | crate | `path`, `path` | … |`.
pub fn parse_table(doc: &str) -> Result<Vec<Row>> {
    let section = doc.split("\n## Floors").nth(1).context("ARCHITECTURE.md has no \"## Floors\" section")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(floor) = cells.first().and_then(|c| c.split_whitespace().next()).and_then(|n| n.parse().ok()) else {
            continue; // the header and the rule under it
        };
        let krate = cells.get(1).map(|c| c.trim_matches('`').trim_end_matches('/').to_string()).unwrap_or_default();
        let paths: Vec<String> =
            cells.get(2).map(|c| c.split('`').skip(1).step_by(2).map(str::to_string).collect()).unwrap_or_default();
        if krate.is_empty() || paths.is_empty() {
            bail!("floors table: a row without a crate or paths: {line}");
        }
        rows.push(Row { floor, krate, paths });
    }
    if rows.is_empty() {
        bail!("the \"## Floors\" section of ARCHITECTURE.md has no rows");
    }
    Ok(rows)
}

/// The repository paths (`a/b.rs`, `a/b/`) written in backticks in the section under `heading`.
pub fn named_paths(doc: &str, heading: &str) -> Vec<String> {
    let Some(section) = doc.split(heading).nth(1) else { return Vec::new() };
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains('/') && !s.contains(' ') && (s.ends_with(".rs") || s.ends_with('/') || s.ends_with(".html"))
        })
        .map(str::to_string)
        .collect()
}

fn collect(dir: &Path, src: &Path, files: &mut BTreeMap<String, String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, src, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src).expect("under src").to_string_lossy().replace('\\', "/");
            files.insert(rel, std::fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// The check over one crate's files (`path under src/` → text).
pub fn check_crate(krate: &str, files: &BTreeMap<String, String>, rows: &[&Row]) -> Vec<String> {
    let mut problems = Vec::new();
    let modules: BTreeMap<Vec<String>, String> = files.keys().map(|rel| (module_of(rel), rel.clone())).collect();
    let floor_of = |rel: &str| -> Option<u32> {
        rows.iter()
            .flat_map(|row| row.paths.iter().map(move |p| (p, row.floor)))
            .filter(|(p, _)| if p.ends_with('/') { rel.starts_with(p.as_str()) } else { rel == p.as_str() })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, floor)| floor)
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let code = strip_tests(&blank_comments_and_literals(text));
        let lines = text.lines().count();
        if lines > MAX_LINES && !rel.ends_with("tests.rs") {
            problems.push(format!(
                "{krate}/src/{rel}: {lines} lines (at most {MAX_LINES}): split it by job, or move its tests to a file of their own"
            ));
        }
        let me = module_of(rel);
        let children = declared_children(&code);
        let mut targets = BTreeSet::new();
        for path in paths_in(&code) {
            let resolved = resolve(&path, &me, &children);
            let Some(absolute) = resolved else { continue };
            if let Some(target) = longest_module(&absolute, &modules)
                && target != rel
            {
                targets.insert(target.clone());
            }
        }
        if std::env::var_os("FLOORS_EDGES").is_some() {
            println!("{krate}/src/{rel} -> {}", targets.iter().cloned().collect::<Vec<_>>().join(" "));
        }
        edges.insert(rel.clone(), targets);
    }
    for (rel, targets) in &edges {
        let Some(floor) = floor_of(rel) else {
            problems.push(format!("{krate}/src/{rel}: on no floor (add it to a row of the table)"));
            continue;
        };
        for target in targets {
            if let Some(target_floor) = floor_of(target)
                && target_floor > floor
            {
                problems.push(format!(
                    "{krate}/src/{rel} (floor {floor}) imports {target} (floor {target_floor}): an arrow up"
                ));
            }
        }
    }
    for circle in circles(&edges) {
        problems.push(format!("{krate}/src: a circle: {}", circle.join(" → ")));
    }
    problems
}

/// `room/state.rs` → `["room", "state"]`; `room/mod.rs` → `["room"]`; `lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// `mod x;` and `pub mod x;` (not inline `mod x { … }`): the names a path may start with.
fn declared_children(code: &str) -> BTreeSet<String> {
    let mut children = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim();
        let rest = line.strip_prefix("pub ").or_else(|| line.strip_prefix("pub(crate) ")).unwrap_or(line);
        if let Some(name) = rest.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            children.insert(name.trim().to_string());
        }
    }
    children
}

/// The path as seen from the crate root, or `None` for paths into other crates.
fn resolve(path: &[String], me: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => me.to_vec(),
        "super" => {
            // In `a/b.rs` (module a::b) and in `a/b/mod.rs` alike, `super` is `a`.
            me[..me.len().saturating_sub(1)].to_vec()
        }
        name if children.contains(name) => {
            let mut base = me.to_vec();
            base.push(name.to_string());
            return Some(base.into_iter().chain(path[1..].iter().cloned()).collect());
        }
        _ => return None,
    };
    let mut rest = &path[1..];
    while let Some(next) = rest.first() {
        if next == "super" {
            base.pop();
            rest = &rest[1..];
        } else {
            break;
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn longest_module<'a>(path: &[String], modules: &'a BTreeMap<Vec<String>, String>) -> Option<&'a String> {
    (1..=path.len()).rev().find_map(|n| modules.get(&path[..n]))
}

/// Every path the code names that starts at `crate`, `self`, `super` or any name (the caller
/// keeps those it can resolve): `use` trees expanded, plus paths written inline.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if at_word && code[i..].starts_with("use ") {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            expand_use(&code[i + 4..end], &mut Vec::new(), &mut paths);
            i = end;
            continue;
        }
        if at_word && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                i += 1;
            }
            let word = &code[start..i];
            if word.contains("::") {
                let segments: Vec<String> = word.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
                if segments.len() > 1 {
                    paths.push(segments);
                }
            }
            continue;
        }
        i += 1;
    }
    paths
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e` (a leading `pub`/`pub(crate)` ignored).
fn expand_use(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let tree = tree.strip_prefix("::").unwrap_or(tree);
    match tree.find('{') {
        None => {
            let head = tree.split(" as ").next().unwrap_or(tree).trim();
            let mut path = prefix.clone();
            path.extend(
                head.split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                    .map(str::to_string),
            );
            if head.split("::").next().map(str::trim) == Some("self") && prefix.is_empty() {
                path.insert(0, "self".to_string());
            }
            if !path.is_empty() {
                out.push(path);
            }
        }
        Some(open) => {
            let head: Vec<String> =
                tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
            let close = tree.rfind('}').unwrap_or(tree.len());
            let inner = &tree[open + 1..close];
            let depth_before = prefix.len();
            prefix.extend(head);
            let mut depth = 0;
            let mut start = 0;
            for (index, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_use(&inner[start..index], prefix, out);
                        start = index + 1;
                    }
                    _ => {}
                }
            }
            expand_use(&inner[start..], prefix, out);
            prefix.truncate(depth_before);
        }
    }
}

/// The text with comments removed and string and char literals emptied (lines kept), so paths
/// and braces inside them are not read as code.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !prev_is_ident(&chars, i) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            out.push_str("\"\"");
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if chars[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The code without its `#[cfg(test)]` items (a module with its braces, or one item).
fn strip_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at its matching close brace, or at a `;` met before any brace.
        let mut depth = 0usize;
        let mut end = after.len();
        for (index, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = index + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The circles of the graph: its strongly connected components of more than one file (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        let edges = state.edges;
        for target in edges.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The repository root (xtask's parent).
#[cfg(test)]
fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
    }

    fn rows(spec: &[(u32, &[&str])]) -> Vec<Row> {
        spec.iter()
            .map(|(floor, paths)| Row {
                floor: *floor,
                krate: "k".into(),
                paths: paths.iter().map(|p| p.to_string()).collect(),
            })
            .collect()
    }

    fn problems(files: &[(&str, &str)], spec: &[(u32, &[&str])]) -> Vec<String> {
        let rows = rows(spec);
        let refs: Vec<&Row> = rows.iter().collect();
        check_crate("k", &tree(files), &refs)
    }

    #[test]
    fn the_repository_keeps_its_floors() {
        let found = check(&repo_root()).expect("the check runs");
        assert!(found.is_empty(), "ARCHITECTURE.md's floors are broken:\n{}", found.join("\n"));
    }

    #[test]
    fn an_arrow_up_is_found_in_every_way_a_path_is_written() {
        let spec: &[(u32, &[&str])] = &[(1, &["low/"]), (2, &["high.rs", "lib.rs"])];
        for import in [
            "use crate::high::Thing;",
            "use crate::{high::Thing, other};",
            "use crate::{x::{y}, high};",
            "fn f() { let _ = crate::high::make(); }",
            "use super::super::high::Thing;",
        ] {
            let found = problems(&[("lib.rs", "mod low; mod high;"), ("low/a.rs", import), ("high.rs", "")], spec);
            assert!(
                found.iter().any(|p| p.contains("low/a.rs (floor 1) imports high.rs (floor 2)")),
                "{import}: {found:?}"
            );
        }
        // Down is fine; so is a path in a comment, a string or a test module.
        let fine = problems(
            &[
                ("lib.rs", "mod low; mod high;"),
                (
                    "low/a.rs",
                    "// crate::high\nconst S: &str = \"crate::high::X\";\n#[cfg(test)]\nmod tests { use crate::high::X; }",
                ),
                ("high.rs", "use crate::low::a::Thing;"),
            ],
            spec,
        );
        assert!(fine.is_empty(), "{fine:?}");
    }

    #[test]
    fn a_circle_on_one_floor_is_found_and_a_child_path_counts() {
        let spec: &[(u32, &[&str])] = &[(1, &["room/", "lib.rs"])];
        let found = problems(
            &[
                ("lib.rs", "mod room;"),
                ("room/mod.rs", "mod live;\nuse live::Stats;\npub struct Public;"),
                ("room/live.rs", "use super::Public;\npub struct Stats;"),
            ],
            spec,
        );
        assert_eq!(found, vec!["k/src: a circle: room/live.rs → room/mod.rs".to_string()], "{found:?}");
    }

    #[test]
    fn long_files_and_files_on_no_floor_are_found() {
        let long = "fn f() {}\n".repeat(MAX_LINES + 1);
        let tested =
            format!("{}#[cfg(test)]\nmod tests {{\n{}}}\n", "fn f() {}\n".repeat(10), "fn g() {}\n".repeat(900));
        let found = problems(
            &[("a.rs", &long), ("b.rs", &tested), ("b_tests.rs", &long), ("c.rs", "")],
            &[(1, &["a.rs", "b.rs", "b_tests.rs"])],
        );
        assert!(found.iter().any(|p| p.starts_with("k/src/a.rs: 801 lines")), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("k/src/b.rs: 913 lines")), "inline tests count: {found:?}");
        assert!(!found.iter().any(|p| p.contains("b_tests.rs")), "a test module's own file does not: {found:?}");
        assert!(found.iter().any(|p| p.contains("c.rs: on no floor")), "{found:?}");
    }

    #[test]
    fn the_map_of_changes_names_paths_only_in_backticks() {
        let doc = "## Where to change what\n| a | `server/src/room/host.rs` (`Room::host_command`), `x y/z.rs` |\n## Next\n`a/b.rs`";
        assert_eq!(named_paths(doc, "## Where to change what"), vec!["server/src/room/host.rs".to_string()]);
    }

    #[test]
    fn the_table_is_read_from_its_section() {
        let doc = "# A\n## Floors\n| floor | crate | files |\n|---|---|---|\n| 2 shells | `server/` | `net/`, `lan.rs` | x |\n| 1 | `server` | `sim/` | |\n## Next\n| 9 | `x` | `y` |\n";
        let rows = parse_table(doc).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].floor, rows[0].krate.as_str(), rows[0].paths.clone()),
            (2, "server", vec!["net/".to_string(), "lan.rs".to_string()])
        );
    }
}
