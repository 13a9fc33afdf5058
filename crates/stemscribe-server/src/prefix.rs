//! Reads the credentials from the start of a request body that has not all arrived yet, so
//! that a large upload can be refused before it is read. Only string values of top-level
//! keys that come before the scan runs out of bytes are found; anything else is left to the
//! full parse once the body is in.

/// Credentials found at the start of an invoke body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// `appkey`, when it precedes the end of the prefix.
    pub appkey: Option<String>,
    /// `token`, when it precedes the end of the prefix.
    pub token: Option<String>,
}

/// Scans `prefix`, the first bytes of a JSON object, for `appkey` and `token`.
pub(crate) fn credentials(prefix: &[u8]) -> Credentials {
    let mut found = Credentials::default();
    let mut scanner = Scanner {
        bytes: prefix,
        at: 0,
    };
    scanner.skip_space();
    if !scanner.eat(b'{') {
        return found;
    }
    loop {
        scanner.skip_space();
        let Some(key) = scanner.string() else {
            return found;
        };
        scanner.skip_space();
        if !scanner.eat(b':') {
            return found;
        }
        scanner.skip_space();
        if scanner.peek() == Some(b'"') {
            let Some(value) = scanner.string() else {
                return found;
            };
            match key.as_str() {
                "appkey" => found.appkey = Some(value),
                "token" => found.token = Some(value),
                _ => {}
            }
        } else if !scanner.skip_value() {
            return found;
        }
        scanner.skip_space();
        if !scanner.eat(b',') {
            return found;
        }
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        self.at += usize::from(matched);
        matched
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// The end (past the closing quote) of the string starting at the cursor, if complete.
    fn string_end(&self) -> Option<usize> {
        let mut at = self.at + 1;
        while let Some(&byte) = self.bytes.get(at) {
            match byte {
                b'\\' => at += 2,
                b'"' => return Some(at + 1),
                _ => at += 1,
            }
        }
        None
    }

    /// A complete JSON string at the cursor, unescaped; `None` if it is not one or is cut off.
    fn string(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let end = self.string_end()?;
        let text = serde_json::from_slice(&self.bytes[self.at..end]).ok()?;
        self.at = end;
        Some(text)
    }

    /// Skips a complete non-string value (number, literal, object, array); false if cut off.
    fn skip_value(&mut self) -> bool {
        let mut depth = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b'"' => match self.string_end() {
                    Some(end) => {
                        self.at = end;
                        continue;
                    }
                    None => return false,
                },
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return true,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return true;
                    }
                }
                b',' if depth == 0 => return true,
                _ => {}
            }
            self.at += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(appkey: Option<&str>, token: Option<&str>) -> Credentials {
        Credentials {
            appkey: appkey.map(str::to_owned),
            token: token.map(str::to_owned),
        }
    }

    #[test]
    fn finds_credentials_before_the_data() {
        let body = br#"{"payload": {"extra": {"a": [1, "}"]}}, "appkey" : "k\"1", "token":"t", "data": "AAAA"#;
        assert_eq!(credentials(body), found(Some("k\"1"), Some("t")));
        let body = br#" { "namespace": "MIDI", "n": 12.5, "ok": true, "appkey": "k", "data": "AA"#;
        assert_eq!(credentials(body), found(Some("k"), None));
    }

    #[test]
    fn stops_where_the_prefix_ends_or_is_not_json() {
        assert_eq!(credentials(br#"{"data": "AAAA"#), found(None, None));
        assert_eq!(credentials(br#"{"appkey": "k"#), found(None, None));
        assert_eq!(
            credentials(br#"{"payload": {"appkey": "x", "#),
            found(None, None)
        );
        assert_eq!(credentials(b"[1, 2"), found(None, None));
        assert_eq!(credentials(b""), found(None, None));
        assert_eq!(
            credentials(br#"{"appkey": 5, "token": "t""#),
            found(None, Some("t"))
        );
    }
}
