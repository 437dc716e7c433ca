//! The gateway over real sockets: every row of the contract's command and
//! error tables, over TCP and over WebSocket.

#![allow(unreachable_pub)] // test helpers are shared between modules of this test binary

mod addresses;
mod admin;
mod binary;
mod bodies;
mod fanout;
mod frames;
mod history;
mod hooks;
mod hostile;
mod inbox;
mod load;
mod messaging;
mod receipts;
mod session;
mod shutdown;
mod tls;
mod tokens;
mod typing;
mod websocket;
