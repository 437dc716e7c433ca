//! The inbox position rule against its shared test vectors (the
//! TypeScript SDK runs the same file).

use jim_model::position::{is_new, resumed, skip_own, start};
use jim_model::{InboxHead, Position};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/inbox-position.json");

fn position(value: &Value) -> Option<Position> {
    (!value.is_null()).then(|| Position {
        epoch: value["epoch"].as_str().unwrap().to_owned(),
        offset: value["offset"].as_u64().unwrap(),
    })
}

fn vectors(name: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all[name].as_array().unwrap().clone()
}

#[test]
fn where_a_session_starts() {
    for case in vectors("start") {
        let got = start(
            position(&case["since"]).as_ref(),
            case["epoch"].as_str().unwrap(),
            case["oldest"].as_u64().unwrap() as u32,
            case["head"].as_u64().unwrap() as u32,
        );
        let want = (
            case["start"].as_u64().unwrap() as u32,
            case["recovered"].as_bool().unwrap(),
        );
        assert_eq!(got, want, "{}", case["case"]);
    }
}

#[test]
fn what_a_client_keeps_after_b002() {
    for case in vectors("resumed") {
        let head: InboxHead = serde_json::from_value(case["head"].clone()).unwrap();
        let got = resumed(position(&case["asked"]).as_ref(), &head);
        assert_eq!(Some(got), position(&case["keeps"]), "{}", case["case"]);
    }
}

#[test]
fn which_deliveries_are_new_and_own_group_messages_skipped() {
    for case in vectors("is_new") {
        let got = is_new(
            position(&case["position"]).as_ref(),
            case["offset"].as_u64().unwrap(),
        );
        assert_eq!(got, case["new"].as_bool().unwrap(), "{}", case["case"]);
    }
    for case in vectors("skip_own") {
        let mut at = position(&case["position"]).unwrap();
        let moved = skip_own(&mut at, case["offset"].as_u64().unwrap());
        assert_eq!(
            (moved, Some(at)),
            (case["moved"].as_bool().unwrap(), position(&case["keeps"])),
            "{}",
            case["case"]
        );
    }
}
