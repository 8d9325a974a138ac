//! Generates the greeter's messages, service trait and client from `proto/greeter.proto` with the
//! protoc that `protoc-bin-vendored` ships (no protobuf compiler needs to be installed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    tonic_build::configure().compile_protos(&["proto/greeter.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/greeter.proto");
    Ok(())
}
