//! Server push (S2C, `B103`) through the gateway's admin HTTP API.
//!
//! ```sh
//! cargo run -p jim-examples --bin push -- --user alice "Your order has shipped"
//! cargo run -p jim-examples --bin push -- --group team "Standup in 5 minutes"
//! cargo run -p jim-examples --bin push -- --everyone "Maintenance at 22:00"
//! ```
//!
//! The same request with curl:
//!
//! ```sh
//! curl -H "Authorization: Bearer $JIM_ADMIN_KEY" -d \
//!   '{"users":["alice"],"message":{"type":"text","data":{"content":"hi"}}}' \
//!   http://127.0.0.1:9002/v1/push
//! ```

use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Push a system message to users, a group, or everyone")]
struct Args {
    /// The text to push.
    text: String,
    /// Push to this user (repeatable).
    #[arg(long)]
    user: Vec<String>,
    /// Push to every member of this group.
    #[arg(long)]
    group: Option<String>,
    /// Push to every connected session.
    #[arg(long)]
    everyone: bool,
    /// The `sender_id` the message carries.
    #[arg(long, default_value = "system")]
    sender: String,
    /// The admin API.
    #[arg(long, default_value = "http://127.0.0.1:9002")]
    admin: String,
    /// The admin key (not needed in development mode).
    #[arg(long, env = "JIM_ADMIN_KEY", hide_env_values = true)]
    key: Option<String>,
}

fn main() -> std::process::ExitCode {
    // Errors as sentences, not Debug output.
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("push: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut request = json!({
        "message": {"type": "text", "data": {"content": args.text}},
        "sender_id": args.sender,
        // Each message pushed, to print it (the default answer is counts).
        "list": true,
    });
    match (args.user.is_empty(), &args.group, args.everyone) {
        (false, None, false) => request["users"] = json!(args.user),
        (true, Some(group), false) => request["group"] = json!(group),
        (true, None, true) => request["everyone"] = json!(true),
        _ => return Err("give --user (one or more), --group or --everyone".into()),
    }
    let url = format!("{}/v1/push", args.admin.trim_end_matches('/'));
    let mut call = ureq::post(&url).config().http_status_as_error(false).build();
    if let Some(key) = &args.key {
        call = call.header("Authorization", &format!("Bearer {key}"));
    }
    let mut response = call.send_json(&request)?;
    let status = response.status();
    let body: Value = response.body_mut().read_json()?;
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("no reason given");
        return Err(format!("the gateway refused the push ({status}): {why}").into());
    }
    for pushed in body["pushed"].as_array().into_iter().flatten() {
        let sessions = pushed["sessions"].as_u64().unwrap_or(0);
        println!(
            "pushed {} to {} ({sessions} session{} here)",
            pushed["message_id"].as_str().unwrap_or("?"),
            pushed["receiver_id"].as_str().unwrap_or("?"),
            if sessions == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
