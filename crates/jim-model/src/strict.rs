//! JSON that every mainstream parser reads the same way.
//!
//! The gateway relays what clients send, fields it does not know included.
//! JSON that one parser accepts and another refuses or reads differently
//! would break recipients (or let a sender show them something else than
//! what moderation saw): nesting thousands deep (a stack overflow in
//! recursive parsers), a lone UTF-16 surrogate in a `\u` escape (not a
//! character: refused by Python's `json` in strict decoders, replaced by
//! Go's), a number beyond a double (`1e400`: infinity, or an error), and a
//! key given twice in one object (first wins in some parsers, last in
//! others). [`check`] refuses each, in one pass over the bytes with no
//! allocation for bodies whose objects have few keys.

use std::borrow::Cow;

use crate::ModelError;

/// The deepest nesting of arrays and objects accepted (the body's own
/// object is depth 1).
pub const MAX_DEPTH: usize = 64;

/// Objects with more keys than this are checked for duplicates by sorting
/// instead of comparing each key with the earlier ones.
const FEW_KEYS: usize = 16;

/// Bytes that end a run of plain string content: the closing quote, an
/// escape, and the control characters JSON forbids in strings.
const STRING_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Checks that `body`, already known to be well-formed JSON, holds nothing
/// that parsers read differently: bytes that are not UTF-8, nesting deeper
/// than [`MAX_DEPTH`], a `\u` escape that is a lone surrogate, a number
/// that overflows a double, or a duplicate key.
///
/// ```
/// use jim_model::strict;
///
/// assert!(strict::check(br#"{"a":[1,2.5e3,{"b":"\ud83d\ude00"}]}"#).is_ok());
/// for bad in [r#"{"a":1e400}"#, r#"{"a":"\ud800"}"#, r#"{"a":1,"a":2}"#] {
///     assert!(strict::check(bad.as_bytes()).is_err(), "{bad}");
/// }
/// let deep = "[".repeat(65) + &"]".repeat(65);
/// assert!(strict::check(deep.as_bytes()).unwrap_err().to_string().contains("nested deeper than 64"));
/// ```
///
/// # Errors
/// [`ModelError::Ambiguous`] saying what was found and where.
pub fn check(body: &[u8]) -> Result<(), ModelError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ModelError::Ambiguous {
            what: "bytes that are not UTF-8".into(),
            at: e.valid_up_to(),
        });
    }
    Scanner {
        body,
        at: 0,
        keys: Vec::new(),
    }
    .document()
}

/// [`check`] for one value of `body` (a slice of it), nested `depth`
/// containers deep: what [`RawMessage`](crate::RawMessage) runs on the
/// values it keeps as JSON text, having read the keys around them itself.
/// Whether `bytes` hold a backslash: sixteen bytes at a time, without
/// stopping early inside a block, which compiles to vector compares (the
/// library's `memchr` goes a word at a time, and costs more on a message).
pub(crate) fn has_backslash(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |found, byte| found | (*byte == b'\\')) {
            return true;
        }
    }
    blocks.remainder().contains(&b'\\')
}

/// `escapes`: whether the body holds a backslash at all (else no string
/// needs looking into).
#[inline]
pub(crate) fn check_value(body: &[u8], value: &[u8], depth: usize, escapes: bool) -> Result<(), ModelError> {
    // Most values are short strings and numbers, well-formed already: only
    // an escape or an exponent (or many digits) can hide what is refused.
    let plain = match value.first() {
        Some(b'"') => !escapes || !has_backslash(value),
        Some(b'-' | b'0'..=b'9') => value.len() <= 15 && !value.iter().any(|b| matches!(b, b'e' | b'E')),
        Some(b't' | b'f' | b'n') => true,
        _ => false,
    };
    if plain {
        return Ok(());
    }
    let start = (value.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
    let mut scanner = Scanner {
        body: &body[..start + value.len()],
        at: start,
        keys: Vec::new(),
    };
    scanner.value(depth)
}

/// That no key of one object comes twice (keys already decoded). `at` is
/// where the object starts in the body, for the error.
pub(crate) fn unique_keys<'k>(
    keys: impl Iterator<Item = &'k str> + Clone,
    at: usize,
) -> Result<(), ModelError> {
    let twice = |key: &str| ModelError::Ambiguous {
        what: format!("the key {key:?} twice in one object").into(),
        at,
    };
    if keys.clone().count() <= FEW_KEYS {
        for (index, key) in keys.clone().enumerate() {
            if keys.clone().take(index).any(|earlier| earlier == key) {
                return Err(twice(key));
            }
        }
        return Ok(());
    }
    let mut sorted: Vec<&str> = keys.collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(twice(pair[0])),
        None => Ok(()),
    }
}

