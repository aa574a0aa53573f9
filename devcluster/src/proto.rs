//! Code generated from `assets/proto` (see `build.rs`).

/// `lgo.user.v1`: the sample user-service over gRPC.
pub mod user {
    tonic::include_proto!("lgo.user.v1");

    /// The descriptor set of `user.proto`, for server reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("user_descriptor");
}
