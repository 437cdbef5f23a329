//! Imports go one way: no two files inside `engine/src`, `server/src` or `bench/src/load`
//! import each other, directly or round a loop (docs/architecture.md, "Where the code
//! lives"). This reads the sources as text, so a new loop fails here, not in review.
//!
//! A file imports another when its code names an item of the other's module through a
//! path that starts at `crate`, `super`, `self` or one of its own child modules (in a
//! `use` or written out, e.g. `super::dto::HoldBody`). A path is resolved through `pub use`
//! re-exports to the file that defines the item (`crate::Engine` is `engine/src/engine.rs`,
//! not `lib.rs`). Declaring a child (`mod x;`), comments, strings and `#[cfg(test)]`
//! modules are not imports. A crate root's `pub use` lines are its facade: resolved through,
//! not imports of the root.
//!
//! [`ALLOWED`] names the imports that close a loop today in files other work is moving;
//! without them no loop may be left, and the list may only shrink: an allowed import that
//! is no longer there, or no longer on a loop, fails the test until it is taken off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports (importing file, imported file) allowed to close a loop: none is left. A loop
/// that cannot be broken at once goes here, named, and leaves as soon as it can.
const ALLOWED: &[(&str, &str)] = &[];

/// A crate: its name, its source directory, and the directories whose loops count.
struct Crate {
    src: &'static str,
    checked: &'static [&'static str],
}

const CRATES: &[Crate] = &[
    Crate {
        src: "engine/src",
        checked: &["engine/src"],
    },
    Crate {
        src: "server/src",
        checked: &["server/src"],
    },
    Crate {
        src: "bench/src",
        checked: &["bench/src/load"],
    },
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The source with comments, string and char literals blanked (lifetimes kept).
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
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
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..." or r#"..."#.
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
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a), kept.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The source without its `#[cfg(test)]` items (a test module, a test-only function).
fn without_tests(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // Skip the item: up to its first `;` before any `{`, or to its matching `}`.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
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

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A `use` tree's paths: `a::{b, c::{d, self}}` is `a::b`, `a::c::d`, `a::c`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').expect("a closed use group")];
        let depth_before = prefix.len();
        prefix.extend(head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_into(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_into(&inner[start..], prefix, out);
        prefix.truncate(depth_before);
    } else if !tree.is_empty() {
        let mut path = prefix.clone();
        for segment in tree.split("::") {
            if segment == "self" && !path.is_empty() {
                continue;
            }
            path.push(segment.to_string());
        }
        out.push(path);
    }
}

/// One `use` statement: whether it is `pub` (any visibility), and its paths.
struct Use {
    public: bool,
    paths: Vec<Vec<String>>,
}

/// The `use` statements of stripped source (renames `x as y` keep `x`), and the source
/// without them.
fn uses(source: &str) -> (Vec<Use>, String) {
    let mut out = Vec::new();
    let mut rest = String::with_capacity(source.len());
    let bytes = source.as_bytes();
    let mut from = 0;
    let mut kept = 0;
    while let Some(at) = source[from..].find("use ") {
        let at = from + at;
        from = at + 4;
        if at > 0 && is_ident(bytes[at - 1] as char) {
            continue;
        }
        let line_start = source[..at]
            .rfind(['\n', ';', '{', '}'])
            .map_or(0, |i| i + 1);
        // What stands before `use` on its line, after any attribute: nothing or a visibility.
        let lead = source[line_start..at]
            .rsplit(']')
            .next()
            .unwrap_or("")
            .trim();
        if !(lead.is_empty() || lead.starts_with("pub")) {
            continue;
        }
        let public = !lead.is_empty();
        let Some(end) = source[at..].find(';') else {
            break;
        };
        let body = &source[at + 4..at + end];
        let body = strip_renames(body);
        out.push(Use {
            public,
            paths: expand(&body),
        });
        rest.push_str(&source[kept..at]);
        from = at + end;
        kept = from;
    }
    rest.push_str(&source[kept..]);
    (out, rest)
}

/// `a::b as c` becomes `a::b`, inside groups too.
fn strip_renames(tree: &str) -> String {
    let mut out = String::new();
    let mut rest = tree;
    while let Some(at) = rest.find(" as ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 4..];
        let skip = after
            .trim_start()
            .find(|c: char| !is_ident(c))
            .unwrap_or(after.trim_start().len());
        let leading = after.len() - after.trim_start().len();
        rest = &after[leading + skip..];
    }
    out.push_str(rest);
    out
}

