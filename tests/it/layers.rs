//! The shape of the source tree, checked on every run: the front doors (the SCIM API, the
//! admin console, the LDAP directory, the command line) never import one another; the core
//! and everything below it import no front door; `scim` is pure (no other module of the
//! crate, no locks, no I/O); no files import each other in a circle; and SCIM attribute names
//! are spelled out only in `scim` (the schema model and the LDAP mapping table).
//!
//! Imports are read from the text of each file without its unit tests (`#[cfg(test)] mod
//! tests` at the end) and comments: `crate::a::b` names the file of the longest path that
//! exists; `super::x` the same from the parent module; a `mod.rs` naming a child module's
//! items imports that child. A file naming its own parent module (`super::Error`) uses the
//! vocabulary that module declares for its files, and is not counted as an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The front doors, each one or more top-level modules of the crate (a file `x.rs` or a
/// folder `x/`).
const DOORS: &[&[&str]] = &[&["http"], &["console"], &["ldap"], &["commands", "cli"]];
/// The composition root and the binary: they may import every door.
const ROOT: &[&str] = &["server", "main", "lib"];
/// What `scim` must not use: it decides, and nothing there waits, locks or reads.
/// (A `LazyLock` static built once from constants, such as the built-in model, is allowed.)
const IMPURE: &[&str] = &[
    "Mutex",
    "RwLock",
    "tokio",
    "rusqlite",
    "std::fs",
    "std::net",
    "thread_local",
    "Atomic",
];
/// The common attribute names counted outside `scim` (`"userName"` and so on).
const ATTRIBUTE_NAMES: &[&str] = &[
    "members",
    "manager",
    "password",
    "groups",
    "emails",
    "phoneNumbers",
    "active",
    "userName",
    "displayName",
    "externalId",
    "employeeNumber",
    "department",
];
/// How many of those may appear outside `scim`. Lower it as uses move into the model; never
/// raise it. (The four left are not SCIM attributes: the console login form's `password`
/// field, three times in its HTML, and a token's state `active`.)
const ATTRIBUTE_NAMES_OUTSIDE_SCIM: usize = 4;

struct Source {
    /// Module path: `src/store/rows.rs` is `["store", "rows"]`, `src/store/mod.rs` `["store"]`.
    module: Vec<String>,
    /// The code without unit tests and comments.
    code: String,
    is_mod: bool,
}

fn sources() -> BTreeMap<PathBuf, Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let is_mod = module.last().is_some_and(|m| m == "mod");
            if is_mod || module == ["lib"] {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            out.insert(
                path,
                Source {
                    module,
                    code: code.join("\n"),
                    is_mod: is_mod || rel == Path::new("lib"),
                },
            );
        }
    }
    out
}

/// The identifiers of a path that starts at `at` in `code` (`a::b::c`, or each path of a
/// `{a, b::c}` list, one level deep).
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    let rest = &code[at..];
    if let Some(list) = rest.strip_prefix('{') {
        let end = list.find('}').unwrap_or(list.len());
        return list[..end]
            .split(',')
            .map(|p| {
                p.split("::")
                    .map(|s| s.trim().to_string())
                    .take_while(|s| !s.is_empty() && s.chars().all(is_ident))
                    .collect()
            })
            .filter(|p: &Vec<String>| !p.is_empty())
            .collect();
    }
    let mut path = Vec::new();
    let mut s = rest;
    loop {
        let n = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
        if n == 0 {
            break;
        }
        path.push(s[..n].to_string());
        match s[n..].strip_prefix("::") {
            Some(more) if more.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') => {
                s = more
            }
            _ => break,
        }
    }
    vec![path]
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The modules a file names: paths after `crate::`, after `super::` (made absolute), and a
/// `mod.rs`'s own children named bare.
fn imports(file: &Source) -> Vec<Vec<String>> {
    let code = &file.code;
    let mut out = Vec::new();
    let mut take = |prefix: &str, base: &[String]| {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            let before = code[..at].chars().last();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            for p in paths_at(code, from) {
                let mut full = base.to_vec();
                full.extend(p);
                out.push(full);
            }
        }
    };
    take("crate::", &[]);
    let parent = if file.is_mod {
        &file.module[..file.module.len().saturating_sub(1)]
    } else {
        &file.module[..file.module.len() - 1]
    };
    take("super::", parent);
    if file.is_mod {
        for line in code.lines() {
            let l = line.trim_start();
            let l = l
                .strip_prefix("pub(crate) ")
                .or(l.strip_prefix("pub "))
                .unwrap_or(l);
            if let Some(child) = l.strip_prefix("mod ").and_then(|c| c.strip_suffix(';')) {
                let mut base = file.module.clone();
                base.push(child.to_string());
                take(&format!("{child}::"), &base);
            }
        }
    }
    out
}

