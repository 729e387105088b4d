//! The README's table of server flags is checked against the binary's own `--help`, both ways, so
//! neither can drift from the other.

use std::collections::BTreeSet;

fn long_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i + 2 < bytes.len() {
        if bytes[i] == '-'
            && bytes[i + 1] == '-'
            && bytes[i + 2].is_ascii_lowercase()
            && (i == 0 || !bytes[i - 1].is_alphanumeric() && bytes[i - 1] != '-')
        {
            let name: String = bytes[i + 2..].iter().take_while(|c| c.is_ascii_lowercase() || **c == '-').collect();
            flags.insert(name.trim_end_matches('-').to_string());
            i += 2 + name.len();
        } else {
            i += 1;
        }
    }
    flags
}

#[test]
fn the_readme_documents_every_server_flag_and_no_other() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = readme.split("## Server flags").nth(1).expect("a Server flags section").split("\n## ").next().unwrap();
    // The flag column of each row.
    let documented: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .flat_map(|l| long_flags(l.split(" | ").next().unwrap_or("")))
        .collect();
    let help =
        std::process::Command::new(env!("CARGO_BIN_EXE_arena-server")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut offered = long_flags(&help);
    offered.remove("help");
    offered.remove("version");
    let missing: Vec<_> = offered.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&offered).collect();
    assert!(missing.is_empty(), "flags in --help but not in the README's table: {missing:?}");
    assert!(stale.is_empty(), "flags in the README's table that the server does not have: {stale:?}");
}
