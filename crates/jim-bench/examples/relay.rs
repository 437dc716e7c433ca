//! Runs the minimal relay (`jim_bench::relay`) for calibration runs:
//!
//! ```text
//! cargo run --release -p jim-bench --example relay -- 127.0.0.1:9101
//! jim-bench c2c --tcp 127.0.0.1:9101 --rate 20000 --server-pid <pid>
//! ```

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9101".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    println!("relay listening on {}", listener.local_addr()?);
    jim_bench::relay::serve(listener).await
}