/// Where in an object the scanner is.
struct Scanner<'a> {
    body: &'a [u8],
    at: usize,
    /// Keys of the objects being read, innermost last: as sent, or
    /// decoded when they hold escapes. (The body is UTF-8 already.)
    keys: Vec<Cow<'a, [u8]>>,
}

impl<'a> Scanner<'a> {
    fn document(mut self) -> Result<(), ModelError> {
        self.value(0)?;
        Ok(())
    }

    fn fail(&self, what: impl Into<Cow<'static, str>>) -> ModelError {
        ModelError::Ambiguous {
            what: what.into(),
            at: self.at,
        }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Result<u8, ModelError> {
        self.skip_space();
        self.body
            .get(self.at)
            .copied()
            .ok_or_else(|| self.fail("the body ends early"))
    }

    /// One value; `depth` is the number of containers around it.
    fn value(&mut self, depth: usize) -> Result<(), ModelError> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), ModelError> {
        if depth > MAX_DEPTH {
            return Err(self.fail(format!("arrays and objects nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), ModelError> {
        self.enter(depth)?;
        self.at += 1; // {
        let first_key = self.keys.len();
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key_at = self.at;
            if self.peek()? != b'"' {
                return Err(self.fail("a key that is not a string"));
            }
            let key = self.string()?;
            let earlier = &self.keys[first_key..];
            if earlier.len() < FEW_KEYS && earlier.contains(&key) {
                self.at = key_at;
                return Err(self.fail(format!(
                    "the key {:?} twice in one object",
                    String::from_utf8_lossy(&key)
                )));
            }
            self.keys.push(key);
            if self.peek()? != b':' {
                return Err(self.fail("a key without a value"));
            }
            self.at += 1;
            self.value(depth)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.fail("an object not closed")),
            }
        }
        let keys = &mut self.keys[first_key..];
        if keys.len() > FEW_KEYS {
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                let what = format!(
                    "the key {:?} twice in one object",
                    String::from_utf8_lossy(&pair[0])
                );
                return Err(self.fail(what));
            }
        }
        self.keys.truncate(first_key);
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), ModelError> {
        self.enter(depth)?;
        self.at += 1; // [
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("an array not closed")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ModelError> {
        if self.body[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.fail("an unknown literal"))
        }
    }

