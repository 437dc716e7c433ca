//! Generates the `jim.router.v1` code with a vendored `protoc`, so that a
//! fresh machine needs no system protoc.

#[cfg(not(feature = "service"))]
fn main() {}

#[cfg(feature = "service")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/jim/router/v1/router.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Message bodies stay `Bytes`: shared, never copied, all the way to the sockets.
    config.bytes([".jim.router.v1"]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/jim/router/v1/router.proto"],
        &["proto"],
    )?;
    Ok(())
}
