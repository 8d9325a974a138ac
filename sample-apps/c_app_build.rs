// The build script of the C sample apps, shared by `include!` (a build script cannot depend on
// a library of this workspace): compile one C file with the system C compiler (`$CC`, else
// `cc`) into a shared library in the profile directory (`target/debug` or `target/release`),
// where `webserver NAME:app` finds it beside the executable. Cargo has no native way to build a
// C shared library as an artifact, so the output goes up from OUT_DIR
// (`target/<profile>/build/<crate>/out`).

use std::path::PathBuf;
use std::process::Command;

/// Compiles `source` (relative to the crate) into `library` with `extra_flags`; without a C
/// compiler the build goes on with a warning naming `app`.
fn build_c_app(app: &str, source: &str, library: &str, extra_flags: &[&str]) {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest.join(source);
    let include = manifest.join("../../app-abi/include");
    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("webserver_app.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../c_app_build.rs").display()
    );
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        println!("cargo:warning=unexpected OUT_DIR layout; {app} not built");
        return;
    };
    let output = profile_dir.join(library);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2"])
        .args(extra_flags)
        .args(["-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&output)
        .arg(&source)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{cc} failed to compile {} ({status})", source.display()),
        // No C compiler: the server and the Rust apps still build; say what is missing.
        Err(e) => println!("cargo:warning={app} not built: cannot run {cc}: {e}"),
    }
}
