//! The TypeScript SDK names the contract's codes as this crate does, with
//! the same numbers: its `ErrorCode` and `CloseCode` tables are read from
//! its source and compared with [`ErrorCode::ALL`] and [`CloseCode::ALL`].

use std::collections::BTreeMap;

use jim_model::{CloseCode, ErrorCode};

const ERRORS_TS: &str = include_str!("../../../clients/typescript/src/errors.ts");

/// The `name: number` entries of `export const NAME = { ... } as const;`,
/// without those marked `@deprecated`.
fn table(name: &str) -> BTreeMap<String, u16> {
    let start = ERRORS_TS
        .find(&format!("export const {name} = {{"))
        .unwrap_or_else(|| panic!("no {name} in errors.ts"));
    let body = &ERRORS_TS[start..];
    let body = &body[..body.find("} as const;").expect("the table's end")];
    let mut entries = BTreeMap::new();
    let mut deprecated = false;
    for line in body.lines().map(str::trim) {
        if line.contains("@deprecated") {
            deprecated = true;
            continue;
        }
        if let Some((key, value)) = line.trim_end_matches(',').split_once(": ")
            && let Ok(number) = value.parse::<u16>()
        {
            if !deprecated {
                entries.insert(key.to_owned(), number);
            }
            deprecated = false;
        }
    }
    entries
}

#[test]
fn the_sdks_error_codes_are_the_contracts() {
    let ours: BTreeMap<String, u16> = ErrorCode::ALL
        .iter()
        .map(|code| (format!("{code:?}"), code.as_u16()))
        .collect();
    assert_eq!(table("ErrorCode"), ours);
}

#[test]
fn the_sdks_close_codes_are_the_contracts_and_its_own_abnormal() {
    let mut ours: BTreeMap<String, u16> = CloseCode::ALL
        .iter()
        .map(|code| (format!("{code:?}"), code.as_u16()))
        .collect();
    // A connection that ended without a close: the client's own word.
    ours.insert("Abnormal".into(), 1006);
    assert_eq!(table("CloseCode"), ours);
}
