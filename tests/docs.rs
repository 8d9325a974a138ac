//! The documentation's links stay true: every relative link in README.md, bench/RESULTS.md and the
//! book (docs/src) names a file that exists, every `#anchor` names a heading of its page, every
//! `{{#include}}` finds its file, and every page of docs/src is in SUMMARY.md. `mdbook build docs`
//! (run by .ci/run) only fails on a SUMMARY entry whose file is missing; links between pages and
//! anchors are checked here, with no tool to install.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of `text` outside fenced code blocks (and without the fences).
fn outside_fences(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// One Markdown file's lines outside code: fenced blocks and indented code lines are left out, and
/// inline code spans are blanked, so an example that contains `](` or `#` is not read as a link or
/// a heading.
fn prose_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in outside_fences(text) {
        if line.starts_with("    ") {
            continue;
        }
        let mut prose = String::with_capacity(line.len());
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                prose.push_str(part);
            } else {
                prose.push_str(&" ".repeat(part.len() + 2));
            }
        }
        lines.push(prose);
    }
    lines
}

/// The ids mdBook gives a page's headings (and GitHub, for README.md): the heading's text without
/// its inline code marks, lower-cased, spaces turned into `-`, anything not alphanumeric, `-` or
/// `_` dropped.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in outside_fences(text) {
        if !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let id: String = heading
            .trim()
            .chars()
            .filter_map(|c| match c {
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
                c if c.is_whitespace() => Some('-'),
                _ => None,
            })
            .collect();
        ids.insert(id);
    }
    ids
}

/// Every `[text](target)` in the prose of `text`, with its line number.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text).iter().enumerate() {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push((number + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// `dir.join(relative)` with `..` and `.` folded, so two spellings of one page compare equal.
fn resolve(dir: &Path, relative: &str) -> PathBuf {
    let mut path = PathBuf::new();
    for component in dir.join(relative).components() {
        match component {
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    path
}

/// The text of the Markdown file `file` as mdBook renders it: a `{{#include PATH}}` line is
/// replaced by that file (one level, as this book uses it), so its headings are the page's.
fn with_includes(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut expanded = String::with_capacity(text.len());
    for line in text.lines() {
        match line.trim().strip_prefix("{{#include ") {
            Some(rest) => {
                let included = resolve(file.parent().unwrap(), rest.trim_end_matches("}}").trim());
                expanded.push_str(&std::fs::read_to_string(included).unwrap_or_default());
            }
            None => expanded.push_str(line),
        }
        expanded.push('\n');
    }
    expanded
}

/// What is wrong with the links of the Markdown file `file`: one line per broken link, naming the
/// file, the line and the target.
fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
    let dir = file.parent().unwrap();
    let mut broken = Vec::new();
    for (line, target) in links(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let linked = if path.is_empty() {
            file.to_owned()
        } else {
            resolve(dir, path)
        };
        if !linked.exists() {
            broken.push(format!(
                "{}:{line}: link to {target}: {} does not exist",
                file.display(),
                linked.display()
            ));
            continue;
        }
        if let Some(anchor) = anchor {
            if !anchors(&with_includes(&linked)).contains(anchor) {
                broken.push(format!(
                    "{}:{line}: link to {target}: {} has no heading #{anchor}",
                    file.display(),
                    linked.display()
                ));
            }
        }
    }
    for (number, line) in text.lines().enumerate() {
        if let Some(at) = line.find("{{#include ") {
            let included = line[at + "{{#include ".len()..]
                .split("}}")
                .next()
                .unwrap()
                .trim();
            if !resolve(dir, included).exists() {
                broken.push(format!(
                    "{}:{}: {{{{#include {included}}}}}: no such file",
                    file.display(),
                    number + 1
                ));
            }
        }
    }
    broken
}

fn markdown_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_under(&path, found);
        } else if path.extension().is_some_and(|e| e == "md") {
            found.push(path);
        }
    }
}

fn book_pages() -> Vec<PathBuf> {
    let mut pages = Vec::new();
    markdown_under(&root().join("docs/src"), &mut pages);
    pages.sort();
    pages
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_exists() {
    let mut files = vec![root().join("README.md"), root().join("bench/RESULTS.md")];
    files.extend(book_pages());
    let broken: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_the_book_is_in_its_summary() {
    let src = root().join("docs/src");
    let summary = src.join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&std::fs::read_to_string(&summary).unwrap())
        .into_iter()
        .map(|(_, target)| resolve(&src, &target))
        .collect();
    let orphans: Vec<_> = book_pages()
        .into_iter()
        .filter(|page| *page != summary && !listed.contains(page))
        .collect();
    assert!(orphans.is_empty(), "pages not in SUMMARY.md: {orphans:?}");
}

/// The checker itself finds a missing file, a missing anchor and a missing include, and reads
/// neither code blocks nor code spans as links.
#[test]
fn the_link_check_fails_on_a_broken_link() {
    let dir = std::env::temp_dir().join(format!("webserver-docs-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("other.md"),
        "# Other page\n\n## A `code` heading\n",
    )
    .unwrap();
    std::fs::write(dir.join("wrapper.md"), "{{#include other.md}}\n").unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# Page\n\n\
         [fine](other.md) [fine](other.md#other-page) [fine](other.md#a-code-heading) [fine](#page)\n\
         [fine](wrapper.md#other-page)\n\
         [gone](missing.md) [no anchor](other.md#nowhere) [no anchor here](#nowhere)\n\
         `[not a link](missing.md)`\n\n\
         ```text\n[not a link](missing.md)\n```\n\n\
         {{#include nothing.md}}\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    std::fs::remove_dir_all(&dir).unwrap();
    let expected = [
        "link to missing.md:",
        "link to other.md#nowhere:",
        "link to #nowhere:",
        "{{#include nothing.md}}",
    ];
    assert_eq!(broken.len(), expected.len(), "{broken:#?}");
    for (line, expected) in broken.iter().zip(expected) {
        assert!(line.contains(expected), "{line:?} should name {expected:?}");
    }
}
