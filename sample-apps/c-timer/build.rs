//! Compile `timer.c` with the system C compiler (`$CC`, else `cc`) into `libc_timer.so` in the
//! profile directory (`target/debug` or `target/release`), where `webserver c_timer:app` finds
//! it beside the executable. Cargo has no native way to build a C shared library as an
//! artifact, so the output goes up from OUT_DIR (`target/<profile>/build/<crate>/out`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest.join("timer.c");
    let include = manifest.join("../../app-abi/include");
    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("webserver_app.h").display()
    );
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        println!("cargo:warning=unexpected OUT_DIR layout; c-timer not built");
        return;
    };
    let output = profile_dir.join("libc_timer.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(&include)
        .arg("-o")
        .arg(&output)
        .arg(&source)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{cc} failed to compile {} ({status})", source.display()),
        // No C compiler: the server and the Rust apps still build; say what is missing.
        Err(e) => println!("cargo:warning=c-timer not built: cannot run {cc}: {e}"),
    }
}
