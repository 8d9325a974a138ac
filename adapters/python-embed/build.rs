//! Records where libpython lives in the run path of what links it (`libwsgi.so`, `libasgi.so`, a
//! test binary), so it finds the very interpreter PyO3 compiled against (pyenv and other
//! non-system Pythons are not in the loader's default search path), wherever the server copies
//! the library before loading it.

fn main() {
    let config = pyo3_build_config::get();
    if let Some(dir) = &config.lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
