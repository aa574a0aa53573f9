//! Compiles `assets/proto/*.proto` with protox (pure Rust: no system protoc) into tonic client
//! and server code, and keeps the descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("../assets/proto");
    let user = proto_dir.join("user.proto");
    println!("cargo:rerun-if-changed={}", user.display());
    let fds = protox::compile([&user], [&proto_dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("user_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