/// Paths written out in code that start at `crate`, `super`, `self` or one of `children`
/// (not after `::` or a letter, so `engine::crate_x` and `a::super_b` are not paths).
fn written_paths(source: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut path = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            path.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':')
                && chars.get(j + 1) == Some(&':')
                && chars.get(j + 2).is_some_and(|c| is_ident(*c))
            {
                j += 2;
            } else {
                break;
            }
        }
        let first = path[0].as_str();
        if path.len() > 1
            && (matches!(first, "crate" | "super" | "self") || children.contains(first))
        {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

/// One source file, read.
struct File {
    /// Its path from the workspace root.
    name: String,
    /// Its module path in its crate (`[]` for the root).
    module: Vec<String>,
    /// Whether it is the crate root.
    root: bool,
    /// Its child modules declared with `mod x;`.
    children: BTreeSet<String>,
    uses: Vec<Use>,
    written: Vec<Vec<String>>,
    /// The names of the items it defines.
    defines: BTreeSet<String>,
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_string()),
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // A binary's own tree (src/bin) is another crate.
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn definitions(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let words: Vec<&str> = source
        .split(|c: char| !is_ident(c) && c != '!')
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        if matches!(
            pair[0],
            "fn" | "struct"
                | "enum"
                | "const"
                | "static"
                | "type"
                | "trait"
                | "union"
                | "mod"
                | "macro_rules!"
        ) {
            out.insert(pair[1].to_string());
        }
    }
    out
}

fn read_crate(workspace: &Path, krate: &Crate) -> BTreeMap<Vec<String>, File> {
    let src = workspace.join(krate.src);
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut files = BTreeMap::new();
    for path in paths {
        if path.file_name().is_some_and(|n| n == "main.rs") {
            continue; // the binary's root, another crate
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = without_tests(&strip(&text));
        let children: BTreeSet<String> = uses_of_mod(&code);
        let module = module_of(&src, &path);
        let (uses, code) = uses(&code);
        let file = File {
            name: path
                .strip_prefix(workspace)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            root: module.is_empty(),
            written: written_paths(&code, &children),
            uses,
            defines: definitions(&code),
            children,
            module: module.clone(),
        };
        files.insert(module, file);
    }
    files
}

/// The child modules a file declares (`mod x;`, `pub mod x;`).
fn uses_of_mod(code: &str) -> BTreeSet<String> {
    let words: Vec<&str> = code
        .split(|c: char| !is_ident(c) && c != ';')
        .flat_map(|w| {
            // Keep `x;` apart as `x` and `;`.
            let (name, semi) = w.strip_suffix(';').map_or((w, false), |n| (n, true));
            [Some(name), semi.then_some(";")].into_iter().flatten()
        })
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(3)
        .filter(|w| w[0] == "mod" && w[2] == ";")
        .map(|w| w[1].to_string())
        .collect()
}

/// The absolute module path of `path` as written in the module `at`, or `None` for a
/// path into another crate.
fn absolute(at: &[String], children: &BTreeSet<String>, path: &[String]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            out.extend_from_slice(at);
            rest = &path[1..];
        }
        Some("super") => {
            out.extend_from_slice(at);
            while rest.first().is_some_and(|s| s == "super") {
                out.pop()?;
                rest = &rest[1..];
            }
        }
        Some(first) if children.contains(first) => out.extend_from_slice(at),
        _ => return None,
    }
    out.extend(rest.iter().cloned());
    Some(out)
}

/// The file that defines what the absolute path names (through `pub use` re-exports).
fn resolve(files: &BTreeMap<Vec<String>, File>, path: &[String], depth: usize) -> Option<String> {
    let split = (0..=path.len())
        .rev()
        .find(|&n| files.contains_key(&path[..n]))?;
    let file = &files[&path[..split]];
    let Some(name) = path.get(split) else {
        return Some(file.name.clone());
    };
    if depth < 8 && !file.defines.contains(name) {
        for re_export in file.uses.iter().filter(|u| u.public) {
            for target in &re_export.paths {
                let Some(abs) = absolute(&file.module, &file.children, target) else {
                    continue;
                };
                let last = target.last().map(String::as_str);
                if last == Some(name.as_str()) {
                    let mut full = abs;
                    full.extend(path[split + 1..].iter().cloned());
                    return resolve(files, &full, depth + 1);
                }
                if last == Some("*") {
                    let mut full = abs[..abs.len() - 1].to_vec();
                    full.extend(path[split..].iter().cloned());
                    if let Some(found) = resolve(files, &full, depth + 1) {
                        if files
                            .values()
                            .any(|f| f.name == found && f.defines.contains(name))
                        {
                            return Some(found);
                        }
                    }
                }
            }
        }
    }
    Some(file.name.clone())
}