    /// A number: its grammar, and that a double holds it.
    fn number(&mut self) -> Result<(), ModelError> {
        let start = self.at;
        let mut exponent = false;
        while let Some(&byte) = self.body.get(self.at) {
            match byte {
                b'0'..=b'9' | b'-' | b'+' | b'.' => {}
                b'e' | b'E' => exponent = true,
                _ => break,
            }
            self.at += 1;
        }
        let token = &self.body[start..self.at];
        if token.is_empty() {
            return Err(self.fail("a value that is not JSON"));
        }
        // Up to 15 digits without an exponent always fit; only longer
        // numbers are worth parsing.
        if exponent || token.len() > 15 {
            let text = std::str::from_utf8(token).map_err(|_| self.fail("a malformed number"))?;
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => {}
                Ok(_) => {
                    self.at = start;
                    return Err(self.fail("a number too large for a double"));
                }
                Err(_) => return Err(self.fail("a malformed number")),
            }
        }
        Ok(())
    }

    /// A string (the scanner on its opening quote): its bytes, decoded
    /// only when it has escapes.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, ModelError> {
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let plain = self.body[at..]
                .iter()
                .position(|byte| STRING_SPECIAL[usize::from(*byte)]);
            let Some(plain) = plain else {
                self.at = self.body.len();
                return Err(self.fail("a string not closed"));
            };
            at += plain;
            match self.body[at] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    at = self.escape(at)?;
                }
                _ => {
                    self.at = at;
                    return Err(self.fail("a control character in a string"));
                }
            }
        }
        self.at = at + 1;
        if !escaped {
            return Ok(Cow::Borrowed(&self.body[start..at]));
        }
        // Escapes were checked: serde_json decodes them the one right way.
        serde_json::from_slice::<String>(&self.body[start - 1..=at])
            .map(|text| Cow::Owned(text.into_bytes()))
            .map_err(|_| self.fail("a malformed string"))
    }

    /// Checks the escape at `at` (a backslash); returns where it ends.
    fn escape(&mut self, at: usize) -> Result<usize, ModelError> {
        match self.body.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
            Some(b'u') => {
                let unit = self.hex4(at + 2)?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by a low one.
                        let low = (self.body.get(at + 6) == Some(&b'\\')
                            && self.body.get(at + 7) == Some(&b'u'))
                        .then(|| self.hex4(at + 8))
                        .transpose()?;
                        match low {
                            Some(0xDC00..=0xDFFF) => Ok(at + 12),
                            _ => {
                                self.at = at;
                                Err(self.fail("a \\u escape of a lone surrogate (not a character)"))
                            }
                        }
                    }
                    0xDC00..=0xDFFF => {
                        self.at = at;
                        Err(self.fail("a \\u escape of a lone surrogate (not a character)"))
                    }
                    _ => Ok(at + 6),
                }
            }
            _ => {
                self.at = at;
                Err(self.fail("an unknown escape in a string"))
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u16, ModelError> {
        let digits = self
            .body
            .get(at..at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u16::from_str_radix(d, 16).ok());
        digits.ok_or_else(|| {
            self.at = at;
            self.fail("a \\u escape without four hex digits")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> String {
        check(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn what_every_parser_reads_alike_passes() {
        for body in [
            r#"{}"#,
            r#"{"a":[],"b":{},"c":"","d":0,"e":-0.5,"f":1e308,"g":true,"h":null}"#,
            r#"{"emoji":"\ud83d\ude00","tab":"\t","quote":"\"","uni":"\u00e9"}"#,
            r#"{"a":{"a":{"a":1}}}"#,
            "  {\"a\" : [ 1 , 2 ] }  ",
            r#"{"n":123456789012345678901234567890}"#,
        ] {
            assert!(check(body.as_bytes()).is_ok(), "{body}");
        }
        let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check(deepest.as_bytes()).is_ok());
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(refused(&deep).contains("nested deeper than 64"));
        let very_deep = "{\"a\":".repeat(30_000) + "1" + &"}".repeat(30_000);
        assert!(refused(&very_deep).contains("nested deeper than 64"));
    }

    #[test]
    fn lone_surrogates_are_refused() {
        for body in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"\ud800":1}"#,
        ] {
            assert!(refused(body).contains("lone surrogate"), "{body}");
        }
    }

    #[test]
    fn numbers_beyond_a_double_are_refused() {
        for body in [r#"{"a":1e400}"#, r#"{"a":-1e400}"#, r#"{"a":[1E309]}"#] {
            assert!(refused(body).contains("too large for a double"), "{body}");
        }
        let huge = format!(r#"{{"a":{}}}"#, "9".repeat(400));
        assert!(refused(&huge).contains("too large for a double"));
    }

    #[test]
    fn duplicate_keys_are_refused_however_written() {
        assert!(refused(r#"{"a":1,"b":2,"a":3}"#).contains(r#"the key "a" twice"#));
        assert!(refused(r#"{"a":1,"\u0061":2}"#).contains(r#"the key "a" twice"#));
        assert!(refused(r#"{"x":{"k":1,"k":1}}"#).contains(r#"the key "k" twice"#));
        // Many keys: found by sorting.
        let mut many: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        many.push("\"k42\":0".into());
        assert!(refused(&format!("{{{}}}", many.join(","))).contains(r#"the key "k42" twice"#));
        // The same key in sibling objects is fine.
        assert!(check(br#"{"a":{"k":1},"b":{"k":2},"k":3}"#).is_ok());
    }

    #[test]
    fn backslashes_are_found_anywhere() {
        for len in 0..70 {
            let mut bytes = vec![b'a'; len];
            assert!(!has_backslash(&bytes));
            for at in 0..len {
                bytes[at] = b'\\';
                assert!(has_backslash(&bytes), "{len} {at}");
                bytes[at] = b'a';
            }
        }
    }

    #[test]
    fn the_error_says_where() {
        assert_eq!(
            refused(r#"{"a":1,"a":2}"#),
            r#"JSON that parsers read differently: the key "a" twice in one object (at byte 7)"#
        );
    }
}
