//! Core's modules form a graph without cycles: each one can be read, tested and moved with only the
//! modules below it. The graph is read from the `crate::<module>` paths in `src/*.rs` (comments
//! dropped, test modules included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
        if let Some(name) =
            name.filter(|n| n != "lib" && path.extension().is_some_and(|e| e == "rs"))
        {
            sources.insert(name, std::fs::read_to_string(&path).expect("read module"));
        }
    }
    let names: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let code: String = text
                .lines()
                .map(|line| line.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let mut uses = BTreeSet::new();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                // `crate::a::..` names one module, `crate::{a, b::c}` several.
                let items: Vec<&str> = match rest.strip_prefix('{') {
                    Some(inner) => inner.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![rest],
                };
                for item in items {
                    let word = item
                        .trim()
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap_or("");
                    if names.contains(word) && word != module {
                        uses.insert(word.to_owned());
                    }
                }
            }
            (module.clone(), uses)
        })
        .collect()
}

/// The first cycle met in a depth-first walk, as a path that ends where it starts.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn core_modules_import_each_other_without_cycles() {
    let graph = module_graph();
    // The reader must see the edges that exist, or the absence of a cycle proves nothing.
    assert!(graph["service"].contains("refresh") && graph["refresh"].contains("crypto"));
    if let Some(found) = cycle(&graph) {
        panic!("import cycle among core modules: {}", found.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")];
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
        graph.entry(to.into()).or_default();
    }
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.get_mut("c").unwrap().remove("a");
    assert_eq!(cycle(&graph), None);
}
