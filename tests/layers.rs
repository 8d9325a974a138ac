//! The crate's top-level modules form layers: each one uses only the modules below it, so the
//! graph of `crate::` references between them has no cycle, and every edge goes down the order
//! declared in [`LAYERS`]. Read from the source (src/**/*.rs, comments and literals left out):
//! `crate::x` paths and `use crate::{x, ..}` groups, `super::` resolved against the file's (and
//! inline `mod`'s) place. src/lib.rs and src/main.rs are the root, above every layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of lower layers, and of its own layer as long
/// as that makes no cycle. A new top-level module goes in the layer of what it may use.
const LAYERS: &[&[&str]] = &[
    // Leaves: constants and helpers with no crate imports worth a layer.
    &[
        "exit",
        "write_parts",
        "log_limit",
        "alloc_count",
        "elf",
        "values",
    ],
    // The libc calls.
    &["sys"],
    // Addresses and listening sockets; protocol over bytes.
    &["listen"],
    &["http"],
    // The observers: fed typed facts by the layers they observe.
    &["stats", "logging"],
    &["tls"],
    &["static_files"],
    // The app ABI, then the sockets-and-threads server that calls it.
    &["app"],
    &["server"],
    &["privilege"],
    &["supervisor"],
    // The author's commands (`new`, `header`).
    &["scaffold"],
    // The command line and the --config file, which build each layer's typed settings.
    &["cli"],
    &["config"],
    // The one error type `run` returns, gathering each layer's typed errors.
    &["error"],
];

/// Edges that still go against [`LAYERS`], each with why; both tests leave them out. The test
/// fails when one is no longer there, so this list only shrinks.
const NOT_YET: &[(&str, &str, &str)] = &[];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under src/: `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`,
/// `src/lib.rs` is `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

