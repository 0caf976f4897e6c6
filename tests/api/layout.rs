//! The shape of the code: no module of `src/` reaches, through the paths it
//! names, back to itself. A path from `a::b::c` to `a::d::e` is an edge
//! between the siblings `a::b` and `a::d`, so a folder and its files count
//! as one module to their neighbours; a parent and its own submodules may
//! name each other (that is one module's inside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module of the library, by path (`auth::sessions`), with its
/// source (test-only code left out).
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut segments: Vec<String> = relative
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            match segments.last().map(String::as_str) {
                Some("main" | "tests") => continue,
                Some("mod" | "lib") => {
                    segments.pop();
                }
                _ => {}
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let source = match source.find("#[cfg(test)]\nmod tests {") {
                Some(tests) => source[..tests].to_owned(),
                None => source,
            };
            modules.insert(segments.join("::"), source);
        }
    }
    modules
}

/// The module a path names from `module`, if it is one of `known`.
fn resolve(module: &str, path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    match segments.first() {
        Some(&"crate") => {
            base.clear();
            segments.remove(0);
        }
        Some(&"super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
        }
        Some(&"self") => {
            segments.remove(0);
        }
        _ => return None,
    }
    let mut full: Vec<&str> = base.into_iter().chain(segments).collect();
    while !full.is_empty() {
        let candidate = full.join("::");
        if known.contains_key(&candidate) {
            return Some(candidate);
        }
        full.pop();
    }
    None
}

/// The siblings under the common ancestor of `from` and `to`: where an
/// edge between them counts. `None` if one contains the other.
fn siblings(from: &str, to: &str) -> Option<(String, String)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        from.split("::").filter(|s| !s.is_empty()).collect(),
        to.split("::").filter(|s| !s.is_empty()).collect(),
    );
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[..=common].join("::"), b[..=common].join("::")))
}

/// Each module or folder -> the siblings it names (see [`siblings`]).
fn graph(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let path = regex::Regex::new(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+").unwrap();
    let group = regex::Regex::new(r"use ((?:crate|super)(?:::[a-z_]+)*)::\{([^}]*)\}").unwrap();
    let word = regex::Regex::new(r"\b[a-z_][a-z0-9_]*\b").unwrap();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in modules {
        let mut add = |target: Option<String>| {
            if let Some((from, to)) = target.and_then(|t| siblings(module, &t)) {
                edges.entry(to.clone()).or_default();
                edges.entry(from).or_default().insert(to);
            }
        };
        for found in path.find_iter(source) {
            add(resolve(module, found.as_str(), modules));
        }
        for found in group.captures_iter(source) {
            for name in word.find_iter(&found[2]) {
                add(resolve(
                    module,
                    &format!("{}::{}", &found[1], name.as_str()),
                    modules,
                ));
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, trail)) = stack.pop() {
        for next in &edges[&module] {
            if next == start {
                return Some([trail.clone(), vec![start.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [trail.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let modules = modules();
    assert!(
        modules.contains_key("auth::sessions"),
        "{:?}",
        modules.keys()
    );
    let edges = graph(&modules);
    assert!(
        edges["auth::sessions"].contains("auth::signing") && edges["api"].contains("auth"),
        "the graph sees what a module names: {edges:?}"
    );
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|module| cycle_from(module, &edges))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
