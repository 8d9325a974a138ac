//! What the `webserver` binary carries from the checkout it was built in, so that it needs none
//! of it at run time (an installed `webserver` works after the checkout is gone):
//!
//! - app-abi's sources and C header, which `webserver new` vendors into a generated Rust app (so
//!   it builds anywhere, offline) and `webserver header` prints;
//! - app-abi's manifest rewritten to stand alone (the workspace's inherited keys filled in);
//! - the sample apps' library names, the only libraries for which a "not found" error advises
//!   `cargo build --workspace`.
//!
//! Everything is discovered by walking the directories, so a file added to app-abi or a sample
//! app added to `sample-apps/` needs no edit here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let abi = root.join("app-abi");
    for watched in [
        "app-abi/src",
        "app-abi/include",
        "app-abi/Cargo.toml",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-changed=sample-apps");

    let mut files = Vec::new();
    for dir in ["src", "include"] {
        collect_files(&abi, &abi.join(dir), &mut files);
    }
    files.sort();
    let mut code = String::from(
        "/// app-abi's files as (path relative to app-abi, contents), for `webserver new`.\n\
         pub(crate) const APP_ABI_FILES: &[(&str, &str)] = &[\n",
    );
    for (relative, absolute) in &files {
        writeln!(
            code,
            "    ({relative:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");

    let manifest = standalone_manifest(
        &read(&abi.join("Cargo.toml")),
        &read(&root.join("Cargo.toml")),
    );
    writeln!(
        code,
        "/// app-abi's Cargo.toml, standing alone (no workspace keys).\n\
         pub(crate) const APP_ABI_MANIFEST: &str = {manifest:?};"
    )
    .unwrap();

    let mut samples: Vec<String> = std::fs::read_dir(root.join("sample-apps"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().replace('-', "_"))
                .collect()
        })
        .unwrap_or_default();
    samples.sort();
    // Apart from the scaffold's files: the app loader's advice needs these names, and the app
    // layer sits below the author's commands.
    let samples = format!(
        "/// The sample apps' library names (`libNAME.so`), built by `cargo build --workspace`.\n\
         pub(crate) const SAMPLE_APPS: &[&str] = &{samples:?};\n"
    );

    std::fs::write(out.join("embedded.rs"), code).expect("write OUT_DIR/embedded.rs");
    std::fs::write(out.join("sample_apps.rs"), samples).expect("write OUT_DIR/sample_apps.rs");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every file under `dir`, as (path relative to `base` with `/`, absolute path).
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, out);
        } else if path.is_file() {
            let relative = path
                .strip_prefix(base)
                .expect("under base")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
}

/// app-abi's manifest with `KEY.workspace = true` replaced by the workspace's value of KEY and
/// the `[lints]` table (which only means something inside this workspace) dropped.
fn standalone_manifest(member: &str, workspace: &str) -> String {
    let inherited = table_lines(workspace, "[workspace.package]");
    let mut out = String::new();
    let mut in_lints = false;
    for line in member.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_lints = trimmed == "[lints]";
        }
        if in_lints {
            continue;
        }
        if let Some(key) = trimmed.strip_suffix(".workspace = true") {
            let value = inherited
                .iter()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("workspace.package has no `{key}`"));
            writeln!(out, "{key} = {value}").unwrap();
        } else {
            writeln!(out, "{line}").unwrap();
        }
    }
    out
}

/// The `key = value` lines of one table of a TOML file.
fn table_lines<'a>(toml: &'a str, header: &str) -> Vec<&'a str> {
    toml.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().starts_with('['))
        .filter(|l| l.contains('='))
        .collect()
}