/// The tokens that matter for paths: identifiers, `::`, braces and commas. Comments, string,
/// byte-string, raw-string and char literals are dropped; lifetimes are kept apart from chars.
fn tokens(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Token::Other);
        } else if (c == b'r' || c == b'b')
            && !b.get(i.wrapping_sub(1)).is_some_and(|p| is_ident(*p))
            && raw_string_len(&b[i..]).is_some()
        {
            i += raw_string_len(&b[i..]).expect("checked");
            out.push(Token::Other);
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else if let Some(len) = std::str::from_utf8(&b[i + 1..])
                .ok()
                .and_then(|s| s.chars().next())
                .map(char::len_utf8)
                .filter(|len| b.get(i + 1 + len) == Some(&b'\''))
            {
                i += len + 2;
            } else {
                i += 1;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
            }
            out.push(Token::Other);
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(Token::Ident(text[start..i].to_owned()));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            out.push(match c {
                b'{' => Token::Open,
                b'}' => Token::Close,
                b',' => Token::Comma,
                _ => Token::Other,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The length of a raw string (`r"..."`, `r#"..."#`, `br"..."`) or byte string (`b"..."`) at the
/// start of `b`.
fn raw_string_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    if b.first() == Some(&b'b') {
        i += 1;
        if b.get(i) == Some(&b'"') {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            return Some(j + 1);
        }
        if b.get(i) == Some(&b'\'') {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'\'' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            return Some(j + 1);
        }
    }
    if b.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    i += hashes;
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let close = format!("\"{}", "#".repeat(hashes)).into_bytes();
    while i < b.len() {
        if b[i..].starts_with(&close) {
            return Some(i + close.len());
        }
        i += 1;
    }
    Some(b.len())
}

/// The top-level modules a file refers to, given the file's module path.
fn referenced_tops(text: &str, file_module: &[String]) -> BTreeSet<String> {
    let toks = tokens(text);
    let mut found = BTreeSet::new();
    // Inline `mod name {` blocks: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Token::Open => depth += 1,
            Token::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Ident(kw)
                if kw == "mod"
                    && matches!(toks.get(i + 2), Some(Token::Open))
                    && matches!(toks.get(i + 1), Some(Token::Ident(_))) =>
            {
                if let Some(Token::Ident(name)) = toks.get(i + 1) {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Token::Ident(first)
                if (first == "crate" || first == "super")
                    && toks.get(i + 1) == Some(&Token::PathSep)
                    && !matches!(toks.get(i.wrapping_sub(1)), Some(Token::PathSep)) =>
            {
                let mut here: Vec<String> = file_module.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut j = i;
                let mut base: Vec<String> = if first == "crate" {
                    j += 2;
                    Vec::new()
                } else {
                    while toks.get(j) == Some(&Token::Ident("super".into()))
                        && toks.get(j + 1) == Some(&Token::PathSep)
                    {
                        here.pop();
                        j += 2;
                    }
                    here
                };
                if let Some(top) = base.first() {
                    found.insert(top.clone());
                } else {
                    match toks.get(j) {
                        Some(Token::Ident(name)) => {
                            base.push(name.clone());
                            found.insert(name.clone());
                        }
                        Some(Token::Open) => {
                            // `use crate::{a::b, c, d::{e, f}}`: the first name of each member.
                            let mut level = 0;
                            let mut expect_member = true;
                            for tok in &toks[j..] {
                                match tok {
                                    Token::Open => {
                                        level += 1;
                                        if level == 1 {
                                            expect_member = true;
                                        }
                                    }
                                    Token::Close => {
                                        level -= 1;
                                        if level == 0 {
                                            break;
                                        }
                                    }
                                    Token::Comma if level == 1 => expect_member = true,
                                    Token::Ident(name) if level == 1 && expect_member => {
                                        found.insert(name.clone());
                                        expect_member = false;
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Top-level module → the modules it refers to → the files that do.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The graph without the edges [`NOT_YET`] lists.
fn graph_but_not_yet() -> (BTreeSet<String>, Graph) {
    let (modules, mut graph) = graph();
    for (from, to, _) in NOT_YET {
        if let Some(targets) = graph.get_mut(*from) {
            targets.remove(*to);
        }
    }
    (modules, graph)
}

fn graph() -> (BTreeSet<String>, Graph) {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src/").to_path_buf();
        let module = module_path(&rel);
        let Some(top) = module.first().cloned() else {
            continue; // lib.rs, main.rs: the root, above everything.
        };
        modules.insert(top.clone());
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for target in referenced_tops(&text, &module) {
            if target != top && target != "self" && target != "super" {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    // Only references to modules that exist (`crate::Cli`, a re-export at the root, is not a
    // module).
    for targets in graph.values_mut() {
        targets.retain(|t, _| modules.contains(t));
    }
    (modules, graph)
}

fn describe(graph: &Graph, from: &str, to: &str) -> String {
    let files: Vec<&str> = graph[from][to].iter().map(String::as_str).collect();
    format!("{from} -> {to} (in {})", files.join(", "))
}

/// Tarjan's strongly connected components with more than one module.
fn cycles(modules: &BTreeSet<String>, graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|t| t.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().expect("on the stack");
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for m in modules {
        if !s.index.contains_key(m.as_str()) {
            visit(&mut s, m);
        }
    }
    s.out
}

/// One cycle through `start` inside `component`, as edges (breadth-first, so a shortest one).
fn one_cycle(graph: &Graph, component: &[String], start: &str) -> Vec<(String, String)> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flat_map(|t| t.keys()) {
            let w = w.as_str();
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![(v.to_owned(), w.to_owned())];
                let mut at = v;
                while at != start {
                    let prev = came_from[at];
                    path.push((prev.to_owned(), at.to_owned()));
                    at = prev;
                }
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

#[test]
fn the_top_level_modules_import_one_another_without_a_cycle() {
    let (modules, graph) = graph_but_not_yet();
    let found = cycles(&modules, &graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!(
            "\n{} modules import one another: {}\n  for example:\n",
            component.len(),
            component.join(", ")
        ));
        for (from, to) in one_cycle(&graph, component, &component[0]) {
            report.push_str(&format!("    {}\n", describe(&graph, &from, &to)));
        }
    }
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:{report}"
    );
}

#[test]
fn every_import_goes_down_the_declared_layers() {
    let (modules, graph) = graph();
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
        .collect();
    let undeclared: Vec<&String> = modules
        .iter()
        .filter(|m| !layer_of.contains_key(m.as_str()))
        .collect();
    assert!(
        undeclared.is_empty(),
        "top-level modules missing from LAYERS in tests/layers.rs (add each to the layer of \
         what it may use): {undeclared:?}"
    );
    let mut wrong = Vec::new();
    let mut still_there = BTreeSet::new();
    for (from, targets) in &graph {
        for to in targets.keys() {
            if layer_of[to.as_str()] <= layer_of[from.as_str()] {
                continue;
            }
            if NOT_YET.iter().any(|(f, t, _)| f == from && t == to) {
                still_there.insert((from.as_str(), to.as_str()));
                continue;
            }
            wrong.push(describe(&graph, from, to));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that go up the layers declared in tests/layers.rs (a module may use only the \
         layers below it):\n  {}",
        wrong.join("\n  ")
    );
    let gone: Vec<_> = NOT_YET
        .iter()
        .filter(|(f, t, _)| !still_there.contains(&(*f, *t)))
        .collect();
    assert!(
        gone.is_empty(),
        "edges listed in NOT_YET (tests/layers.rs) no longer go up the layers; take them out of \
         the list: {gone:?}"
    );
}

#[test]
fn the_reader_finds_crate_and_super_paths() {
    let text = r##"
        // crate::commented
        /* crate::blocked /* nested crate::deeper */ */
        use crate::{alpha::one, beta, gamma::{two, three}};
        use super::delta;
        use super::super::epsilon::X;
        const S: &str = "crate::quoted";
        const R: &str = r#"crate::raw"#;
        fn f<'a>(c: char) -> bool { c == '{' && zeta::g() && crate::eta::h() }
        pub(crate) fn g() {}
        mod tests { use super::*; use super::super::super::theta; }
    "##;
    let found = referenced_tops(text, &["own".into(), "file".into()]);
    let expected: BTreeSet<String> = ["alpha", "beta", "gamma", "own", "epsilon", "eta", "theta"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}
