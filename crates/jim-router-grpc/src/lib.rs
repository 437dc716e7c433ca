//! The `grpc` mode of the Jim IM gateway: a central router, and the gateway
//! backend that routes through it.
//!
//! Many gateways hold client connections; one router knows which gateway
//! holds which user's sessions, owns group membership, and tells each
//! gateway what to deliver. The wire protocol is `jim.router.v1`
//! (`proto/jim/router/v1/router.proto`): one bidirectional `Link` stream
//! per gateway (presence and messages up; deliveries, kicks and route
//! results down), and unary admin RPCs mirroring the gateway's admin HTTP
//! API.
//!
//! - [`CentralRouter`]: the router. A library type: mount
//!   [`CentralRouter::service`] on any tonic server, or embed it in an
//!   application, which then pushes ([`CentralRouter::route`]), manages
//!   groups and reads presence ([`jim_router::Directory`]) and observes
//!   every message, as with the local router. The
//!   `jim-router` binary (the `jim-router-server` package) runs it alone.
//! - [`GrpcBackend`]: the gateway side, a [`jim_router::Router`] that
//!   links to the router, reconnects with jittered backoff, and
//!   re-announces its sessions.
//!
//! - [`LinkConfig`]: a gateway's `[grpc]` settings, the one type that
//!   builds without the `service` feature (tonic, prost), so that any
//!   gateway build reads and checks them.
//!
//! Code generation uses a vendored `protoc`: no system protoc needed.

#![warn(missing_docs)]

#[cfg(feature = "service")]
mod backend;
#[cfg(feature = "service")]
mod central;
#[cfg(feature = "service")]
mod convert;
mod link;

#[cfg(feature = "service")]
pub use backend::{BackendConfig, GrpcBackend};
#[cfg(feature = "service")]
pub use central::{CentralConfig, CentralRouter, DEFAULT_SETTLE, LINK_QUEUE, RouterStats};
pub use link::LinkConfig;

/// The generated `jim.router.v1` types, client and server.
#[cfg(feature = "service")]
pub mod proto {
    #![allow(
        missing_docs,
        unreachable_pub,
        missing_debug_implementations,
        clippy::all,
        clippy::pedantic
    )]
    tonic::include_proto!("jim.router.v1");
}