/// Every import (importing file, imported file) of a crate.
fn imports(files: &BTreeMap<Vec<String>, File>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for file in files.values() {
        let used = file
            .uses
            .iter()
            .filter(|u| !(file.root && u.public))
            .flat_map(|u| u.paths.iter());
        for path in used.chain(file.written.iter()) {
            let Some(abs) = absolute(&file.module, &file.children, path) else {
                continue;
            };
            let abs: Vec<String> = abs.into_iter().filter(|s| s != "*").collect();
            if let Some(target) = resolve(files, &abs, 0) {
                if target != file.name {
                    out.insert((file.name.clone(), target));
                }
            }
        }
    }
    out
}

/// The imports that lie on a loop: those inside a strongly connected set of files.
fn on_loops(edges: &BTreeSet<(String, String)>) -> BTreeSet<(String, String)> {
    let reach = |from: &str, to: &str| -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(at) = stack.pop() {
            if at == to {
                return true;
            }
            if seen.insert(at.clone()) {
                stack.extend(
                    edges
                        .iter()
                        .filter(|(a, _)| *a == at)
                        .map(|(_, b)| b.clone()),
                );
            }
        }
        false
    };
    edges.iter().filter(|(a, b)| reach(b, a)).cloned().collect()
}

fn all_imports() -> BTreeSet<(String, String)> {
    let workspace = workspace();
    let mut out = BTreeSet::new();
    for krate in CRATES {
        let files = read_crate(&workspace, krate);
        for (from, to) in imports(&files) {
            let checked = |name: &str| krate.checked.iter().any(|dir| name.starts_with(dir));
            if checked(&from) && checked(&to) {
                out.insert((from, to));
            }
        }
    }
    out
}

#[test]
fn no_two_files_import_each_other_round_a_loop() {
    let edges = all_imports();
    assert!(
        edges.len() > 50,
        "the reader found too few imports to be reading the tree: {edges:?}"
    );
    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    // Without the allowed imports, no loop is left.
    let rest: BTreeSet<_> = edges.difference(&allowed).cloned().collect();
    let looping = on_loops(&rest);
    assert!(
        looping.is_empty(),
        "imports on a loop (break it; see docs/architecture.md, \"Where the code lives\"): \
         {looping:#?}"
    );
    // And each allowed one still closes a loop: once it is gone, take it off the list.
    let closing = on_loops(&edges);
    let stale: Vec<_> = allowed.difference(&closing).collect();
    assert!(
        stale.is_empty(),
        "ALLOWED names imports no longer there or no longer on a loop (take them off): \
         {stale:#?}"
    );
}

#[test]
fn the_reader_sees_the_imports_it_must() {
    let edges = all_imports();
    for (from, to) in [
        // A grouped `use super::...`.
        ("server/src/api/holds.rs", "server/src/api/convert.rs"),
        // Through the crate root's re-export: `crate::Engine` is engine.rs.
        ("engine/src/decide.rs", "engine/src/engine.rs"),
        // A path written out in code, no `use`.
        ("server/src/api/dto.rs", "server/src/api/dto_sale.rs"),
        // A child module named from its parent (bench/src/load/mod.rs: `use report::...`).
        ("bench/src/load/mod.rs", "bench/src/load/report.rs"),
    ] {
        assert!(
            edges.contains(&(from.to_string(), to.to_string())),
            "{from} imports {to}, but the reader missed it"
        );
    }
    // And a loop is found when there is one.
    let mut looped = BTreeSet::new();
    looped.insert(("a".to_string(), "b".to_string()));
    looped.insert(("b".to_string(), "c".to_string()));
    looped.insert(("c".to_string(), "a".to_string()));
    looped.insert(("c".to_string(), "d".to_string()));
    assert_eq!(on_loops(&looped).len(), 3);
}

/// Prints every import the reader sees, one `from -> to` a line (for a loop to break):
/// `cargo test --release -p boxoffice-tests --test import_loops -- --ignored --nocapture`.
#[test]
#[ignore = "prints the import graph; asserts nothing"]
fn print_the_imports() {
    for (from, to) in all_imports() {
        println!("{from} -> {to}");
    }
}