/// The file a module path names: the longest prefix that is a module of the crate.
fn resolve<'a>(
    modules: &'a BTreeMap<Vec<String>, PathBuf>,
    path: &[String],
) -> Option<&'a PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n].to_vec()))
}

fn top(module: &[String]) -> &str {
    module.first().map_or("lib", String::as_str)
}

/// The door a top-level module belongs to.
fn door(top: &str) -> Option<&'static [&'static str]> {
    DOORS.iter().copied().find(|d| d.contains(&top))
}

#[test]
fn front_doors_import_no_other_door_and_the_core_imports_none() {
    let files = sources();
    let mut wrong = Vec::new();
    for (path, file) in &files {
        let me = top(&file.module);
        for p in imports(file) {
            let them = door(top(&p));
            if them.is_none() || them == door(me) || ROOT.contains(&me) {
                continue;
            }
            wrong.push(format!("{} imports {}", path.display(), p.join("::")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn scim_is_pure() {
    let files = sources();
    let mut wrong = Vec::new();
    for (path, file) in files.iter().filter(|(_, f)| top(&f.module) == "scim") {
        for p in imports(file) {
            if top(&p) != "scim" {
                wrong.push(format!("{} imports {}", path.display(), p.join("::")));
            }
        }
        for word in IMPURE {
            if file.code.contains(word) {
                wrong.push(format!("{} uses {word}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let files = sources();
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|(p, f)| (f.module.clone(), p.clone()))
        .collect();
    let mut edges: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
    for (path, file) in &files {
        let parent = &file.module[..file.module.len().saturating_sub(1)];
        let to = edges.entry(path).or_default();
        for p in imports(file) {
            if let Some(t) = resolve(&modules, &p)
                && t != path
                && modules.get(parent) != Some(t)
            {
                to.insert(t);
            }
        }
    }
    // Depth-first search for a back edge, reporting the circle it closes.
    fn visit<'a>(
        v: &'a PathBuf,
        edges: &BTreeMap<&'a PathBuf, BTreeSet<&'a PathBuf>>,
        state: &mut BTreeMap<&'a PathBuf, u8>,
        stack: &mut Vec<&'a PathBuf>,
        found: &mut Vec<String>,
    ) {
        state.insert(v, 1);
        stack.push(v);
        for &w in edges.get(v).into_iter().flatten() {
            match state.get(w) {
                None => visit(w, edges, state, stack, found),
                Some(1) => {
                    let start = stack.iter().position(|x| *x == w).unwrap_or(0);
                    let circle: Vec<String> = stack[start..]
                        .iter()
                        .chain([&w])
                        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                        .collect();
                    found.push(circle.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v, 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for v in edges.keys() {
        if !state.contains_key(v) {
            visit(v, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    assert!(found.is_empty(), "circles:\n{}", found.join("\n"));
}

#[test]
fn attribute_names_are_spelled_out_in_the_schema_model() {
    let files = sources();
    let mut count = 0;
    let mut seen = Vec::new();
    for (path, file) in files.iter().filter(|(_, f)| top(&f.module) != "scim") {
        for name in ATTRIBUTE_NAMES {
            let n = file.code.matches(&format!("\"{name}\"")).count();
            if n > 0 {
                count += n;
                seen.push(format!("{} {name} x{n}", path.display()));
            }
        }
    }
    assert!(
        count <= ATTRIBUTE_NAMES_OUTSIDE_SCIM,
        "{count} attribute names outside scim (at most {ATTRIBUTE_NAMES_OUTSIDE_SCIM}):\n{}",
        seen.join("\n")
    );
}
